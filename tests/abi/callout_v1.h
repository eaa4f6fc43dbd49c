/*
 * callout_v1.h -- FROZEN copy of the first public header (1.0.0), kept so
 * that tests/abi/compat.c proves programs built against it still work with
 * the current library.  Never edit it.
 *
 * callout.h -- libcallout, NetBSD's callout(9) as a userspace library.
 *
 * The C ABI and nothing else: the opaque callout_t, the flags, the domain
 * configuration and the prototypes.  The contract behind every name here is
 * SPEC.md; the man pages callout(3) and callout_domain(3) say the same for
 * users, and docs/DESIGN.md says how the library keeps it.
 *
 * ABI rule: sizeof(callout_t) is 12 pointers on every platform and may never
 * grow.  The implementation keeps its private layout inside that block (it
 * checks the fit at compile time) and allocates nothing per callout, so
 * callout_init() cannot fail.
 *
 * Compatible with C11 and C++17; every function has C linkage.
 */
#ifndef CALLOUT_V1_FROZEN_H
#define CALLOUT_V1_FROZEN_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define CALLOUT_API __attribute__((visibility("default")))
#else
#define CALLOUT_API
#endif

/* The version of this header; callout_version() gives the library's. */
#define CALLOUT_VERSION_MAJOR 1
#define CALLOUT_VERSION_MINOR 0
#define CALLOUT_VERSION_PATCH 0

/* Caller-provided storage for one callout.  Opaque; never grows. */
typedef struct callout {
  void *_c_store[12];
} callout_t;

typedef void (*callout_func_t)(void *);

/* Handler runs without the domain's giant lock. */
#define CALLOUT_MPSAFE 0x0100u
/* With callout_init_mtx: the handler itself unlocks the mutex. */
#define CALLOUT_RETURNUNLOCKED 0x0200u

typedef struct callout_domain callout_domain_t;

enum callout_clock {
  CALLOUT_CLOCK_MONOTONIC = 0, /* ticks follow CLOCK_MONOTONIC, tickless */
  CALLOUT_CLOCK_MANUAL = 1,    /* ticks move only by callout_domain_advance */
  CALLOUT_CLOCK_EXTERNAL = 2   /* monotonic ticks, no thread: an event loop runs
                                  the handlers (callout_domain_run); 1 CPU */
};

struct callout_domain_config {
  size_t size;   /* sizeof(struct callout_domain_config) */
  unsigned ncpu; /* 0: number of online processors; at most 1024 */
  unsigned hz;   /* ticks per second, 1..1000000; 0: 1000 */
  enum callout_clock clock;
};

/* ---- Domains: callout_domain(3) ---------------------------------------- */

CALLOUT_API void callout_domain_config_init(struct callout_domain_config *cfg);
CALLOUT_API int callout_domain_create(const struct callout_domain_config *cfg, callout_domain_t **dp);
CALLOUT_API int callout_domain_destroy(callout_domain_t *d);
CALLOUT_API callout_domain_t *callout_domain_default(void);
CALLOUT_API unsigned callout_domain_ncpu(const callout_domain_t *d);
CALLOUT_API unsigned callout_domain_hz(const callout_domain_t *d);
CALLOUT_API uint64_t callout_domain_ticks(const callout_domain_t *d);
CALLOUT_API int callout_domain_curcpu(const callout_domain_t *d);
CALLOUT_API int callout_domain_advance(callout_domain_t *d, uint64_t nticks);
CALLOUT_API void callout_giant_enter(callout_domain_t *d);
CALLOUT_API void callout_giant_exit(callout_domain_t *d);

/* ---- Callouts: callout(3) ---------------------------------------------- */

CALLOUT_API void callout_init(callout_t *c, unsigned flags);
CALLOUT_API void callout_init_domain(callout_t *c, unsigned flags, callout_domain_t *d);
CALLOUT_API void callout_init_mtx(callout_t *c, callout_domain_t *d, pthread_mutex_t *mtx, unsigned flags);
CALLOUT_API void callout_destroy(callout_t *c);
CALLOUT_API void callout_setfunc(callout_t *c, callout_func_t func, void *arg);
CALLOUT_API void callout_reset(callout_t *c, int ticks, callout_func_t func, void *arg);
CALLOUT_API void callout_schedule(callout_t *c, int ticks);
CALLOUT_API bool callout_stop(callout_t *c);
CALLOUT_API bool callout_halt(callout_t *c, pthread_mutex_t *interlock);
CALLOUT_API void callout_bind(callout_t *c, unsigned cpu);
CALLOUT_API bool callout_pending(callout_t *c);
CALLOUT_API bool callout_expired(callout_t *c);
CALLOUT_API bool callout_active(callout_t *c);
CALLOUT_API bool callout_invoking(callout_t *c);
CALLOUT_API void callout_ack(callout_t *c);

/* ---- Teardown and precision (beyond SPEC.md; callout(3)) --------------- */

/* Stops c without blocking.  If a thread is dispatching c or running its
 * handler, returns true and calls done(arg) exactly once, on that softclock
 * thread, once nothing uses c any more; until then reset/schedule of c are
 * ignored.  Otherwise returns false and never calls done. */
CALLOUT_API bool callout_halt_async(callout_t *c, callout_func_t done, void *arg);

/* Stop (non-blocking), and ignore every later reset/schedule of c until it
 * is initialised again. */
CALLOUT_API void callout_shutdown(callout_t *c);

/* As callout_shutdown, waiting like callout_halt (same interlock rules and
 * return value). */
CALLOUT_API bool callout_shutdown_sync(callout_t *c, pthread_mutex_t *interlock);

/* As callout_reset, but the handler may run at any tick in
 * [due, due + slack] (due = now + ticks); the library picks a tick that it
 * can share with other callouts, to wake up less often. */
CALLOUT_API void callout_reset_window(callout_t *c, int ticks, int slack, callout_func_t func, void *arg);

/* ---- Event-loop embedding (CALLOUT_CLOCK_EXTERNAL domains) -------------- */

/* Nanoseconds until the next due tick of d: 0 if something is due, -1 if
 * nothing is pending (or d's clock is manual). */
CALLOUT_API int64_t callout_domain_next_timeout(callout_domain_t *d);

/* Runs every handler due on an external-clock domain, in the calling
 * thread (the loop thread); returns how many ran.  0 for other clocks. */
CALLOUT_API unsigned callout_domain_run(callout_domain_t *d);

/* A file descriptor that polls readable whenever something is due on d (an
 * external-clock domain), or when a callout was added that makes the next
 * timeout earlier.  Owned by d.  -1 (errno EINVAL) for other clocks. */
CALLOUT_API int callout_domain_fd(callout_domain_t *d);

/* ---- Diagnostics (beyond SPEC.md) -------------------------------------- */

/*
 * Walks every CPU of d and checks the wheel invariants (bucket placement,
 * occupancy bitmaps, next-due tick against a brute-force minimum, state
 * flags of every pending callout).  Prints one line per violation to out
 * (if out is not NULL).  Returns 0 when the domain is consistent, else the
 * number of violations.  Takes each CPU's lock in turn; safe at any time,
 * meaningful when the domain is quiescent.
 */
CALLOUT_API int callout_domain_check(callout_domain_t *d, FILE *out);

/* ---- Observability (beyond SPEC.md; callout_domain(3)) ---------------- */

#define CALLOUT_LATENCY_BUCKETS 40

/* Counters of one CPU, or of a whole domain.  The caller sets `size` to
 * sizeof(struct callout_stats) first (so the struct can grow). */
struct callout_stats {
  size_t size;
  uint64_t scheduled;      /* reset/schedule of a callout that was not pending */
  uint64_t rescheduled;    /* reset/schedule of a pending callout */
  uint64_t stopped;        /* stop/halt that unscheduled a pending callout */
  uint64_t fired;          /* handlers invoked */
  uint64_t fired_late;     /* ... after their due tick */
  uint64_t late_max_ticks; /* the most ticks a handler ran late */
  uint64_t cancelled;      /* lock-associated dispatches cancelled by stop/reset */
  uint64_t halts;          /* callout_halt calls */
  uint64_t halts_waited;   /* ... that had to wait */
  uint64_t run_ns_total;   /* time spent in handlers */
  uint64_t run_ns_max;     /* the longest handler run */
  uint64_t pending;        /* callouts pending now */
  uint64_t ignored;        /* reset/schedule ignored (shut down or draining) */
  uint64_t wakeups;        /* times the softclock thread woke up */
  /* Lateness of handler starts past the start of their due tick, monotonic
   * clock only: bucket i counts lateness in [2^i, 2^(i+1)) ns (bucket 0
   * also counts 0 ns). */
  uint64_t lateness_ns_log2[CALLOUT_LATENCY_BUCKETS];
};

/* Sums over every CPU of d (cpu < 0) or one CPU.  0, or EINVAL for a bad
 * size or CPU index. */
CALLOUT_API int callout_domain_stats(callout_domain_t *d, int cpu, struct callout_stats *out);

/* Prints every pending callout (ticks left, CPU, wheel level/bucket,
 * argument, handler symbol) and each CPU's running callout, in the spirit
 * of NetBSD's DDB "show callout".  Safe while the domain runs. */
CALLOUT_API void callout_domain_dump(callout_domain_t *d, FILE *out);

/* Prints callout_domain_stats() of d as a table (one row per CPU and a
 * total) and the lateness histogram as bars: the "callout-stat" view. */
CALLOUT_API void callout_domain_print_stats(callout_domain_t *d, FILE *out);

/* The library's version, "MAJOR.MINOR.PATCH". */
CALLOUT_API const char *callout_version(void);

#ifdef __cplusplus
}
#endif

#endif /* CALLOUT_V1_FROZEN_H */
