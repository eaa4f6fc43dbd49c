// bench_util.h -- small helpers shared by libcallout's benchmark programs.
//
// Timing: every program measures CPU time (CLOCK_PROCESS_CPUTIME_ID or
// CLOCK_THREAD_CPUTIME_ID) unless it says otherwise: the machine is shared,
// and CPU time does not count the slices another process took from us.
// Randomness: splitmix64 with a fixed seed, so that every library is fed the
// very same sequence.
#ifndef CALLOUT_BENCH_UTIL_H
#define CALLOUT_BENCH_UTIL_H

#include <sched.h>
#include <time.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace bench {

inline std::uint64_t ns_of(const timespec &ts) {
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}
inline std::uint64_t clock_ns(clockid_t id) {
  timespec ts;
  clock_gettime(id, &ts);
  return ns_of(ts);
}
// CPU time of every thread of the process.
inline std::uint64_t process_cpu_ns() { return clock_ns(CLOCK_PROCESS_CPUTIME_ID); }
inline std::uint64_t thread_cpu_ns() { return clock_ns(CLOCK_THREAD_CPUTIME_ID); }
inline std::uint64_t mono_ns() { return clock_ns(CLOCK_MONOTONIC); }

inline void sleep_ns(std::uint64_t ns) {
  timespec ts{static_cast<time_t>(ns / 1'000'000'000u), static_cast<long>(ns % 1'000'000'000u)};
  while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) != 0) {
  }
}
inline void sleep_until_ns(std::uint64_t abs_ns) {
  timespec ts{static_cast<time_t>(abs_ns / 1'000'000'000u), static_cast<long>(abs_ns % 1'000'000'000u)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) != 0) {
  }
}

// Pins the calling thread (and the threads it creates later) to one CPU.
inline bool pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return sched_setaffinity(0, sizeof set, &set) == 0;
}

struct SplitMix64 {
  std::uint64_t s;
  explicit SplitMix64(std::uint64_t seed) : s(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
  }
  // Uniform in [lo, hi] (Lemire's multiply-shift; the bias is negligible here).
  std::uint32_t range(std::uint32_t lo, std::uint32_t hi) {
    const std::uint64_t span = static_cast<std::uint64_t>(hi) - lo + 1;
    return lo + static_cast<std::uint32_t>(((next() >> 32) * span) >> 32);
  }
};

// A random permutation of 0..n-1 (Fisher-Yates).
inline std::vector<std::uint32_t> permutation(std::size_t n, SplitMix64 &rng) {
  std::vector<std::uint32_t> p(n);
  for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<std::uint32_t>(i);
  for (std::size_t i = n; i > 1; --i) {
    const std::size_t j = static_cast<std::size_t>((rng.next() >> 11) % i);
    std::swap(p[i - 1], p[j]);
  }
  return p;
}

inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

// The q-quantile (0..1) of sorted values, nearest rank.
template <class T>
T quantile_sorted(const std::vector<T> &v, double q) {
  if (v.empty()) return T{};
  std::size_t i = static_cast<std::size_t>(q * static_cast<double>(v.size()));
  if (i >= v.size()) i = v.size() - 1;
  return v[i];
}

// Keeps the compiler from dropping a computed value.
template <class T>
inline void keep(const T &v) {
  asm volatile("" : : "r,m"(v) : "memory");
}

}  // namespace bench

#endif  // CALLOUT_BENCH_UTIL_H
