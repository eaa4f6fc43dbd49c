// cpp_example.cpp -- a tour of the C++ layer (callout/callout.hpp).
//
//   1. A timer on the default domain runs a lambda once, no earlier than
//      its duration.
//   2. A periodic timer: the handler takes the timer and re-arms itself;
//      halt() stops it for good, waiting if the handler is running.
//   3. A lock-associated timer over a std::mutex: the handler runs holding
//      the mutex, so under that mutex stop() is final, and halt(lock) is
//      the interlock form that releases the lock while it waits.
//   4. A manual-clock domain for deterministic tests: 5 ms at hz 1000 is
//      due 6 ticks later (durations round up, plus one tick).
//
// Handlers run on the domains' softclock threads, so what they share with
// main is atomic or under a mutex.  Prints what happened and, last, "done";
// exits 1 if something the API guarantees did not hold.
#include <atomic>
#include <callout/callout.hpp>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <thread>

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

int failures = 0;

void expect(bool ok, const char *what) {
  if (!ok) {
    std::printf("FAILED: %s\n", what);
    ++failures;
  }
}

template <class Pred>
bool wait_for(Pred pred, std::chrono::milliseconds limit = 5s) {
  const auto deadline = Clock::now() + limit;
  while (!pred()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

void one_shot() {
  std::printf("1. one-shot timer on the default domain\n");
  std::atomic<bool> ran{false};
  std::atomic<double> after_ms{0};
  libcallout::timer t{"one-shot"};  // default domain, MPSAFE
  const auto start = Clock::now();
  t.reset(25ms, [&] {
    after_ms = ms_since(start);
    ran = true;
  });
  std::printf("   reset for 25 ms; pending=%d\n", t.pending());
  expect(wait_for([&] { return ran.load(); }), "the one-shot timer did not run");
  std::printf("   ran after %.2f ms; pending=%d expired=%d\n", after_ms.load(), t.pending(), t.expired());
  expect(after_ms.load() >= 25.0, "the one-shot timer ran before 25 ms had elapsed");
}

void periodic() {
  std::printf("2. periodic timer re-arming itself\n");
  std::atomic<int> runs{0};
  libcallout::timer t{"periodic"};
  t.reset(10ms, [&runs](libcallout::timer &self) {
    ++runs;
    self.schedule(10ms);  // same callable, 10 ms later
  });
  expect(wait_for([&] { return runs.load() >= 5; }), "the periodic timer did not run 5 times");
  const bool waited = t.halt();  // stops it; waits if the handler runs now
  const int at_halt = runs.load();
  std::this_thread::sleep_for(50ms);
  std::printf("   ran %d times, halt() %s; %d runs after halt\n", at_halt,
              waited ? "waited for the running handler" : "did not need to wait", runs.load() - at_halt);
  expect(runs.load() == at_halt, "the periodic timer ran after halt()");
  expect(!t.pending(), "the periodic timer is pending after halt()");
}

void lock_associated() {
  std::printf("3. lock-associated timer over std::mutex\n");
  std::mutex m;
  int guarded = 0;  // protected by m; the handler holds m when it runs
  libcallout::timer t{m, "guarded"};
  {
    std::unique_lock<std::mutex> lk(m);
    t.reset(5ms, [&] { ++guarded; });
    std::this_thread::sleep_for(30ms);  // due while we hold m: it waits for m
    const bool fired = t.stop();        // under m: the handler will not run
    std::printf("   stop() under the mutex after the due time -> %s\n", fired ? "true" : "false");
    expect(!fired, "stop() under the mutex reported a run");
  }
  std::this_thread::sleep_for(20ms);
  expect(guarded == 0, "the handler ran after stop() under its mutex");
  std::printf("   the handler never ran (guarded = %d)\n", guarded);

  std::unique_lock<std::mutex> lk(m);
  t.reset(1ms, [&] { ++guarded; });
  std::this_thread::sleep_for(10ms);
  const bool waited = t.halt(lk);  // releases m while it waits, holds it again after
  std::printf("   halt(lock) -> %s, lock held again: %s, guarded = %d\n", waited ? "true" : "false",
              lk.owns_lock() ? "yes" : "no", guarded);
  expect(lk.owns_lock(), "halt(lock) returned without the lock");
  expect(guarded == 0, "a dispatch cancelled by halt(lock) ran anyway");
}

void manual_clock() {
  std::printf("4. manual clock: deterministic ticks\n");
  libcallout::domain_config cfg;
  cfg.ncpu = 2;
  cfg.clock = libcallout::clock_kind::manual;
  libcallout::domain d{cfg};  // declared before its timers: destroyed after them
  std::atomic<std::uint64_t> ran_at{0};
  libcallout::timer t{d, "manual"};
  t.bind(1);  // CPU 1 of this domain
  t.reset(5ms, [&] { ran_at = d.ticks(); });
  d.advance(5);
  std::printf("   5 ms at hz %u: after 5 ticks ran=%d", d.hz(), ran_at.load() != 0);
  d.advance(1);
  std::printf(", after 6 ticks ran at tick %llu\n", static_cast<unsigned long long>(ran_at.load()));
  expect(ran_at.load() == 6, "5 ms at hz 1000 was not due at tick 6");
}

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::printf("libcallout C++ example (callout %s): default domain, %u CPU(s), hz %u\n", callout_version(),
              libcallout::default_domain().ncpu(), libcallout::default_domain().hz());
  one_shot();
  periodic();
  lock_associated();
  manual_clock();
  if (failures != 0) return 1;
  std::printf("done\n");
  return 0;
}
