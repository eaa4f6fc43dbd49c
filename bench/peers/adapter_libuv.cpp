// adapter_libuv.cpp -- libuv timers (Debian's libuv1-dev).
//
// uv_timer_t handles in the loop's timer heap (a pointer-linked binary heap,
// O(log n) insert and removal).  uv_timer_start on an active timer stops it
// first (the re-arm).  Timeouts are relative to the loop's cached time,
// which only uv_run/uv_update_time move: arming never reads the clock.  W3
// sleeps past every deadline and then runs uv_run(UV_RUN_NOWAIT) until all
// fired; W3rt runs uv_run(UV_RUN_ONCE), which sleeps until the next timer.
#include <uv.h>

#include <memory>

#include "workloads.h"

namespace peers {
namespace {

class LibuvAdapter {
 public:
  bool init(std::string *err) {
    if (int e = uv_loop_init(&loop_); e != 0) {
      *err = std::string("uv_loop_init: ") + uv_strerror(e);
      return false;
    }
    return true;
  }
  void create(std::size_t n) {
    t_.reset(new uv_timer_t[n]);
    for (std::size_t i = 0; i < n; ++i) {
      uv_timer_init(&loop_, &t_[i]);
      t_[i].data = this;
    }
  }
  void arm(std::uint32_t i, std::uint32_t ms) { uv_timer_start(&t_[i], &fire, ms, 0); }
  void cancel(std::uint32_t i) { uv_timer_stop(&t_[i]); }
  void rearm(std::uint32_t i, std::uint32_t ms) { uv_timer_start(&t_[i], &fire, ms, 0); }
  void flush() {}
  std::uint64_t fired() const { return fired_; }

  std::uint64_t w3(const std::vector<std::uint32_t> &ms) {
    const std::uint64_t target = fired_ + ms.size();
    uv_update_time(&loop_);
    for (std::size_t i = 0; i < ms.size(); ++i) arm(static_cast<std::uint32_t>(i), ms[i]);
    return batch_w3(bench::mono_ns(), kW3MaxMs, [&] {
      while (fired_ < target) uv_run(&loop_, UV_RUN_NOWAIT);
    });
  }
  std::uint64_t w3rt(const std::vector<std::uint32_t> &ms) {
    const std::uint64_t target = fired_ + ms.size();
    uv_update_time(&loop_);
    for (std::size_t i = 0; i < ms.size(); ++i) arm(static_cast<std::uint32_t>(i), ms[i]);
    const std::uint64_t t0 = bench::process_cpu_ns();
    while (fired_ < target) uv_run(&loop_, UV_RUN_ONCE);
    return bench::process_cpu_ns() - t0;
  }

 private:
  static void fire(uv_timer_t *t) { ++static_cast<LibuvAdapter *>(t->data)->fired_; }

  uv_loop_t loop_{};
  std::unique_ptr<uv_timer_t[]> t_;
  std::uint64_t fired_ = 0;
};

}  // namespace

void register_libuv(std::vector<Lib> &libs) {
  libs.push_back({"libuv", "libuv", false, false, 1'000'000, &run<LibuvAdapter>});
}

}  // namespace peers
