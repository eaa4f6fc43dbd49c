// fbsd_callouts.h -- a set of FreeBSD-style callouts, built in a translation
// unit of its own (fbsd_callouts.cpp) because <callout/compat/freebsd.h>
// and <callout/callout.h> cannot share one.
#ifndef CALLOUT_TESTS_FBSD_CALLOUTS_H
#define CALLOUT_TESTS_FBSD_CALLOUTS_H

#include <callout/domain.h>

struct fbsd_callouts;

// n heap-allocated FreeBSD callouts on d (callout_init_on, MP-safe), each
// armed with callout_reset for 1000 + i ticks.
fbsd_callouts *fbsd_callouts_new(callout_domain_t *d, int n);
// callout_stop() of the first one: its return value.
int fbsd_callouts_stop_first(fbsd_callouts *set);
// callout_drain() of each, then overwrites and frees the memory with no
// further library call, as FreeBSD code does.
void fbsd_callouts_drain_and_free(fbsd_callouts *set);

// On virtual domain d (not advanced by anyone else): a FreeBSD callout armed
// with callout_reset_curcpu from the calling thread (not a handler), run by
// advancing d; returns the CPU index its handler ran on.
int fbsd_curcpu_lands_on(callout_domain_t *d);

#endif
