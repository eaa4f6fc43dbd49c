/*
 * callout.h -- libcallout, NetBSD's callout(9) as a userspace library.
 *
 * A callout is a one-shot timer: a handler, its argument and a due tick.
 * It lives in a domain: a set of CPUs, each with a lock, a timing wheel and
 * a softclock thread that runs the handlers of the callouts homed on it,
 * and a clock that counts ticks of 1/hz s (monotonic, manual or virtual for
 * tests, or driven by an event loop).  Most programs use the default domain.
 *
 * The C ABI and nothing else: the opaque callout_t, the flags and the
 * prototypes (this file), the domain configuration and the domain's
 * functions (<callout/domain.h>, included here), each followed by its
 * contract: what it
 * returns in each outcome, whether it may block, and who may call it.  The
 * man pages callout(3) and callout_domain(3) are the long form.  Terms:
 *   handler       a callout's function, run by its CPU's softclock thread
 *                 (or by callout_domain_run() for an external clock, by
 *                 callout_domain_advance() for a virtual one);
 *   dispatching   the softclock has taken a due callout off its wheel and
 *                 waits for the callout's associated lock (giant or its
 *                 mutex) before it invokes the handler;
 *   never sleeps  takes at most a short per-CPU spin lock;
 *   misuse        a caller bug: the library prints one line naming the
 *                 function, the callout and its handler, then aborts.
 * Unless a contract says otherwise a function may be called from any
 * thread, including from any handler (its own callout's too).
 *
 * ABI rule: sizeof(callout_t) is 12 pointers on every platform and may never
 * grow.  The implementation keeps its private layout inside that block (it
 * checks the fit at compile time) and allocates nothing per callout, so
 * callout_init() cannot fail.
 *
 * Compatible with C11 and C++17; every function has C linkage.
 */
#ifndef CALLOUT_CALLOUT_H
#define CALLOUT_CALLOUT_H

#include <callout/domain.h> /* domains, clocks, giant, stats: no callout_t */
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header; callout_version() gives the library's. */
#define CALLOUT_VERSION_MAJOR 1
#define CALLOUT_VERSION_MINOR 1
#define CALLOUT_VERSION_PATCH 0

/* Caller-provided storage for one callout.  Opaque; never grows. */
typedef struct callout {
  void *_c_store[12];
} callout_t;

/* Handler runs without the domain's giant lock. */
#define CALLOUT_MPSAFE 0x0100u
/* The handler itself releases its associated lock (the mutex of
 * callout_init_mtx, or giant); the softclock does not. */
#define CALLOUT_RETURNUNLOCKED 0x0200u
/* (1.1) The callout is never destroyed: its memory may be freed or reused
 * once it is neither pending nor running, with no further call (FreeBSD and
 * Linux code does that).  The domain does not count it, so it does not keep
 * callout_domain_destroy() from succeeding; callout_destroy() is allowed. */
#define CALLOUT_NODESTROY 0x0400u

/* ---- Callouts: callout(3) ---------------------------------------------- */

/* Life cycle.  A callout_t must stay at one address from init to destroy. */

CALLOUT_API void callout_init(callout_t *c, unsigned flags);
/* Prepares c on the calling handler's domain, else on the default domain
 * (started on first use).  flags: CALLOUT_MPSAFE (else the handler runs under
 * giant), optionally | CALLOUT_RETURNUNLOCKED | CALLOUT_NODESTROY; other
 * bits are misuse. */

CALLOUT_API void callout_init_domain(callout_t *c, unsigned flags, callout_domain_t *d);
/* As callout_init, on domain d (NULL: as callout_init). */

CALLOUT_API void callout_init_mtx(callout_t *c, callout_domain_t *d, pthread_mutex_t *mtx, unsigned flags);
/* As callout_init_domain, with mtx associated: the handler runs holding mtx
 * (unlocked after it, unless CALLOUT_RETURNUNLOCKED), and a stop or reset
 * made holding mtx means the handler will not run for that arming.  Never
 * takes giant.  mtx must outlive c; NULL is misuse. */

CALLOUT_API void callout_destroy(callout_t *c);
/* Retires c; then only an init may touch it.  Misuse if c is pending or
 * runs in another thread (halt it first); from c's own handler it is fine,
 * and the handler may then free c, unless a callout_halt_async completion
 * is outstanding (c must live until it has run).  Never sleeps. */

/* Scheduling.  ticks <= 0 means 1; due tick = callout_domain_ticks() +
 * ticks.  A reset while c's handler runs makes it run again after that
 * invocation returns, on the same CPU: never two invocations at once. */

CALLOUT_API void callout_setfunc(callout_t *c, callout_func_t func, void *arg);
/* Sets the handler and argument that callout_schedule uses; on a pending c
 * it changes what will run.  NULL func is misuse.  Never sleeps. */

CALLOUT_API void callout_reset(callout_t *c, int ticks, callout_func_t func, void *arg);
/* Sets the handler and schedules c ticks from now; a pending c moves, and
 * fires once.  Clears FIRED and INVOKING, and cancels a dispatch waiting for
 * c's lock.  Ignored after a shutdown or during an async halt.  Never
 * sleeps. */

CALLOUT_API void callout_schedule(callout_t *c, int ticks);
/* callout_reset with the handler already set; none set is misuse. */

/* Stopping. */

CALLOUT_API bool callout_stop(callout_t *c);
/* Unschedules c, clears PENDING and FIRED, returns the old FIRED: false, the
 * handler did not run for the last arming and now will not; true, it ran,
 * runs now or is about to (callout_halt waits for it).  Never blocks. */

CALLOUT_API bool callout_halt(callout_t *c, pthread_mutex_t *interlock);
/* callout_stop, then sleeps while another thread dispatches c or runs its
 * handler, undoing re-arms: true iff it waited.  While asleep it drops
 * interlock (held by the caller: pass the lock the handler takes) and giant,
 * then re-takes giant, then interlock.  On return no thread uses c and c is
 * not pending (unless reset since).  From c's own handler it does not wait;
 * two handlers halting each other's callouts deadlock. */

/* Binding. */

CALLOUT_API void callout_bind(callout_t *c, unsigned cpu);
/* c runs on CPU cpu of its domain from now on, never migrating.  Misuse
 * unless cpu < ncpu and c is not giant-locked, pending or running.  Never
 * sleeps. */

/* State.  One atomic load, no lock: stale on return unless the caller holds
 * c's associated lock or is c's handler.  Never block. */

CALLOUT_API bool callout_pending(callout_t *c);
/* PENDING: scheduled and not yet dispatched. */
CALLOUT_API bool callout_expired(callout_t *c);
/* FIRED: the handler was invoked since the last reset, schedule or stop. */
CALLOUT_API bool callout_active(callout_t *c);
/* PENDING or FIRED. */
CALLOUT_API bool callout_invoking(callout_t *c);
/* INVOKING: set with FIRED; cleared by ack, reset and schedule, not stop. */
CALLOUT_API void callout_ack(callout_t *c);
/* Clears INVOKING (the handler acknowledges its invocation). */

/* ---- Teardown and precision (beyond NetBSD's callout(9)) ----------------- */

CALLOUT_API bool callout_halt_async(callout_t *c, callout_func_t done, void *arg);
/* Stops c without blocking.  If another thread dispatches c or runs its
 * handler: true, and done(arg) runs once on that thread when it is done with
 * c (it may free c); until then reset and schedule of c are ignored.  Else
 * false (also from c's own handler): done never runs, c may be freed now.
 * At most 8 completions outstanding per callout; NULL done is misuse. */

CALLOUT_API void callout_shutdown(callout_t *c);
/* callout_stop, and every later reset or schedule of c is ignored until c is
 * initialised again.  Never sleeps. */

CALLOUT_API bool callout_shutdown_sync(callout_t *c, pthread_mutex_t *interlock);
/* callout_shutdown, then waits like callout_halt (same interlock and giant
 * rules, same return value, sleeps).  The mark is set before it waits, so
 * the running handler cannot re-arm c. */

CALLOUT_API void callout_reset_window(callout_t *c, int ticks, int slack, callout_func_t func, void *arg);
/* callout_reset, but the handler runs at some tick in [due, due + slack],
 * due = now + ticks: the latest multiple of the largest power of two in the
 * window, shared with other callouts to wake up less.  slack <= 0: reset. */

CALLOUT_API const char *callout_version(void);
/* The library's version, "MAJOR.MINOR.PATCH" (static storage). */

#ifdef __cplusplus
}
#endif

#endif /* CALLOUT_CALLOUT_H */
