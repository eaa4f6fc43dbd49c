// giant.h -- the domain-wide recursive "big lock".
//
// Handlers of giant-locked callouts (not MPSAFE, no associated mutex) run
// holding it, as kernel callouts ran under the kernel lock; applications take
// it with callout_giant_enter/exit.  It is a plain pthread mutex plus an
// owner and a depth, so that the owner may re-enter it and so that halt can
// release it completely and re-take it to the same depth.
#ifndef CALLOUT_SRC_GIANT_H
#define CALLOUT_SRC_GIANT_H

#include <pthread.h>

#include <atomic>

#include "lock.h"

namespace libcallout::internal {

// Only its owner reads or writes depth_.
class CAPABILITY("mutex") Giant {
 public:
  Giant() { pthread_mutex_init(&mutex_, nullptr); }
  ~Giant() { pthread_mutex_destroy(&mutex_); }
  void enter();
  // False if the caller does not hold it (misuse, reported by the caller).
  bool exit();
  bool held_by_caller() const {
    return pthread_equal(owner_.load(std::memory_order_relaxed), pthread_self());
  }
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

#endif  // CALLOUT_SRC_GIANT_H
