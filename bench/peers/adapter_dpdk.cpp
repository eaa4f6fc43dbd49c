// adapter_dpdk.cpp -- DPDK rte_timer (Debian's libdpdk-dev, 22.11).
//
// rte_timer keeps one skiplist per lcore ("based on the BSD callout API");
// each timer has a CAS-updated state word and each lcore's list a spin lock,
// so arming and stopping are safe from any lcore: the thread-safe peer.
// Timeouts are in TSC cycles (rte_get_timer_hz()).  The EAL is started
// without hugepages or PCI, on the one CPU the bench is pinned to.  W3
// sleeps past every deadline and then calls rte_timer_manage() until all
// fired; W3rt sleeps between rte_timer_manage() calls until the next timer.
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_timer.h>

#include <memory>

#include "workloads.h"

namespace peers {
namespace {

class DpdkAdapter {
 public:
  bool init(std::string *err) {
    const std::string lcore = std::to_string(current_args().cpu);
    std::vector<std::string> args = {"callout-peers",
                                     "--no-huge",
                                     "--no-pci",
                                     "--no-shconf",
                                     "--no-telemetry",
                                     "-m",
                                     "128",
                                     "-l",
                                     lcore,
                                     "--log-level=lib.*:error"};
    std::vector<char *> argv;
    for (auto &a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (rte_eal_init(static_cast<int>(args.size()), argv.data()) < 0) {
      *err = std::string("rte_eal_init: ") + rte_strerror(rte_errno);
      return false;
    }
    if (int e = rte_timer_subsystem_init(); e != 0 && e != -EALREADY) {
      *err = "rte_timer_subsystem_init: " + std::to_string(e);
      return false;
    }
    lcore_ = rte_lcore_id();
    cycles_per_ms_ = rte_get_timer_hz() / 1000;
    return true;
  }
  void create(std::size_t n) {
    t_.reset(new rte_timer[n]);
    for (std::size_t i = 0; i < n; ++i) rte_timer_init(&t_[i]);
  }
  void arm(std::uint32_t i, std::uint32_t ms) {
    rte_timer_reset(&t_[i], ms * cycles_per_ms_, SINGLE, lcore_, &fire, this);
  }
  void cancel(std::uint32_t i) { rte_timer_stop(&t_[i]); }
  void rearm(std::uint32_t i, std::uint32_t ms) { arm(i, ms); }
  void flush() {}
  std::uint64_t fired() const { return fired_; }

  std::uint64_t w3(const std::vector<std::uint32_t> &ms) {
    const std::uint64_t target = fired_ + ms.size();
    for (std::size_t i = 0; i < ms.size(); ++i) arm(static_cast<std::uint32_t>(i), ms[i]);
    return batch_w3(bench::mono_ns(), kW3MaxMs, [&] {
      while (fired_ < target) rte_timer_manage();
    });
  }
  // DPDK applications usually poll; a poll loop's CPU time is all of the
  // wall time, which says nothing per timer.  So the loop a program that
  // does not want to spin would write: manage, then sleep until the next
  // timer (rte_timer_next_ticks).
  std::uint64_t w3rt(const std::vector<std::uint32_t> &ms) {
    const std::uint64_t target = fired_ + ms.size();
    for (std::size_t i = 0; i < ms.size(); ++i) arm(static_cast<std::uint32_t>(i), ms[i]);
    const std::uint64_t t0 = bench::process_cpu_ns();
    const std::uint64_t hz = rte_get_timer_hz();
    for (;;) {
      rte_timer_manage();
      if (fired_ >= target) break;
      const std::int64_t left = rte_timer_next_ticks();
      if (left > 0) bench::sleep_ns(static_cast<std::uint64_t>(left) * 1'000'000'000ull / hz);
    }
    return bench::process_cpu_ns() - t0;
  }

 private:
  static void fire(rte_timer *, void *arg) { ++static_cast<DpdkAdapter *>(arg)->fired_; }

  unsigned lcore_ = 0;
  std::uint64_t cycles_per_ms_ = 0;
  std::unique_ptr<rte_timer[]> t_;
  std::uint64_t fired_ = 0;
};

}  // namespace

void register_dpdk(std::vector<Lib> &libs) {
  libs.push_back({"dpdk", "DPDK rte_timer", true, false, 1'000'000, &run<DpdkAdapter>});
}

}  // namespace peers
