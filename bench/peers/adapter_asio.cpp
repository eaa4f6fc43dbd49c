// adapter_asio.cpp -- Boost.Asio steady_timer (Debian's libboost-dev, 1.74).
//
// One io_context (default: thread-safe, its scheduler and reactor take a
// mutex on each operation).  Arming a timer is expires_after() + async_wait()
// (the wait operation is allocated, through Asio's per-thread recycling
// allocator); the timer queue is a binary heap with per-timer index.
// cancel() and re-arming a pending timer complete the old wait with
// operation_aborted: that handler still has to run, so flush() -- called
// after each chunk of cancels or re-arms, inside the timed region -- runs
// io_context::poll() to drain them.  W3 sleeps past every deadline and then
// polls until all fired; W3rt calls io_context::run(), which returns when no
// wait is left.
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>

#include "workloads.h"

namespace peers {
namespace {

class AsioAdapter {
 public:
  bool init(std::string *) { return true; }
  void create(std::size_t n) {
    t_.reserve(n);
    for (std::size_t i = 0; i < n; ++i) t_.emplace_back(io_);
  }
  void arm(std::uint32_t i, std::uint32_t ms) {
    boost::asio::steady_timer &t = t_[i];
    t.expires_after(std::chrono::milliseconds(ms));
    t.async_wait([this](const boost::system::error_code &ec) {
      if (!ec) ++fired_;
    });
  }
  void cancel(std::uint32_t i) { t_[i].cancel(); }
  void rearm(std::uint32_t i, std::uint32_t ms) { arm(i, ms); }
  void flush() {
    if (io_.stopped()) io_.restart();
    io_.poll();
  }
  std::uint64_t fired() const { return fired_; }

  std::uint64_t w3(const std::vector<std::uint32_t> &ms) {
    const std::uint64_t target = fired_ + ms.size();
    for (std::size_t i = 0; i < ms.size(); ++i) arm(static_cast<std::uint32_t>(i), ms[i]);
    return batch_w3(bench::mono_ns(), kW3MaxMs, [&] {
      while (fired_ < target) flush();
    });
  }
  std::uint64_t w3rt(const std::vector<std::uint32_t> &ms) {
    for (std::size_t i = 0; i < ms.size(); ++i) arm(static_cast<std::uint32_t>(i), ms[i]);
    const std::uint64_t t0 = bench::process_cpu_ns();
    if (io_.stopped()) io_.restart();
    io_.run();  // returns when no wait is left
    return bench::process_cpu_ns() - t0;
  }

 private:
  boost::asio::io_context io_;
  std::vector<boost::asio::steady_timer> t_;
  std::uint64_t fired_ = 0;
};

}  // namespace

void register_asio(std::vector<Lib> &libs) {
  libs.push_back({"asio", "Boost.Asio steady_timer", true, false, 1'000'000, &run<AsioAdapter>});
}

}  // namespace peers
