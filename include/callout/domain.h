/*
 * callout/domain.h -- libcallout's domains: clocks, CPUs, the giant lock,
 * virtual time, event-loop embedding, diagnostics and counters.
 *
 * Everything of the C ABI that does not name callout_t, so that the
 * kernel-KPI headers (<callout/compat/freebsd.h>, which defines its own
 * struct callout) can share it.  <callout/callout.h> includes it; the terms
 * and the ABI rules are that header's.  Compatible with C11 and C++17;
 * every function has C linkage.
 */
#ifndef CALLOUT_DOMAIN_H
#define CALLOUT_DOMAIN_H

#include <pthread.h>
#include <sched.h>
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

/* A handler (and a completion: callout_halt_async). */
typedef void (*callout_func_t)(void *);

typedef struct callout_domain callout_domain_t;

enum callout_clock {
  CALLOUT_CLOCK_MONOTONIC = 0, /* ticks follow CLOCK_MONOTONIC, tickless */
  CALLOUT_CLOCK_MANUAL = 1,    /* ticks move only by callout_domain_advance */
  CALLOUT_CLOCK_EXTERNAL = 2,  /* monotonic ticks, no thread: an event loop runs
                                  the handlers (callout_domain_run); 1 CPU */
  CALLOUT_CLOCK_VIRTUAL = 3    /* (1.1) ticks move only by callout_domain_advance,
                                  which runs the due handlers in the calling
                                  thread, deterministically; no thread */
};

/* (1.1) Bits of callout_domain_config.flags. */
#define CALLOUT_DOMAIN_PIN                          \
  0x1u /* pin softclock thread i to the i-th CPU of \
          the creating thread's affinity mask */

struct callout_domain_config {
  size_t size;   /* sizeof(struct callout_domain_config) */
  unsigned ncpu; /* 0: number of online processors; at most 1024
                    (an external clock has exactly 1) */
  unsigned hz;   /* ticks per second, 1..1000000; 0: 1000 */
  enum callout_clock clock;
  /* (1.1) The fields below grow the 1.0 struct at its end; a caller built
   * against an older header passes the older size and gets their defaults
   * (all zero).  They apply to the softclock threads, so only to the
   * monotonic and manual clocks: an external or virtual clock has none (the
   * caller's thread runs the handlers), and there they are checked, then
   * ignored.  uint64_t first: it starts at the 1.0 size on every ABI, past
   * the 1.0 struct's tail padding. */
  uint64_t flags;     /* CALLOUT_DOMAIN_PIN; 0: the threads float */
  int sched_policy;   /* SCHED_OTHER (0): the threads inherit the creating
                         thread's policy and priority (after fork(), the
                         forking thread's); SCHED_FIFO, SCHED_RR */
  int sched_priority; /* SCHED_FIFO, SCHED_RR: sched_get_priority_min() to
                         _max() (1..99 on Linux); SCHED_OTHER: 0 */
};

/* ---- Domains: callout_domain(3) ---------------------------------------- */

CALLOUT_API void callout_domain_config_init(struct callout_domain_config *cfg);
/* Fills *cfg with the defaults (a CPU per online processor, 1000 Hz,
 * monotonic clock, floating threads of the inherited policy) and sets
 * cfg->size.  Start every config from it.  (Programs built against the 1.0
 * header reach a 1.0 version of it that writes only the 1.0 struct.) */

CALLOUT_API int callout_domain_create(const struct callout_domain_config *cfg, callout_domain_t **dp);
/* Builds a domain and starts its softclock threads (none for an external
 * or virtual clock): 0 and *dp set.  EINVAL: NULL, a size other than the
 * 1.0 struct's or at least the current one's, hz > 10^6, ncpu > 1024 (or > 1 for an external clock), unknown
 * clock, unknown flags, a policy other than SCHED_OTHER, SCHED_FIFO or
 * SCHED_RR, a priority out of the policy's range; EPERM: the process may
 * not use that policy or priority (RLIMIT_RTPRIO, no CAP_SYS_NICE); EAGAIN
 * or ENOMEM: no thread or memory.  On error *dp is untouched and nothing
 * leaks.  With CALLOUT_DOMAIN_PIN, thread i runs only on the
 * (i mod count)-th CPU of the creating thread's affinity mask (more CPUs
 * than the mask has wrap around), and an MPSAFE or mutex callout
 * initialised outside a handler is homed on the CPU pinned to the processor
 * the caller runs on (the lowest such index), else on sched_getcpu() mod
 * ncpu (giant-locked callouts stay on CPU 0).  The threads
 * get their CPU and policy when they are created, before they run.  May
 * block briefly. */

CALLOUT_API int callout_domain_destroy(callout_domain_t *d);
/* Joins d's threads and frees d: 0.  EBUSY (nothing changed) while a callout
 * initialised on d is not destroyed, or any callout of d is pending (a
 * CALLOUT_NODESTROY one is never counted, only its pending arming); EINVAL
 * for NULL or the default domain; EDEADLK from a handler of d.  Sleeps until
 * the threads exit.  Not while another thread advances or runs d. */

CALLOUT_API callout_domain_t *callout_domain_default(void);
/* The process-wide domain, started on first use and never freed: monotonic,
 * 1000 Hz, a CPU per online processor, unless callout_domain_default_configure
 * or CALLOUT_DEFAULT_DOMAIN said otherwise.  Aborts with a message if it
 * cannot start or the environment variable is malformed. */

CALLOUT_API unsigned callout_domain_ncpu(const callout_domain_t *d);
CALLOUT_API unsigned callout_domain_hz(const callout_domain_t *d);
/* d's number of CPUs and ticks per second (defaults applied).  Never block. */

CALLOUT_API uint64_t callout_domain_ticks(const callout_domain_t *d);
/* d's tick count, 0 at creation; inside a handler run by
 * callout_domain_advance(), the tick being processed.  Never blocks. */

CALLOUT_API int callout_domain_curcpu(const callout_domain_t *d);
/* The CPU index when the caller is a softclock thread of d (a handler of d,
 * a thread inside callout_domain_run(d), or one running d's handlers in a
 * virtual callout_domain_advance(d)), else -1. */

CALLOUT_API int callout_domain_advance(callout_domain_t *d, uint64_t nticks);
/* Manual and virtual clocks only (else EINVAL): moves the clock nticks
 * forward, running everything due at tick t before anything due at t + 1;
 * returns 0 once all of it has finished.  Virtual clock: the handlers run in
 * the calling thread, CPU 0's first, each CPU's in the order they were armed
 * (a callout moved later while pending takes its place when the wheel
 * re-places it), so the same calls give the same order.  Sleeps: EDEADLK from a handler of d; never call it
 * holding a mutex that a due handler takes (or giant, on a manual clock). */

CALLOUT_API void callout_giant_enter(callout_domain_t *d);
/* Takes d's recursive giant lock, under which the handlers of callouts
 * without CALLOUT_MPSAFE (and without a mutex) run.  May block.  Code that
 * takes both giant and a mutex should take giant first. */

CALLOUT_API void callout_giant_exit(callout_domain_t *d);
/* Releases one level of giant.  Never blocks; misuse if the caller does not
 * hold it. */

CALLOUT_API int callout_domain_drain(callout_domain_t *d);
/* (1.1) Returns once no handler of d is running or being dispatched; while
 * it waits no new dispatch starts on d, and pending callouts stay pending.
 * 0; EDEADLK from a handler of d; EINVAL for NULL.  Sleeps: not holding
 * giant or a mutex that a running handler or waiting dispatch needs. */

CALLOUT_API int callout_domain_default_configure(const struct callout_domain_config *cfg);
/* (1.1) Sets the configuration the default domain will start with: 0.
 * EBUSY (nothing changed) once it has started; EINVAL for a bad cfg.  Wins
 * over the environment variable CALLOUT_DEFAULT_DOMAIN ("clock=virtual,
 * hz=100,ncpu=1": keys clock, hz, ncpu; 1.1: pin=0|1, policy=other|fifo|rr,
 * priority=N), read at first use otherwise.  A 1.0-sized cfg is accepted
 * (missing fields: defaults), as by callout_domain_create. */

CALLOUT_API callout_domain_t *callout_domain_current(void);
/* (1.1) The domain callout_init() uses from the calling thread: that of the
 * handler it is running, else the default domain (started if need be). */

/* ---- Event-loop embedding (CALLOUT_CLOCK_EXTERNAL domains) -------------- */

CALLOUT_API int64_t callout_domain_next_timeout(callout_domain_t *d);
/* Nanoseconds until the start of the earliest tick with work on d: 0 if
 * something is due, -1 if nothing is pending or the clock is manual or
 * virtual.
 * Possibly early, never late.  Never sleeps. */

CALLOUT_API unsigned callout_domain_run(callout_domain_t *d);
/* External clock (else 0): runs every handler of d due by now, in tick
 * order, in the calling thread, which acts as d's CPU 0 meanwhile; returns
 * how many ran.  One thread at a time, not from a handler of d (misuse). */

CALLOUT_API int callout_domain_fd(callout_domain_t *d);
/* External clock: a timerfd owned by d, readable from the start of the next
 * tick with work (possibly early: run then returns 0); callout_domain_run()
 * clears and re-arms it.  Other clocks: -1, errno EINVAL. */

/* ---- Diagnostics (callout_domain(3)) ----------------------------------- */

CALLOUT_API int callout_domain_check(callout_domain_t *d, FILE *out);
/* Checks every CPU's wheel invariants and the state of every pending callout,
 * printing one line per violation to out (unless NULL): 0 if consistent,
 * else the count.  One CPU lock at a time; meaningful when d is quiescent. */

/* ---- Observability (callout_domain(3)) --------------------------------- */

#define CALLOUT_LATENCY_BUCKETS 40

/* Counters of one CPU, or of a whole domain.  The caller sets `size` to
 * sizeof(struct callout_stats) first (so the struct can grow: fields are
 * only ever added at the end, and a caller built against an older header
 * gets the fields its struct has). */
struct callout_stats {
  size_t size;
  uint64_t scheduled;      /* reset/schedule of a callout that was not pending */
  uint64_t rescheduled;    /* reset/schedule of a pending callout */
  uint64_t stopped;        /* stops of any kind that unscheduled a callout */
  uint64_t fired;          /* handlers invoked */
  uint64_t fired_late;     /* ... after their due tick */
  uint64_t late_max_ticks; /* the most ticks a handler ran late */
  uint64_t cancelled;      /* lock-associated dispatches cancelled by stop/reset */
  uint64_t halts;          /* halt, halt_async and shutdown_sync calls */
  uint64_t halts_waited;   /* ... that found the callout in use elsewhere */
  uint64_t run_ns_total;   /* time spent in handlers */
  uint64_t run_ns_max;     /* the longest handler run (manual clock: the
                              longest batch run for one tick on one CPU) */
  uint64_t pending;        /* callouts pending now */
  uint64_t ignored;        /* reset/schedule ignored (shut down or draining) */
  uint64_t wakeups;        /* times the softclock thread woke up */
  /* Lateness of handler starts past the start of their due tick, monotonic
   * and external clocks only: bucket i counts lateness in [2^i, 2^(i+1)) ns
   * (bucket 0 also counts 0 ns). */
  uint64_t lateness_ns_log2[CALLOUT_LATENCY_BUCKETS];
  /* (1.1) The longest time a CPU lock was held, in ns, by what held it.  A
   * reset or stop waits for the lock at most this long (plus the holds of
   * other resets and stops).  The O(1) holds are timed on a sample, one hold
   * in 4096 per CPU; each timed hold includes one clock read (tens of ns). */
  uint64_t lock_hold_ns_max_cascade; /* re-placing the callouts of a wheel
                                        bucket: one cascade chunk at a
                                        boundary or one pre-cascade chunk
                                        before it (softclock threads), or a
                                        step of callout_domain_advance that
                                        cascades; every one timed */
  uint64_t lock_hold_ns_max_batch;   /* a softclock's bookkeeping between
                                        handlers: taking the next callout off
                                        the expired list, the dispatch
                                        protocol, finishing a dispatch
                                        (sampled) */
  uint64_t lock_hold_ns_max_api;     /* reset, schedule, stop, halt and the
                                        like (sampled) */
  /* (1.1) The time dispatches of lock-associated callouts waited for the
   * callout's mutex or the giant lock before their handler could run: the
   * application's lock, not the wheel's, so not a CPU-lock hold (the CPU
   * lock is released during that wait).  Every contended wait is timed. */
  uint64_t assoc_wait_ns_total; /* sum over all such dispatches */
  uint64_t assoc_wait_ns_max;   /* the longest single wait */
};

CALLOUT_API int callout_domain_stats(callout_domain_t *d, int cpu, struct callout_stats *out);
/* Copies the counters of CPU cpu of d, or their sums over every CPU when
 * cpu < 0 (maxima: the largest), into *out: 0, or EINVAL for a bad size or
 * CPU.  out->size may be that of an older header's struct (1.0's ends with
 * lateness_ns_log2): only the fields that fit are written.  Never sleeps. */

CALLOUT_API void callout_domain_dump(callout_domain_t *d, FILE *out);
/* Prints every pending callout (ticks left, CPU, wheel level and bucket,
 * argument, handler symbol) and what each CPU runs, as NetBSD's DDB "show
 * callout".  Safe while d runs. */

CALLOUT_API void callout_domain_print_stats(callout_domain_t *d, FILE *out);
/* Prints callout_domain_stats() of d as a table (one row per CPU and a
 * total) and the lateness histogram as bars: the "callout-stat" view. */

#ifdef __cplusplus
}
#endif

#endif /* CALLOUT_DOMAIN_H */
