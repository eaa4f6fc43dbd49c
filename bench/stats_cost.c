/* stats_cost.c -- the cost of the per-CPU counters on the reset/stop path.
 * Built twice (bench/CMakeLists.txt via the root): against the library as
 * shipped and against one compiled with -DCALLOUT_NO_STATS.  scripts/
 * stats_cost.sh runs the two alternately and compares medians in one run.
 * Prints "ns_per_op <value>" for reset+stop pairs of N callouts on a
 * manual-clock domain, pinned to the CPU the caller chose (taskset). */
#define _GNU_SOURCE
#include <callout/callout.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static void handler(void *arg) { (void)arg; }

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv) {
  const int n = argc > 1 ? atoi(argv[1]) : 100000;
  const int rounds = argc > 2 ? atoi(argv[2]) : 20;
  struct callout_domain_config cfg;
  callout_domain_t *d;
  callout_domain_config_init(&cfg);
  cfg.clock = CALLOUT_CLOCK_MANUAL;
  cfg.ncpu = 1;
  if (callout_domain_create(&cfg, &d) != 0) return 1;
  callout_t *c = malloc(sizeof *c * (size_t)n);
  int *ticks = malloc(sizeof *ticks * (size_t)n);
  unsigned seed = 42;
  for (int i = 0; i < n; i++) {
    callout_init_domain(&c[i], CALLOUT_MPSAFE, d);
    ticks[i] = 1 + (int)(rand_r(&seed) % 10000);
  }
  double best = 1e30;
  for (int r = 0; r < rounds; r++) {
    const double t0 = now_ns();
    for (int i = 0; i < n; i++) callout_reset(&c[i], ticks[i], handler, NULL);
    for (int i = 0; i < n; i++) callout_stop(&c[i]);
    const double per = (now_ns() - t0) / (2.0 * n);
    if (per < best) best = per;
  }
  printf("ns_per_op %.2f\n", best);
  for (int i = 0; i < n; i++) callout_destroy(&c[i]);
  return callout_domain_destroy(d);
}
