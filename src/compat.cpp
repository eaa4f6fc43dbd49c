// compat.cpp -- the library side of the kernel KPIs: FreeBSD's callout(9)
// and Linux's timer_list (the headers <callout/compat/freebsd.h> and
// <callout/compat/linux.h> map the kernels' names onto these functions;
// NetBSD's KPI is the native API and needs nothing here).
//
// These are the same transitions as the native entry points (callout_ops.h);
// what differs is what they report and three policy choices, each FreeBSD's
// or Linux's own:
//   - return values: FreeBSD's stop/drain say 1 (a pending arming was taken
//     out, or a dispatch waiting for the caller's lock was cancelled), 0 (the
//     handler is being serviced and could not be stopped) or -1 (neither
//     pending nor serviced); its resets say whether they replaced a pending
//     arming.  Linux's delete/mod say whether the timer was pending.
//   - a FreeBSD stop cancels a dispatch waiting for the callout's lock only
//     when the caller holds that lock (always assumed for a mutex, as
//     FreeBSD asserts it; checked for giant); a native stop always cancels.
//   - FreeBSD ignores a reset while a drain waits for the callout (kFreeBSD
//     in resets_ignored), and keeps ACTIVE (kActive) as its own flag.
// FreeBSD and Linux callouts are CALLOUT_NODESTROY: their memory may be
// freed once they are neither pending nor running, with no call.
#include <errno.h>
#include <sched.h>

#include <climits>
#include <cstdint>

#include "callout/callout.h"
#include "callout_impl.h"
#include "callout_ops.h"
#include "cpu.h"
#include "domain.h"
#include "misuse.h"

using namespace libcallout::internal;

namespace {

// FreeBSD's flag values, as <callout/compat/freebsd.h> defines them.
constexpr int kFbsdReturnUnlocked = 0x0010;
constexpr int kFbsdSharedLock = 0x0020;
constexpr int kFbsdPrelShift = 1, kFbsdPrelBits = 7;
constexpr int kFbsdAbsolute = 0x0200;
constexpr int kFbsdCurCpu = -2;  // callout_reset_curcpu and friends
// Linux's timer flags, as <callout/compat/linux.h> defines them.
constexpr unsigned kLinuxPinned = 0x00100000u;

// A ticks count to a due tick of c's domain (at least the next tick).
std::uint64_t due_after(const CalloutImpl *c, std::uint64_t delta) {
  return c->cpu.load(std::memory_order_relaxed)->domain->clock.ticks() + (delta == 0 ? 1 : delta);
}

// The CPU a FreeBSD reset asks for: -1 keeps the callout where it is, -2 is
// the caller's CPU, others an index of the domain (misuse if out of range).
Cpu *target_cpu(Cpu *home, CalloutImpl *ci, int cpu, const char *function) NO_THREAD_SAFETY_ANALYSIS {
  callout_domain *d = home->domain;
  if (cpu == -1) return home;
  if (cpu == kFbsdCurCpu) {
    if (Cpu *here = current_cpu(); here != nullptr && here->domain == d) return here;
    // Virtual time: the processor the caller runs on must not matter.
    if (d->clock.caller_runs()) return &d->cpus[0];
    return caller_home(d);
  }
  if (cpu < 0 || static_cast<unsigned>(cpu) >= d->ncpu) {
    home->lock.unlock();
    misuse(function, ci, ci->func, "CPU index out of range for the callout's domain");
  }
  return &d->cpus[cpu];
}

// FreeBSD's reset: arms c at `due` (func NULL: keep the handler, as
// callout_schedule does) on CPU `cpu` (see target_cpu).  Returns 1 if it
// replaced a pending arming or cancelled a dispatch waiting for c's lock,
// else 0 (also when ignored: resets_ignored).
int fbsd_reset(callout_t *c, std::uint64_t due_delta, int slack, callout_func_t func, void *arg, int cpu,
               const char *function) NO_THREAD_SAFETY_ANALYSIS {
  CalloutImpl *ci = checked(c, function);
  if ((ci->flags.load(std::memory_order_relaxed) & kFreeBSD) == 0)
    misuse(function, c, ci->func, "not a FreeBSD callout (initialise it with the FreeBSD callout_init)");
  Cpu *home = lock_callout(ci);
  if (func == nullptr && ci->func == nullptr) {
    home->lock.unlock();
    misuse(function, c, nullptr, "no handler set (use callout_reset first)");
  }
  if (resets_ignored(ci)) {
    CALLOUT_STAT(++home->stats.ignored);
    home->lock.unlock();
    return 0;
  }
  int replaced = 0;
  Cpu *target = target_cpu(home, ci, cpu, function);
  // Move c if it is idle (pending is fine: take it out first).  A running
  // callout stays where it runs -- at most one invocation at a time -- and
  // the move is left to a later reset (FreeBSD defers it instead).
  if (target != home && home->running != ci) {
    if (stop_locked(home, ci).unlinked) replaced = 1;
    // c is idle and not pending: nothing else reaches it through home, so
    // publishing the new CPU is enough (as callout_bind does).
    ci->cpu.store(target, std::memory_order_release);
    home->lock.unlock();
    home = lock_callout(ci);
  }
  if (func != nullptr) {
    ci->func = func;
    ci->arg = arg;
  }
  const std::uint64_t due = window_tick(due_after(ci, due_delta), slack);
  const unsigned r = schedule_locked(home, ci, due);
  if (r & kIgnored) return 0;
  return (replaced || (r & (kReplaced | kCancelledDispatch))) ? 1 : 0;
}

std::uint64_t ticks_delta(int ticks) { return ticks <= 0 ? 1 : static_cast<std::uint64_t>(ticks); }

// sbintime_t (seconds in 32.32 fixed point) to ticks at hz, rounded up.
std::uint64_t sbt_to_ticks(std::int64_t sbt, unsigned hz) {
  if (sbt <= 0) return 0;
  const auto u = static_cast<std::uint64_t>(sbt);
  const std::uint64_t secs = u >> 32, frac = u & 0xffffffffu;
  const std::uint64_t whole = secs * hz;  // < 2^31 * 10^6: no overflow
  return whole + ((frac * hz + 0xffffffffu) >> 32);
}

std::int64_t ticks_to_sbt(std::uint64_t ticks, unsigned hz) {
  const std::uint64_t secs = ticks / hz, rest = ticks % hz;
  const std::uint64_t sbt = (secs << 32) + (rest << 32) / hz;
  return sbt > static_cast<std::uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<std::int64_t>(sbt);
}

callout_domain *current_domain() { return callout_domain_current(); }

}  // namespace

// ---- FreeBSD ----------------------------------------------------------------

/*
 * callout_fbsd_init: FreeBSD's callout_init(c, mpsafe): mpsafe 0 means the
 * handler runs under the domain's giant lock.  d NULL: as callout_init.
 * The callout is CALLOUT_NODESTROY and homed on CPU 0 (FreeBSD's default
 * CPU).  Any thread; never sleeps.
 */
extern "C" CALLOUT_API void callout_fbsd_init(callout_t *c, int mpsafe, callout_domain_t *d) {
  init_common(c, (mpsafe ? CALLOUT_MPSAFE : 0u) | CALLOUT_NODESTROY, d, nullptr, "callout_init (FreeBSD)",
              kFreeBSD);
}

/*
 * callout_fbsd_init_mtx: FreeBSD's callout_init_mtx(c, mtx, flags), flags
 * FreeBSD's CALLOUT_RETURNUNLOCKED and CALLOUT_SHAREDLOCK (ignored for a
 * mutex, as in FreeBSD); other flags are misuse.
 */
extern "C" CALLOUT_API void callout_fbsd_init_mtx(callout_t *c, pthread_mutex_t *mtx, int flags,
                                                  callout_domain_t *d) {
  if (mtx == nullptr) misuse("callout_init_mtx (FreeBSD)", c, nullptr, "NULL mutex");
  if (flags & ~(kFbsdReturnUnlocked | kFbsdSharedLock))
    misuse("callout_init_mtx (FreeBSD)", c, nullptr,
           "unknown flags (CALLOUT_RETURNUNLOCKED and CALLOUT_SHAREDLOCK only)");
  const unsigned native =
      CALLOUT_MPSAFE | CALLOUT_NODESTROY | ((flags & kFbsdReturnUnlocked) ? CALLOUT_RETURNUNLOCKED : 0u);
  init_common(c, native, d, mtx, "callout_init_mtx (FreeBSD)", kFreeBSD);
}

/*
 * callout_fbsd_reset_ticks: callout_reset_on / callout_schedule_on (func
 * NULL keeps the handler).  ticks <= 0 means 1.  cpu -1 keeps the callout's
 * CPU, -2 is the caller's.  Returns 1 if a pending arming was replaced (or a
 * dispatch waiting for the callout's lock cancelled), else 0; a reset while
 * a drain waits for c is ignored and returns 0.  Any thread; never sleeps.
 */
extern "C" CALLOUT_API int callout_fbsd_reset_ticks(callout_t *c, int ticks, callout_func_t func, void *arg,
                                                    int cpu) {
  return fbsd_reset(c, ticks_delta(ticks), 0, func, arg, cpu, "callout_reset (FreeBSD)");
}

/*
 * callout_fbsd_reset_sbt: callout_reset_sbt_on.  sbt is relative, or with
 * C_ABSOLUTE an instant of callout_fbsd_sbinuptime(); it is rounded up to
 * whole ticks.  The handler may run anywhere in [sbt, sbt + precision],
 * where precision is pr, widened to sbt / 2^k by C_PREL(k); the window is
 * rounded down to whole ticks.  Same returns as callout_fbsd_reset_ticks.
 */
extern "C" CALLOUT_API int callout_fbsd_reset_sbt(callout_t *c, std::int64_t sbt, std::int64_t pr,
                                                  callout_func_t func, void *arg, int cpu, int flags) {
  CalloutImpl *ci = checked(c, "callout_reset_sbt (FreeBSD)");
  const callout_domain *d = ci->cpu.load(std::memory_order_relaxed)->domain;
  const unsigned hz = d->clock.hz();
  if (flags & kFbsdAbsolute) sbt -= ticks_to_sbt(d->clock.ticks(), hz);
  const int prel = ((flags >> kFbsdPrelShift) & ((1 << kFbsdPrelBits) - 1)) - 1;
  if (prel >= 0 && sbt > 0) {
    const std::int64_t relative = sbt >> prel;
    if (relative > pr) pr = relative;
  }
  std::uint64_t slack = 0;
  if (pr > 0) {
    const auto u = static_cast<std::uint64_t>(pr);
    slack = (u >> 32) * hz + (((u & 0xffffffffu) * hz) >> 32);  // rounded down
  }
  return fbsd_reset(c, sbt_to_ticks(sbt, hz), slack > INT_MAX ? INT_MAX : static_cast<int>(slack), func, arg,
                    cpu, "callout_reset_sbt (FreeBSD)");
}

/*
 * callout_fbsd_stop: FreeBSD's callout_stop (drain 0, async NULL),
 * callout_drain (drain 1) and callout_async_drain (async = its drain
 * function).  Clears ACTIVE on every path.  Returns, as FreeBSD 14:
 *   not running: 1 if c was pending (now unlinked), else -1;
 *   running, dispatch waiting for c's lock, which the caller holds (a mutex
 *     is assumed held, as FreeBSD asserts; giant is checked), stop only:
 *     the dispatch is cancelled, 1;
 *   running otherwise: stop and async drain take out a pending re-arm and
 *     return 0 (async: `async(arg)` runs on the softclock once c is no
 *     longer used, and resets are ignored until then); drain waits for the
 *     handler (a dispatch waiting for c's lock is not cancelled: the handler
 *     runs once that lock is free), taking out any re-arm, and returns 1 if
 *     it took one out, else -1.
 * stop and async drain never sleep; drain may (not from c's own handler:
 * misuse, it would wait for itself; not holding c's mutex, which the
 * dispatch may need).  Giant held by the drain's caller is released while
 * it waits.
 */
extern "C" CALLOUT_API int callout_fbsd_stop(callout_t *c, int drain,
                                             callout_func_t async) NO_THREAD_SAFETY_ANALYSIS {
  const char *function = drain   ? "callout_drain (FreeBSD)"
                         : async ? "callout_async_drain (FreeBSD)"
                                 : "callout_stop (FreeBSD)";
  CalloutImpl *ci = checked(c, function);
  Cpu *cpu = lock_callout(ci);
  ci->flags.fetch_and(~kActive, std::memory_order_relaxed);
  const bool running = cpu->running == ci;
  if (drain) {
    if (running && current_cpu() == cpu) {
      cpu->lock.unlock();
      misuse(function, c, ci->func, "called from the callout's own handler (it would wait for itself)");
    }
    cpu->lock.unlock();
    // FreeBSD's drain only sleeps: a dispatch waiting for the callout's lock
    // (held by some other thread) goes on, and the handler runs first.
    const HaltResult r = halt_common(ci, nullptr, false, false);
    cpu = lock_callout(ci);
    ci->flags.fetch_and(~kActive, std::memory_order_relaxed);
    cpu->lock.unlock();
    return r.unlinked ? 1 : -1;
  }
  // The stop's hold, sampled like callout_stop's (DESIGN.md, lock-hold counters).
  const std::uint64_t held = hold_begin(cpu);
  if (!running) {
    const bool unlinked = stop_locked(cpu, ci).unlinked;
    hold_end(cpu, held, &HoldStats::hold_ns_max_api);
    cpu->lock.unlock();
    return unlinked ? 1 : -1;
  }
  const std::uint32_t f = ci->flags.load(std::memory_order_relaxed);
  const bool holds_lock = (f & kMutex) != 0 || ((f & kGiant) != 0 && cpu->domain->giant.held_by_caller());
  if (async == nullptr && holds_lock && cpu->dispatching && !cpu->cancelled) {
    stop_locked(cpu, ci);  // cancels the dispatch
    hold_end(cpu, held, &HoldStats::hold_ns_max_api);
    cpu->lock.unlock();
    return 1;
  }
  stop_locked(cpu, ci, false);  // a re-arm goes; the invocation in progress stays
  if (async != nullptr) {
    if (cpu->ndrains == Cpu::kMaxDrains) {
      cpu->lock.unlock();
      misuse(function, c, ci->func, "too many drain functions pending on one callout");
    }
    cpu->drains[cpu->ndrains++] = {async, cpu->running_arg};
    ci->flags.fetch_or(kDraining, std::memory_order_relaxed);
  }
  hold_end(cpu, held, &HoldStats::hold_ns_max_api);
  cpu->lock.unlock();
  return 0;
}

/* callout_fbsd_pending / callout_fbsd_active: FreeBSD's predicates (one
 * atomic load; stale on return unless the caller holds the callout's lock). */
extern "C" CALLOUT_API int callout_fbsd_pending(callout_t *c) {
  return (checked(c, "callout_pending (FreeBSD)")->flags.load(std::memory_order_acquire) & kPending) != 0;
}
extern "C" CALLOUT_API int callout_fbsd_active(callout_t *c) {
  return (checked(c, "callout_active (FreeBSD)")->flags.load(std::memory_order_acquire) & kActive) != 0;
}

/* callout_fbsd_deactivate: clears ACTIVE (and nothing else).  Never sleeps. */
extern "C" CALLOUT_API void callout_fbsd_deactivate(callout_t *c) {
  CalloutImpl *ci = checked(c, "callout_deactivate (FreeBSD)");
  Cpu *cpu = lock_callout(ci);
  cpu->lock.assert_held();
  ci->flags.fetch_and(~kActive, std::memory_order_relaxed);
  cpu->lock.unlock();
}

/* hz, ticks and sbinuptime() of the calling thread's domain (callout_domain_current). */
extern "C" CALLOUT_API int callout_fbsd_hz(void) { return static_cast<int>(current_domain()->clock.hz()); }
extern "C" CALLOUT_API int callout_fbsd_ticks(void) {
  // FreeBSD's ticks is an int that wraps; so does this one (two's complement).
  return static_cast<int>(static_cast<unsigned>(current_domain()->clock.ticks()));
}
extern "C" CALLOUT_API std::int64_t callout_fbsd_sbinuptime(void) {
  const callout_domain *d = current_domain();
  return ticks_to_sbt(d->clock.ticks(), d->clock.hz());
}

// ---- Linux ------------------------------------------------------------------

namespace {

// jiffies at jhz of domain d's ticks (jhz == hz: the ticks themselves).
std::uint64_t jiffies_of(const callout_domain *d, unsigned jhz) {
  const std::uint64_t t = d->clock.ticks();
  const unsigned hz = d->clock.hz();
  return jhz == hz ? t : t / hz * jhz + t % hz * jhz / hz;
}

}  // namespace

/*
 * callout_linux_setup: timer_setup(): an MPSAFE, CALLOUT_NODESTROY callout
 * on d (NULL: callout_domain_current()); with TIMER_PINNED it never moves
 * from the CPU it is homed on.  Clears a shutdown.  Never sleeps.
 */
extern "C" CALLOUT_API void callout_linux_setup(callout_t *c, unsigned flags, callout_domain_t *d) {
  init_common(c, CALLOUT_MPSAFE | CALLOUT_NODESTROY, d, nullptr, "timer_setup");
  if (flags & kLinuxPinned) {
    CalloutImpl *ci = impl(c);
    Cpu *cpu = lock_callout(ci);
    cpu->lock.assert_held();
    ci->flags.fetch_or(kBound, std::memory_order_relaxed);
    cpu->lock.unlock();
  }
}

/*
 * callout_linux_mod: mod_timer (mode 0), mod_timer_pending (mode 1: only if
 * pending) and add_timer (mode 2: misuse if pending).  expires is absolute,
 * in jiffies at jhz; in the past means the next tick.  run(arg) is the
 * header's trampoline.  Returns 1 if the timer was pending, else 0 (also
 * when ignored after timer_shutdown).  Never sleeps.
 */
extern "C" CALLOUT_API int callout_linux_mod(callout_t *c, unsigned long expires, unsigned jhz,
                                             callout_func_t run, void *arg,
                                             int mode) NO_THREAD_SAFETY_ANALYSIS {
  const char *function = mode == 2 ? "add_timer" : mode == 1 ? "mod_timer_pending" : "mod_timer";
  CalloutImpl *ci = checked(c, function);
  if (jhz == 0) misuse(function, c, ci->func, "HZ is 0");
  Cpu *cpu = lock_callout(ci);
  const bool pending = (ci->flags.load(std::memory_order_relaxed) & kPending) != 0;
  if (mode == 2 && pending) {
    cpu->lock.unlock();
    misuse(function, c, ci->func, "the timer is already pending (use mod_timer)");
  }
  if (mode == 1 && !pending) {
    cpu->lock.unlock();
    return 0;
  }
  const callout_domain *d = cpu->domain;
  const long delta = static_cast<long>(expires - static_cast<unsigned long>(jiffies_of(d, jhz)));
  std::uint64_t ticks = 1;
  if (delta > 0) {
    const auto j = static_cast<std::uint64_t>(delta);
    const unsigned hz = d->clock.hz();
    ticks = jhz == hz ? j : j / jhz * hz + (j % jhz * hz + jhz - 1) / jhz;  // rounded up: never early
  }
  ci->func = run;
  ci->arg = arg;
  const unsigned r = schedule_locked(cpu, ci, due_after(ci, ticks));
  return (r & kIgnored) ? 0 : (r & kReplaced) ? 1 : 0;
}

/*
 * callout_linux_delete: timer_delete (sync 0) / timer_delete_sync (sync 1),
 * and with shutdown the timer_shutdown variants (later arms are ignored
 * until timer_setup).  Returns 1 if it took a pending arming out (for sync:
 * in any of its stops, including a re-arm made while it waited), else 0.
 * sync waits for a handler running in another thread; from the timer's own
 * handler it is misuse (Linux would never return).
 */
extern "C" CALLOUT_API int callout_linux_delete(callout_t *c, int sync,
                                                int shutdown) NO_THREAD_SAFETY_ANALYSIS {
  const char *function = sync ? (shutdown ? "timer_shutdown_sync" : "timer_delete_sync")
                              : (shutdown ? "timer_shutdown" : "timer_delete");
  CalloutImpl *ci = checked(c, function);
  Cpu *cpu = lock_callout(ci);
  if (!sync) {
    const std::uint64_t held = hold_begin(cpu);  // sampled, as callout_stop's
    const bool unlinked = stop_locked(cpu, ci).unlinked;
    if (shutdown) ci->flags.fetch_or(kShutdown, std::memory_order_relaxed);
    hold_end(cpu, held, &HoldStats::hold_ns_max_api);
    cpu->lock.unlock();
    return unlinked ? 1 : 0;
  }
  if (cpu->running == ci && current_cpu() == cpu) {
    cpu->lock.unlock();
    misuse(function, c, ci->func, "called from the timer's own handler (it would wait for itself)");
  }
  cpu->lock.unlock();
  return halt_common(ci, nullptr, shutdown != 0).unlinked ? 1 : 0;
}

/* callout_linux_jiffies: the calling thread's domain's ticks, at jhz per second. */
extern "C" CALLOUT_API unsigned long callout_linux_jiffies(unsigned jhz) {
  return static_cast<unsigned long>(jiffies_of(current_domain(), jhz == 0 ? 1 : jhz));
}
