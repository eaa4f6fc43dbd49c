/* compat.c -- built against the frozen 1.0 header (tests/abi/callout_v1.h),
 * linked against the current shared library: the 1.0 ABI promise (the ABI
 * rule of include/callout/callout.h), checked.  Exercises every 1.0 entry
 * point once and prints "compat ok". */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "callout_v1.h"

/* What a program linked against the 1.0 library records for the function
 * whose struct grew in 1.1 (linked today, it would get the 1.1 default). */
#if defined(__ELF__)
__asm__(".symver callout_domain_config_init, callout_domain_config_init@CALLOUT_1.0");
#endif

static int runs;
static void handler(void *arg) { runs += *(int *)arg; }

#define CHECK(x)                                  \
  do {                                            \
    if (!(x)) {                                   \
      fprintf(stderr, "compat: %s failed\n", #x); \
      return 1;                                   \
    }                                             \
  } while (0)

int main(void) {
  /* The 1.0 config with guard bytes behind it: a library whose config grew
   * must still write only the 1.0 struct here (1.1: a symbol version of
   * callout_domain_config_init), and accept its size. */
  struct {
    struct callout_domain_config cfg;
    unsigned char guard[64];
  } framed;
  struct callout_domain_config cfg;
  callout_domain_t *d = NULL;
  callout_t c;
  int one = 1;
  size_t i;

  memset(&framed, 0x5A, sizeof framed);
  callout_domain_config_init(&framed.cfg);
  for (i = 0; i < sizeof framed.guard; ++i) CHECK(framed.guard[i] == 0x5A);
  CHECK(framed.cfg.size == sizeof framed.cfg);

  CHECK(sizeof(callout_t) == 12 * sizeof(void *));
  CHECK(strncmp(callout_version(), "1.", 2) == 0);
  callout_domain_config_init(&cfg);
  cfg.clock = CALLOUT_CLOCK_MANUAL;
  cfg.ncpu = 2;
  CHECK(callout_domain_create(&cfg, &d) == 0);
  CHECK(callout_domain_ncpu(d) == 2 && callout_domain_hz(d) == 1000);
  callout_init_domain(&c, CALLOUT_MPSAFE, d);
  callout_bind(&c, 1);
  callout_setfunc(&c, handler, &one);
  callout_schedule(&c, 3);
  CHECK(callout_pending(&c) && callout_active(&c));
  CHECK(callout_domain_advance(d, 3) == 0 && runs == 1);
  CHECK(callout_expired(&c) && callout_invoking(&c));
  callout_ack(&c);
  CHECK(!callout_invoking(&c));
  CHECK(callout_stop(&c));
  callout_reset(&c, 2, handler, &one);
  CHECK(!callout_halt(&c, NULL));
  CHECK(callout_domain_ticks(d) == 3 && callout_domain_curcpu(d) == -1);
  CHECK(callout_domain_check(d, stderr) == 0);
  {
    /* The 1.0 struct is smaller than today's: still accepted, and filled. */
    struct callout_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    CHECK(callout_domain_stats(d, -1, &st) == 0 && st.size == sizeof st && st.fired == 1);
  }
  CHECK(callout_domain_destroy(d) == EBUSY);
  callout_destroy(&c);
  CHECK(callout_domain_destroy(d) == 0);
  printf("compat ok\n");
  return 0;
}
