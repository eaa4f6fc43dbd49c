// lock.cpp -- the slow paths of SpinLock and Event (futex system calls).
#include "lock.h"

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <ctime>

namespace libcallout::internal {

namespace {
// The spin-wait hint.  x86 PAUSE and arm64 (and ARMv7) YIELD tell the CPU
// that this is a busy-wait: it spends less power, leaves the core to an SMT
// sibling, and on x86 does not pay a memory-order mis-speculation flush when
// the lock is released.  Other CPUs get a compiler barrier only; the relaxed
// atomic load is re-read on every iteration either way.
inline void spin_hint() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || (defined(__arm__) && defined(__ARM_ARCH) && __ARM_ARCH >= 7)
  __asm__ __volatile__("yield" ::: "memory");
#else
  __asm__ __volatile__("" ::: "memory");
#endif
}
}  // namespace

void SpinLock::lock_slow() {
  // Whether the caller runs under a real-time policy, asked once the short
  // spin is over (a system call, only on this slow path): sched_yield()
  // hands the processor only to threads of the caller's own priority, so a
  // SCHED_FIFO softclock yielding for a lock that a preempted SCHED_OTHER
  // thread holds on the same processor never lets it run -- until the
  // kernel's real-time throttling does, for 50 ms a second.  Measured: the
  // demo's lateness went to p50 186 ms, p99 2.1 s under a background load.
  // Sleeping instead lets the holder run -- for long enough that the sleep
  // really blocks: a 1 us nanosleep expired inside the system call here (a
  // VM) and the thread never left the processor, with the same result.
  int realtime = -1;
  for (unsigned spins = 0;; ++spins) {
    // Test before test-and-set: spin on a shared cache line, write only when
    // the lock looks free.
    while (locked_.load(std::memory_order_relaxed)) {
      if (spins < 128) {
        spin_hint();
        ++spins;
        continue;
      }
      if (realtime < 0) {
        const int policy = sched_getscheduler(0) & ~SCHED_RESET_ON_FORK;
        realtime = policy == SCHED_FIFO || policy == SCHED_RR;
      }
      if (realtime) {
        const timespec pause{0, 50'000};
        nanosleep(&pause, nullptr);
        // Spin again before the next sleep: a holder that releases between
        // bounded chunks (the softclock's cascade) frees the lock only for
        // nanoseconds, which a single test after each sleep would miss.
        spins = 0;
      } else {
        sched_yield();  // the holder may be preempted; let it run
      }
    }
    if (!locked_.exchange(true, std::memory_order_acquire)) return;
  }
}

void Event::wait(std::uint32_t seen, const timespec *deadline) {
  // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline (the
  // softclock sleeps until the start of a tick, an absolute instant).
  syscall(SYS_futex, reinterpret_cast<std::uint32_t *>(&gen_), FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, seen,
          deadline, nullptr, FUTEX_BITSET_MATCH_ANY);
}

void Event::wake_all() {
  gen_.fetch_add(1, std::memory_order_release);
  syscall(SYS_futex, reinterpret_cast<std::uint32_t *>(&gen_), FUTEX_WAKE | FUTEX_PRIVATE_FLAG, INT_MAX,
          nullptr, nullptr, 0);
}

}  // namespace libcallout::internal
