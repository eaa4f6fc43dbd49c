/*
 * basic.c -- a tour of libcallout's C API on the default domain.
 *
 * The default domain runs on the monotonic clock at hz 1000, so one tick is
 * one millisecond.  Three MPSAFE callouts:
 *
 *   A  is reset for 20 ticks and simply fires;
 *   B  is reset for 50 ticks and stopped before it fires: callout_stop()
 *      never blocks, and returns false because B's handler never ran;
 *   C  is reset for 30 ticks; its handler sleeps ~100 ms and then re-arms C
 *      for 10 more ticks.  While that handler is running, main calls
 *      callout_halt(), which waits for the handler to return, cancels the
 *      re-arm, and returns true because it had to wait.
 *
 * Handlers run on the domain's softclock threads, so everything they share
 * with main is atomic.  Prints what happened and, last, "done"; exits 1 if
 * something that the API guarantees did not hold.
 */
#define _POSIX_C_SOURCE 200809L

#include <callout/callout.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct job {
  const char *name;
  callout_t co;
  atomic_int runs;            /* handler invocations so far */
  atomic_ullong tick;         /* domain tick when the handler last started */
  atomic_int cpu;             /* softclock CPU it ran on */
  atomic_bool handler_active; /* C only: set while its handler runs */
};

static callout_domain_t *dom;
static uint64_t t0; /* tick when main reset the callouts; output is relative to it */

static unsigned long long now(void) { return (unsigned long long)(callout_domain_ticks(dom) - t0); }

static void sleep_ms(long ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

/* Polls *v every millisecond until it is at least want; false on timeout. */
static bool wait_for(atomic_int *v, int want, long timeout_ms) {
  for (long waited = 0; atomic_load(v) < want; waited++) {
    if (waited >= timeout_ms) return false;
    sleep_ms(1);
  }
  return true;
}

static void record(struct job *j) {
  atomic_store(&j->tick, (unsigned long long)callout_domain_ticks(dom));
  atomic_store(&j->cpu, callout_domain_curcpu(dom));
  atomic_fetch_add(&j->runs, 1);
}

/* A and B: note the run. */
static void simple_handler(void *arg) {
  struct job *j = arg;
  record(j);
  printf("[+%4llu] %s: handler ran on cpu %d\n", now(), j->name, atomic_load(&j->cpu));
}

/* C: a slow handler that re-arms its callout once. */
static void slow_handler(void *arg) {
  struct job *j = arg;
  atomic_store(&j->handler_active, true);
  record(j);
  printf("[+%4llu] %s: handler started on cpu %d, sleeping 100 ms\n", now(), j->name, atomic_load(&j->cpu));
  sleep_ms(100);
  if (atomic_load(&j->runs) == 1) {
    callout_schedule(&j->co, 10);
    printf("[+%4llu] %s: handler re-armed itself for 10 ticks (pending: %s) and returns\n", now(), j->name,
           callout_pending(&j->co) ? "true" : "false");
  }
  atomic_store(&j->handler_active, false);
}

static const char *tf(bool b) { return b ? "true" : "false"; }

static void show(struct job *j) {
  printf("         %s: pending=%s expired=%s active=%s, handler ran %d time(s)\n", j->name,
         tf(callout_pending(&j->co)), tf(callout_expired(&j->co)), tf(callout_active(&j->co)),
         atomic_load(&j->runs));
}

int main(void) {
  static struct job a = {.name = "A"}, b = {.name = "B"}, c = {.name = "C"};
  int failures = 0;
#define EXPECT(cond, ...)             \
  do {                                \
    if (!(cond)) {                    \
      printf("FAILED: " __VA_ARGS__); \
      putchar('\n');                  \
      failures++;                     \
    }                                 \
  } while (0)

  setvbuf(stdout, NULL, _IOLBF, 0);
  dom = callout_domain_default();
  printf("libcallout example: default domain, %u CPU(s), hz %u (1 tick = 1 ms)\n\n", callout_domain_ncpu(dom),
         callout_domain_hz(dom));

  callout_init(&a.co, CALLOUT_MPSAFE);
  callout_init(&b.co, CALLOUT_MPSAFE);
  callout_init(&c.co, CALLOUT_MPSAFE);

  t0 = callout_domain_ticks(dom);
  callout_reset(&a.co, 20, simple_handler, &a);
  callout_reset(&b.co, 50, simple_handler, &b);
  callout_reset(&c.co, 30, slow_handler, &c);
  printf("[+%4llu] reset A for 20 ticks, B for 50, C for 30\n", now());
  show(&a);

  /* A fires on its own. */
  EXPECT(wait_for(&a.runs, 1, 5000), "A did not run within 5 s");
  printf("[+%4llu] main: A has run (at tick +%llu)\n", now(), atomic_load(&a.tick) - t0);
  show(&a);
  EXPECT(atomic_load(&a.tick) - t0 >= 20, "A ran before its due tick");

  /* B is stopped before its due tick: stop() does not block and says B had not fired. */
  bool stopped_fired = callout_stop(&b.co);
  printf("[+%4llu] main: stop(B) -> %s (%s)\n", now(), tf(stopped_fired),
         stopped_fired ? "B had already fired: the machine is very busy" : "B's handler never ran");
  show(&b);
  EXPECT(!callout_pending(&b.co), "B is still pending after stop");

  /* C: halt while its handler runs.  halt() waits, and cancels the re-arm. */
  EXPECT(wait_for(&c.runs, 1, 5000), "C's handler did not start within 5 s");
  printf("[+%4llu] main: C's handler %s; calling halt(C)\n", now(),
         atomic_load(&c.handler_active) ? "is running" : "has already returned");
  unsigned long long before = now();
  bool waited = callout_halt(&c.co, NULL);
  printf("[+%4llu] main: halt(C) -> %s: %s\n", now(), tf(waited),
         waited ? "it waited for the running handler" : "the handler had already returned");
  if (waited) printf("         (blocked for %llu ticks)\n", now() - before);
  show(&c);
  EXPECT(!callout_pending(&c.co), "C is pending after halt: its re-arm was not cancelled");

  /* Give a wrongly surviving re-arm of C (or B) time to fire. */
  sleep_ms(60);
  printf("[+%4llu] main: 60 ms later\n", now());
  EXPECT(atomic_load(&a.runs) == 1, "A ran %d times", atomic_load(&a.runs));
  EXPECT(atomic_load(&c.runs) == 1, "C ran %d times", atomic_load(&c.runs));
  if (!stopped_fired) EXPECT(atomic_load(&b.runs) == 0, "B ran after stop returned false");
  printf("\nsummary: A ran %d time(s), B ran %d time(s), C ran %d time(s); stop(B) -> %s; halt(C) -> %s\n",
         atomic_load(&a.runs), atomic_load(&b.runs), atomic_load(&c.runs), tf(stopped_fired), tf(waited));

  /* Nothing is pending or running any more: destroying is allowed. */
  callout_halt(&a.co, NULL);
  callout_halt(&b.co, NULL);
  callout_destroy(&a.co);
  callout_destroy(&b.co);
  callout_destroy(&c.co);

  if (failures != 0) {
    printf("%d check(s) failed\n", failures);
    return 1;
  }
  printf("done\n");
  return 0;
}
