// domain.h -- a domain: a clock, ncpu CPUs with their softclock threads, and
// the giant lock.
//
// The domain's code is split by idea.  domain.cpp holds the configuration,
// creation and destruction, the default domain, the accessors, advance()
// for the manual and virtual clocks and the drain; giant.cpp the giant lock (giant.h); fork.cpp the
// registry of live domains and the pthread_atfork handlers that keep every
// domain working in a fork child; loop.cpp the event-loop embedding of
// external-clock domains (next timeout, run, fd).  The functions below are
// the few that one of these files calls in another.
#ifndef CALLOUT_SRC_DOMAIN_H
#define CALLOUT_SRC_DOMAIN_H

#include <pthread.h>
#include <sched.h>

#include <cstdint>

#include "clock.h"
#include "cpu.h"
#include "giant.h"
#include "lock.h"

struct callout_domain {
  callout_domain(enum callout_clock kind, unsigned hz, unsigned ncpu_) : clock(kind, hz), ncpu(ncpu_) {}

  libcallout::internal::Clock clock;
  const unsigned ncpu;
  bool is_default = false;
  libcallout::internal::Giant giant;
  pthread_mutex_t advance_mutex = PTHREAD_MUTEX_INITIALIZER;  // serialises advance()
  libcallout::internal::Cpu *cpus = nullptr;                  // ncpu of them
  // Placement and policy of the softclock threads (callout_domain_config's
  // 1.1 fields), applied by start_thread() -- also to the threads a fork
  // child restarts.  pinned_os_cpu[i]: the processor thread i is pinned to
  // (null: the threads float).  home_of_os_cpu[p]: the lowest index pinned
  // to processor p, or -1; os_cpu_span entries (the highest pinned
  // processor + 1).
  int *pinned_os_cpu = nullptr;
  int *home_of_os_cpu = nullptr;
  unsigned os_cpu_span = 0;
  int sched_policy = SCHED_OTHER;  // SCHED_OTHER: inherited, nothing set
  int sched_priority = 0;
  callout_domain *next_live = nullptr;  // the registry (fork)
};

namespace libcallout::internal {

// domain.cpp: starts cpu's softclock thread and returns once it runs
// softclock_main (0, or pthread_create's error).
int start_thread(Cpu *cpu);

// domain.cpp: the CPU of d that a callout initialised (or a FreeBSD reset
// to the current CPU) by a thread outside d's handlers is homed on: the one
// pinned to the processor the caller runs on, else sched_getcpu() mod ncpu.
Cpu *caller_home(callout_domain *d);

// domain.cpp: the earliest Wheel::next_due() over d's CPUs (one lock at a
// time).
std::uint64_t earliest_next_due(callout_domain *d);

// fork.cpp: adds d to the registry of live domains the fork handlers walk
// (installing the handlers on first use), and takes it out again.
void register_domain(callout_domain *d);
void unregister_domain(callout_domain *d);

}  // namespace libcallout::internal

#endif  // CALLOUT_SRC_DOMAIN_H
