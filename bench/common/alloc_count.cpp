// alloc_count.cpp -- see alloc_count.h.  glibc exports its allocator under
// __libc_* names, which is what the replacements forward to.
#include "alloc_count.h"

#include <errno.h>
#include <malloc.h>

#include <atomic>
#include <cstddef>

extern "C" {
void *__libc_malloc(size_t);
void __libc_free(void *);
void *__libc_calloc(size_t, size_t);
void *__libc_realloc(void *, size_t);
void *__libc_memalign(size_t, size_t);
}

namespace {
std::atomic<bool> counting{false};
std::atomic<std::uint64_t> n_allocs{0};
std::atomic<std::uint64_t> n_frees{0};
std::atomic<std::int64_t> n_live{0};

inline void on_alloc(void *p) {
  if (p == nullptr || !counting.load(std::memory_order_relaxed)) return;
  n_allocs.fetch_add(1, std::memory_order_relaxed);
  n_live.fetch_add(static_cast<std::int64_t>(malloc_usable_size(p)), std::memory_order_relaxed);
}
inline void on_free(void *p) {
  if (p == nullptr || !counting.load(std::memory_order_relaxed)) return;
  n_frees.fetch_add(1, std::memory_order_relaxed);
  n_live.fetch_sub(static_cast<std::int64_t>(malloc_usable_size(p)), std::memory_order_relaxed);
}
}  // namespace

namespace bench::alloc {
void enable(bool on) { counting.store(on, std::memory_order_seq_cst); }
Snapshot snapshot() {
  return {n_allocs.load(std::memory_order_relaxed), n_frees.load(std::memory_order_relaxed),
          n_live.load(std::memory_order_relaxed)};
}
}  // namespace bench::alloc

// A block freed while counting was off but allocated while it was on (or the
// reverse) skews `live` a little; the benchmarks switch counting on before
// they build what they measure and read the numbers before they tear it down.
extern "C" {
void *malloc(size_t n) {
  void *p = __libc_malloc(n);
  on_alloc(p);
  return p;
}
void free(void *p) {
  on_free(p);
  __libc_free(p);
}
void *calloc(size_t a, size_t b) {
  void *p = __libc_calloc(a, b);
  on_alloc(p);
  return p;
}
void *realloc(void *old, size_t n) {
  if (old != nullptr) on_free(old);
  void *p = __libc_realloc(old, n);
  if (p == nullptr && old != nullptr && n != 0) {
    on_alloc(old);  // failed: the old block is still there
    return nullptr;
  }
  on_alloc(p);
  return p;
}
void *memalign(size_t align, size_t n) {
  void *p = __libc_memalign(align, n);
  on_alloc(p);
  return p;
}
void *aligned_alloc(size_t align, size_t n) { return memalign(align, n); }
int posix_memalign(void **out, size_t align, size_t n) {
  if (align < sizeof(void *) || (align & (align - 1)) != 0) return EINVAL;
  void *p = memalign(align, n);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}
void *valloc(size_t n) { return memalign(4096, n); }
void *pvalloc(size_t n) { return memalign(4096, (n + 4095) & ~static_cast<size_t>(4095)); }
}
