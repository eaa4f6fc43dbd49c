// adapter_callout.cpp -- libcallout in the peer comparison.
//
// callout-manual: a manual-clock domain with one CPU at hz 1000 (1 tick =
//   1 ms), so that W3 is measured without sleeping: arm, then
//   callout_domain_advance(d, 100) runs every handler on the CPU's softclock
//   thread and returns when all have run.  W3 counts the CPU time of the
//   advance, both threads.  (No W3rt: this clock has no real time.)
// callout-virtual: the same on a virtual clock: no softclock thread;
//   callout_domain_advance(d, 100) runs the handlers in the calling thread,
//   as a single-thread event loop runs its timers' callbacks.
// callout-mono: the same on the monotonic (tickless) clock: the softclock
//   thread sleeps until each next due tick.  W3rt counts the CPU time of the
//   process from the first arm until the last handler ran, minus the CPU
//   time the arming thread spent arming: what firing cost, wake-ups
//   included.  (No batch W3: the softclock cannot be held back.)
// Both are MP-safe: every operation takes the CPU's spin lock.
#include <atomic>
#include <memory>

#include "callout/callout.h"
#include "workloads.h"

namespace peers {
namespace {

template <enum callout_clock kClock>
class CalloutAdapter {
 public:
  // The callouts are never freed: some may still be pending when a
  // workload ends, and the softclock thread keeps walking its wheel (freeing
  // them would be the use-after-free callout_halt exists to prevent).  The
  // process exits right after.
  ~CalloutAdapter() { (void)c_.release(); }

  bool init(std::string *err) {
    callout_domain_config cfg;
    callout_domain_config_init(&cfg);
    cfg.ncpu = 1;
    cfg.hz = 1000;
    cfg.clock = kClock;
    if (int e = callout_domain_create(&cfg, &d_); e != 0) {
      *err = "callout_domain_create: error " + std::to_string(e);
      return false;
    }
    return true;
  }
  void create(std::size_t n) {
    c_.reset(new callout_t[n]);
    n_ = n;
    for (std::size_t i = 0; i < n; ++i) callout_init_domain(&c_[i], CALLOUT_MPSAFE, d_);
  }
  void arm(std::uint32_t i, std::uint32_t ms) { callout_reset(&c_[i], static_cast<int>(ms), &fire, this); }
  void cancel(std::uint32_t i) { callout_stop(&c_[i]); }
  void rearm(std::uint32_t i, std::uint32_t ms) { callout_reset(&c_[i], static_cast<int>(ms), &fire, this); }
  void flush() {}
  std::uint64_t fired() const { return fired_.load(std::memory_order_acquire); }

  // Batch (time moved by the caller): the manual and virtual clocks.
  std::uint64_t w3(const std::vector<std::uint32_t> &ms) requires(kClock == CALLOUT_CLOCK_MANUAL ||
                                                                  kClock == CALLOUT_CLOCK_VIRTUAL) {
    for (std::size_t i = 0; i < ms.size(); ++i) arm(static_cast<std::uint32_t>(i), ms[i]);
    const std::uint64_t t0 = bench::process_cpu_ns();
    callout_domain_advance(d_, kW3MaxMs);
    return bench::process_cpu_ns() - t0;
  }

  // Real time: the monotonic clock only.  The softclock fires callouts as
  // they come due, possibly while the rest are still being armed, so the
  // count is the process CPU time from the first arm to the last handler
  // minus the CPU time of the arming thread's arming.
  std::uint64_t w3rt(const std::vector<std::uint32_t> &ms) requires(kClock == CALLOUT_CLOCK_MONOTONIC) {
    const std::uint64_t target = fired() + ms.size();
    const std::uint64_t p0 = bench::process_cpu_ns();
    const std::uint64_t a0 = bench::thread_cpu_ns();
    for (std::size_t i = 0; i < ms.size(); ++i) arm(static_cast<std::uint32_t>(i), ms[i]);
    const std::uint64_t a1 = bench::thread_cpu_ns();
    const std::uint64_t deadline = bench::mono_ns() + (kW3MaxMs + 5000ull) * 1'000'000ull;
    bench::sleep_ns(kW3MaxMs * 1'000'000ull);
    while (fired() < target && bench::mono_ns() < deadline) bench::sleep_ns(200'000);
    const std::uint64_t p1 = bench::process_cpu_ns();
    return (p1 - p0) - (a1 - a0);
  }

 private:
  static void fire(void *arg) {
    auto *self = static_cast<CalloutAdapter *>(arg);
    // One writer (the CPU's softclock thread): a plain increment, published.
    self->fired_.store(self->fired_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }

  callout_domain_t *d_ = nullptr;
  std::unique_ptr<callout_t[]> c_;
  std::size_t n_ = 0;
  std::atomic<std::uint64_t> fired_{0};
};

}  // namespace

void register_callout(std::vector<Lib> &libs) {
  libs.push_back({"callout-manual", "libcallout (manual clock)", true, true, 10'000'000,
                  &run<CalloutAdapter<CALLOUT_CLOCK_MANUAL>>});
  libs.push_back({"callout-virtual", "libcallout (virtual clock)", true, true, 10'000'000,
                  &run<CalloutAdapter<CALLOUT_CLOCK_VIRTUAL>>});
  libs.push_back({"callout-mono", "libcallout (monotonic clock)", true, true, 1'000'000,
                  &run<CalloutAdapter<CALLOUT_CLOCK_MONOTONIC>>});
}

}  // namespace peers
