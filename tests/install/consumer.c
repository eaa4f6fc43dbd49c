/*
 * consumer.c -- a C11 program outside libcallout, compiled only against the
 * installed header and library (tests/install/run.sh builds it three ways:
 * pkg-config shared, pkg-config --static, CMake find_package).
 *
 * Manual-clock domain; one callout reset for 3 ticks; advancing 3 ticks runs
 * its handler exactly once.  Prints "ok" and returns 0 on success.
 */
#include <callout/callout.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

_Static_assert(sizeof(callout_t) == 12 * sizeof(void *), "callout_t is 12 pointers");

struct probe {
  callout_domain_t *domain;
  atomic_int calls;
  atomic_ullong tick; /* callout_domain_ticks() seen by the handler */
};

static void handler(void *arg) {
  struct probe *p = arg;
  atomic_store(&p->tick, (unsigned long long)callout_domain_ticks(p->domain));
  atomic_fetch_add(&p->calls, 1);
}

#define CHECK(cond)                                                                      \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      fprintf(stderr, "consumer: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      return 1;                                                                          \
    }                                                                                    \
  } while (0)

int main(void) {
  struct callout_domain_config cfg;
  callout_domain_config_init(&cfg);
  cfg.clock = CALLOUT_CLOCK_MANUAL;

  struct probe p = {.domain = NULL};
  atomic_init(&p.calls, 0);
  atomic_init(&p.tick, 0);
  CHECK(callout_domain_create(&cfg, &p.domain) == 0);
  CHECK(p.domain != NULL);
  CHECK(callout_domain_ticks(p.domain) == 0);

  callout_t c;
  callout_init_domain(&c, CALLOUT_MPSAFE, p.domain);
  callout_reset(&c, 3, handler, &p);
  CHECK(callout_pending(&c));

  CHECK(callout_domain_advance(p.domain, 2) == 0);
  CHECK(atomic_load(&p.calls) == 0);
  CHECK(callout_pending(&c));

  CHECK(callout_domain_advance(p.domain, 1) == 0);
  CHECK(atomic_load(&p.calls) == 1);
  CHECK(atomic_load(&p.tick) == 3);
  CHECK(!callout_pending(&c));
  CHECK(callout_expired(&c));

  CHECK(callout_domain_advance(p.domain, 10) == 0);
  CHECK(atomic_load(&p.calls) == 1);

  CHECK(callout_stop(&c)); /* it had fired */
  callout_halt(&c, NULL);
  callout_destroy(&c);
  CHECK(callout_domain_destroy(p.domain) == 0);

  puts("ok");
  return 0;
}
