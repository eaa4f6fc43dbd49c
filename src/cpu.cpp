// cpu.cpp -- a CPU's softclock thread: the clock reaches a bucket, the
// softclock dispatches what is due, runs each handler, and wakes the threads
// that wait for it.
//
// The dispatch protocol (docs/DESIGN.md, "Dispatch", has the proofs):
//   1. under the CPU lock, take c off the expired list: PENDING is cleared
//      and running = c (so halt sees c in use from here on);
//   2. lock-associated c only: dispatching = true, drop the CPU lock, take
//      the associated lock (giant or the callout's mutex), re-take the CPU
//      lock; if a stop or reset came in meanwhile (cancelled), release the
//      associated lock and skip the handler (acquire_association);
//   3. set FIRED | INVOKING, drop the CPU lock, call the handler;
//   4. release the associated lock (unless RETURNUNLOCKED;
//      release_association), re-take the CPU lock, clear running, wake the
//      waiters (finish_dispatch).
// After the handler returns the softclock never touches c again: the
// handler may have destroyed and freed it.  The one exception: it clears
// the draining mark when a callout_halt_async (or FreeBSD async drain)
// completion is outstanding, whose caller keeps c alive until it has run.
#include "cpu.h"

#include <errno.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/timerfd.h>

#include <cstdio>

#include "domain.h"
#include "misuse.h"
#include "probes.h"

namespace libcallout::internal {

namespace {

// initial-exec: one %fs-relative load, no __tls_get_addr call on the reset
// path.  The library is linked at start-up by its users; a dlopen()ed copy
// still gets the few bytes from glibc's static TLS surplus.
__attribute__((tls_model("initial-exec"))) thread_local Cpu *tls_cpu = nullptr;

// Wakes the threads in wait_for_done().  Called with the lock held; drops
// it around the system call so that no one spins on the lock meanwhile, and
// returns with it held again.
void notify_done(Cpu *cpu) REQUIRES(cpu->lock) {
  if (cpu->nwait == 0) return;
  cpu->nwait = 0;
  cpu->lock.unlock();
  cpu->done.wake_all();
  cpu->lock.lock();
}

// Takes the lock a lock-associated callout's handler runs under (giant, or
// its mutex mtx), for cpu->running; the mirror of release_association().
// Called with the CPU lock held; drops it while it waits for the associated
// lock (dispatching tells stop and reset so) and returns with it held again.
// Returns false if a stop or reset cancelled the invocation meanwhile: the
// associated lock is released again and the handler must not run.
bool acquire_association(Cpu *cpu, std::uint32_t flags, pthread_mutex_t *mtx) REQUIRES(cpu->lock) {
  callout_domain *d = cpu->domain;
  cpu->dispatching = true;
  cpu->cancelled = false;
  cpu->lock.unlock();
  // The wait is timed only when there is one: an uncontended mutex costs no
  // clock read (EBUSY: another thread holds it; any other answer is what
  // pthread_mutex_lock would have given).
  // Giant has no trylock; its dispatches are always timed.
  std::uint64_t waited = 0;
  if (flags & kGiant) {
    const std::uint64_t start = hold_clock();
    d->giant.enter();
    waited = hold_clock() - start;
  } else if (pthread_mutex_trylock(mtx) == EBUSY) {
    const std::uint64_t start = hold_clock();
    pthread_mutex_lock(mtx);
    waited = hold_clock() - start;
  }
  cpu->lock.lock();
#ifndef CALLOUT_NO_STATS
  cpu->hold_stats.assoc_wait_ns_total += waited;
  if (waited > cpu->hold_stats.assoc_wait_ns_max) cpu->hold_stats.assoc_wait_ns_max = waited;
#else
  (void)waited;
#endif
  cpu->dispatching = false;
  if (!cpu->cancelled) return true;
  // Stopped or reset while we waited for its lock: the holder of that lock
  // has been promised the handler will not run for this arming.
  CALLOUT_STAT(++cpu->stats.cancelled);
  cpu->lock.unlock();
  if (flags & kGiant)
    d->giant.exit();
  else
    pthread_mutex_unlock(mtx);
  cpu->lock.lock();
  return false;
}

// Releases the lock a lock-associated handler ran under.  giant_base is the
// depth of giant the running thread held before the dispatch: 0 for a
// softclock thread, possibly more for a thread that runs handlers of an
// external or virtual domain while holding giant itself.
void release_association(callout_domain *d, std::uint32_t flags, pthread_mutex_t *mtx, void *c,
                         callout_func_t func, unsigned giant_base) {
  if (flags & kGiant) {
    // Ownership first: depth() belongs to giant's owner, and another
    // thread may own it if the handler released it.
    const unsigned depth = d->giant.held_by_caller() ? d->giant.depth() : 0;
    if ((flags & CALLOUT_RETURNUNLOCKED) == 0) {
      if (depth != giant_base + 1)
        misuse("softclock", c, func, "handler returned with the giant lock taken or released unevenly");
      d->giant.exit();
    } else if (depth != giant_base) {
      misuse("softclock", c, func, "CALLOUT_RETURNUNLOCKED handler returned with giant held unevenly");
    }
  } else if ((flags & kMutex) && (flags & CALLOUT_RETURNUNLOCKED) == 0) {
    pthread_mutex_unlock(mtx);
  }
}

// Accounts one handler invocation due at tick `due`.  Timed runs (monotonic
// and external clocks) pass its start and end; on the manual clock
// start_ns == end_ns == 0 and run_expired() times the whole batch instead.
void account_run(Cpu *cpu, std::uint64_t due, std::uint64_t start_ns, std::uint64_t end_ns)
    REQUIRES(cpu->lock) {
#ifndef CALLOUT_NO_STATS
  const Clock &clock = cpu->domain->clock;
  CpuStats &st = cpu->stats;
  ++st.fired;
  const std::uint64_t tick = clock.manual() ? clock.ticks() : clock.tick_at_ns(start_ns);
  if (tick > due) {
    ++st.fired_late;
    if (tick - due > st.late_max_ticks) st.late_max_ticks = tick - due;
  }
  if (clock.manual()) return;
  const std::uint64_t run = end_ns - start_ns;
  st.run_ns_total += run;
  if (run > st.run_ns_max) st.run_ns_max = run;
  const std::uint64_t begin = clock.tick_start_ns(due);
  const std::uint64_t late = start_ns > begin ? start_ns - begin : 0;
  int bucket = late == 0 ? 0 : 63 - __builtin_clzll(late);
  if (bucket >= CALLOUT_LATENCY_BUCKETS) bucket = CALLOUT_LATENCY_BUCKETS - 1;
  ++st.lateness_ns_log2[bucket];
#else
  (void)cpu, (void)due, (void)start_ns, (void)end_ns;
#endif
}

// The clock reads of run_expired(), kept apart from the dispatch protocol.
// Reading the clock is not free (here, in a VM that traps rdtsc, 60 to
// 110 ns), so: on the monotonic and external clocks, where lateness needs
// each handler's start, one read per handler -- the end of one run is the
// start of the next unless something slow (a wake-up, waiting for a lock)
// came between; on the manual clock, where time is virtual, two reads per
// batch, and run_ns_* count batches (all handlers of one tick on one CPU).
class RunTiming {
 public:
  explicit RunTiming(const Clock &clock) : timed_(!clock.manual()) {}
  // Something slow came between: the next start reads the clock again.
  void interrupted() { last_end_ = 0; }
  // Before a handler: its start (0 on the manual clock).
  std::uint64_t start() {
    if (timed_) return last_end_ != 0 ? last_end_ : monotonic_ns();
    if (batch_start_ == 0) batch_start_ = monotonic_ns();
    return 0;
  }
  // After it: its end (0 on the manual clock).
  std::uint64_t end() {
    if (timed_) last_end_ = monotonic_ns();
    return last_end_;
  }
  // After the batch: on the manual clock, its run time into cpu's counters.
  void finish(Cpu *cpu) REQUIRES(cpu->lock) {
#ifndef CALLOUT_NO_STATS
    if (batch_start_ != 0) {
      const std::uint64_t batch = monotonic_ns() - batch_start_;
      cpu->stats.run_ns_total += batch;
      if (batch > cpu->stats.run_ns_max) cpu->stats.run_ns_max = batch;
    }
#else
    (void)cpu;
#endif
  }

 private:
  const bool timed_;
  std::uint64_t last_end_ = 0;
  std::uint64_t batch_start_ = 0;
};

// Ends the dispatch of c (its handler returned, or it was cancelled):
// clears `running`, wakes the waiters, and calls the callout_halt_async
// completions (outside the lock, with `running` already clear, so that
// they may halt or free c).  Returns whether it dropped the lock; *held is
// the timed start of the caller's lock hold (hold_begin), ended and begun
// again around the drop.
bool finish_dispatch(Cpu *cpu, CalloutImpl *c, std::uint64_t *held) REQUIRES(cpu->lock) {
  cpu->running = nullptr;
  cpu->running_func = nullptr;
  cpu->running_arg = nullptr;
  const unsigned ndrains = cpu->ndrains;
  Cpu::Drain drains[Cpu::kMaxDrains];
  if (ndrains != 0) {
    // Whoever asked for the drain keeps c alive until its completion runs,
    // so c may be touched here even though its handler has returned.
    c->flags.fetch_and(~kDraining, std::memory_order_release);
    for (unsigned i = 0; i < ndrains; ++i) drains[i] = cpu->drains[i];
    cpu->ndrains = 0;
  }
  const bool slow = cpu->nwait != 0 || ndrains != 0;
  if (!slow) return false;
  hold_end(cpu, *held, &HoldStats::hold_ns_max_batch);
  notify_done(cpu);
  if (ndrains != 0) {
    cpu->lock.unlock();
    for (unsigned i = 0; i < ndrains; ++i) drains[i].done(drains[i].arg);
    cpu->lock.lock();
  }
  *held = hold_begin(cpu);
  return true;
}

}  // namespace

// Runs everything on the expired list, in order: the four steps of the
// dispatch protocol at the top of this file, one callout at a time.
unsigned run_expired(Cpu *cpu) {
  unsigned ran = 0;
  callout_domain *d = cpu->domain;
  RunTiming timing(d->clock);
  // The thread running an external or virtual domain's handlers may hold
  // giant already (it is recursive); a softclock thread never does.
  const unsigned giant_base = d->giant.held_by_caller() ? d->giant.depth() : 0;
  // The lock holds between handlers, timed on a sample (hold_begin); the
  // hold that leads into this call is the caller's (a cascade, or idle).
  std::uint64_t held = hold_begin(cpu);
  cpu->wheel.start_lookahead();  // prefetches the list from its tail (wheel.h)
  // A callout_domain_drain() in progress holds the list: nothing new starts.
  while (cpu->holds == 0) {
    WheelNode *n = cpu->wheel.pop_expired();
    if (n == nullptr) break;
    cpu->wheel.lookahead_step();
    // 1. Off the expired list: no longer pending, and in use from here on.
    CalloutImpl *c = impl(n);
    std::uint32_t f = c->flags.load(std::memory_order_relaxed) & ~kPending;
    c->flags.store(f, std::memory_order_release);
    if (c->halt_waiters != 0) continue;  // a halt is waiting on c: it stays stopped (DESIGN.md, H1)
    const std::uint64_t due = c->node.due;
    cpu->running = c;
    cpu->running_func = c->func;
    cpu->running_arg = c->arg;
    pthread_mutex_t *mtx = c->mtx;

    // 2. The associated lock, unless the invocation is cancelled meanwhile.
    if (f & (kGiant | kMutex)) {
      hold_end(cpu, held, &HoldStats::hold_ns_max_batch);
      const bool invoke = acquire_association(cpu, f, mtx);
      held = hold_begin(cpu);
      timing.interrupted();  // waiting for the lock may have taken long
      if (!invoke) {
        finish_dispatch(cpu, c, &held);
        continue;
      }
      // Not cancelled, so not stopped, reset or destroyed: c is intact, but
      // setfunc may have changed the handler while we waited.
      f = c->flags.load(std::memory_order_relaxed);
      cpu->running_func = c->func;
      cpu->running_arg = c->arg;
    }

    // 3. Invoke the handler, without the CPU lock.
    const callout_func_t func = c->func;
    void *const arg = c->arg;
    c->flags.store(f | kFired | kInvoking, std::memory_order_release);
    hold_end(cpu, held, &HoldStats::hold_ns_max_batch);
    cpu->lock.unlock();
    const std::uint64_t start = timing.start();
    CALLOUT_PROBE4(entry, c, func, arg, due);
    func(arg);  // c may be destroyed and freed from here on
    const std::uint64_t end = timing.end();
    CALLOUT_PROBE4(return, c, func, arg, end - start);

    // 4. Release the associated lock, clear running, wake the waiters.
    release_association(d, f, mtx, c, func, giant_base);
    cpu->lock.lock();
    held = hold_begin(cpu);
    ++ran;
    account_run(cpu, due, start, end);
    if (finish_dispatch(cpu, c, &held)) timing.interrupted();
  }
  timing.finish(cpu);
  hold_end(cpu, held, &HoldStats::hold_ns_max_batch);
  return ran;
}

namespace {

// Nodes re-placed per CPU-lock hold in a cascade.  bench/analysis.md
// measured about 1 us per node re-placed (a cache and a TLB miss on the
// callout), so a hold of 32 stays near the 50 us a reset should at most
// wait for the lock.
constexpr std::size_t kCascadeBudget = 32;

void name_thread(Cpu *cpu) {
  char name[16];
  std::snprintf(name, sizeof name, "callout/%u", cpu->index);
  pthread_setname_np(pthread_self(), name);
  // Sleep until exactly the start of the due tick: without this the kernel
  // adds its default 50 us of timer slack to every wake-up.
  prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
}

}  // namespace

void advance_bounded(Cpu *cpu, std::uint64_t t) {
  cpu->wheel.begin_advance(t);          // O(levels + buckets passed): splices only
  if (!cpu->wheel.cascading()) return;  // nothing to re-place: no clock read
  std::uint64_t held = hold_clock();
  while (cpu->wheel.cascade(kCascadeBudget)) {
    hold_end(cpu, held, &HoldStats::hold_ns_max_cascade);
    cpu->lock.unlock();
    cpu->lock.lock();
    held = hold_clock();
  }
  hold_end(cpu, held, &HoldStats::hold_ns_max_cascade);
}

Cpu *current_cpu() { return tls_cpu; }

Cpu *set_current_cpu(Cpu *cpu) {
  Cpu *old = tls_cpu;
  tls_cpu = cpu;
  return old;
}

void arm_timer(Cpu *cpu, std::uint64_t tick) {
  itimerspec its{};
  if (tick != Wheel::kNever) {
    its.it_value = cpu->domain->clock.deadline(tick);
    // A zero it_value disarms: a deadline of exactly 0 ns cannot occur (the
    // clock origin is a CLOCK_MONOTONIC reading taken after boot).
  }
  timerfd_settime(cpu->timer_fd, TFD_TIMER_ABSTIME, &its, nullptr);
  cpu->wake_tick = tick;
}

Cpu *lock_callout(CalloutImpl *c) NO_THREAD_SAFETY_ANALYSIS {
  for (;;) {
    Cpu *cpu = c->cpu.load(std::memory_order_acquire);
    cpu->lock.lock();
    if (c->cpu.load(std::memory_order_relaxed) == cpu) return cpu;
    cpu->lock.unlock();
  }
}

void wait_for_done(Cpu *cpu) {
  const std::uint32_t seen = cpu->done.generation();
  ++cpu->nwait;
  cpu->lock.unlock();
  cpu->done.wait(seen);
}

void wait_for_idle(Cpu *cpu) {
  const std::uint32_t seen = cpu->idle.generation();
  // Kick the softclock if it has work: a callout can land on the expired
  // list after advance() chose which CPUs to kick (a thread that read the
  // tick just before advance() moved it schedules at a tick the wheel has
  // already passed), and a sleeping softclock would never see it.
  const bool kick = cpu->wheel.has_expired() && cpu->holds == 0;
  ++cpu->nidle;
  cpu->lock.unlock();
  if (kick) cpu->kick.wake_all();
  cpu->idle.wait(seen);
}

void *softclock_main(void *arg) {
  auto *cpu = static_cast<Cpu *>(arg);
  tls_cpu = cpu;
  name_thread(cpu);
  cpu->thread_running.store(true, std::memory_order_release);
  const Clock &clock = cpu->domain->clock;
  cpu->lock.lock();
  while (!cpu->stopping) {
    std::uint64_t wake = Wheel::kNever;
    if (clock.manual()) {
      // callout_domain_advance() moves the wheel and kicks us; we only run
      // what it made due, then report back through `idle`.
      if (cpu->wheel.has_expired() && cpu->holds == 0) {
        run_expired(cpu);
        continue;
      }
    } else {
      // Tickless: step the wheel from one next-due tick to the next, as long
      // as they are not in the future.
      const std::uint64_t now = clock.ticks();
      const std::uint64_t next = cpu->wheel.next_due();
      if (next <= now && cpu->holds == 0) {
        // Bounded lock holds: a passed bucket of a high level may hold a
        // large share of every pending callout, and re-placing them all in
        // one go kept resets and stops on this CPU waiting for milliseconds
        // (bench/analysis.md).  So the wheel only splices the passed buckets
        // here, and the nodes are re-placed kCascadeBudget at a time, with
        // the lock released in between.  The wheel reports work due now
        // until the cascade is done, and every reset or stop in between
        // sees a consistent wheel (wheel.h).  No sched_yield() between the
        // chunks: with busy threads on every core it handed the processor
        // away mid-cascade, and the demo's lateness p99 doubled (4.5-5.8 ms
        // against 2.8-3.0 ms without it, two runs each, same machine).
        // Every chunk is timed (hold_clock): two clock reads against up to
        // kCascadeBudget nodes re-placed.
        advance_bounded(cpu, next);
        run_expired(cpu);
        continue;
      }
      // Nothing is due before `next`; keep the wheel's now close to the
      // clock so that new callouts are placed in low levels.  While a drain
      // holds dispatch, sleep until it kicks us at its end.
      cpu->wheel.advance(now);
      // Idle until `next`: move the buckets that cascade at the coming
      // boundaries down a level now, kCascadeBudget nodes a lock hold, so
      // that the handlers due at a boundary no longer wait for its whole
      // cascade (wheel.h, precascade()).  Only here, on time already spent
      // awake: no wake-up is added, and the manual and virtual clocks, whose
      // order within a tick must not depend on timing, never pre-cascade.
      // Stop as soon as a tick comes due (it runs first), or someone waits
      // for this CPU to be idle or to stop.
      // Each chunk is timed as a cascade hold.
      std::uint64_t held = hold_clock();
      bool more = cpu->holds == 0 && cpu->wheel.precascade(kCascadeBudget);
      hold_end(cpu, held, &HoldStats::hold_ns_max_cascade);
      while (more && cpu->nidle == 0 && !cpu->stopping) {
        cpu->lock.unlock();
        cpu->lock.lock();
        if (clock.ticks() >= cpu->wheel.next_due()) break;
        held = hold_clock();
        more = cpu->wheel.precascade(kCascadeBudget);
        hold_end(cpu, held, &HoldStats::hold_ns_max_cascade);
      }
      // Moving nodes ahead only makes next_due() later (or it is an insert).
      const std::uint64_t due = cpu->wheel.next_due();
      if (more && clock.ticks() >= due) continue;
      wake = cpu->holds == 0 ? due : Wheel::kNever;
    }
    // Going idle: wake whoever waits for this CPU to be idle.  advance()
    // waits until the expired list is empty and nothing runs; this is the
    // one place that condition is signalled -- also when a stop emptied the
    // list without any handler finishing (DESIGN.md, "No lost wake-up").
    if (cpu->nidle != 0) {
      cpu->nidle = 0;
      cpu->lock.unlock();
      cpu->idle.wake_all();
      cpu->lock.lock();
      // Look again from the top: while the lock was dropped, callouts may
      // have come due, and an advance() may have registered (and had the
      // callout it waited for stopped), so nidle may be set again.
      continue;
    }
    if (cpu->stopping) break;
    // A manual clock's softclock is kicked by advance() only, never by an
    // insert (0 makes schedule_locked() skip the kick).
    cpu->wake_tick = clock.manual() ? 0 : wake;
    const std::uint32_t seen = cpu->kick.generation();
    cpu->lock.unlock();
    if (wake == Wheel::kNever) {
      cpu->kick.wait(seen);
    } else {
      const timespec deadline = clock.deadline(wake);
      cpu->kick.wait(seen, &deadline);
    }
    cpu->lock.lock();
    cpu->wake_tick = 0;
    CALLOUT_STAT(++cpu->stats.wakeups);
  }
  cpu->lock.unlock();
  return nullptr;
}

}  // namespace libcallout::internal
