/*
 * driver.c -- runs the example kernel module (rexmt.c) on a virtual-time
 * default domain and prints its trace.  The same driver is linked with each
 * of the three builds of the module; the traces must be identical.
 *
 * This is the single-threaded embedding: the program owns the loop and
 * tells the timer layer how much time went by, handle_timers(elapsed_ms),
 * which runs the due handlers right there, in this thread, in a fixed
 * order.  The module initialises its timers with its kernel's callout_init
 * or timer_setup, which take no domain: they land in the default domain,
 * configured here before its first use.
 */
#include <callout/domain.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "rexmt.h"

static uint64_t elapsed_total_ms;

/* Moves the module's time forward by elapsed_ms; the handlers due by then
 * run before it returns.  Carries the part of a tick left over. */
static void handle_timers(unsigned elapsed_ms) {
  callout_domain_t *d = callout_domain_default();
  elapsed_total_ms += elapsed_ms;
  const uint64_t target = elapsed_total_ms * callout_domain_hz(d) / 1000;
  const uint64_t now = callout_domain_ticks(d);
  if (target > now && callout_domain_advance(d, target - now) != 0) {
    fprintf(stderr, "callout_domain_advance failed\n");
    exit(1);
  }
}

enum what { OPEN, SEND, ACK, CLOSE, UNLOAD };
static const struct event {
  unsigned ms;
  enum what what;
  int conn;
} script[] = {
    {0, OPEN, 0},      {0, OPEN, 1}, {0, SEND, 0},
    {0, SEND, 1},      {0, OPEN, 2}, {300, ACK, 0}, /* conn 0's segment is acknowledged before its RTO */
    {2600, ACK, 0},                                 /* conn 0 answers a keepalive probe */
    {5000, CLOSE, 0},                               /* conn 0 closes with its keepalive pending */
    {8000, UNLOAD, 0},
};

int main(void) {
  struct callout_domain_config cfg;
  callout_domain_config_init(&cfg);
  cfg.clock = CALLOUT_CLOCK_VIRTUAL;
  cfg.hz = 100;
  cfg.ncpu = 1;
  if (callout_domain_default_configure(&cfg) != 0) {
    fprintf(stderr, "the default domain was already in use\n");
    return 1;
  }
  rexmt_load(3);
  unsigned now_ms = 0;
  for (size_t i = 0; i < sizeof script / sizeof script[0]; i++) {
    const struct event *ev = &script[i];
    /* The loop wakes every 70 ms, as an event loop does: the slicing
     * must not change what runs when. */
    while (now_ms < ev->ms) {
      const unsigned step = ev->ms - now_ms < 70 ? ev->ms - now_ms : 70;
      handle_timers(step);
      now_ms += step;
    }
    switch (ev->what) {
      case OPEN:
        rexmt_open(ev->conn);
        break;
      case SEND:
        rexmt_send(ev->conn);
        break;
      case ACK:
        rexmt_ack(ev->conn);
        break;
      case CLOSE:
        rexmt_close(ev->conn);
        break;
      case UNLOAD:
        rexmt_unload();
        break;
    }
  }
  return 0;
}
