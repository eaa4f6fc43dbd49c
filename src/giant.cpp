// giant.cpp -- the domain's giant lock (giant.h) and its C entry points.
#include "giant.h"

#include "domain.h"
#include "misuse.h"

namespace libcallout::internal {

void Giant::enter() {
  if (held_by_caller()) {
    ++depth_;
    return;
  }
  pthread_mutex_lock(&mutex_);
  owner_.store(pthread_self(), std::memory_order_relaxed);
  depth_ = 1;
}

bool Giant::exit() {
  if (!held_by_caller()) return false;
  if (--depth_ == 0) {
    owner_.store(0, std::memory_order_relaxed);
    pthread_mutex_unlock(&mutex_);
  }
  return true;
}

unsigned Giant::release_all() {
  const unsigned depth = depth_;
  depth_ = 0;
  owner_.store(0, std::memory_order_relaxed);
  pthread_mutex_unlock(&mutex_);
  return depth;
}

void Giant::reacquire(unsigned depth) {
  pthread_mutex_lock(&mutex_);
  owner_.store(pthread_self(), std::memory_order_relaxed);
  depth_ = depth;
}

void Giant::after_fork() {
  if (held_by_caller()) return;
  pthread_mutex_init(&mutex_, nullptr);
  owner_.store(0, std::memory_order_relaxed);
  depth_ = 0;
}

}  // namespace libcallout::internal

using namespace libcallout::internal;

/*
 * callout_giant_enter / callout_giant_exit: take and release d's recursive
 * giant lock.  enter may block (not from a context that must not sleep);
 * exit never blocks; exit without enter is misuse (abort).
 */
extern "C" void callout_giant_enter(callout_domain_t *d) { d->giant.enter(); }

extern "C" void callout_giant_exit(callout_domain_t *d) {
  if (!d->giant.exit())
    misuse_domain("callout_giant_exit", d, "the calling thread does not hold the giant lock");
}
