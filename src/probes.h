// probes.h -- USDT (SystemTap/DTrace-style) static probes, provider
// "callout", named after NetBSD's SDT probes: init, destroy, schedule,
// migrate, entry, return, stop, halt, halt_done.
//
// A probe is a single nop plus an ELF note (readelf -n shows them); it
// costs nothing until a tracer attaches (perf probe, bpftrace, stap), so
// they are compiled in whenever <sys/sdt.h> (Debian systemtap-sdt-dev) was
// found at configure time.  Arguments: usually the callout, its handler,
// its argument, then a probe-specific value -- schedule and entry: the due
// tick; stop: FIRED; halt_done: whether it waited; return: the run time in
// ns.  init: the callout, its flags, the domain, the home CPU; migrate: the
// callout, its handler, the old and the new CPU index; destroy and halt:
// the callout, its handler and argument only.
#ifndef CALLOUT_SRC_PROBES_H
#define CALLOUT_SRC_PROBES_H

#ifdef CALLOUT_HAVE_SDT
#include <sys/sdt.h>
#define CALLOUT_PROBE3(name, a, b, c) DTRACE_PROBE3(callout, name, a, b, c)
#define CALLOUT_PROBE4(name, a, b, c, d) DTRACE_PROBE4(callout, name, a, b, c, d)
#else
#define CALLOUT_PROBE3(name, a, b, c) ((void)0)
#define CALLOUT_PROBE4(name, a, b, c, d) ((void)0)
#endif

#endif  // CALLOUT_SRC_PROBES_H
