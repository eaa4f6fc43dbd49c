// alloc_count.h -- an interposed allocator that counts.
//
// Linking alloc_count.cpp into a program replaces malloc, free, calloc,
// realloc and the aligned allocators for the whole process (the program and
// every shared library it loads: libevent, libuv, the C++ runtime, ...).
// Each call forwards to glibc's own allocator.  Counting is off until
// enable() is called, so that timed runs pay only a predictable branch.
#ifndef CALLOUT_BENCH_ALLOC_COUNT_H
#define CALLOUT_BENCH_ALLOC_COUNT_H

#include <cstdint>

namespace bench::alloc {

struct Snapshot {
  std::uint64_t allocs;  // successful malloc/calloc/realloc(new block)/aligned calls
  std::uint64_t frees;   // free of a non-null pointer (and realloc moves)
  std::int64_t live;     // bytes live (malloc_usable_size of each block)
};

void enable(bool on);
Snapshot snapshot();

}  // namespace bench::alloc

#endif  // CALLOUT_BENCH_ALLOC_COUNT_H
