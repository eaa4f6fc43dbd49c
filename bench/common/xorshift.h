// xorshift.h -- xorshift64*, the generator of the demo's traffic.
//
// tools/callout_demo.cpp and the load mode of bench/mono_bench.cpp (which
// replays the demo's traffic) draw their events from it: one copy, so that
// both see the same kind of sequence for the same seed.  Fast and small, not
// of statistical quality beyond spreading events out; the seed must not be 0.
#ifndef CALLOUT_BENCH_XORSHIFT_H
#define CALLOUT_BENCH_XORSHIFT_H

#include <cstdint>

namespace bench {

struct XorShift64Star {
  std::uint64_t s;
  std::uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 2685821657736338717ull;
  }
  // In [0, n), nearly uniform for n far below 2^32 (multiply and shift, no
  // division).
  unsigned below(unsigned n) { return static_cast<unsigned>((next() >> 32) * n >> 32); }
  // Uniform in [0, 1), from the top 53 bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
};

}  // namespace bench

#endif  // CALLOUT_BENCH_XORSHIFT_H
