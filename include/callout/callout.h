/*
 * callout.h -- libcallout, NetBSD's callout(9) as a userspace library.
 *
 * A callout is a one-shot timer: a handler, its argument and a due tick.
 * It lives in a domain: a set of CPUs, each with a lock, a timing wheel and
 * a softclock thread that runs the handlers of the callouts homed on it,
 * and a clock that counts ticks of 1/hz s (monotonic, manual for tests, or
 * driven by an event loop).  Most programs use the default domain.
 *
 * The C ABI and nothing else: the opaque callout_t, the flags, the domain
 * configuration and the prototypes, each followed by its contract: what it
 * returns in each outcome, whether it may block, and who may call it.  The
 * man pages callout(3) and callout_domain(3) are the long form.  Terms:
 *   handler       a callout's function, run by its CPU's softclock thread
 *                 (or by callout_domain_run() for an external clock);
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
#define CALLOUT_VERSION_MINOR 1
#define CALLOUT_VERSION_PATCH 0

/* Caller-provided storage for one callout.  Opaque; never grows. */
typedef struct callout {
	void *_c_store[12];
} callout_t;

typedef void (*callout_func_t)(void *);

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

struct callout_domain_config {
	size_t size;        /* sizeof(struct callout_domain_config) */
	unsigned ncpu;      /* 0: number of online processors; at most 1024
	                       (an external clock has exactly 1) */
	unsigned hz;        /* ticks per second, 1..1000000; 0: 1000 */
	enum callout_clock clock;
};

/* ---- Domains: callout_domain(3) ---------------------------------------- */

CALLOUT_API void callout_domain_config_init(struct callout_domain_config *cfg);
/* Fills *cfg with the defaults (a CPU per online processor, 1000 Hz,
 * monotonic clock) and sets cfg->size.  Start every config from it. */

CALLOUT_API int callout_domain_create(const struct callout_domain_config *cfg,
                                      callout_domain_t **dp);
/* Builds a domain and starts its softclock threads (none for an external
 * clock): 0 and *dp set.  EINVAL: NULL, bad size, hz > 10^6, ncpu > 1024 (or
 * > 1 for an external clock), unknown clock; EAGAIN or ENOMEM: no thread or
 * memory.  On error *dp is untouched and nothing leaks.  May block briefly. */

CALLOUT_API int callout_domain_destroy(callout_domain_t *d);
/* Joins d's threads and frees d: 0.  EBUSY (nothing changed) while a callout
 * initialised on d is not destroyed; EINVAL for NULL or the default domain;
 * EDEADLK from a handler of d.  Sleeps until the threads exit. */

CALLOUT_API callout_domain_t *callout_domain_default(void);
/* The process-wide domain (monotonic, 1000 Hz, a CPU per online processor),
 * started on first use and never freed.  Aborts if it cannot start. */

CALLOUT_API unsigned callout_domain_ncpu(const callout_domain_t *d);
CALLOUT_API unsigned callout_domain_hz(const callout_domain_t *d);
/* d's number of CPUs and ticks per second (defaults applied).  Never block. */

CALLOUT_API uint64_t callout_domain_ticks(const callout_domain_t *d);
/* d's tick count, 0 at creation; inside a handler run by
 * callout_domain_advance(), the tick being processed.  Never blocks. */

CALLOUT_API int callout_domain_curcpu(const callout_domain_t *d);
/* The CPU index when the caller is a softclock thread of d (a handler of d,
 * or a thread inside callout_domain_run(d)), else -1. */

CALLOUT_API int callout_domain_advance(callout_domain_t *d, uint64_t nticks);
/* Manual clock only (else EINVAL): moves the clock nticks forward, running
 * everything due at tick t before anything due at t + 1; returns 0 once all
 * of it has finished.  Sleeps: EDEADLK from a handler of d; never call it
 * holding giant or a mutex that a due handler takes. */

CALLOUT_API void callout_giant_enter(callout_domain_t *d);
/* Takes d's recursive giant lock, under which the handlers of callouts
 * without CALLOUT_MPSAFE (and without a mutex) run.  May block.  Code that
 * takes both giant and a mutex should take giant first. */

CALLOUT_API void callout_giant_exit(callout_domain_t *d);
/* Releases one level of giant.  Never blocks; misuse if the caller does not
 * hold it. */

/* (1.1) Returns once no handler of d is running or being dispatched: while
 * it waits no new dispatch starts on d; pending callouts stay pending.  0, or
 * EDEADLK from a handler of d, EINVAL for NULL.  May sleep. */
CALLOUT_API int callout_domain_drain(callout_domain_t *d);

/* (1.1) Sets the configuration of the default domain, before its first use
 * (otherwise EBUSY, nothing changed).  0, or EINVAL for a bad cfg.  The
 * environment variable CALLOUT_DEFAULT_DOMAIN does the same without a call
 * (callout_domain(3)); a call made before first use wins over it. */
CALLOUT_API int callout_domain_default_configure(const struct callout_domain_config *cfg);

/* (1.1) The domain callout_init() uses from the calling thread: the domain
 * of the handler it runs, else the default domain (started if need be). */
CALLOUT_API callout_domain_t *callout_domain_current(void);

/* ---- Callouts: callout(3) ---------------------------------------------- */

/* Life cycle.  A callout_t must stay at one address from init to destroy. */

CALLOUT_API void callout_init(callout_t *c, unsigned flags);
/* Prepares c on the calling handler's domain, else on the default domain
 * (started on first use).  flags: CALLOUT_MPSAFE (else the handler runs under
 * giant), optionally | CALLOUT_RETURNUNLOCKED; other bits are misuse. */

CALLOUT_API void callout_init_domain(callout_t *c, unsigned flags,
                                     callout_domain_t *d);
/* As callout_init, on domain d (NULL: as callout_init). */

CALLOUT_API void callout_init_mtx(callout_t *c, callout_domain_t *d,
                                  pthread_mutex_t *mtx, unsigned flags);
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

CALLOUT_API void callout_reset(callout_t *c, int ticks, callout_func_t func,
                               void *arg);
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

CALLOUT_API void callout_reset_window(callout_t *c, int ticks, int slack,
                                      callout_func_t func, void *arg);
/* callout_reset, but the handler runs at some tick in [due, due + slack],
 * due = now + ticks: the latest multiple of the largest power of two in the
 * window, shared with other callouts to wake up less.  slack <= 0: reset. */

/* ---- Event-loop embedding (CALLOUT_CLOCK_EXTERNAL domains) -------------- */

CALLOUT_API int64_t callout_domain_next_timeout(callout_domain_t *d);
/* Nanoseconds until the start of the earliest tick with work on d: 0 if
 * something is due, -1 if nothing is pending or the clock is manual.
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
 * sizeof(struct callout_stats) first (so the struct can grow). */
struct callout_stats {
	size_t size;
	uint64_t scheduled;     /* reset/schedule of a callout that was not pending */
	uint64_t rescheduled;   /* reset/schedule of a pending callout */
	uint64_t stopped;       /* stops of any kind that unscheduled a callout */
	uint64_t fired;         /* handlers invoked */
	uint64_t fired_late;    /* ... after their due tick */
	uint64_t late_max_ticks;/* the most ticks a handler ran late */
	uint64_t cancelled;     /* lock-associated dispatches cancelled by stop/reset */
	uint64_t halts;         /* halt, halt_async and shutdown_sync calls */
	uint64_t halts_waited;  /* ... that found the callout in use elsewhere */
	uint64_t run_ns_total;  /* time spent in handlers */
	uint64_t run_ns_max;    /* the longest handler run (manual clock: the
	                           longest batch run for one tick on one CPU) */
	uint64_t pending;       /* callouts pending now */
	uint64_t ignored;       /* reset/schedule ignored (shut down or draining) */
	uint64_t wakeups;       /* times the softclock thread woke up */
	/* Lateness of handler starts past the start of their due tick, monotonic
	 * and external clocks only: bucket i counts lateness in [2^i, 2^(i+1)) ns
	 * (bucket 0 also counts 0 ns). */
	uint64_t lateness_ns_log2[CALLOUT_LATENCY_BUCKETS];
};

CALLOUT_API int callout_domain_stats(callout_domain_t *d, int cpu, struct callout_stats *out);
/* Copies the counters of CPU cpu of d, or their sums over every CPU when
 * cpu < 0, into *out: 0, or EINVAL for a bad size or CPU.  Never sleeps. */

CALLOUT_API void callout_domain_dump(callout_domain_t *d, FILE *out);
/* Prints every pending callout (ticks left, CPU, wheel level and bucket,
 * argument, handler symbol) and what each CPU runs, as NetBSD's DDB "show
 * callout".  Safe while d runs. */

CALLOUT_API void callout_domain_print_stats(callout_domain_t *d, FILE *out);
/* Prints callout_domain_stats() of d as a table (one row per CPU and a
 * total) and the lateness histogram as bars: the "callout-stat" view. */

CALLOUT_API const char *callout_version(void);
/* The library's version, "MAJOR.MINOR.PATCH" (static storage). */

#ifdef __cplusplus
}
#endif

#endif /* CALLOUT_CALLOUT_H */
