// lock.h -- the two synchronisation primitives of the engine.
//
// SpinLock: a CPU's lock (NetBSD's cc_lock).  Held only for a few hundred
// instructions (never across a handler, never while sleeping), so spinning
// beats a futex mutex: an uncontended lock is one atomic exchange and the
// unlock a plain release store.  After a short spin it yields the processor
// (a caller under a real-time policy sleeps 50 us instead: lock.cpp says
// why), so a preempted holder on an oversubscribed machine still makes
// progress.
//
// Event: a futex word that sleepers wait on and wakers bump (a generation
// counter).  A sleeper reads the generation while holding the lock that
// guards the condition it waits for, drops the lock, and sleeps only if the
// generation is unchanged; a waker changes the condition under the same lock
// and then bumps the generation.  So a wake-up that happens between the
// sleeper's unlock and its futex call makes the futex call return at once: no
// lost wake-up.
//
// The macros let clang's -Wthread-safety check the locking rules of
// docs/DESIGN.md at compile time.
#ifndef CALLOUT_SRC_LOCK_H
#define CALLOUT_SRC_LOCK_H

#include <atomic>
#include <cstdint>
#include <ctime>

#if defined(__clang__)
#define CALLOUT_TSA(x) __attribute__((x))
#else
#define CALLOUT_TSA(x)
#endif
#define CAPABILITY(x) CALLOUT_TSA(capability(x))
#define GUARDED_BY(x) CALLOUT_TSA(guarded_by(x))
#define ACQUIRE(...) CALLOUT_TSA(acquire_capability(__VA_ARGS__))
#define RELEASE(...) CALLOUT_TSA(release_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) CALLOUT_TSA(try_acquire_capability(__VA_ARGS__))
#define REQUIRES(...) CALLOUT_TSA(requires_capability(__VA_ARGS__))
#define ASSERT_CAPABILITY(x) CALLOUT_TSA(assert_capability(x))
#define NO_THREAD_SAFETY_ANALYSIS CALLOUT_TSA(no_thread_safety_analysis)

namespace libcallout::internal {

class CAPABILITY("mutex") SpinLock {
 public:
  void lock() ACQUIRE() {
    if (!locked_.exchange(true, std::memory_order_acquire)) return;
    lock_slow();
  }
  bool try_lock() TRY_ACQUIRE(true) {
    return !locked_.load(std::memory_order_relaxed) && !locked_.exchange(true, std::memory_order_acquire);
  }
  void unlock() RELEASE() { locked_.store(false, std::memory_order_release); }
  // Tells the analysis that the caller holds the lock (found by a loop the
  // analysis cannot follow, such as lock_callout()).
  void assert_held() const ASSERT_CAPABILITY(this) {}

 private:
  void lock_slow();
  std::atomic<bool> locked_{false};
};

class Event {
 public:
  // The generation to pass to wait(); read it under the condition's lock.
  std::uint32_t generation() const { return gen_.load(std::memory_order_acquire); }
  // Sleeps while the generation is still `seen`, at most until `deadline`
  // (CLOCK_MONOTONIC, absolute; null: no limit).  May return spuriously.
  void wait(std::uint32_t seen, const timespec *deadline = nullptr);
  // Bumps the generation and wakes every sleeper.
  void wake_all();

 private:
  std::atomic<std::uint32_t> gen_{0};
};

}  // namespace libcallout::internal

#endif  // CALLOUT_SRC_LOCK_H
