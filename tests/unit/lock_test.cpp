// lock_test.cpp -- SpinLock on its own: mutual exclusion, and the one
// property of its slow path that the engine's tests cannot see: a waiter
// under a real-time policy lets a holder that it preempted on its own
// processor run to the unlock (lock.cpp, lock_slow()).
#include "lock.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <thread>

namespace {

using libcallout::internal::SpinLock;
using namespace std::chrono_literals;

// try_lock() and unlock() out of clang's thread-safety analysis, for checks
// whose outcome the analysis cannot know.
bool try_lock_unchecked(SpinLock &lock) NO_THREAD_SAFETY_ANALYSIS { return lock.try_lock(); }
void unlock_unchecked(SpinLock &lock) NO_THREAD_SAFETY_ANALYSIS { lock.unlock(); }

// Property: lock() excludes.  Two threads increment a plain counter under
// the lock; a lost update (or a data race, under TSan) fails the test.
TEST(SpinLock, ExcludesUnderContention) {
  SpinLock lock;
  std::uint64_t counter = 0;
  constexpr int kRounds = 200'000;
  auto work = [&] {
    for (int i = 0; i < kRounds; ++i) {
      lock.lock();
      counter = counter + 1;
      lock.unlock();
    }
  };
  std::thread a(work), b(work);
  a.join();
  b.join();
  EXPECT_EQ(counter, 2u * kRounds);
  ASSERT_TRUE(try_lock_unchecked(lock));   // free after the last unlock
  EXPECT_FALSE(try_lock_unchecked(lock));  // and taken now
  unlock_unchecked(lock);
}

std::uint64_t thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

bool pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
}

// Property: a SCHED_FIFO waiter does not starve a SCHED_OTHER holder on its
// own processor.  The holder takes the lock and then needs 20 ms of
// processor time before it unlocks; the waiter, pinned to the same
// processor at a real-time priority, preempts it and waits for the lock.
// sched_yield() never hands the processor to a lower policy, so a waiter
// that only yielded would keep the holder off it until the kernel's
// real-time throttling (by default 50 ms in every second, after 950 ms)
// let it run: about a second.  lock_slow() sleeps instead, and the holder
// finishes within a few times its 20 ms.  The bound, 500 ms, sits between
// the two; with throttling off a yielding waiter would never get the lock,
// and the watchdog demotes it after 10 s so that the test ends and fails.
TEST(SpinLock, RealTimeWaiterLetsAHolderOnItsProcessorRun) {
  cpu_set_t allowed;
  ASSERT_EQ(sched_getaffinity(0, sizeof allowed, &allowed), 0);
  int cpu = 0;
  while (cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &allowed)) ++cpu;
  ASSERT_LT(cpu, CPU_SETSIZE);

  SpinLock lock;
  std::atomic<bool> held{false}, acquired{false}, holder_done{false};
  std::atomic<int> waiter_status{0};  // 0 running, 1 real-time, -errno could not be
  std::atomic<std::int64_t> waited_ns{-1};

  std::atomic<bool> holder_pinned{false};
  std::thread holder([&] {
    holder_pinned.store(pin_to(cpu));
    lock.lock();
    held.store(true, std::memory_order_release);
    const std::uint64_t until = thread_cpu_ns() + 20'000'000;
    while (thread_cpu_ns() < until) {
    }
    lock.unlock();
    holder_done.store(true, std::memory_order_release);
  });
  while (!held.load(std::memory_order_acquire)) std::this_thread::sleep_for(100us);

  std::thread waiter([&] {
    if (!pin_to(cpu)) {
      waiter_status.store(-EINVAL);
      return;
    }
    sched_param sp{};
    sp.sched_priority = 1;
    const int e = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
    if (e != 0) {
      waiter_status.store(-e);
      return;
    }
    waiter_status.store(1);
    const auto t0 = std::chrono::steady_clock::now();
    lock.lock();
    const auto t1 = std::chrono::steady_clock::now();
    lock.unlock();
    waited_ns.store(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
    acquired.store(true, std::memory_order_release);
  });

  // The watchdog: this thread is not pinned, so it runs on another
  // processor (or when the waiter sleeps, which is what is tested).
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  bool demoted = false;
  while (waiter_status.load() == 0 || (waiter_status.load() == 1 && !acquired.load())) {
    if (std::chrono::steady_clock::now() > deadline && waiter_status.load() == 1) {
      sched_param sp{};
      pthread_setschedparam(waiter.native_handle(), SCHED_OTHER, &sp);
      demoted = true;
      break;
    }
    std::this_thread::sleep_for(1ms);
  }
  waiter.join();
  holder.join();
  ASSERT_TRUE(holder_pinned.load()) << "could not pin the holder to processor " << cpu;
  const int status = waiter_status.load();
  if (status < 0) {
    GTEST_SKIP() << "cannot run a SCHED_FIFO thread pinned to processor " << cpu
                 << " here: " << std::strerror(-status);
  }
  ASSERT_FALSE(demoted) << "the real-time waiter held the processor for 10 s: the holder never ran";
  EXPECT_TRUE(holder_done.load());
  const double waited_ms = static_cast<double>(waited_ns.load()) / 1e6;
  EXPECT_LT(waited_ms, 500.0) << "the real-time waiter kept the holder off its processor for " << waited_ms
                              << " ms (the holder needed 20 ms)";
  std::printf("waiter got the lock after %.1f ms (the holder needed 20 ms of processor time)\n", waited_ms);
}

}  // namespace
