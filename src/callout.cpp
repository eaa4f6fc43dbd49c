// callout.cpp -- the callout(9) entry points and the callout state machine.
//
// State (docs/DESIGN.md has the diagram): PENDING, FIRED and INVOKING live
// in the callout's flags; "dispatching" and "running" live in the CPU it is
// homed on (Cpu::running names at most one callout).  Every transition
// happens under the lock of the callout's CPU, found by lock_callout().
//
// Tick arithmetic: a due tick is callout_domain_ticks() + ticks with ticks
// clamped to [1, INT_MAX], as an unsigned 64-bit number; the wheel handles
// every 64-bit due tick, so there is no wrap-around rule to obey.
#include "callout/callout.h"

#include <errno.h>
#include <sched.h>

#include <climits>
#include <cstdio>
#include <new>

#include "callout_impl.h"
#include "callout_ops.h"
#include "cpu.h"
#include "domain.h"
#include "misuse.h"
#include "probes.h"

using namespace libcallout::internal;

namespace libcallout::internal {

CalloutImpl *checked(callout_t *c, const char *function) {
  if (c == nullptr) misuse(function, c, nullptr, "NULL callout");
  CalloutImpl *ci = impl(c);
  if (ci->magic != kMagic) {
    char what[96];
    std::snprintf(what, sizeof what, "not initialised, or already destroyed (magic 0x%08x)", ci->magic);
    misuse(function, c, ci->func, what);
  }
  return ci;
}

StopResult stop_locked(Cpu *cpu, CalloutImpl *c, bool cancel_dispatch) {
  const std::uint32_t f = c->flags.load(std::memory_order_relaxed);
  StopResult r{(f & kFired) != 0, (f & kPending) != 0, false};
  if (r.unlinked) {
    cpu->wheel.remove(&c->node);
    CALLOUT_STAT(++cpu->n_stopped);
  }
  if (cancel_dispatch && cpu->running == c && cpu->dispatching && !cpu->cancelled) {
    cpu->cancelled = true;
    r.cancelled = true;
  }
  c->flags.store(f & ~(kPending | kFired), std::memory_order_release);
  CALLOUT_PROBE4(stop, c, c->func, c->arg, r.fired);
  return r;
}

std::uint64_t due_tick(const CalloutImpl *c, int ticks) {
  // SPEC: ticks <= 0 means 1, so a handler re-arming with 0 waits for the
  // next tick instead of running again in the same pass (H4).
  const std::uint64_t delta = ticks <= 0 ? 1 : static_cast<std::uint64_t>(ticks);
  return c->cpu.load(std::memory_order_relaxed)->domain->clock.ticks() + delta;
}

// The latest multiple of the largest power of two that fits in the window
// (a window of w + 1 ticks always holds a multiple of 2^floor(log2(w + 1))),
// so callouts with overlapping windows land on the same ticks and the clock
// wakes once for all of them.
std::uint64_t window_tick(std::uint64_t due, int slack) {
  if (slack <= 0) return due;
  const std::uint64_t width = static_cast<std::uint64_t>(slack) + 1;  // ticks in the window
  const int k = 63 - __builtin_clzll(width);                          // 2^k <= width
  const std::uint64_t latest = due + static_cast<std::uint64_t>(slack);
  return latest & ~((std::uint64_t{1} << k) - 1);  // >= latest - (2^k - 1) >= due
}

// Schedules c at `due` (reset/schedule) and releases the CPU lock.  Clears
// FIRED and INVOKING, and cancels a dispatch waiting for c's associated lock.
// A pending callout stays on its CPU (only its due tick changes, lazily if
// later).  One that is neither pending nor running moves to the caller's CPU
// when the caller is a softclock of the same domain and c is not bound
// (locality; the new CPU's lock is only tried, never waited for, because we
// hold the old one and another thread may be moving a callout the other way).
// Ignored while resets_ignored(c).
unsigned schedule_locked(Cpu *cpu, CalloutImpl *c, std::uint64_t due) NO_THREAD_SAFETY_ANALYSIS {
  // The caller took the lock just before (only the handler was set since).
  std::uint64_t held = hold_begin(cpu);
  // One load serves both uses: every writer of c's flags holds this CPU's
  // lock (or owns c outright, in init and destroy), so they cannot change
  // until we release it.
  std::uint32_t f = c->flags.load(std::memory_order_relaxed);
  if (resets_ignored(c, f)) {
    CALLOUT_STAT(++cpu->stats.ignored);
    hold_end(cpu, held, &HoldStats::hold_ns_max_api);
    cpu->lock.unlock();
    return kIgnored;
  }
  unsigned result = 0;
  f &= ~(kFired | kInvoking);
  if (f & kFreeBSD) f |= kActive;
  if (cpu->running == c && cpu->dispatching && !cpu->cancelled) {
    cpu->cancelled = true;
    result |= kCancelledDispatch;
  }
  Cpu *home = cpu;
  if (f & kPending) {
    cpu->wheel.reschedule(&c->node, due);
    CALLOUT_STAT(++cpu->n_rescheduled);
    result |= kReplaced;
  } else {
    Cpu *here = current_cpu();
    if (here != nullptr && here != cpu && here->domain == cpu->domain && (f & kBound) == 0 &&
        cpu->running != c && here->lock.try_lock()) {
      // Publish the new home while holding both locks; from the store on,
      // other threads find c under here->lock, which we keep until done.
      c->cpu.store(here, std::memory_order_release);
      hold_end(cpu, held, &HoldStats::hold_ns_max_api);
      held = hold_begin(here);
      cpu->lock.unlock();
      CALLOUT_PROBE4(migrate, c, c->func, cpu->index, here->index);
      home = here;
    }
    home->wheel.insert(&c->node, due);
    CALLOUT_STAT(++home->n_scheduled);
    f |= kPending;
  }
  c->flags.store(f, std::memory_order_release);
  CALLOUT_PROBE4(schedule, c, c->func, c->arg, due);
  // Tickless clock: wake the softclock only if c is due before the tick it
  // sleeps until (wake_tick is 0 while it is awake; it looks again anyway).
  // External clock: re-arm the loop's timerfd, under the lock so that two
  // racing resets cannot leave it armed for the later of their due ticks.
  // The timerfd is armed at the wheel's next_due(), the tick at which
  // callout_domain_run() has work (possibly only a cascade), which is also
  // what callout_domain_next_timeout() reports: a loop that sleeps for that
  // timeout and one that waits for the fd agree.
  bool kick = false;
  if (due < home->wake_tick) {
    if (home->timer_fd >= 0) {
      arm_timer(home, home->wheel.next_due());
    } else {
      home->wake_tick = 0;
      kick = true;
    }
  }
  // After a migration, each CPU's hold is counted on that CPU.
  hold_end(home, held, &HoldStats::hold_ns_max_api);
  home->lock.unlock();
  if (kick) home->kick.wake_all();
  return result;
}

HaltResult halt_common(CalloutImpl *ci, pthread_mutex_t *interlock, bool shutdown,
                       bool cancel_dispatch) NO_THREAD_SAFETY_ANALYSIS {
  Cpu *cpu = lock_callout(ci);
  std::uint64_t held = hold_begin(cpu);
  HaltResult r{false, stop_locked(cpu, ci, cancel_dispatch).unlinked};
  if (shutdown) ci->flags.fetch_or(kShutdown, std::memory_order_release);
  CALLOUT_STAT(++cpu->stats.halts);
  CALLOUT_PROBE3(halt, ci, ci->func, ci->arg);
  if (!running_elsewhere(cpu, ci)) {
    CALLOUT_PROBE4(halt_done, ci, ci->func, ci->arg, false);
    hold_end(cpu, held, &HoldStats::hold_ns_max_api);
    cpu->lock.unlock();
    return r;
  }
  r.waited = true;
  CALLOUT_STAT(++cpu->stats.halts_waited);
  // While we wait, the softclock skips any re-arming of c instead of running
  // it again (cpu.cpp, run_expired): halt undoes such an arming anyway, and
  // this way a handler that re-arms itself every tick cannot keep us waiting.
  ++ci->halt_waiters;
  callout_domain *d = cpu->domain;
  bool dropped_interlock = false;
  unsigned giant_depth = 0;
  for (;;) {
    hold_end(cpu, held, &HoldStats::hold_ns_max_api);  // every branch drops the lock
    if (interlock != nullptr && !dropped_interlock) {
      cpu->lock.unlock();
      pthread_mutex_unlock(interlock);
      dropped_interlock = true;
    } else if (giant_depth == 0 && d->giant.held_by_caller()) {
      cpu->lock.unlock();
      giant_depth = d->giant.release_all();
    } else {
      wait_for_done(cpu);
    }
    cpu = lock_callout(ci);
    held = hold_begin(cpu);
    // H1: undo a re-arm made while we were away.
    if (stop_locked(cpu, ci, cancel_dispatch).unlinked) r.unlinked = true;
    if (!running_elsewhere(cpu, ci)) break;
  }
  --ci->halt_waiters;
  CALLOUT_PROBE4(halt_done, ci, ci->func, ci->arg, true);
  hold_end(cpu, held, &HoldStats::hold_ns_max_api);
  cpu->lock.unlock();
  if (giant_depth != 0) d->giant.reacquire(giant_depth);
  if (dropped_interlock) pthread_mutex_lock(interlock);
  return r;
}

void init_common(callout_t *c, std::uint32_t flags, callout_domain *d, pthread_mutex_t *mtx,
                 const char *function, std::uint32_t mode) {
  if (c == nullptr) misuse(function, c, nullptr, "NULL callout");
  if (flags & ~static_cast<std::uint32_t>(kUserFlags)) {
    char what[64];
    std::snprintf(what, sizeof what, "unknown flags 0x%x", flags & ~static_cast<unsigned>(kUserFlags));
    misuse(function, c, nullptr, what);
  }
  Cpu *here = current_cpu();
  if (d == nullptr) d = here != nullptr ? here->domain : callout_domain_default();
  std::uint32_t f = flags | mode;
  Cpu *home;
  if (mtx != nullptr) {
    f |= kMutex;
  } else if ((flags & CALLOUT_MPSAFE) == 0) {
    // Giant-locked callouts all live on CPU 0 and never move: their
    // handlers are serialised by giant anyway (NetBSD binds them the same way).
    f |= kGiant | kBound;
  }
  // FreeBSD callouts start on its default CPU, 0, and move only when
  // callout_reset_on() asks.
  if (f & kFreeBSD) f |= kBound;
  if (f & (kGiant | kFreeBSD)) {
    home = &d->cpus[0];
  } else if (here != nullptr && here->domain == d) {
    home = here;
  } else if (d->clock.caller_runs()) {
    // Virtual time: where a callout lives must not depend on which
    // processor the caller happened to run on (determinism).
    home = &d->cpus[0];
  } else {
    home = caller_home(d);
  }
  CalloutImpl *ci = ::new (static_cast<void *>(c)) CalloutImpl;
  ci->node.link.next = ci->node.link.prev = nullptr;
  ci->node.due = 0;
  ci->node.where = Wheel::kNowhere;
  ci->halt_waiters = 0;
  ci->func = nullptr;
  ci->arg = nullptr;
  ci->mtx = mtx;
  ci->flags.store(f, std::memory_order_relaxed);
  ci->magic = kMagic;
  ci->cpu.store(home, std::memory_order_release);
  // A callout that is never destroyed is not counted: the domain can be
  // destroyed once none of them is pending or running (callout_domain_destroy).
  if ((f & CALLOUT_NODESTROY) == 0) {
    home->lock.lock();
    ++home->live;
    home->lock.unlock();
  }
  CALLOUT_PROBE4(init, ci, flags, d, home->index);
}

}  // namespace libcallout::internal

/*
 * callout_init: prepares c (caller-provided storage) on the domain of the
 * calling softclock thread, or on the default domain.  flags: 0 (handler runs
 * under giant) or CALLOUT_MPSAFE, optionally CALLOUT_RETURNUNLOCKED and
 * CALLOUT_NODESTROY; others are misuse.  Cannot fail, allocates nothing.  Any thread, never sleeps
 * (but the first use of the default domain starts its threads).
 */
extern "C" void callout_init(callout_t *c, unsigned flags) {
  init_common(c, flags, nullptr, nullptr, "callout_init");
}

/*
 * callout_init_domain: as callout_init, on domain d (NULL: as callout_init).
 */
extern "C" void callout_init_domain(callout_t *c, unsigned flags, callout_domain_t *d) {
  init_common(c, flags, d, nullptr, "callout_init_domain");
}

/*
 * callout_init_mtx: as callout_init_domain, with mtx associated: the
 * softclock locks mtx before invoking the handler and unlocks it after
 * (unless CALLOUT_RETURNUNLOCKED); a stop or reset made while the softclock
 * waits for mtx cancels the invocation.  Never takes giant.
 */
extern "C" void callout_init_mtx(callout_t *c, callout_domain_t *d, pthread_mutex_t *mtx, unsigned flags) {
  if (mtx == nullptr) misuse("callout_init_mtx", c, nullptr, "NULL mutex");
  init_common(c, flags, d, mtx, "callout_init_mtx");
}

/*
 * callout_destroy: retires c.  c must not be pending, nor dispatching or
 * running in another thread (misuse otherwise); from c's own handler it is
 * fine.  Afterwards every call on c but an init is misuse.  Any thread;
 * never sleeps.
 */
extern "C" void callout_destroy(callout_t *c) {
  CalloutImpl *ci = checked(c, "callout_destroy");
  Cpu *cpu = lock_callout(ci);
  cpu->lock.assert_held();
  const std::uint32_t f = ci->flags.load(std::memory_order_relaxed);
  if (f & kPending) misuse("callout_destroy", c, ci->func, "destroyed while pending (stop or halt it first)");
  if (running_elsewhere(cpu, ci))
    misuse("callout_destroy", c, ci->func,
           "destroyed while its handler runs in another thread (halt it first)");
  ci->magic = 0;
  if ((f & CALLOUT_NODESTROY) == 0) --cpu->live;
  CALLOUT_PROBE3(destroy, ci, ci->func, ci->arg);
  cpu->lock.unlock();
}

/*
 * callout_setfunc: sets the handler and argument used by callout_schedule.
 * On a pending callout it changes what will run.  Any thread; never sleeps.
 */
extern "C" void callout_setfunc(callout_t *c, callout_func_t func, void *arg) {
  CalloutImpl *ci = checked(c, "callout_setfunc");
  if (func == nullptr) misuse("callout_setfunc", c, ci->func, "NULL handler");
  Cpu *cpu = lock_callout(ci);
  cpu->lock.assert_held();
  ci->func = func;
  ci->arg = arg;
  cpu->lock.unlock();
}

/*
 * callout_reset: sets the handler and schedules c `ticks` ticks from now
 * (ticks <= 0 means 1).  A pending callout is moved, earlier or later, and
 * fires once.  Clears FIRED and INVOKING.  If the softclock is waiting for
 * c's associated lock to dispatch it, that invocation is cancelled.  If c's
 * handler is running, the new arming runs after it, on the same CPU.  Any
 * thread, including handlers; never sleeps.
 */
extern "C" void callout_reset(callout_t *c, int ticks, callout_func_t func, void *arg) {
  CalloutImpl *ci = checked(c, "callout_reset");
  if (func == nullptr) misuse("callout_reset", c, ci->func, "NULL handler");
  const std::uint64_t due = due_tick(ci, ticks);
  Cpu *cpu = lock_callout(ci);
  cpu->lock.assert_held();
  ci->func = func;
  ci->arg = arg;
  schedule_locked(cpu, ci, due);
}

/*
 * callout_schedule: callout_reset with the handler already set; with none
 * set it is misuse.
 */
extern "C" void callout_schedule(callout_t *c, int ticks) {
  CalloutImpl *ci = checked(c, "callout_schedule");
  const std::uint64_t due = due_tick(ci, ticks);
  Cpu *cpu = lock_callout(ci);
  cpu->lock.assert_held();
  if (ci->func == nullptr) {
    cpu->lock.unlock();
    misuse("callout_schedule", c, nullptr, "no handler set (use callout_setfunc or callout_reset)");
  }
  schedule_locked(cpu, ci, due);
}

/*
 * callout_reset_window: callout_reset with a precision window: the handler
 * runs at some tick in [due, due + slack], due = now + ticks (ticks <= 0
 * means 1; slack < 0 means 0).  The tick chosen is the latest multiple of
 * the largest power of two that fits in the window (a window of w + 1 ticks
 * always holds a multiple of 2^floor(log2(w + 1))), so callouts with
 * overlapping windows land on the same ticks and the clock wakes once for
 * all of them.  Any thread; never sleeps.
 */
extern "C" void callout_reset_window(callout_t *c, int ticks, int slack, callout_func_t func, void *arg) {
  CalloutImpl *ci = checked(c, "callout_reset_window");
  if (func == nullptr) misuse("callout_reset_window", c, ci->func, "NULL handler");
  const std::uint64_t at = window_tick(due_tick(ci, ticks), slack);
  Cpu *cpu = lock_callout(ci);
  cpu->lock.assert_held();
  ci->func = func;
  ci->arg = arg;
  schedule_locked(cpu, ci, at);
}

/*
 * callout_stop: unschedules c, clears PENDING and FIRED, returns the old
 * FIRED.  Never blocks, never waits for a handler.  Race outcomes: false --
 * the handler has not been invoked for the last arming and now will not be
 * (a lock-associated callout stopped while the softclock waits for its lock
 * counts here); true -- the handler was invoked: it has finished, or is
 * running now, or is about to run (use callout_halt to wait for it).  Any
 * thread, including handlers.  INVOKING is left as it was.
 */
extern "C" bool callout_stop(callout_t *c) {
  CalloutImpl *ci = checked(c, "callout_stop");
  Cpu *cpu = lock_callout(ci);
  cpu->lock.assert_held();
  const std::uint64_t held = hold_begin(cpu);
  const bool fired = stop_locked(cpu, ci).fired;
  hold_end(cpu, held, &HoldStats::hold_ns_max_api);
  cpu->lock.unlock();
  return fired;
}

/*
 * callout_halt: callout_stop, then, while another thread is dispatching c
 * or running its handler, waits until that thread is done with c; a re-arm
 * made meanwhile (by the handler or anyone) is undone.  If it has to wait,
 * `interlock` (if not NULL, held by the caller) is released while waiting
 * and re-acquired before return, and the domain's giant lock, if the caller
 * holds it, is released completely and re-taken to the same depth (giant
 * first, then the interlock).  From c's own handler it does not wait.
 * Returns true iff it had to wait.  On return no thread uses c and c is not
 * pending (unless reset by another thread after).  May sleep: not from a
 * context that must not; two handlers halting each other deadlock.
 */
extern "C" bool callout_halt(callout_t *c, pthread_mutex_t *interlock) {
  return halt_common(checked(c, "callout_halt"), interlock, false).waited;
}

/*
 * callout_halt_async: stops c without blocking.  If another thread is
 * dispatching c or running its handler, returns true; done(arg) is then
 * called exactly once, on that softclock thread, when it is done with c
 * (after the handler returned and its lock was released), and until then
 * reset/schedule of c are ignored.  Otherwise returns false and done is
 * never called: no thread uses c, the caller may free it at once.  From c's
 * own handler it returns false.  Any thread; never sleeps.  At most
 * Cpu::kMaxDrains (8) completions may be pending on one callout.
 */
extern "C" bool callout_halt_async(callout_t *c, callout_func_t done, void *arg) {
  CalloutImpl *ci = checked(c, "callout_halt_async");
  if (done == nullptr) misuse("callout_halt_async", c, ci->func, "NULL completion function");
  Cpu *cpu = lock_callout(ci);
  cpu->lock.assert_held();
  const std::uint64_t held = hold_begin(cpu);
  stop_locked(cpu, ci);
  CALLOUT_STAT(++cpu->stats.halts);
  if (!running_elsewhere(cpu, ci)) {
    hold_end(cpu, held, &HoldStats::hold_ns_max_api);
    cpu->lock.unlock();
    return false;
  }
  if (cpu->ndrains == Cpu::kMaxDrains) {
    cpu->lock.unlock();
    misuse("callout_halt_async", c, ci->func,
           "too many callout_halt_async completions pending on one callout");
  }
  CALLOUT_STAT(++cpu->stats.halts_waited);
  cpu->drains[cpu->ndrains++] = {done, arg};
  ci->flags.fetch_or(kDraining, std::memory_order_release);
  hold_end(cpu, held, &HoldStats::hold_ns_max_api);
  cpu->lock.unlock();
  return true;
}

/*
 * callout_shutdown: callout_stop, and from now on every reset/schedule of c
 * is ignored (counted in the stats) until c is initialised again.  Kills the
 * "re-armed during teardown" race.  Any thread; never sleeps.
 */
extern "C" void callout_shutdown(callout_t *c) {
  CalloutImpl *ci = checked(c, "callout_shutdown");
  Cpu *cpu = lock_callout(ci);
  cpu->lock.assert_held();
  const std::uint64_t held = hold_begin(cpu);
  stop_locked(cpu, ci);
  ci->flags.fetch_or(kShutdown, std::memory_order_release);
  hold_end(cpu, held, &HoldStats::hold_ns_max_api);
  cpu->lock.unlock();
}

/*
 * callout_shutdown_sync: callout_shutdown, then waits like callout_halt
 * (same interlock and giant rules, same return value).  The shutdown mark is
 * set before waiting, so the running handler cannot re-arm c.
 */
extern "C" bool callout_shutdown_sync(callout_t *c, pthread_mutex_t *interlock) {
  return halt_common(checked(c, "callout_shutdown_sync"), interlock, true).waited;
}

/*
 * callout_bind: c runs on CPU `cpu` of its domain from now on and never
 * migrates.  Misuse unless cpu < ncpu and c is not giant-locked, not
 * pending and not dispatching or running.  Any thread; never sleeps.
 */
extern "C" void callout_bind(callout_t *c, unsigned cpu_index) {
  CalloutImpl *ci = checked(c, "callout_bind");
  Cpu *cpu = lock_callout(ci);
  cpu->lock.assert_held();
  callout_domain *d = cpu->domain;
  const std::uint32_t f = ci->flags.load(std::memory_order_relaxed);
  const char *what = nullptr;
  if (cpu_index >= d->ncpu)
    what = "CPU index out of range";
  else if (f & kGiant)
    what = "a giant-locked callout cannot be bound (it always runs on CPU 0)";
  else if (f & kPending)
    what = "bound while pending";
  else if (cpu->running == ci)
    what = "bound while its handler is running or being dispatched";
  if (what != nullptr) {
    cpu->lock.unlock();
    misuse("callout_bind", c, ci->func, what);
  }
  ci->flags.store(f | kBound, std::memory_order_relaxed);
  // Every write to c happens before this release store; from it on c belongs
  // to the target CPU's lock, and we touch c no more.
  ci->cpu.store(&d->cpus[cpu_index], std::memory_order_release);
  cpu->lock.unlock();
}

/*
 * The predicates read the state with one atomic load, no lock: the answer
 * is already stale when it returns, unless the caller excludes the
 * softclock by other means (the associated lock, or being the handler).
 */
extern "C" bool callout_pending(callout_t *c) {
  return (checked(c, "callout_pending")->flags.load(std::memory_order_acquire) & kPending) != 0;
}
extern "C" bool callout_expired(callout_t *c) {
  return (checked(c, "callout_expired")->flags.load(std::memory_order_acquire) & kFired) != 0;
}
extern "C" bool callout_active(callout_t *c) {
  return (checked(c, "callout_active")->flags.load(std::memory_order_acquire) & (kPending | kFired)) != 0;
}
extern "C" bool callout_invoking(callout_t *c) {
  return (checked(c, "callout_invoking")->flags.load(std::memory_order_acquire) & kInvoking) != 0;
}

/*
 * callout_ack: clears INVOKING (the handler acknowledges its invocation,
 * NetBSD's stop-vs-fire handshake).  Any thread; never sleeps.
 */
extern "C" void callout_ack(callout_t *c) {
  CalloutImpl *ci = checked(c, "callout_ack");
  Cpu *cpu = lock_callout(ci);
  cpu->lock.assert_held();
  ci->flags.fetch_and(~kInvoking, std::memory_order_release);
  cpu->lock.unlock();
}
