// asio_loop.cpp -- a libcallout domain embedded in a Boost.Asio io_context.
//
// The domain has CALLOUT_CLOCK_EXTERNAL: it has no thread of its own.  A
// posix::stream_descriptor watches callout_domain_fd(d); when it polls
// readable the completion calls callout_domain_run(d), which runs every due
// handler right there, in the io_context thread, and then waits again.  The
// fd re-arms itself whenever a callout earlier than the armed one is added,
// from any thread, so no asio timer is needed.
//
// The stream_descriptor must not close the fd: the domain owns it.  Loop's
// destructor calls release() before the descriptor object goes away, and the
// Loop is destroyed before the domain.
//
// What it checks (exit 1 with a message otherwise): every handler runs in
// the io_context thread (curcpu 0), never before its due tick (the domain
// tick is at least the tick before the reset plus `ticks`; CLOCK_MONOTONIC
// at least ticks - 1 ticks after the reset: a reset lands inside a tick),
// late only by seconds; each callout ran as often as expected; callouts
// reset by another thread, directly or posted to the io_context, run; a
// halt from the io_context thread on a pending callout returns false at
// once; callout_shutdown() from another thread makes later resets no-ops;
// callout_reset_window() runs inside its window.  Prints "asio_loop ok".
#include <callout/callout.h>
#include <pthread.h>
#include <time.h>

// clang-format off
#include <utility>  // first: Boost 1.74's asio/awaitable.hpp uses std::exchange without it (C++20)
#include <boost/asio.hpp>
// clang-format on
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>

namespace asio = boost::asio;

namespace {

constexpr int kHz = 1000;
constexpr std::int64_t kNsPerTick = 1'000'000'000 / kHz;
constexpr std::int64_t kLateNs = 3'000'000'000;  // "not late" is only checked loosely

#define CHECK(cond)                                                                    \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      std::fprintf(stderr, "asio_loop: line %d: check failed: %s\n", __LINE__, #cond); \
      std::exit(1);                                                                    \
    }                                                                                  \
  } while (0)

std::int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

callout_domain_t *dom;
pthread_t io_thread;

// One callout and its last arming.  The thread that resets it writes the
// arming first; the reset publishes it to the handler (callout lock).
struct Timer {
  callout_t co;
  const char *name = "";
  int ticks = 0, slack = 0;
  std::int64_t armed_ns = 0;
  std::uint64_t armed_tick = 0;
  int runs = 0;  // io_context thread only
  int want = 1;

  Timer(const char *n, int want_runs) : name(n), want(want_runs) {
    callout_init_domain(&co, CALLOUT_MPSAFE, dom);
  }
  ~Timer() { callout_destroy(&co); }
  Timer(const Timer &) = delete;
  Timer &operator=(const Timer &) = delete;

  void arm(int t, callout_func_t func, int s = 0) {
    ticks = t;
    slack = s;
    armed_ns = now_ns();
    armed_tick = callout_domain_ticks(dom);
    if (s > 0)
      callout_reset_window(&co, t, s, func, this);
    else
      callout_reset(&co, t, func, this);
  }

  void record_run() {
    const std::int64_t now = now_ns();
    const std::uint64_t tick = callout_domain_ticks(dom);
    if (!pthread_equal(pthread_self(), io_thread) || callout_domain_curcpu(dom) != 0) {
      std::fprintf(stderr, "asio_loop: %s ran outside the io_context thread\n", name);
      std::exit(1);
    }
    if (tick < armed_tick + static_cast<std::uint64_t>(ticks) || now < armed_ns + (ticks - 1) * kNsPerTick) {
      std::fprintf(stderr, "asio_loop: %s ran early: tick %llu < %llu + %d, or %lld ns after the reset\n",
                   name, static_cast<unsigned long long>(tick), static_cast<unsigned long long>(armed_tick),
                   ticks, static_cast<long long>(now - armed_ns));
      std::exit(1);
    }
    if (now > armed_ns + (ticks + slack) * kNsPerTick + kLateNs) {
      std::fprintf(stderr, "asio_loop: %s ran %lld ms after its reset for %d ticks\n", name,
                   static_cast<long long>((now - armed_ns) / 1'000'000), ticks + slack);
      std::exit(1);
    }
    ++runs;
  }

  bool done() const { return runs == want; }
};

void on_timer(void *arg) { static_cast<Timer *>(arg)->record_run(); }

void on_periodic(void *arg) {
  auto *t = static_cast<Timer *>(arg);
  t->record_run();
  if (t->runs < t->want) t->arm(3, on_periodic);  // re-arm from the handler
}

void on_forbidden(void *arg) {
  std::fprintf(stderr, "asio_loop: %s ran although it was halted or shut down\n",
               static_cast<Timer *>(arg)->name);
  std::exit(1);
}

// Waits on the domain's fd and runs what is due, until stop().
class Loop {
 public:
  Loop(asio::io_context &io, callout_domain_t *d) : fd_(io, callout_domain_fd(d)), d_(d) {}
  ~Loop() { fd_.release(); }  // the domain owns (and closes) the fd
  Loop(const Loop &) = delete;
  Loop &operator=(const Loop &) = delete;

  // Called after every callout_domain_run(); returns true to stop.
  template <typename F>
  void start(F after_run) {
    fd_.async_wait(asio::posix::stream_descriptor::wait_read,
                   [this, after_run](const boost::system::error_code &ec) {
                     if (ec) return;  // cancelled by stop()
                     ran_ += callout_domain_run(d_);
                     ++wakeups_;
                     if (!after_run()) start(after_run);
                   });
  }
  void stop() { fd_.cancel(); }
  unsigned ran() const { return ran_; }
  unsigned wakeups() const { return wakeups_; }

 private:
  asio::posix::stream_descriptor fd_;
  callout_domain_t *d_;
  unsigned ran_ = 0, wakeups_ = 0;
};

int run() {
  callout_domain_config cfg;
  callout_domain_config_init(&cfg);
  cfg.clock = CALLOUT_CLOCK_EXTERNAL;
  cfg.hz = kHz;
  CHECK(callout_domain_create(&cfg, &dom) == 0);
  io_thread = pthread_self();  // io.run() below runs in this thread

  {
    // Declared first, destroyed last: the callouts must outlive the loop.
    Timer mine[4] = {{"io0", 1}, {"io1", 1}, {"io2", 1}, {"io3", 1}};
    Timer direct[3] = {{"direct0", 1}, {"direct1", 1}, {"direct2", 1}};
    Timer posted[2] = {{"posted0", 1}, {"posted1", 1}};
    Timer periodic("periodic", 4), window("window", 1), victim("victim", 0), doomed("doomed", 0),
        sentinel("sentinel", 0);

    asio::io_context io;
    Loop loop(io, dom);
    asio::steady_timer guard(io, std::chrono::seconds(20));
    std::atomic<bool> start_worker{false};
    bool worker_done = false;  // io_context thread only

    auto finished = [&] {
      for (const Timer &t : mine)
        if (!t.done()) return false;
      for (const Timer &t : direct)
        if (!t.done()) return false;
      for (const Timer &t : posted)
        if (!t.done()) return false;
      return worker_done && periodic.done() && window.done();
    };
    auto after_run = [&] {
      // The worker starts once only the far callouts are left: its resets
      // must wake an io_context that would otherwise sleep for seconds.
      bool quiet = periodic.done() && window.done();
      for (const Timer &t : mine) quiet = quiet && t.done();
      if (quiet) start_worker.store(true);
      if (!finished()) return false;
      guard.cancel();
      return true;  // no new wait: io.run() returns
    };
    guard.async_wait([](const boost::system::error_code &ec) {
      if (ec) return;
      std::fprintf(stderr, "asio_loop: check failed: not finished after 20 s\n");
      std::exit(1);
    });

    // Callouts armed from the io_context thread.
    asio::post(io, [&] {
      // The window callout first, alone: the fd's deadline is inside its
      // window, at most due + slack = 35 ticks away.
      window.arm(20, on_timer, 15);
      const std::int64_t window_ns = callout_domain_next_timeout(dom);
      CHECK(window_ns >= 0 && window_ns <= 35 * kNsPerTick);
      static const int ticks[4] = {1, 7, 15, 30};
      for (int i = 0; i < 4; i++) mine[i].arm(ticks[i], on_timer);
      periodic.arm(3, on_periodic);
      sentinel.arm(30 * kHz, on_forbidden);
      doomed.arm(10 * kHz, on_forbidden);
      // Halt from the loop thread on a pending callout: false at once
      // (waiting for the loop thread from the loop thread would hang).
      victim.arm(5, on_forbidden);
      const std::int64_t t0 = now_ns();
      CHECK(!callout_halt(&victim.co, nullptr));
      CHECK(now_ns() - t0 < 1'000'000'000);
      CHECK(!callout_pending(&victim.co));
      loop.start(after_run);
    });

    std::thread worker([&] {
      while (!start_worker.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      // Any thread may reset; an earlier callout re-arms the fd and wakes
      // the io_context, which sleeps until the sentinel otherwise.
      static const int ticks[3] = {1, 5, 12};
      for (int i = 0; i < 3; i++) {
        direct[i].arm(ticks[i], on_timer);
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      // Or hand the reset to the io_context thread.
      asio::post(io, [&] { posted[0].arm(4, on_timer); });
      asio::post(io, [&] { posted[1].arm(9, on_timer); });
      // Shut down a pending callout: it will not run, and a later reset
      // (from any thread) is ignored.
      callout_shutdown(&doomed.co);
      CHECK(!callout_pending(&doomed.co));
      asio::post(io, [&] {
        doomed.arm(1, on_forbidden);
        CHECK(!callout_pending(&doomed.co));
        worker_done = true;
      });
    });

    const auto t_start = std::chrono::steady_clock::now();
    io.run();
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_start).count();
    worker.join();
    CHECK(finished());

    // Only the sentinel is left; it is not running: false at once.
    const std::int64_t t0 = now_ns();
    CHECK(!callout_halt(&sentinel.co, nullptr));
    CHECK(now_ns() - t0 < 1'000'000'000);
    CHECK(callout_domain_next_timeout(dom) == -1);
    CHECK(callout_domain_run(dom) == 0);
    const unsigned want = 4 + 3 + 2 + 4 /* periodic */ + 1 /* window */;
    CHECK(loop.ran() == want);
    std::printf("asio_loop: %u handlers in %u wakeups, %.1f ms\n", loop.ran(), loop.wakeups(), ms);
  }  // ~Loop releases the fd, then the callouts are destroyed
  CHECK(callout_domain_destroy(dom) == 0);
  std::printf("asio_loop ok\n");
  return 0;
}

}  // namespace

int main() { return run(); }
