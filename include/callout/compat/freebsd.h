/*
 * callout/compat/freebsd.h -- FreeBSD 14's callout(9) KPI on libcallout.
 *
 * A file written for FreeBSD's <sys/callout.h> compiles against this header
 * instead, unchanged: the same names, flag values, return values and rules.
 * It replaces <callout/callout.h>: both define struct callout and
 * callout_init(), so a translation unit includes one or the other (the
 * domain API, <callout/domain.h>, comes with either).  The FreeBSD names
 * are macros onto callout_fbsd_*() functions (symbol version CALLOUT_1.1).
 *
 * What FreeBSD code gets, and where it differs (callout_compat(3) and
 * docs/PORTING.md have the full table):
 *   - struct callout is opaque (12 pointers); code that reads c_time or
 *     c_flags directly must use the macros below instead.
 *   - callout_init(c, 0) runs the handler under the domain's giant lock
 *     (FreeBSD's Giant; callout_giant_enter() takes it); callout_init_mtx()
 *     takes a pthread_mutex_t.  Callouts start on CPU 0, FreeBSD's default
 *     CPU, and move only through the _on/_curcpu variants.
 *   - No destroy: once callout_drain() has returned (or a stop returned 1
 *     or -1 and no handler runs), the memory may be freed or reused.
 *   - callout_stop/drain/async_drain return FreeBSD 14's 1 / 0 / -1 in every
 *     case of its table, and clear ACTIVE on every path (as the man page
 *     says; FreeBSD's code keeps it on the -1 path).  A stop of a
 *     mutex-associated callout assumes the caller holds the mutex (FreeBSD
 *     asserts it).  A reset while a drain waits is ignored and returns 0.
 *   - Time: hz and ticks are those of the calling thread's domain (the
 *     domain of the handler it runs, else the default domain); sbintime_t
 *     times are rounded up to whole ticks, precision windows down.  No
 *     system-wide allowed deviation: only pr and C_PREL() widen a window.
 *     C_DIRECT_EXEC and C_HARDCLOCK are accepted and change nothing (every
 *     handler runs on a softclock thread; times are in ticks already).
 *   - A reset_on that asks to move a callout whose handler is running
 *     leaves it where it is (FreeBSD defers the move until the handler
 *     returns); a later reset moves it.
 *   - callout_drain() from the callout's own handler is misuse (an abort
 *     with a message), where FreeBSD would sleep for ever.
 * Define CALLOUT_FREEBSD_NO_HZ_TICKS to keep the macros hz and ticks out of
 * a file that uses those words for something else.
 */
#ifndef CALLOUT_COMPAT_FREEBSD_H
#define CALLOUT_COMPAT_FREEBSD_H

#include <callout/domain.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A FreeBSD callout: opaque storage, the same 12 pointers as callout_t. */
struct callout {
  void *_c_store[12];
};

typedef int64_t sbintime_t;

/* Flags of callout_init_mtx (FreeBSD's values). */
#define CALLOUT_RETURNUNLOCKED 0x0010 /* the handler releases the mutex */
#define CALLOUT_SHAREDLOCK 0x0020     /* read lock: ignored for a mutex */
#define CALLOUT_MPSAFE 0x0008         /* deprecated in FreeBSD; unused here */

/* Flags of the _sbt functions (FreeBSD's values). */
#define C_DIRECT_EXEC 0x0001 /* accepted; handlers run on softclock threads */
#define C_PRELBITS 7
#define C_PRELRANGE ((1 << C_PRELBITS) - 1)
#define C_PREL(x) (((x) + 1) << 1) /* precision: at least sbt / 2^x */
#define C_PRELGET(x) (int)((((x) >> 1) & C_PRELRANGE) - 1)
#define C_HARDCLOCK 0x0100 /* accepted; times are in ticks already */
#define C_ABSOLUTE 0x0200  /* sbt is an instant of sbinuptime() */
#define C_PRECALC 0x0400   /* accepted */
#define C_CATCH 0x0800     /* accepted */

/* sbintime_t: seconds in 32.32 fixed point. */
#define SBT_1S ((sbintime_t)1 << 32)
#define SBT_1M (SBT_1S * 60)
#define SBT_1MS (SBT_1S / 1000)
#define SBT_1US (SBT_1S / 1000000)
#define SBT_1NS (SBT_1S / 1000000000) /* 0: use nstosbt() */
#define SBT_MAX 0x7fffffffffffffffLL
/* Conversions (never early: to sbintime_t rounded up; from it, down). */
static inline sbintime_t mstosbt(int64_t ms) {
  return (sbintime_t)((uint64_t)ms / 1000 * 4294967296ULL +
                      ((uint64_t)ms % 1000 * 4294967296ULL + 999) / 1000);
}
static inline sbintime_t ustosbt(int64_t us) {
  return (sbintime_t)((uint64_t)us / 1000000 * 4294967296ULL +
                      ((uint64_t)us % 1000000 * 4294967296ULL + 999999) / 1000000);
}
static inline sbintime_t nstosbt(int64_t ns) {
  return (sbintime_t)((uint64_t)ns / 1000000000 * 4294967296ULL +
                      ((uint64_t)ns % 1000000000 * 4294967296ULL + 999999999) / 1000000000);
}
static inline int64_t sbttoms(sbintime_t sbt) {
  return (int64_t)(((uint64_t)sbt >> 32) * 1000 + (((uint64_t)sbt & 0xffffffffu) * 1000 >> 32));
}
static inline int64_t sbttous(sbintime_t sbt) {
  return (int64_t)(((uint64_t)sbt >> 32) * 1000000 + (((uint64_t)sbt & 0xffffffffu) * 1000000 >> 32));
}

/* ---- The library side (CALLOUT_1.1); use the FreeBSD names below ------- */

CALLOUT_API void callout_fbsd_init(struct callout *c, int mpsafe, callout_domain_t *d);
/* callout_init (d NULL: the calling thread's domain). */
CALLOUT_API void callout_fbsd_init_mtx(struct callout *c, pthread_mutex_t *mtx, int flags,
                                       callout_domain_t *d);
/* callout_init_mtx; flags other than RETURNUNLOCKED/SHAREDLOCK are misuse. */
CALLOUT_API int callout_fbsd_reset_ticks(struct callout *c, int ticks, callout_func_t func, void *arg,
                                         int cpu);
/* The tick resets and schedules (func NULL: keep the handler); cpu -1:
 * stay, -2: the caller's CPU.  1 if it replaced a pending arming (or
 * cancelled a dispatch waiting for the callout's lock), else 0. */
CALLOUT_API int callout_fbsd_reset_sbt(struct callout *c, sbintime_t sbt, sbintime_t pr, callout_func_t func,
                                       void *arg, int cpu, int flags);
/* The sbintime_t resets; same returns. */
CALLOUT_API int callout_fbsd_stop(struct callout *c, int drain, callout_func_t async_drain);
/* stop (0, NULL), drain (1, NULL), async drain (0, fn): 1 / 0 / -1. */
CALLOUT_API int callout_fbsd_pending(struct callout *c);
CALLOUT_API int callout_fbsd_active(struct callout *c);
CALLOUT_API void callout_fbsd_deactivate(struct callout *c);
CALLOUT_API int callout_fbsd_hz(void);
CALLOUT_API int callout_fbsd_ticks(void);
CALLOUT_API sbintime_t callout_fbsd_sbinuptime(void);

/* ---- FreeBSD's names -------------------------------------------------- */

/* Initialisation.  mpsafe 0: the handler runs under giant. */
#define callout_init(c, mpsafe) callout_fbsd_init((c), (mpsafe), NULL)
#define callout_init_mtx(c, mtx, flags) callout_fbsd_init_mtx((c), (mtx), (flags), NULL)
/* libcallout extensions: the same, on domain d. */
#define callout_init_on(c, mpsafe, d) callout_fbsd_init((c), (mpsafe), (d))
#define callout_init_mtx_on(c, mtx, flags, d) callout_fbsd_init_mtx((c), (mtx), (flags), (d))

/* Scheduling: each returns 1 if it replaced a pending arming (or cancelled
 * a dispatch waiting for the callout's lock), else 0.  ticks <= 0 means 1. */
#define callout_reset(c, ticks_, func, arg) callout_fbsd_reset_ticks((c), (ticks_), (func), (arg), -1)
#define callout_reset_on(c, ticks_, func, arg, cpu) \
  callout_fbsd_reset_ticks((c), (ticks_), (func), (arg), (cpu))
#define callout_reset_curcpu(c, ticks_, func, arg) callout_fbsd_reset_ticks((c), (ticks_), (func), (arg), -2)
#define callout_reset_sbt(c, sbt, pr, func, arg, flags) \
  callout_fbsd_reset_sbt((c), (sbt), (pr), (func), (arg), -1, (flags))
#define callout_reset_sbt_on(c, sbt, pr, func, arg, cpu, flags) \
  callout_fbsd_reset_sbt((c), (sbt), (pr), (func), (arg), (cpu), (flags))
#define callout_reset_sbt_curcpu(c, sbt, pr, func, arg, flags) \
  callout_fbsd_reset_sbt((c), (sbt), (pr), (func), (arg), -2, (flags))
#define callout_schedule(c, ticks_) callout_fbsd_reset_ticks((c), (ticks_), NULL, NULL, -1)
#define callout_schedule_on(c, ticks_, cpu) callout_fbsd_reset_ticks((c), (ticks_), NULL, NULL, (cpu))
#define callout_schedule_curcpu(c, ticks_) callout_fbsd_reset_ticks((c), (ticks_), NULL, NULL, -2)
#define callout_schedule_sbt(c, sbt, pr, flags) \
  callout_fbsd_reset_sbt((c), (sbt), (pr), NULL, NULL, -1, (flags))
#define callout_schedule_sbt_on(c, sbt, pr, cpu, flags) \
  callout_fbsd_reset_sbt((c), (sbt), (pr), NULL, NULL, (cpu), (flags))
#define callout_schedule_sbt_curcpu(c, sbt, pr, flags) \
  callout_fbsd_reset_sbt((c), (sbt), (pr), NULL, NULL, -2, (flags))

/* Stopping: 1 = was pending and is stopped; 0 = being serviced, could not
 * be stopped; -1 = neither pending nor serviced.  stop and async_drain never
 * sleep; drain sleeps until no handler runs (not from the callout's own
 * handler, not holding its mutex). */
#define callout_stop(c) callout_fbsd_stop((c), 0, NULL)
#define callout_drain(c) callout_fbsd_stop((c), 1, NULL)
#define callout_async_drain(c, drain_fn) callout_fbsd_stop((c), 0, (drain_fn))

/* State: PENDING (armed, not yet dispatched) and ACTIVE (set by a reset,
 * cleared by stop, drain and deactivate -- not by the handler running). */
#define callout_pending(c) callout_fbsd_pending(c)
#define callout_active(c) callout_fbsd_active(c)
#define callout_deactivate(c) callout_fbsd_deactivate(c)

#define sbinuptime() callout_fbsd_sbinuptime()
#define getsbinuptime() callout_fbsd_sbinuptime()
#define tick_sbt (SBT_1S / callout_fbsd_hz())

#ifndef CALLOUT_FREEBSD_NO_HZ_TICKS
#define hz (callout_fbsd_hz())
#define ticks (callout_fbsd_ticks())
#endif

#ifdef __cplusplus
}
#endif

#endif /* CALLOUT_COMPAT_FREEBSD_H */
