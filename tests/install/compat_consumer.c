/*
 * compat_consumer.c -- a tiny program on one kernel-KPI header, chosen with
 * -DKPI_FREEBSD, -DKPI_NETBSD or -DKPI_LINUX, built by run.sh against the
 * installed package as C11 and as C++17.  It configures the default domain
 * as a 100 Hz virtual clock, arms a timer for 5 ticks with the kernel's own
 * calls, advances the clock, and prints "ok" if the handler ran at tick 5
 * and not before.
 */
#include <callout/domain.h>

/* Configures the default domain.  Written before the kernel header is
 * included: the FreeBSD and NetBSD headers define hz as a macro, which
 * would rewrite the member name in cfg.hz after them. */
static int configure_default_domain(void) {
  struct callout_domain_config cfg;
  callout_domain_config_init(&cfg);
  cfg.clock = CALLOUT_CLOCK_VIRTUAL;
  cfg.hz = 100;
  cfg.ncpu = 1;
  return callout_domain_default_configure(&cfg);
}

#if defined(KPI_FREEBSD)
#include <callout/compat/freebsd.h>
static struct callout timer;
static int fired_at = -1;
static void handler(void *arg) {
  (void)arg;
  fired_at = ticks;
}
static int arm(void) {
  callout_init(&timer, 1);
  return callout_reset(&timer, 5, handler, NULL) == 0 && callout_pending(&timer) && callout_active(&timer);
}
/* After it fired: neither pending nor running, so drain returns -1; no
 * destroy follows. */
static int finish(void) { return callout_drain(&timer) == -1 && !callout_active(&timer); }
#elif defined(KPI_NETBSD)
#include <callout/compat/netbsd.h>
static callout_t timer;
static int fired_at = -1;
static void handler(void *arg) {
  (void)arg;
  fired_at = getticks();
}
static int arm(void) {
  callout_init(&timer, CALLOUT_MPSAFE);
  callout_reset(&timer, 5, handler, NULL);
  return callout_pending(&timer) && hz == 100;
}
/* It fired (FIRED set; halt, like stop, clears it) and runs nowhere, so
 * the halt does not wait. */
static int finish(void) {
  const int fired = callout_expired(&timer);
  kmutex_t lock;
  mutex_init(&lock, MUTEX_DEFAULT, IPL_SOFTCLOCK);
  mutex_enter(&lock);
  const int waited = callout_halt(&timer, &lock);
  mutex_exit(&lock);
  mutex_destroy(&lock);
  const int ok = fired && !waited && !callout_expired(&timer);
  callout_destroy(&timer);
  return ok;
}
#elif defined(KPI_LINUX)
#define CALLOUT_LINUX_HZ 100
#include <callout/compat/linux.h>
static struct timer_list timer;
static int fired_at = -1;
static void handler(struct timer_list *t) {
  (void)t;
  fired_at = (int)jiffies;
}
static int arm(void) {
  timer_setup(&timer, handler, 0);
  return mod_timer(&timer, jiffies + msecs_to_jiffies(50)) == 0 && timer_pending(&timer);
}
static int finish(void) { return timer_delete_sync(&timer) == 0 && timer_delete(&timer) == 0; }
#else
#error "define KPI_FREEBSD, KPI_NETBSD or KPI_LINUX"
#endif

#include <stdio.h>

int main(void) {
  if (configure_default_domain() != 0) return 1;
  if (!arm()) return 2;
  callout_domain_t *d = callout_domain_default();
  if (callout_domain_advance(d, 4) != 0 || fired_at != -1) return 3;
  if (callout_domain_advance(d, 1) != 0 || fired_at != 5) return 4;
  if (!finish()) return 5;
  puts("ok");
  return 0;
}
