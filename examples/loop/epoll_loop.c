/*
 * epoll_loop.c -- a libcallout domain embedded in a plain epoll loop.
 *
 * The domain has CALLOUT_CLOCK_EXTERNAL: no softclock thread; the loop
 * thread (main) runs every handler inside callout_domain_run().  The loop
 * waits on two descriptors:
 *
 *   callout_domain_fd(d)  readable when a callout is due (the library
 *                         re-arms it when an earlier callout is added,
 *                         from any thread);
 *   an eventfd            a worker thread writes to it to ask the loop for
 *                         work (here: "arm two more callouts").
 *
 * and uses callout_domain_next_timeout() as epoll_wait()'s timeout, rounded
 * UP to whole milliseconds so that it never wakes before the next tick.
 *
 * What it checks (exit 1 with a message otherwise):
 *   - every handler and the callout_halt_async() completion run in the loop
 *     thread, inside callout_domain_run() (curcpu 0);
 *   - no handler runs before its due tick: the domain tick it sees is at
 *     least the tick read before the reset plus `ticks`, and CLOCK_MONOTONIC
 *     is at least (ticks - 1) ticks after the reset (a reset lands somewhere
 *     inside the current tick, so the due tick begins up to one tick less
 *     than ticks/hz later); late only by seconds (noisy machines);
 *   - each callout ran as often as expected, halted ones never;
 *   - callout_halt() from the loop thread, on a callout that is not running,
 *     returns false at once (the loop is the only thread that could be
 *     running it: waiting would wait for itself), also from a handler;
 *   - callouts reset by another thread run on time although the loop sleeps
 *     on a timeout of seconds and nothing else wakes it (the fd re-arms
 *     itself when an earlier callout is added);
 *   - callout_reset_window() picks a tick inside [due, due + slack];
 *   - callout_halt_async() from the worker, while the loop runs the
 *     handler, returns true, ignores a re-arm, and calls its completion in
 *     the loop thread once the handler returned.
 * Prints "epoll_loop ok" last.
 */
#define _GNU_SOURCE

#include <callout/callout.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define TICK_HZ 1000
#define NS_PER_TICK (1000000000LL / TICK_HZ)
#define LATE_NS (3LL * 1000000000LL) /* "not late" is only checked loosely */

#define CHECK(cond)                                                                \
  do {                                                                             \
    if (!(cond)) {                                                                 \
      fprintf(stderr, "epoll_loop: line %d: check failed: %s\n", __LINE__, #cond); \
      exit(1);                                                                     \
    }                                                                              \
  } while (0)

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_ms(long ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static callout_domain_t *dom;
static pthread_t loop_thread;

/* One callout and what the test knows about its last arming.  The arming
 * fields are written by the thread that resets it, before the reset, and
 * read by the handler: the reset publishes them (it takes the callout's lock
 * and callout_domain_run() takes it before dispatching). */
struct timer {
  callout_t co;
  const char *name;
  int ticks, slack;    /* of the last arming */
  int64_t armed_ns;    /* CLOCK_MONOTONIC just before the reset */
  uint64_t armed_tick; /* callout_domain_ticks() just before the reset */
  int runs;            /* handler invocations (loop thread only) */
  int want_runs;       /* what the test expects in the end */
};

static void arm(struct timer *t, int ticks, int slack, callout_func_t func) {
  t->ticks = ticks;
  t->slack = slack;
  t->armed_ns = now_ns();
  t->armed_tick = callout_domain_ticks(dom);
  if (slack > 0)
    callout_reset_window(&t->co, ticks, slack, func, t);
  else
    callout_reset(&t->co, ticks, func, t);
}

/* The checks every handler makes. */
static void record_run(struct timer *t) {
  const int64_t now = now_ns();
  const uint64_t tick = callout_domain_ticks(dom);
  if (!pthread_equal(pthread_self(), loop_thread) || callout_domain_curcpu(dom) != 0) {
    fprintf(stderr, "epoll_loop: %s ran outside the loop thread\n", t->name);
    exit(1);
  }
  if (tick < t->armed_tick + (uint64_t)t->ticks || now < t->armed_ns + (t->ticks - 1) * NS_PER_TICK) {
    fprintf(stderr, "epoll_loop: %s ran early: tick %llu < %llu + %d, or %lld ns after the reset\n", t->name,
            (unsigned long long)tick, (unsigned long long)t->armed_tick, t->ticks,
            (long long)(now - t->armed_ns));
    exit(1);
  }
  if (now > t->armed_ns + (t->ticks + t->slack) * NS_PER_TICK + LATE_NS) {
    fprintf(stderr, "epoll_loop: %s ran %lld ms after its reset for %d ticks\n", t->name,
            (long long)((now - t->armed_ns) / 1000000), t->ticks + t->slack);
    exit(1);
  }
  t->runs++;
}

/* ---- the callouts ------------------------------------------------------- */

enum { N_LOOP = 4, N_WORKER = 4, N_ASKED = 2 };
static const int loop_ticks[N_LOOP] = {1, 7, 15, 30};
static const int worker_ticks[N_WORKER] = {1, 5, 12, 30};
static const int asked_ticks[N_ASKED] = {3, 9};

static struct timer loop_timers[N_LOOP];     /* armed by the loop thread before the loop */
static struct timer worker_timers[N_WORKER]; /* armed by the worker thread */
static struct timer asked_timers[N_ASKED];   /* armed by the loop when the worker asks */
static struct timer periodic;                /* re-arms itself from its handler */
static struct timer window;                  /* callout_reset_window */
static struct timer victim;                  /* halted from the loop before it fires */
static struct timer victim2;                 /* halted from another handler */
static struct timer halter;                  /* halts victim2, and itself */
static struct timer blocker;                 /* halted asynchronously by the worker */
static struct timer sentinel;                /* 30 s away: the loop sleeps long */

static atomic_bool phase_a_done;     /* loop -> worker: only the sentinel is left */
static atomic_bool phase_b_done;     /* loop -> worker: the worker's timers ran */
static atomic_bool blocker_entered;  /* loop -> worker: blocker's handler runs */
static atomic_bool blocker_released; /* worker -> loop: halt_async was called */
static atomic_bool arm_request;      /* worker -> loop, with the eventfd */
static atomic_bool worker_done;      /* worker -> loop, with the eventfd */
static int drain_calls;              /* halt_async completions (loop thread) */

static void on_timer(void *arg) { record_run(arg); }

static void on_periodic(void *arg) {
  struct timer *t = arg;
  record_run(t);
  if (t->runs < t->want_runs) arm(t, 2, 0, on_periodic); /* re-arm from the handler */
}

static void on_victim(void *arg) {
  struct timer *t = arg;
  fprintf(stderr, "epoll_loop: %s ran although it was halted\n", t->name);
  exit(1);
}

static void on_halter(void *arg) {
  struct timer *t = arg;
  record_run(t);
  /* A pending callout: halt just stops it and returns false. */
  const int64_t t0 = now_ns();
  CHECK(callout_pending(&victim2.co));
  CHECK(!callout_halt(&victim2.co, NULL));
  CHECK(!callout_pending(&victim2.co));
  /* Its own callout, from its own handler: halt does not wait for itself. */
  CHECK(!callout_halt(&t->co, NULL));
  CHECK(now_ns() - t0 < 1000000000LL);
}

static void on_blocker(void *arg) {
  struct timer *t = arg;
  record_run(t);
  atomic_store(&blocker_entered, true);
  /* Stay in the handler until the worker has called callout_halt_async(). */
  for (int waited = 0; !atomic_load(&blocker_released); waited++) {
    CHECK(waited < 10000);
    sleep_ms(1);
  }
}

static void on_blocker_drained(void *arg) {
  /* callout_halt_async's completion: the loop thread, after on_blocker. */
  CHECK(arg == &blocker);
  CHECK(pthread_equal(pthread_self(), loop_thread));
  CHECK(blocker.runs == 1);
  drain_calls++;
}

static void init_timer(struct timer *t, const char *name, int want_runs) {
  callout_init_domain(&t->co, CALLOUT_MPSAFE, dom);
  t->name = name;
  t->want_runs = want_runs;
}

/* ---- the worker thread -------------------------------------------------- */

static int event_fd;

static void notify_loop(void) {
  const uint64_t one = 1;
  CHECK(write(event_fd, &one, sizeof one) == (ssize_t)sizeof one);
}

static void wait_flag(atomic_bool *flag) {
  for (int waited = 0; !atomic_load(flag); waited++) {
    CHECK(waited < 10000);
    sleep_ms(1);
  }
}

static void *worker_main(void *unused) {
  (void)unused;
  wait_flag(&phase_a_done);
  sleep_ms(20); /* by now the loop sleeps in epoll_wait, for seconds */
  /* Any thread may reset: each reset that is earlier than what the fd is
   * armed for re-arms it, which wakes the loop. */
  for (int i = 0; i < N_WORKER; i++) {
    arm(&worker_timers[i], worker_ticks[i], 0, on_timer);
    sleep_ms(2);
  }
  /* They run although nothing else wakes the loop (the eventfd is quiet). */
  wait_flag(&phase_b_done);
  /* Work for the loop thread itself goes through the eventfd. */
  atomic_store(&arm_request, true);
  notify_loop();

  /* Halting a callout whose handler the loop is running: callout_halt()
   * would block this thread until the handler returns; halt_async does not
   * block, and its completion runs in the loop thread. */
  arm(&blocker, 50, 0, on_blocker);
  wait_flag(&blocker_entered);
  CHECK(callout_halt_async(&blocker.co, on_blocker_drained, &blocker));
  callout_reset(&blocker.co, 1, on_blocker, &blocker); /* ignored until drained */
  CHECK(!callout_pending(&blocker.co));
  atomic_store(&blocker_released, true);

  atomic_store(&worker_done, true);
  notify_loop();
  return NULL;
}

/* ---- the loop ----------------------------------------------------------- */

static bool all_ran(struct timer *ts, int n) {
  for (int i = 0; i < n; i++)
    if (ts[i].runs != ts[i].want_runs) return false;
  return true;
}

static bool finished(bool worker_finished) {
  return worker_finished && drain_calls == 1 && all_ran(loop_timers, N_LOOP) &&
         all_ran(worker_timers, N_WORKER) && all_ran(asked_timers, N_ASKED) && all_ran(&periodic, 1) &&
         all_ran(&window, 1) && all_ran(&halter, 1) && all_ran(&blocker, 1);
}

/* Milliseconds for epoll_wait: -1 (nothing pending) or the nanoseconds
 * rounded up, so that the loop never wakes before the tick is there. */
static int timeout_ms(int64_t ns) {
  if (ns < 0) return -1;
  const int64_t ms = (ns + 999999) / 1000000;
  return ms > INT_MAX ? INT_MAX : (int)ms;
}

int main(void) {
  struct callout_domain_config cfg;
  callout_domain_config_init(&cfg);
  cfg.clock = CALLOUT_CLOCK_EXTERNAL;
  cfg.hz = TICK_HZ;
  CHECK(callout_domain_create(&cfg, &dom) == 0);
  loop_thread = pthread_self();
  const int cfd = callout_domain_fd(dom);
  CHECK(cfd >= 0);
  CHECK(callout_domain_next_timeout(dom) == -1); /* nothing pending */

  event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  CHECK(event_fd >= 0);
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  CHECK(ep >= 0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = cfd};
  CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &ev) == 0);
  ev.data.fd = event_fd;
  CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, event_fd, &ev) == 0);

  static char names[N_LOOP + N_WORKER + N_ASKED][16];
  int ni = 0;
  for (int i = 0; i < N_LOOP; i++, ni++) {
    snprintf(names[ni], sizeof names[ni], "loop%d", i);
    init_timer(&loop_timers[i], names[ni], 1);
  }
  for (int i = 0; i < N_WORKER; i++, ni++) {
    snprintf(names[ni], sizeof names[ni], "worker%d", i);
    init_timer(&worker_timers[i], names[ni], 1);
  }
  for (int i = 0; i < N_ASKED; i++, ni++) {
    snprintf(names[ni], sizeof names[ni], "asked%d", i);
    init_timer(&asked_timers[i], names[ni], 1);
  }
  init_timer(&periodic, "periodic", 5);
  init_timer(&window, "window", 1);
  init_timer(&victim, "victim", 0);
  init_timer(&victim2, "victim2", 0);
  init_timer(&halter, "halter", 1);
  init_timer(&blocker, "blocker", 1);
  init_timer(&sentinel, "sentinel", 0);

  /* The window callout first, alone: the fd's timeout must lie inside the
   * window, at most due + slack = 35 ticks away. */
  arm(&window, 20, 15, on_timer);
  const int64_t window_ns = callout_domain_next_timeout(dom);
  CHECK(window_ns >= 0 && window_ns <= 35 * NS_PER_TICK);

  for (int i = 0; i < N_LOOP; i++) arm(&loop_timers[i], loop_ticks[i], 0, on_timer);
  arm(&periodic, 2, 0, on_periodic);
  arm(&victim2, 40, 0, on_victim);
  arm(&halter, 10, 0, on_halter);
  arm(&sentinel, 30 * TICK_HZ, 0, on_victim);

  /* Halt from the loop thread, outside callout_domain_run(): not running,
   * so false at once, and it will never run. */
  arm(&victim, 5, 0, on_victim);
  int64_t t0 = now_ns();
  CHECK(!callout_halt(&victim.co, NULL));
  CHECK(now_ns() - t0 < 1000000000LL);
  CHECK(!callout_pending(&victim.co));

  pthread_t worker;
  CHECK(pthread_create(&worker, NULL, worker_main, NULL) == 0);

  const int64_t start = now_ns();
  unsigned ran = 0, wakeups = 0, early = 0;
  bool worker_finished = false;
  const int64_t deadline = start + 20LL * 1000000000LL; /* well before the sentinel */
  while (!finished(worker_finished)) {
    const int64_t left = deadline - now_ns();
    CHECK(left > 0);
    int ms = timeout_ms(callout_domain_next_timeout(dom));
    if (ms < 0 || ms > left / 1000000) ms = (int)(left / 1000000) + 1;
    struct epoll_event events[2];
    const int n = epoll_wait(ep, events, 2, ms);
    if (n < 0 && errno == EINTR) continue;
    CHECK(n >= 0);
    wakeups++;
    bool run = n == 0; /* the timeout: the next tick is here */
    if (n == 0 && callout_domain_next_timeout(dom) > 0) early++;
    for (int i = 0; i < n; i++) {
      if (events[i].data.fd == cfd) {
        run = true;
      } else {
        uint64_t count;
        CHECK(read(event_fd, &count, sizeof count) == (ssize_t)sizeof count);
        if (atomic_exchange(&arm_request, false))
          for (int j = 0; j < N_ASKED; j++) arm(&asked_timers[j], asked_ticks[j], 0, on_timer);
        if (atomic_load(&worker_done)) worker_finished = true;
      }
    }
    /* Run on a readable fd, and also when the timeout expired: the timeout
     * may be a wheel bucket boundary before the due tick, and running there
     * moves the wheel on (otherwise the next timeout would be 0 again). */
    if (run) ran += callout_domain_run(dom);
    /* Once only the sentinel is left, the loop sleeps for seconds: time
     * for the worker to reset callouts from its thread. */
    if (!atomic_load(&phase_a_done) && all_ran(loop_timers, N_LOOP) && all_ran(&periodic, 1) &&
        all_ran(&halter, 1) && all_ran(&window, 1))
      atomic_store(&phase_a_done, true);
    if (!atomic_load(&phase_b_done) && all_ran(worker_timers, N_WORKER)) atomic_store(&phase_b_done, true);
  }
  CHECK(pthread_join(worker, NULL) == 0);
  CHECK(early == 0); /* a rounded-up timeout never expires before the tick */

  /* The sentinel is pending, not running: halt from the loop thread is
   * false at once; then nothing is left. */
  t0 = now_ns();
  CHECK(!callout_halt(&sentinel.co, NULL));
  CHECK(now_ns() - t0 < 1000000000LL);
  CHECK(callout_domain_next_timeout(dom) == -1);
  CHECK(callout_domain_run(dom) == 0);
  CHECK(!callout_pending(&blocker.co));

  const unsigned want =
      N_LOOP + N_WORKER + N_ASKED + 5 /* periodic */ + 1 /* window */ + 1 /* halter */ + 1 /* blocker */;
  CHECK(ran == want);
  printf("epoll_loop: %u handlers in %u wakeups, %.1f ms\n", ran, wakeups, (now_ns() - start) / 1e6);

  CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, cfd, NULL) == 0); /* before the domain closes it */
  struct timer *all[] = {&periodic, &window, &victim, &victim2, &halter, &blocker, &sentinel};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) callout_destroy(&all[i]->co);
  for (int i = 0; i < N_LOOP; i++) callout_destroy(&loop_timers[i].co);
  for (int i = 0; i < N_WORKER; i++) callout_destroy(&worker_timers[i].co);
  for (int i = 0; i < N_ASKED; i++) callout_destroy(&asked_timers[i].co);
  CHECK(callout_domain_destroy(dom) == 0);
  close(ep);
  close(event_fd);
  printf("epoll_loop ok\n");
  return 0;
}
