// clock_test.cpp -- the tick arithmetic of the monotonic clock: the fast
// timespec path (Clock::tick_at) against the exact 128-bit one
// (Clock::tick_at_ns), at tick boundaries and at random instants, for the
// usual and the awkward values of hz.
#include "clock.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>

namespace libcallout::internal {
namespace {

constexpr std::uint64_t kNsPerSec = 1'000'000'000;

timespec ts_of(std::uint64_t ns) {
  timespec ts;
  ts.tv_sec = static_cast<time_t>(ns / kNsPerSec);
  ts.tv_nsec = static_cast<long>(ns % kNsPerSec);
  return ts;
}

// The instant (ns) at which the clock's tick 0 began: tick_start_ns(0).
std::uint64_t origin_of(const Clock &c) { return c.tick_start_ns(0); }

TEST(Clock, FastTickEqualsExactTickEverywhere) {
  std::mt19937_64 rng(12345);
  for (unsigned hz : {1u, 3u, 7u, 100u, 128u, 999u, 1000u, 1024u, 4096u, 65536u, 999983u, 1000000u}) {
    Clock c(CALLOUT_CLOCK_MONOTONIC, hz);
    const std::uint64_t origin = origin_of(c);
    // Around tick boundaries: the last nanosecond of tick t-1, the first of t.
    for (std::uint64_t t : {1ull, 2ull, 3ull, 999ull, 1000ull, 1001ull, 123456ull, 1ull << 32, 1ull << 40}) {
      const std::uint64_t start = c.tick_start_ns(t);
      if (start == UINT64_MAX) continue;  // beyond 64-bit nanoseconds at this hz
      for (std::uint64_t ns : {start - 1, start, start + 1}) {
        ASSERT_EQ(c.tick_at(ts_of(ns)), c.tick_at_ns(ns)) << "hz " << hz << " tick " << t << " ns " << ns;
      }
      ASSERT_EQ(c.tick_at(ts_of(start)), t) << "hz " << hz;
      ASSERT_EQ(c.tick_at(ts_of(start - 1)), t - 1) << "hz " << hz;
    }
    // Random instants up to about 300 years after the origin.
    std::uniform_int_distribution<std::uint64_t> span(0, 10'000'000'000'000'000'000ull);
    for (int i = 0; i < 20000; ++i) {
      const std::uint64_t ns = origin + span(rng) % (UINT64_MAX - origin);
      ASSERT_EQ(c.tick_at(ts_of(ns)), c.tick_at_ns(ns)) << "hz " << hz << " ns " << ns;
    }
    // Before the origin: tick 0.
    if (origin > 0) {
      EXPECT_EQ(c.tick_at(ts_of(origin - 1)), 0u);
      EXPECT_EQ(c.tick_at_ns(origin - 1), 0u);
    }
  }
}

TEST(Clock, TicksFollowTheMonotonicClock) {
  Clock c(CALLOUT_CLOCK_MONOTONIC, 1000);
  timespec before;
  clock_gettime(CLOCK_MONOTONIC, &before);
  const std::uint64_t t = c.ticks();
  timespec after;
  clock_gettime(CLOCK_MONOTONIC, &after);
  EXPECT_LE(c.tick_at(before), t);
  EXPECT_LE(t, c.tick_at(after));
}

}  // namespace
}  // namespace libcallout::internal
