// adapter_libevent.cpp -- libevent 2.1 timers (Debian's libevent-dev).
//
// libevent:        pure timer events (event_assign with fd -1) in the event
//                  base's min-heap (each event keeps its heap index: O(log n)
//                  removal).
// libevent-common: the same events added with "common timeouts"
//                  (event_base_init_common_timeout): one FIFO queue per
//                  distinct duration, only the queue heads in the heap, O(1)
//                  add/remove.  A queue is for one duration, and libevent
//                  allows 256 of them, so each timeout is rounded to one of
//                  199 durations: 1..100 ms exactly, above that to the
//                  nearest 100 ms.  (Same random sequence, rounded.)
// libevent-mt:     the min-heap configuration with evthread_use_pthreads()
//                  called before the base is created: every call takes the
//                  base's lock (the thread-safe configuration).
// event_add reads the clock (clock_gettime) outside the loop; that is part
// of what it costs.  W3 sleeps past every deadline and then runs
// event_base_loop(EVLOOP_NONBLOCK) until all fired; W3rt runs
// event_base_loop(EVLOOP_ONCE), which sleeps in epoll until the next timeout.
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/thread.h>

#include <memory>

#include "workloads.h"

namespace peers {
namespace {

template <bool kCommon, bool kThreads>
class LibeventAdapter {
 public:
  ~LibeventAdapter() = default;

  bool init(std::string *err) {
    if (kThreads && evthread_use_pthreads() != 0) {
      *err = "evthread_use_pthreads failed";
      return false;
    }
    base_ = event_base_new();
    if (base_ == nullptr) {
      *err = "event_base_new failed";
      return false;
    }
    if (kCommon) {
      common_.assign(10'001, nullptr);
      for (std::uint32_t ms = 1; ms <= 10'000; ++ms) {
        const std::uint32_t q = quantise(ms);
        if (common_[q] == nullptr) {
          const timeval tv{static_cast<time_t>(q / 1000), static_cast<suseconds_t>((q % 1000) * 1000)};
          common_[q] = event_base_init_common_timeout(base_, &tv);
          if (common_[q] == nullptr) {
            *err = "event_base_init_common_timeout failed at " + std::to_string(q) + " ms";
            return false;
          }
        }
        common_[ms] = common_[q];
      }
    }
    return true;
  }
  void create(std::size_t n) {
    ev_.reset(new event[n]);
    for (std::size_t i = 0; i < n; ++i) event_assign(&ev_[i], base_, -1, 0, &fire, this);
  }
  void arm(std::uint32_t i, std::uint32_t ms) { event_add(&ev_[i], tv(ms)); }
  void cancel(std::uint32_t i) { event_del(&ev_[i]); }
  void rearm(std::uint32_t i, std::uint32_t ms) { event_add(&ev_[i], tv(ms)); }
  void flush() {}
  std::uint64_t fired() const { return fired_; }

  std::uint64_t w3(const std::vector<std::uint32_t> &ms) {
    const std::uint64_t target = fired_ + ms.size();
    for (std::size_t i = 0; i < ms.size(); ++i) arm(static_cast<std::uint32_t>(i), ms[i]);
    return batch_w3(bench::mono_ns(), kW3MaxMs, [&] {
      while (fired_ < target) event_base_loop(base_, EVLOOP_NONBLOCK);
    });
  }
  std::uint64_t w3rt(const std::vector<std::uint32_t> &ms) {
    const std::uint64_t target = fired_ + ms.size();
    for (std::size_t i = 0; i < ms.size(); ++i) arm(static_cast<std::uint32_t>(i), ms[i]);
    const std::uint64_t t0 = bench::process_cpu_ns();
    while (fired_ < target) event_base_loop(base_, EVLOOP_ONCE);
    return bench::process_cpu_ns() - t0;
  }

 private:
  static std::uint32_t quantise(std::uint32_t ms) { return ms <= 100 ? ms : (ms + 50) / 100 * 100; }
  const timeval *tv(std::uint32_t ms) {
    if (kCommon) return common_[ms];
    scratch_.tv_sec = static_cast<time_t>(ms / 1000);
    scratch_.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
    return &scratch_;
  }
  static void fire(evutil_socket_t, short, void *arg) { ++static_cast<LibeventAdapter *>(arg)->fired_; }

  event_base *base_ = nullptr;
  std::unique_ptr<event[]> ev_;
  std::vector<const timeval *> common_;
  timeval scratch_{};
  std::uint64_t fired_ = 0;
};

}  // namespace

void register_libevent(std::vector<Lib> &libs) {
  libs.push_back(
      {"libevent", "libevent (min-heap)", false, false, 1'000'000, &run<LibeventAdapter<false, false>>});
  libs.push_back({"libevent-common", "libevent (common-timeout queues)", false, false, 1'000'000,
                  &run<LibeventAdapter<true, false>>});
  libs.push_back({"libevent-mt", "libevent (min-heap, evthread_use_pthreads)", true, false, 1'000'000,
                  &run<LibeventAdapter<false, true>>});
}

}  // namespace peers
