// cpu.h -- one CPU of a domain: its lock, its wheel, the callout it is
// running, the threads waiting for that callout, and its softclock thread.
//
// This is NetBSD's struct callout_cpu.  Every callout is homed on one CPU
// (CalloutImpl::cpu) and that CPU's lock guards the callout's state; the
// softclock thread of the CPU is the only thread that ever runs the handlers
// of the callouts homed there -- or, for a domain without threads, the one
// thread acting as that softclock (inside callout_domain_run on an external
// clock, callout_domain_advance on a virtual one: set_current_cpu).  See docs/DESIGN.md for the state machine
// and the proofs of the cross-thread paths.
#ifndef CALLOUT_SRC_CPU_H
#define CALLOUT_SRC_CPU_H

#include <pthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "callout_impl.h"
#include "clock.h"
#include "lock.h"
#include "wheel.h"

struct callout_domain;

namespace libcallout::internal {

// Per-CPU counters (callout_domain_stats).  Plain integers under the CPU
// lock, bumped inside critical sections the operations take anyway.
struct CpuStats {
  std::uint64_t fired = 0, fired_late = 0, late_max_ticks = 0, cancelled = 0, halts = 0, halts_waited = 0,
                run_ns_total = 0, run_ns_max = 0, ignored = 0, wakeups = 0;
  std::uint64_t lateness_ns_log2[CALLOUT_LATENCY_BUCKETS] = {};
};

// The longest CPU-lock holds by cause, and the dispatches' waits for their
// associated lock (struct callout_stats says what each counts).  Apart from
// CpuStats, at the end of Cpu, so that adding them moved no field that the
// reset and dispatch paths read.
struct HoldStats {
  std::uint64_t hold_ns_max_cascade = 0, hold_ns_max_batch = 0, hold_ns_max_api = 0;
  std::uint64_t assoc_wait_ns_total = 0, assoc_wait_ns_max = 0;
};

#ifdef CALLOUT_NO_STATS
#define CALLOUT_STAT(expr) ((void)0)
#else
#define CALLOUT_STAT(expr) ((void)(expr))
#endif

// One CPU-lock hold in kHoldSample is timed, for the holds that are O(1)
// by design (API calls, the softclock's per-dispatch bookkeeping): reading
// the clock costs about 60 ns here, six reset/stop calls' worth, and two
// reads per call would make that path several times slower (docs/DESIGN.md,
// "Lock-hold counters", has the measurements).
inline constexpr std::uint32_t kHoldSample = 4096;

struct alignas(64) Cpu {
  SpinLock lock;
  // Counts down the lock holds to the next one timed (hold_begin): one
  // decrement in memory and a branch, in the padding after the lock, on the
  // line every operation has just written.
  std::uint32_t hold_sample GUARDED_BY(lock) = kHoldSample;
  // The counters of the reset/stop path, on the lock's cache line, which
  // every operation has just written (the lock's exchange): bumping them
  // touches no other line.  The rest of the counters are in `stats`.
  std::uint64_t n_scheduled GUARDED_BY(lock) = 0;
  std::uint64_t n_rescheduled GUARDED_BY(lock) = 0;
  std::uint64_t n_stopped GUARDED_BY(lock) = 0;
  Wheel wheel GUARDED_BY(lock);

  // The callout this CPU's softclock is dispatching or running (cc_active).
  // Only a pointer identity: never dereferenced once its handler returned.
  CalloutImpl *running GUARDED_BY(lock) = nullptr;
  // What `running` calls, copied at dispatch so that a dump can name it
  // without dereferencing `running` (whose handler may have freed it).
  callout_func_t running_func GUARDED_BY(lock) = nullptr;
  void *running_arg GUARDED_BY(lock) = nullptr;
  // `running` is lock-associated and the softclock is waiting for that lock;
  // its handler has not been invoked yet.
  bool dispatching GUARDED_BY(lock) = false;
  // A stop or reset hit `running` while it was dispatching: do not invoke.
  bool cancelled GUARDED_BY(lock) = false;

  // callout_halt_async requests for `running`: called on this softclock
  // once it is done with `running`.  Copied here, not kept in the callout,
  // so the softclock never has to look at the callout to find them.
  static constexpr unsigned kMaxDrains = 8;
  struct Drain {
    callout_func_t done;
    void *arg;
  };
  Drain drains[kMaxDrains] GUARDED_BY(lock);
  unsigned ndrains GUARDED_BY(lock) = 0;

  // Threads sleeping on `done` (callout_halt and friends).
  std::uint32_t nwait GUARDED_BY(lock) = 0;
  // Bumped when `running` is cleared while nwait > 0.
  Event done;
  // Threads sleeping on `idle` (callout_domain_advance), and the event the
  // softclock bumps when it goes idle -- expired list empty, nothing
  // running -- while nidle > 0.  Separate from `done` so that an advance
  // over a thousand due callouts is woken once, not once per handler.
  std::uint32_t nidle GUARDED_BY(lock) = 0;
  Event idle;

  // The tick the sleeping softclock will wake at (Wheel::kNever: none, or a
  // drain holds dispatch); 0 while it is awake and will look at the wheel
  // again before sleeping, and always 0 on a manual clock (advance() kicks
  // the softclock; a reset never needs to).  External clock: the tick
  // timer_fd is armed for (kNever: disarmed).
  std::uint64_t wake_tick GUARDED_BY(lock) = 0;
  // External clock only: the timerfd an event loop polls; -1 otherwise.
  int timer_fd = -1;
  // Bumped to wake the softclock early.
  Event kick;
  bool stopping GUARDED_BY(lock) = false;
  // External clock: a loop thread is inside callout_domain_run().
  bool looping GUARDED_BY(lock) = false;

  // callout_domain_drain() calls in progress: while non-zero, no new
  // dispatch starts here (the expired list waits; the softclock sleeps until
  // kicked).
  unsigned holds GUARDED_BY(lock) = 0;

  // Callouts initialised here minus callouts destroyed here (modulo 2^64:
  // only the sum over a domain's CPUs means anything).
  std::uint64_t live GUARDED_BY(lock) = 0;

  CpuStats stats GUARDED_BY(lock);

  callout_domain *domain = nullptr;
  unsigned index = 0;
  pthread_t thread{};
  bool thread_started = false;
  // Set by the softclock thread when it enters softclock_main; whoever
  // started it waits for this (start_thread in domain.cpp).
  std::atomic<bool> thread_running{false};

  HoldStats hold_stats GUARDED_BY(lock);
};

// The CPU whose softclock thread the caller is, or null.
Cpu *current_cpu();

// Lock-hold timing.  hold_begin(), right after the lock is taken: the
// clock now for one call in kHoldSample, else 0 (not timed); hold_clock():
// the clock now, always (the holds whose length depends on the load, cascade
// and pre-cascade chunks; also the contended associated-lock waits, which
// are not CPU-lock holds).  hold_end(), right before the lock is released: records
// the hold in `field` (a maximum) if it was timed.  Compiled out with the
// other counters.
inline std::uint64_t hold_begin(Cpu *cpu) REQUIRES(cpu->lock) {
#ifndef CALLOUT_NO_STATS
  if (__builtin_expect(--cpu->hold_sample == 0, 0)) {
    cpu->hold_sample = kHoldSample;
    return monotonic_ns();
  }
#else
  (void)cpu;
#endif
  return 0;
}
inline std::uint64_t hold_clock() {
#ifndef CALLOUT_NO_STATS
  return monotonic_ns();
#else
  return 0;
#endif
}
inline void hold_end(Cpu *cpu, std::uint64_t start, std::uint64_t HoldStats::*field) REQUIRES(cpu->lock) {
#ifndef CALLOUT_NO_STATS
  if (__builtin_expect(start == 0, 1)) return;
  const std::uint64_t held = monotonic_ns() - start;
  if (held > cpu->hold_stats.*field) cpu->hold_stats.*field = held;
#else
  (void)cpu, (void)start, (void)field;
#endif
}

// Locks the CPU that c is homed on and returns it (NetBSD's callout_lock):
// read c->cpu, lock it, and retry if c moved meanwhile.  c->cpu changes only
// under the lock of the CPU it names, so holding that lock pins c.
Cpu *lock_callout(CalloutImpl *c);

// Sleeps until `running` changes on cpu; called with cpu->lock held, returns
// with it released (the caller re-locks what it needs: the callout may have
// moved meanwhile).
void wait_for_done(Cpu *cpu) RELEASE(cpu->lock);
// The same for `idle`: sleeps until the softclock of cpu goes idle,
// kicking it first if its expired list is not empty.
void wait_for_idle(Cpu *cpu) RELEASE(cpu->lock);

// Moves cpu's wheel to tick t (a tick not in the future whose due callouts
// are to run next): splices the passed buckets, then re-places the nodes of
// those above level 0 kCascadeBudget at a time, releasing the lock between
// chunks so that resets and stops on this CPU wait for one chunk at most
// (the wheel is consistent between chunks: wheel.h).  Each chunk is timed
// as a cascade hold.  Called with the lock held; returns with it held.
void advance_bounded(Cpu *cpu, std::uint64_t t) REQUIRES(cpu->lock);

// The softclock thread of cpu.
void *softclock_main(void *cpu);

// Dispatches and runs everything on cpu's expired list, in the calling
// thread (a softclock, or an event loop in callout_domain_run); returns the
// number of handlers invoked.  Drops and re-takes the lock around handlers.
unsigned run_expired(Cpu *cpu) REQUIRES(cpu->lock);

// External clock: arms cpu->timer_fd for the start of `tick` (kNever:
// disarms) and records it in wake_tick.
void arm_timer(Cpu *cpu, std::uint64_t tick) REQUIRES(cpu->lock);

// Makes the calling thread act as cpu's softclock (callout_domain_run, and
// callout_domain_advance on a virtual clock); returns the previous value.
Cpu *set_current_cpu(Cpu *cpu);

}  // namespace libcallout::internal

#endif  // CALLOUT_SRC_CPU_H
