// callout_impl.h -- the private layout of a callout inside callout_t.
//
// The public callout_t is 12 pointers of opaque storage and may never grow
// (the ABI rule of include/callout/callout.h).  This struct is what lives in it; the
// static_asserts below keep it inside, and aligned.  If a field is ever
// added and the struct no longer fits, reorder or pack it: the public size
// may not change.
//
// Which lock guards what (docs/DESIGN.md, "Locking"):
//   node, func, arg, halt_waiters, the state bits of flags: the lock of the
//     CPU that `cpu` names (Cpu::lock), found with lock_callout().
//   cpu: written only while holding the lock of the CPU it currently names
//     (and, when it moves, the new CPU's too); read anywhere.
//   mtx, magic, and the user bits of flags: written only by init/destroy,
//     when no other thread may use the callout.
#ifndef CALLOUT_SRC_CALLOUT_IMPL_H
#define CALLOUT_SRC_CALLOUT_IMPL_H

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "callout/callout.h"
#include "wheel.h"

namespace libcallout::internal {

struct Cpu;

// The state bits (NetBSD's values) and the internal ones.
enum : std::uint32_t {
  kBound = 0x0001,     // never migrates to a resetting softclock: callout_bind,
                       // giant-locked, FreeBSD (moved by callout_reset_on
                       // only) or Linux's TIMER_PINNED
  kPending = 0x0002,   // in a wheel (bucket or expired list)
  kFired = 0x0004,     // invoked since the last reset/schedule/stop
  kInvoking = 0x0008,  // invoked and not yet acknowledged
  kUserFlags = CALLOUT_MPSAFE | CALLOUT_RETURNUNLOCKED | CALLOUT_NODESTROY,
  kGiant = 0x1000,     // runs under the domain's giant lock (not MPSAFE, no mutex)
  kMutex = 0x2000,     // runs under its own associated mutex (callout_init_mtx)
  kShutdown = 0x4000,  // callout_shutdown: reset/schedule are ignored until init
  kDraining = 0x8000,  // callout_halt_async (or FreeBSD's callout_async_drain)
                       // pending: reset/schedule are ignored
  // The kernel-KPI layer (compat.cpp):
  kFreeBSD = 0x10000,  // FreeBSD's rules: resets ignored while a drain waits
  kActive = 0x20000,   // FreeBSD's ACTIVE: set by its resets, cleared by its
                       // stop/drain/deactivate, not by the handler running
};

constexpr std::uint32_t kMagic = 0x11deeba1;  // NetBSD's CALLOUT_MAGIC

// Field order: what reset/stop touch (node, flags, magic, cpu, func, arg)
// comes first and, on 64-bit targets, fills exactly the first 64 bytes; mtx
// and halt_waiters, read when the softclock dispatches a callout, by halt,
// and by a FreeBSD-KPI reset, last (the benchmark profile showed the second
// cache line of every
// callout being fetched for flags and magic alone).  On 32-bit targets the
// whole struct is 12 pointers, 48 bytes, with nothing to spare.
struct CalloutImpl {
  WheelNode node;
  // State bits are written under the CPU lock; the predicates read them with
  // one atomic load, without the lock (the answer is stale on return anyway,
  // exactly as it is in NetBSD once the lock is dropped).
  std::atomic<std::uint32_t> flags;
  std::uint32_t magic;
  std::atomic<Cpu *> cpu;
  callout_func_t func;
  void *arg;
  pthread_mutex_t *mtx;
  // How many threads are waiting in halt (callout_halt, shutdown_sync,
  // FreeBSD's drain) for this callout's running handler to return.  While it
  // is not zero the softclock leaves a re-armed callout stopped instead of
  // running it again (docs/DESIGN.md, H1), and a FreeBSD callout's resets
  // are ignored.  Guarded, like node, by the lock of the CPU that `cpu`
  // names.
  std::uint32_t halt_waiters;
};

static_assert(sizeof(callout_t) == 12 * sizeof(void *), "the public callout_t may never change size");
static_assert(sizeof(CalloutImpl) <= sizeof(callout_t), "callout_t is too small for the private layout");
static_assert(alignof(CalloutImpl) <= alignof(callout_t),
              "callout_t is not aligned enough for the private layout");
// The hot fields are declared first, so the end of the last one (arg) bounds
// them all: one 64-byte cache line on 64-bit targets, when callout_t is
// 64-byte aligned.
static_assert(sizeof(void *) != 8 || offsetof(CalloutImpl, arg) + sizeof(void *) <= 64,
              "the fields reset/stop touch fit in the first 64 bytes");
static_assert(offsetof(CalloutImpl, mtx) > offsetof(CalloutImpl, arg) &&
                  offsetof(CalloutImpl, halt_waiters) > offsetof(CalloutImpl, arg),
              "the fields reset/stop do not touch come after those they do");
static_assert(std::atomic<Cpu *>::is_always_lock_free && std::atomic<std::uint32_t>::is_always_lock_free);

inline CalloutImpl *impl(callout_t *c) { return reinterpret_cast<CalloutImpl *>(c); }
inline CalloutImpl *impl(WheelNode *n) { return reinterpret_cast<CalloutImpl *>(n); }
// A WheelNode* from a wheel converts back to its callout: node is the first
// member of a standard-layout struct.
static_assert(std::is_standard_layout_v<CalloutImpl> && offsetof(CalloutImpl, node) == 0);

}  // namespace libcallout::internal

#endif  // CALLOUT_SRC_CALLOUT_IMPL_H
