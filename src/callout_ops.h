// callout_ops.h -- the state machine's primitives, shared by the native
// entry points (callout.cpp) and the kernel-KPI entry points (compat.cpp).
//
// The *_locked primitives work on a callout whose CPU lock the caller holds
// (found with lock_callout()); halt_common() takes and drops it as it waits,
// and init_common() takes the new home's lock itself.  The native functions
// and the FreeBSD/Linux ones differ only in what they report and in a few
// policy choices (whether a stop cancels a dispatch waiting for its lock,
// whether resets are ignored while a drain waits); the transitions
// themselves are these, so both APIs keep the same invariants
// (docs/DESIGN.md, "State machine").
#ifndef CALLOUT_SRC_CALLOUT_OPS_H
#define CALLOUT_SRC_CALLOUT_OPS_H

#include <cstdint>

#include "callout_impl.h"
#include "cpu.h"

namespace libcallout::internal {

// The callout behind c, after checking the magic number (misuse otherwise).
CalloutImpl *checked(callout_t *c, const char *function);

// Whether a thread other than the caller is dispatching c or running its
// handler.  Only cpu's softclock ever does (c never migrates while running),
// so "other than the caller" means "the caller is not that softclock".
inline bool running_elsewhere(Cpu *cpu, const CalloutImpl *c) REQUIRES(cpu->lock) {
  return cpu->running == c && current_cpu() != cpu;
}

// What a stop did.
struct StopResult {
  bool fired;      // FIRED was set (NetBSD's return value)
  bool unlinked;   // c was pending and has been taken out of the wheel
  bool cancelled;  // a dispatch waiting for c's associated lock was cancelled
};

// Unschedules c and clears PENDING and FIRED.  With cancel_dispatch, a
// dispatch of c waiting for its associated lock is cancelled (the native
// rule); without, it goes on (FreeBSD's rule for a caller that does not
// hold that lock).
StopResult stop_locked(Cpu *cpu, CalloutImpl *c, bool cancel_dispatch = true) REQUIRES(cpu->lock);

// Whether a reset of c is ignored now (teardown in progress, so that a
// racing re-arm cannot undo it): after callout_shutdown, while a
// callout_halt_async completion is pending, and, for a FreeBSD callout,
// while a drain waits for it (FreeBSD's rule).  Called under c's CPU lock;
// f: c's flags, loaded under that same lock.
inline bool resets_ignored(const CalloutImpl *c, std::uint32_t f) {
  return (f & (kShutdown | kDraining)) != 0 || ((f & kFreeBSD) != 0 && c->halt_waiters != 0);
}
inline bool resets_ignored(const CalloutImpl *c) {
  return resets_ignored(c, c->flags.load(std::memory_order_relaxed));
}

// What schedule_locked() did: bits.
enum : unsigned {
  kReplaced = 1u,           // c was pending; it has been moved to the new tick
  kCancelledDispatch = 2u,  // a dispatch waiting for c's lock was cancelled
  kIgnored = 4u,            // teardown in progress: nothing changed
};

// Schedules c at tick `due` and releases the CPU lock.  Returns kReplaced,
// kCancelledDispatch, kIgnored bits.
unsigned schedule_locked(Cpu *cpu, CalloutImpl *c, std::uint64_t due) RELEASE(cpu->lock);

// The due tick of a reset made now with `ticks` (<= 0 means 1).
std::uint64_t due_tick(const CalloutImpl *c, int ticks);

// The tick a precision window [due, due + slack] resolves to (callout_reset_window).
std::uint64_t window_tick(std::uint64_t due, int slack);

// What a halt did.
struct HaltResult {
  bool waited;    // another thread was using c; the halt waited for it
  bool unlinked;  // some stop of the halt took a pending arming out of the wheel
};

// callout_halt and its variants: stops c (marking it shut down first if
// asked), then waits while another thread dispatches or runs c, releasing
// `interlock` and giant as callout_halt documents.  cancel_dispatch as for
// stop_locked: FreeBSD's drain lets a dispatch waiting for c's lock go on
// (the handler then runs, and the drain waits for it).
HaltResult halt_common(CalloutImpl *c, pthread_mutex_t *interlock, bool shutdown,
                       bool cancel_dispatch = true);

// Prepares c.  flags: the public flags (others are misuse); mode: internal
// bits the compat layer adds (kFreeBSD: FreeBSD's rules, homed on CPU 0 and
// bound there).  d NULL: the calling softclock's domain, else the default.
void init_common(callout_t *c, std::uint32_t flags, callout_domain *d, pthread_mutex_t *mtx,
                 const char *function, std::uint32_t mode = 0);

}  // namespace libcallout::internal

#endif  // CALLOUT_SRC_CALLOUT_OPS_H
