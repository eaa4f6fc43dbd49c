// clock.cpp -- tick <-> CLOCK_MONOTONIC conversions.
//
// The products below can exceed 64 bits (2^40 ticks * 10^9), so each is
// split into a whole part and a remainder whose product fits in 64 bits
// (hz <= 10^6): exact for every tick a 64-bit counter can hold, with no
// 128-bit arithmetic, which 32-bit targets do not have.
#include "clock.h"

namespace libcallout::internal {

namespace {
constexpr std::uint64_t kNsPerSec = 1'000'000'000;
}

std::uint64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * kNsPerSec + static_cast<std::uint64_t>(ts.tv_nsec);
}

Clock::Clock(enum callout_clock kind, unsigned hz) : kind_(kind), hz_(hz) {
  clock_gettime(CLOCK_MONOTONIC, &origin_ts_);
  origin_ns_ = static_cast<std::uint64_t>(origin_ts_.tv_sec) * kNsPerSec +
               static_cast<std::uint64_t>(origin_ts_.tv_nsec);
}

std::uint64_t Clock::monotonic_ticks() const {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return tick_at(ts);
}

// floor(elapsed_ns * hz / 1e9) with elapsed = s seconds + n nanoseconds
// (0 <= n < 1e9) is s * hz + floor(n * hz / 1e9): s * hz is whole, and
// n * hz < 1e9 * 1e6 fits in 64 bits, divided by a constant (a multiply
// and a shift).  tick_at_ns() divides a 128-bit product by 1e9, a library
// call costing tens of nanoseconds.
std::uint64_t Clock::tick_at(const timespec &ts) const {
  std::int64_t s = static_cast<std::int64_t>(ts.tv_sec) - static_cast<std::int64_t>(origin_ts_.tv_sec);
  std::int64_t n = static_cast<std::int64_t>(ts.tv_nsec) - static_cast<std::int64_t>(origin_ts_.tv_nsec);
  if (n < 0) {
    n += static_cast<std::int64_t>(kNsPerSec);
    --s;
  }
  if (s < 0) return 0;  // before the origin
  return static_cast<std::uint64_t>(s) * hz_ + static_cast<std::uint64_t>(n) * hz_ / kNsPerSec;
}

// floor(e * hz / 1e9) for e = q * 1e9 + r (r < 1e9) is q * hz +
// floor(r * hz / 1e9): q * hz is whole and below 2^64 / 1e9 * 1e6 < 2^64,
// and r * hz < 1e15.
std::uint64_t Clock::tick_at_ns(std::uint64_t ns) const {
  if (ns < origin_ns_) return 0;
  const std::uint64_t e = ns - origin_ns_;
  return e / kNsPerSec * hz_ + e % kNsPerSec * hz_ / kNsPerSec;
}

std::uint64_t Clock::tick_start_ns(std::uint64_t t) const {
  // ceil(t * 1e9 / hz): the first nanosecond that belongs to tick t.  With
  // t = q * hz + r (r < hz) that is q * 1e9 + ceil(r * 1e9 / hz), where
  // r * 1e9 < 1e15; only q * 1e9 and the sums can leave 64 bits, and then
  // the instant is past any 64-bit nanosecond count: saturate.
  const std::uint64_t q = t / hz_;
  const std::uint64_t r = t % hz_;
  std::uint64_t whole, ns;
  if (__builtin_mul_overflow(q, kNsPerSec, &whole) ||
      __builtin_add_overflow(whole, (r * kNsPerSec + hz_ - 1) / hz_, &ns) ||
      __builtin_add_overflow(ns, origin_ns_, &ns))
    return UINT64_MAX;
  return ns;
}

timespec Clock::deadline(std::uint64_t t) const {
  const std::uint64_t ns = tick_start_ns(t);
  timespec ts;
  ts.tv_sec = static_cast<time_t>(ns / kNsPerSec);
  ts.tv_nsec = static_cast<long>(ns % kNsPerSec);
  return ts;
}

}  // namespace libcallout::internal
