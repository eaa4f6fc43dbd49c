// clock.cpp -- tick <-> CLOCK_MONOTONIC conversions.
//
// The products below can exceed 64 bits (2^40 ticks * 10^9), so they are
// computed in 128 bits: exact for every tick a 64-bit counter can hold.
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

Clock::Clock(enum callout_clock kind, unsigned hz) : kind_(kind), hz_(hz), origin_ns_(monotonic_ns()) {}

std::uint64_t Clock::monotonic_ticks() const {
  const std::uint64_t elapsed = monotonic_ns() - origin_ns_;
  return static_cast<std::uint64_t>(static_cast<unsigned __int128>(elapsed) * hz_ / kNsPerSec);
}

timespec Clock::deadline(std::uint64_t t) const {
  // ceil(t * 1e9 / hz): the first nanosecond that belongs to tick t.
  const unsigned __int128 off = (static_cast<unsigned __int128>(t) * kNsPerSec + hz_ - 1) / hz_;
  const unsigned __int128 abs = off + origin_ns_;
  timespec ts;
  const unsigned __int128 max_sec = static_cast<unsigned __int128>(INT64_MAX);
  if (abs / kNsPerSec > max_sec) {
    ts.tv_sec = INT64_MAX;
    ts.tv_nsec = 0;
  } else {
    ts.tv_sec = static_cast<time_t>(abs / kNsPerSec);
    ts.tv_nsec = static_cast<long>(abs % kNsPerSec);
  }
  return ts;
}

}  // namespace libcallout::internal
