/*
 * linux_c_test.c -- <callout/compat/linux.h> from C11: timer_delete() is a
 * _Generic macro that must reach the timer_list function for a
 * struct timer_list * and POSIX timer_delete() for a timer_t, in the same
 * file.  A plain program: exit status 0 on success, 1 with a message on
 * the first failed check.
 */
#include <callout/compat/linux.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int failures;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                              \
    }                                                                          \
  } while (0)

struct conn {
  int id;
  struct timer_list timer;
  int runs;
};

static void conn_timer(struct timer_list *t) {
  struct conn *c = from_timer(c, t, timer);
  ++c->runs;
}

int main(void) {
  struct callout_domain_config cfg;
  callout_domain_config_init(&cfg);
  cfg.ncpu = 1;
  cfg.clock = CALLOUT_CLOCK_VIRTUAL;
  callout_domain_t *d = NULL;
  if (callout_domain_create(&cfg, &d) != 0) {
    fprintf(stderr, "callout_domain_create failed\n");
    return 1;
  }

  struct conn c;
  memset(&c, 0, sizeof c);
  c.id = 1;
  timer_setup_on(&c.timer, conn_timer, 0, d);
  const unsigned long now = (unsigned long)callout_domain_ticks(d);

  /* The timer_list side of the macro. */
  CHECK(timer_delete(&c.timer) == 0);
  CHECK(mod_timer(&c.timer, now + 5) == 0);
  CHECK(timer_pending(&c.timer));
  CHECK(timer_delete(&c.timer) == 1);
  CHECK(!timer_pending(&c.timer));
  CHECK(mod_timer(&c.timer, now + 5) == 0);
  CHECK(del_timer(&c.timer) == 1);
  CHECK(mod_timer(&c.timer, now + 2) == 0);
  CHECK(callout_domain_advance(d, 2) == 0);
  CHECK(c.runs == 1);
  CHECK(timer_delete(&c.timer) == 0);

  /* The POSIX side, same name, same file. */
  struct sigevent sev;
  memset(&sev, 0, sizeof sev);
  sev.sigev_notify = SIGEV_NONE;
  timer_t id;
  CHECK(timer_create(CLOCK_MONOTONIC, &sev, &id) == 0);
  CHECK(timer_delete(id) == 0);
  errno = 0;
  CHECK(timer_delete(id) == -1 && errno == EINVAL);

  CHECK(callout_domain_destroy(d) == 0);
  if (failures != 0) return 1;
  printf("linux_c_test: ok\n");
  return 0;
}
