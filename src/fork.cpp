// fork.cpp -- the registry of live domains and the pthread_atfork handlers
// that keep every domain working in a fork child.
#include <fcntl.h>
#include <pthread.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "domain.h"

namespace libcallout::internal {

namespace {

// Every live domain, for the fork handlers.
pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
callout_domain *registry = nullptr;
pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

// fork(): only the forking thread exists in the child, so every domain
// would be left without softclock threads, possibly with a CPU lock held by
// a thread that is gone.  Before the fork we take every CPU lock of every
// domain (registry order, then index order), so that no wheel is half
// updated; the parent just releases them.  The child releases them too,
// forgets the handlers that were running in the parent (their threads are
// gone: those callouts count as finished, and a dispatch that was waiting
// for its lock as cancelled), resets a giant held by a thread that is gone,
// and starts fresh softclock threads.  Pending callouts keep their due ticks
// and fire in the child.  If the forking thread is itself a softclock (fork
// from a handler), it goes on being that CPU's softclock in the child.
void before_fork() NO_THREAD_SAFETY_ANALYSIS {
  pthread_mutex_lock(&registry_lock);
  for (callout_domain *d = registry; d != nullptr; d = d->next_live)
    for (unsigned i = 0; i < d->ncpu; ++i) d->cpus[i].lock.lock();
}

void after_fork_parent() NO_THREAD_SAFETY_ANALYSIS {
  for (callout_domain *d = registry; d != nullptr; d = d->next_live)
    for (unsigned i = 0; i < d->ncpu; ++i) d->cpus[i].lock.unlock();
  pthread_mutex_unlock(&registry_lock);
}

void after_fork_child() NO_THREAD_SAFETY_ANALYSIS {
  Cpu *self = current_cpu();
  for (callout_domain *d = registry; d != nullptr; d = d->next_live) {
    d->giant.after_fork();
    pthread_mutex_init(&d->advance_mutex, nullptr);
    for (unsigned i = 0; i < d->ncpu; ++i) {
      Cpu *cpu = &d->cpus[i];
      if (cpu != self) {
        cpu->running = nullptr;
        cpu->running_func = nullptr;
        cpu->running_arg = nullptr;
        cpu->dispatching = false;
        cpu->cancelled = false;
      }
      cpu->nwait = 0;
      cpu->nidle = 0;
      cpu->holds = 0;  // a drain in progress was another thread's
      if (cpu->timer_fd >= 0) {
        // An external clock's timerfd is an open file description the
        // parent shares: arming it here would disarm the parent's.  Give the
        // child its own timer under the same descriptor number, armed as
        // the parent's was.
        const int fresh = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (fresh < 0 || dup3(fresh, cpu->timer_fd, O_CLOEXEC) < 0) {
          std::fprintf(stderr, "libcallout: fork: cannot give the child its own timerfd\n");
          std::abort();
        }
        close(fresh);
        arm_timer(cpu, cpu->wake_tick);
      } else {
        cpu->wake_tick = 0;
      }
      cpu->thread_started = false;
      cpu->lock.unlock();
    }
  }
  for (callout_domain *d = registry; d != nullptr; d = d->next_live)
    for (unsigned i = 0; i < d->ncpu; ++i)
      if (&d->cpus[i] != self && !d->cpus[i].stopping && d->clock.threaded() &&
          start_thread(&d->cpus[i]) != 0) {
        std::fprintf(stderr, "libcallout: fork: cannot restart the softclock threads in the child\n");
        std::abort();
      }
  // The forking thread took registry_lock in before_fork(), and the child's
  // one thread is that thread: it owns the lock and unlocks it, as the parent
  // does.  (Re-initialising a locked mutex is undefined.)
  pthread_mutex_unlock(&registry_lock);
}

void register_atfork() { pthread_atfork(before_fork, after_fork_parent, after_fork_child); }

}  // namespace

void register_domain(callout_domain *d) {
  pthread_once(&atfork_once, register_atfork);
  pthread_mutex_lock(&registry_lock);
  d->next_live = registry;
  registry = d;
  pthread_mutex_unlock(&registry_lock);
}

void unregister_domain(callout_domain *d) {
  pthread_mutex_lock(&registry_lock);
  for (callout_domain **p = &registry; *p != nullptr; p = &(*p)->next_live)
    if (*p == d) {
      *p = d->next_live;
      break;
    }
  pthread_mutex_unlock(&registry_lock);
}

}  // namespace libcallout::internal
