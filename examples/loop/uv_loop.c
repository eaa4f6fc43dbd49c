/*
 * uv_loop.c -- a libcallout domain embedded in a libuv loop.
 *
 * The domain has CALLOUT_CLOCK_EXTERNAL: no thread of its own.  A uv_poll_t
 * watches callout_domain_fd(d) for UV_READABLE; its callback calls
 * callout_domain_run(d), which runs every due handler in the loop thread.
 * A worker thread resets callouts directly (any thread may: an earlier
 * callout re-arms the fd, which wakes the loop) and, through a uv_async_t,
 * asks the loop thread to reset some itself.  uv_poll_t never closes the
 * fd; the domain owns it, so the poll handle is closed before the domain is
 * destroyed.
 *
 * What it checks (exit 1 with a message otherwise): every handler runs in
 * the loop thread (curcpu 0), never before its due tick (the domain tick
 * is at least the tick before the reset plus `ticks`; CLOCK_MONOTONIC at
 * least ticks - 1 ticks after the reset: a reset lands inside a tick), late
 * only by seconds; each callout ran as often as expected; a halt from the
 * loop thread on a pending callout returns false at once; a stop from the
 * worker keeps a callout from running; callout_reset_window() runs inside
 * its window.  Prints "uv_loop ok".
 */
#define _GNU_SOURCE

#include <callout/callout.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <uv.h>

#define TICK_HZ 1000
#define NS_PER_TICK (1000000000LL / TICK_HZ)
#define LATE_NS (3LL * 1000000000LL) /* "not late" is only checked loosely */

#define CHECK(cond)                                                             \
  do {                                                                          \
    if (!(cond)) {                                                              \
      fprintf(stderr, "uv_loop: line %d: check failed: %s\n", __LINE__, #cond); \
      exit(1);                                                                  \
    }                                                                           \
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

/* One callout and its last arming, written by the resetting thread before
 * the reset (which publishes it to the handler). */
struct timer {
  callout_t co;
  const char *name;
  int ticks, slack;
  int64_t armed_ns;
  uint64_t armed_tick;
  int runs; /* loop thread only */
  int want;
};

static void init_timer(struct timer *t, const char *name, int want) {
  callout_init_domain(&t->co, CALLOUT_MPSAFE, dom);
  t->name = name;
  t->want = want;
}

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

static void record_run(struct timer *t) {
  const int64_t now = now_ns();
  const uint64_t tick = callout_domain_ticks(dom);
  if (!pthread_equal(pthread_self(), loop_thread) || callout_domain_curcpu(dom) != 0) {
    fprintf(stderr, "uv_loop: %s ran outside the loop thread\n", t->name);
    exit(1);
  }
  if (tick < t->armed_tick + (uint64_t)t->ticks || now < t->armed_ns + (t->ticks - 1) * NS_PER_TICK) {
    fprintf(stderr, "uv_loop: %s ran early: tick %llu < %llu + %d, or %lld ns after the reset\n", t->name,
            (unsigned long long)tick, (unsigned long long)t->armed_tick, t->ticks,
            (long long)(now - t->armed_ns));
    exit(1);
  }
  if (now > t->armed_ns + (t->ticks + t->slack) * NS_PER_TICK + LATE_NS) {
    fprintf(stderr, "uv_loop: %s ran %lld ms after its reset for %d ticks\n", t->name,
            (long long)((now - t->armed_ns) / 1000000), t->ticks + t->slack);
    exit(1);
  }
  t->runs++;
}

static void on_timer(void *arg) { record_run(arg); }

static void on_periodic(void *arg) {
  struct timer *t = arg;
  record_run(t);
  if (t->runs < t->want) arm(t, 2, 0, on_periodic); /* re-arm from the handler */
}

static void on_forbidden(void *arg) {
  struct timer *t = arg;
  fprintf(stderr, "uv_loop: %s ran although it was halted or stopped\n", t->name);
  exit(1);
}

/* ---- state -------------------------------------------------------------- */

enum { N_LOOP = 3, N_WORKER = 3, N_ASKED = 2 };
static const int loop_ticks[N_LOOP] = {1, 8, 25};
static const int worker_ticks[N_WORKER] = {1, 6, 14};
static const int asked_ticks[N_ASKED] = {2, 11};

static struct timer loop_timers[N_LOOP], worker_timers[N_WORKER], asked_timers[N_ASKED];
static struct timer periodic, window, victim, stopped, sentinel;

static uv_loop_t loop;
static uv_poll_t poll_handle;
static uv_async_t async_handle;
static uv_timer_t guard;

static atomic_bool start_worker; /* loop -> worker */
static atomic_bool arm_request;  /* worker -> loop, with uv_async_send */
static atomic_bool worker_done;  /* worker -> loop, with uv_async_send */
static unsigned ran, wakeups;

static bool all_done(const struct timer *ts, int n) {
  for (int i = 0; i < n; i++)
    if (ts[i].runs != ts[i].want) return false;
  return true;
}

static bool finished(void) {
  return atomic_load(&worker_done) && all_done(loop_timers, N_LOOP) && all_done(worker_timers, N_WORKER) &&
         all_done(asked_timers, N_ASKED) && all_done(&periodic, 1) && all_done(&window, 1);
}

static void close_all(void) {
  uv_poll_stop(&poll_handle);
  uv_close((uv_handle_t *)&poll_handle, NULL);
  uv_close((uv_handle_t *)&async_handle, NULL);
  uv_timer_stop(&guard);
  uv_close((uv_handle_t *)&guard, NULL);
}

static void maybe_finish(void) {
  if (!atomic_load(&start_worker) && all_done(loop_timers, N_LOOP) && all_done(&periodic, 1) &&
      all_done(&window, 1))
    atomic_store(&start_worker, true); /* only the sentinel is left: the loop sleeps long */
  if (finished() && !uv_is_closing((uv_handle_t *)&poll_handle)) close_all();
}

/* ---- callbacks ---------------------------------------------------------- */

static void on_readable(uv_poll_t *handle, int status, int events) {
  (void)handle;
  CHECK(status == 0 && (events & UV_READABLE));
  ran += callout_domain_run(dom);
  wakeups++;
  maybe_finish();
}

static void on_async(uv_async_t *handle) {
  (void)handle;
  /* uv_async_send coalesces: look at every request flag each time. */
  if (atomic_exchange(&arm_request, false))
    for (int i = 0; i < N_ASKED; i++) arm(&asked_timers[i], asked_ticks[i], 0, on_timer);
  maybe_finish();
}

static void on_guard(uv_timer_t *handle) {
  (void)handle;
  fprintf(stderr, "uv_loop: check failed: not finished after 20 s\n");
  exit(1);
}

static void *worker_main(void *unused) {
  (void)unused;
  for (int waited = 0; !atomic_load(&start_worker); waited++) {
    CHECK(waited < 10000);
    sleep_ms(1);
  }
  sleep_ms(10); /* the loop is asleep in epoll until the sentinel by now */
  for (int i = 0; i < N_WORKER; i++) {
    arm(&worker_timers[i], worker_ticks[i], 0, on_timer);
    sleep_ms(2);
  }
  /* Stop is non-blocking from any thread: false, it had not fired. */
  CHECK(!callout_stop(&stopped.co));
  CHECK(!callout_pending(&stopped.co));
  atomic_store(&arm_request, true);
  CHECK(uv_async_send(&async_handle) == 0);
  sleep_ms(5);
  atomic_store(&worker_done, true);
  CHECK(uv_async_send(&async_handle) == 0);
  return NULL;
}

int main(void) {
  struct callout_domain_config cfg;
  callout_domain_config_init(&cfg);
  cfg.clock = CALLOUT_CLOCK_EXTERNAL;
  cfg.hz = TICK_HZ;
  CHECK(callout_domain_create(&cfg, &dom) == 0);
  loop_thread = pthread_self();

  CHECK(uv_loop_init(&loop) == 0);
  CHECK(uv_poll_init(&loop, &poll_handle, callout_domain_fd(dom)) == 0);
  CHECK(uv_poll_start(&poll_handle, UV_READABLE, on_readable) == 0);
  CHECK(uv_async_init(&loop, &async_handle, on_async) == 0);
  CHECK(uv_timer_init(&loop, &guard) == 0);
  CHECK(uv_timer_start(&guard, on_guard, 20000, 0) == 0);

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
  init_timer(&periodic, "periodic", 4);
  init_timer(&window, "window", 1);
  init_timer(&victim, "victim", 0);
  init_timer(&stopped, "stopped", 0);
  init_timer(&sentinel, "sentinel", 0);

  /* The window callout first, alone: the fd's deadline is inside its
   * window, at most due + slack = 32 ticks away. */
  arm(&window, 16, 16, on_timer);
  const int64_t window_ns = callout_domain_next_timeout(dom);
  CHECK(window_ns >= 0 && window_ns <= 32 * NS_PER_TICK);
  for (int i = 0; i < N_LOOP; i++) arm(&loop_timers[i], loop_ticks[i], 0, on_timer);
  arm(&periodic, 2, 0, on_periodic);
  arm(&stopped, 10 * TICK_HZ, 0, on_forbidden);
  arm(&sentinel, 30 * TICK_HZ, 0, on_forbidden);
  /* Halt from the loop thread on a pending callout: false at once. */
  arm(&victim, 3, 0, on_forbidden);
  int64_t t0 = now_ns();
  CHECK(!callout_halt(&victim.co, NULL));
  CHECK(now_ns() - t0 < 1000000000LL);

  pthread_t worker;
  CHECK(pthread_create(&worker, NULL, worker_main, NULL) == 0);
  const int64_t start = now_ns();
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0); /* returns once close_all() closed everything */
  const int64_t elapsed = now_ns() - start;
  CHECK(pthread_join(worker, NULL) == 0);
  CHECK(finished());
  CHECK(uv_loop_close(&loop) == 0);

  t0 = now_ns();
  CHECK(!callout_halt(&sentinel.co, NULL));
  CHECK(now_ns() - t0 < 1000000000LL);
  CHECK(callout_domain_next_timeout(dom) == -1);
  CHECK(callout_domain_run(dom) == 0);
  CHECK(ran == N_LOOP + N_WORKER + N_ASKED + 4 /* periodic */ + 1 /* window */);
  printf("uv_loop: %u handlers in %u wakeups, %.1f ms\n", ran, wakeups, elapsed / 1e6);

  struct timer *rest[] = {&periodic, &window, &victim, &stopped, &sentinel};
  for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++) callout_destroy(&rest[i]->co);
  for (int i = 0; i < N_LOOP; i++) callout_destroy(&loop_timers[i].co);
  for (int i = 0; i < N_WORKER; i++) callout_destroy(&worker_timers[i].co);
  for (int i = 0; i < N_ASKED; i++) callout_destroy(&asked_timers[i].co);
  CHECK(callout_domain_destroy(dom) == 0);
  printf("uv_loop ok\n");
  return 0;
}
