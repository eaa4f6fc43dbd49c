// domain.h -- a domain: a clock, ncpu CPUs with their softclock threads, and
// the giant lock.
#ifndef CALLOUT_SRC_DOMAIN_H
#define CALLOUT_SRC_DOMAIN_H

#include <pthread.h>

#include <atomic>

#include "clock.h"
#include "cpu.h"
#include "lock.h"

namespace libcallout::internal {

// The domain-wide recursive "big lock".  Handlers of giant-locked callouts
// (not MPSAFE, no associated mutex) run holding it, as kernel callouts ran
// under the kernel lock.  Only its owner reads or writes depth_.
class CAPABILITY("mutex") Giant {
 public:
  Giant() { pthread_mutex_init(&mutex_, nullptr); }
  ~Giant() { pthread_mutex_destroy(&mutex_); }
  void enter();
  // False if the caller does not hold it (misuse, reported by the caller).
  bool exit();
  bool held_by_caller() const { return pthread_equal(owner_.load(std::memory_order_relaxed), pthread_self()); }
  // Owner only.  Releases every level; returns the depth to re-take.
  unsigned release_all();
  void reacquire(unsigned depth);
  unsigned depth() const { return depth_; }
  // In a fork child: a giant held by a thread that did not survive the fork
  // is free again.
  void after_fork();

 private:
  pthread_mutex_t mutex_;
  // pthread_self() of the owner, or 0 (never a valid pthread_t on Linux).
  std::atomic<pthread_t> owner_{0};
  unsigned depth_ = 0;
};

}  // namespace libcallout::internal

struct callout_domain {
  callout_domain(enum callout_clock kind, unsigned hz, unsigned ncpu_) : clock(kind, hz), ncpu(ncpu_) {}

  libcallout::internal::Clock clock;
  const unsigned ncpu;
  bool is_default = false;
  libcallout::internal::Giant giant;
  pthread_mutex_t advance_mutex = PTHREAD_MUTEX_INITIALIZER;  // serialises advance()
  libcallout::internal::Cpu *cpus = nullptr;                    // ncpu of them
  callout_domain *next_live = nullptr;                          // the registry (fork)
};

#endif  // CALLOUT_SRC_DOMAIN_H
