// freebsd_test.cpp -- FreeBSD's callout(9) KPI through <callout/compat/freebsd.h>.
//
// Every row of FreeBSD 14's stop / drain / async-drain return table, with
// real softclock threads where the row needs a handler running or a
// dispatch waiting for the callout's lock; the ACTIVE/PENDING protocol;
// resets ignored while a drain waits; CPU moves, sbintime_t windows; memory
// freed and overwritten right after a drain; hz and ticks.
//
// Domains: monotonic ones where a handler must really run on another thread
// (the test blocks it on a Latch), virtual ones (handlers run inside
// callout_domain_advance, in this thread) where exact ticks matter.
// The order matters (compat_util.h says why):
// clang-format off
#include "compat_util.h"  // first: the compat header defines hz and ticks

#include <errno.h>
#include <pthread.h>

#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include <callout/compat/freebsd.h>
// clang-format on

namespace {

using namespace compat;  // the helpers of compat_util.h

// What a handler saw and did.  The callout's arg points at it.
struct Probe {
  struct callout *c = nullptr;
  callout_domain_t *d = nullptr;
  bool block = false;                  // wait for `release` before returning
  std::function<void(Probe *)> body;   // runs first (re-arms, checks)
  std::function<void(Probe *)> after;  // runs after `release`
  Counter runs;                        // handler entries
  Counter finished;                    // handler returns
  Latch release;
  std::atomic<int> cpu{-2};
  std::atomic<std::uint64_t> tick{0};
  std::atomic<int> pending_in{-1}, active_in{-1};
  // The drain function's view.
  Counter drained;
  std::atomic<void *> drain_arg{nullptr};
  std::atomic<int> finished_at_drain{-1};

  Probe(struct callout *c_, callout_domain_t *d_) : c(c_), d(d_) {}
};

void probe_fn(void *arg) {
  auto *p = static_cast<Probe *>(arg);
  p->cpu.store(callout_domain_curcpu(p->d));
  p->tick.store(callout_domain_ticks(p->d));
  p->pending_in.store(callout_pending(p->c));
  p->active_in.store(callout_active(p->c));
  if (p->body) p->body(p);
  p->runs.add();
  if (p->block) {
    EXPECT_TRUE(p->release.wait());
  }
  if (p->after) p->after(p);
  p->finished.add();  // last: the test may free p once it sees this
}

// A callout_async_drain function: called with the callout's arg.
void drain_fn(void *arg) {
  auto *p = static_cast<Probe *>(arg);
  p->drain_arg.store(arg);
  p->finished_at_drain.store(p->finished.get());
  p->drained.add();  // last
}

struct Mutex {
  pthread_mutex_t m;
  Mutex() { pthread_mutex_init(&m, nullptr); }
  ~Mutex() { pthread_mutex_destroy(&m); }
  pthread_mutex_t *get() { return &m; }
};

// A thread that holds a lock (a mutex, or giant) until release().
class Holder {
 public:
  Holder(std::function<void()> take, std::function<void()> give)
      : t_([this, take = std::move(take), give = std::move(give)] {
          take();
          held_.open();
          EXPECT_TRUE(release_.wait());
          give();
        }) {
    EXPECT_TRUE(held_.wait());
  }
  ~Holder() {
    release();
    t_.join();
  }
  void release() { release_.open(); }

 private:
  Latch held_, release_;
  std::thread t_;
};

// Runs callout_drain(c) on another thread and records what it returned and
// how many handler runs had finished by then.  wait_until_blocked() returns
// once the drain sleeps (or has returned: then the caller's check fails).
class Drainer {
 public:
  Drainer(callout_domain_t *d, struct callout *c, Probe *p)
      : call_(d, [this, c, p] {
          rc_.store(callout_drain(c));
          finished_at_return_.store(p->finished.get());
        }) {}
  bool wait_until_blocked() { return call_.wait_until_blocked(); }
  bool done() const { return call_.done(); }
  int join() {
    call_.join();
    return rc_.load();
  }
  int finished_at_return() const { return finished_at_return_.load(); }

 private:
  std::atomic<int> rc_{99};
  std::atomic<int> finished_at_return_{-1};
  BlockingCall call_;  // last: its thread writes the members above
};

constexpr sbintime_t kTick1000 = SBT_1S / 1000;  // one tick at 1000 Hz

// The starting point of the rows where the handler is executing: c on a
// one-CPU monotonic domain, its handler blocked on p.release once start()
// returns.  Members are torn down in reverse: a drain thread is joined
// before the probe it reads goes, and the domain is checked last.
struct Running {
  Domain d{1, CALLOUT_CLOCK_MONOTONIC};
  struct callout c;
  Probe p{&c, d};
  std::optional<Drainer> drainer;

  explicit Running(std::function<void(Probe *)> body = {}) {
    p.block = true;
    p.body = std::move(body);
    callout_init_on(&c, 1, d);
  }
  // Arms c for the next tick and waits for its handler to enter.  Call it
  // under ASSERT_NO_FATAL_FAILURE: a handler that never runs ends the test.
  void start() {
    EXPECT_EQ(callout_reset(&c, 1, probe_fn, &p), 0);
    ASSERT_TRUE(p.runs.wait_for(1));
  }
  // Starts callout_drain(&c) on another thread.
  Drainer &drain() { return drainer.emplace(d, &c, &p); }
};

// The starting point of the rows where a dispatch waits for the callout's
// mutex: c is associated with m, and start() returns holding m once the
// softclock has taken c for dispatch (PENDING clears then).
struct Dispatching {
  Domain d{1, CALLOUT_CLOCK_MONOTONIC};
  Mutex m;
  struct callout c;
  Probe p{&c, d};

  Dispatching() { callout_init_mtx_on(&c, m.get(), 0, d); }
  // Call it under ASSERT_NO_FATAL_FAILURE.
  void start() {
    pthread_mutex_lock(m.get());
    EXPECT_EQ(callout_reset(&c, 1, probe_fn, &p), 0);
    ASSERT_TRUE(poll_until([&] { return !callout_pending(&c); }));
  }
};

// ---- row 1: pending, not running -> 1 --------------------------------------

TEST(FreeBsdStopTable, PendingNotRunningIsOneForStopDrainAndAsyncDrain) {
  Domain d(1, CALLOUT_CLOCK_VIRTUAL);
  struct callout c, other;
  Probe p(&c, d), q(&other, d);
  callout_init_on(&c, 1, d);
  callout_init_on(&other, 1, d);

  EXPECT_EQ(callout_reset(&c, 5, probe_fn, &p), 0);
  EXPECT_EQ(callout_stop(&c), 1);
  EXPECT_FALSE(callout_pending(&c));

  EXPECT_EQ(callout_reset(&c, 5, probe_fn, &p), 0);
  EXPECT_EQ(callout_drain(&c), 1);
  EXPECT_FALSE(callout_pending(&c));

  EXPECT_EQ(callout_reset(&c, 5, probe_fn, &p), 0);
  EXPECT_EQ(callout_async_drain(&c, drain_fn), 1);
  EXPECT_FALSE(callout_pending(&c));

  // Another callout runs on the same CPU: a drain function wrongly recorded
  // would be called when its dispatch ends.
  EXPECT_EQ(callout_reset(&other, 3, probe_fn, &q), 0);
  ASSERT_EQ(d.advance(10), 0);
  EXPECT_EQ(q.runs.get(), 1);
  EXPECT_EQ(p.runs.get(), 0);
  EXPECT_EQ(p.drained.get(), 0);
  EXPECT_EQ(q.drained.get(), 0);
}

// ---- row 2: neither pending nor running -> -1 ------------------------------

TEST(FreeBsdStopTable, IdleIsMinusOneForStopDrainAndAsyncDrain) {
  Domain d(1, CALLOUT_CLOCK_VIRTUAL);
  struct callout c;
  Probe p(&c, d);
  callout_init_on(&c, 1, d);
  // Never armed.
  EXPECT_EQ(callout_stop(&c), -1);
  EXPECT_EQ(callout_drain(&c), -1);
  EXPECT_EQ(callout_async_drain(&c, drain_fn), -1);
  // Armed, run, done.
  EXPECT_EQ(callout_reset(&c, 2, probe_fn, &p), 0);
  ASSERT_EQ(d.advance(2), 0);
  ASSERT_EQ(p.finished.get(), 1);
  EXPECT_EQ(callout_stop(&c), -1);
  EXPECT_EQ(callout_drain(&c), -1);
  EXPECT_EQ(callout_async_drain(&c, drain_fn), -1);
  // Stopped already.
  EXPECT_EQ(callout_reset(&c, 2, probe_fn, &p), 0);
  EXPECT_EQ(callout_stop(&c), 1);
  EXPECT_EQ(callout_stop(&c), -1);
  ASSERT_EQ(d.advance(5), 0);
  EXPECT_EQ(p.runs.get(), 1);
  EXPECT_EQ(p.drained.get(), 0);
}

// ---- row 3: a lock-associated dispatch waiting for its mutex ---------------

// The test holds the mutex when the softclock takes the callout: its
// dispatch now waits for the mutex, and a stop made holding it cancels the
// dispatch (1); the handler never runs.
TEST(FreeBsdStopTable, StopHoldingTheMutexCancelsTheWaitingDispatch) {
  Dispatching r;
  ASSERT_NO_FATAL_FAILURE(r.start());
  EXPECT_EQ(callout_stop(&r.c), 1);
  EXPECT_FALSE(callout_active(&r.c));
  pthread_mutex_unlock(r.m.get());

  // Wait for the dispatch to end without stopping c again (a drain would
  // cancel a dispatch the stop had left alone).
  ASSERT_EQ(callout_domain_drain(r.d), 0);
  EXPECT_EQ(r.p.runs.get(), 0);
  EXPECT_EQ(callout_drain(&r.c), -1);
}

// An async drain in the same state does not cancel: 0, the handler runs
// once the mutex is free, then the drain function, with the callout's arg.
TEST(FreeBsdStopTable, AsyncDrainHoldingTheMutexLetsTheHandlerRunThenCallsTheDrainFunction) {
  Dispatching r;
  ASSERT_NO_FATAL_FAILURE(r.start());
  EXPECT_EQ(callout_async_drain(&r.c, drain_fn), 0);
  EXPECT_EQ(r.p.drained.get(), 0);  // the dispatch still waits for m
  EXPECT_EQ(r.p.runs.get(), 0);
  pthread_mutex_unlock(r.m.get());

  ASSERT_TRUE(r.p.drained.wait_for(1));
  EXPECT_EQ(r.p.runs.get(), 1);
  EXPECT_EQ(r.p.finished_at_drain.load(), 1);  // after the handler returned
  EXPECT_EQ(r.p.drain_arg.load(), static_cast<void *>(&r.p));
  ASSERT_EQ(callout_domain_drain(r.d), 0);
  EXPECT_EQ(r.p.drained.get(), 1);  // once
  EXPECT_EQ(callout_stop(&r.c), -1);
}

// A reset in the same state also cancels the waiting dispatch and says so
// (1): the handler runs once, for the new arming, not for the old one.
TEST(FreeBsdReset, ResetHoldingTheMutexCancelsTheWaitingDispatchAndReturnsOne) {
  Dispatching r;
  ASSERT_NO_FATAL_FAILURE(r.start());
  EXPECT_EQ(callout_reset(&r.c, 1000000, probe_fn, &r.p), 1);
  EXPECT_TRUE(callout_pending(&r.c));
  pthread_mutex_unlock(r.m.get());
  ASSERT_EQ(callout_domain_drain(r.d), 0);  // the old dispatch is over
  EXPECT_EQ(r.p.runs.get(), 0);
  pthread_mutex_lock(r.m.get());
  EXPECT_EQ(callout_stop(&r.c), 1);  // the new arming
  pthread_mutex_unlock(r.m.get());
}

// CALLOUT_RETURNUNLOCKED: the handler runs holding the mutex and releases it.
void unlocking_fn(void *arg) {
  auto *m = static_cast<pthread_mutex_t *>(arg);
  EXPECT_EQ(pthread_mutex_trylock(m), EBUSY);  // held (by this thread)
  pthread_mutex_unlock(m);
}

TEST(FreeBsdReset, ReturnUnlockedHandlerReleasesTheMutex) {
  Domain d(1, CALLOUT_CLOCK_VIRTUAL);
  Mutex m;
  struct callout c;
  callout_init_mtx_on(&c, m.get(), CALLOUT_RETURNUNLOCKED, d);
  EXPECT_EQ(callout_reset(&c, 1, unlocking_fn, m.get()), 0);
  ASSERT_EQ(d.advance(1), 0);
  ASSERT_EQ(pthread_mutex_trylock(m.get()), 0);  // released by the handler
  pthread_mutex_unlock(m.get());
  EXPECT_EQ(callout_drain(&c), -1);
}

// drain by a thread that does not hold the mutex (a third thread does): it
// sleeps while the dispatch waits, the handler runs once the mutex is free,
// and drain returns -1 after it.  (Drain holding the mutex itself would
// deadlock: documented misuse, not tested.)
TEST(FreeBsdStopTable, DrainWaitsForADispatchBlockedOnAThirdThreadsMutexThenMinusOne) {
  Domain d(1, CALLOUT_CLOCK_MONOTONIC);
  Mutex m;
  struct callout c;
  Probe p(&c, d);
  callout_init_mtx_on(&c, m.get(), 0, d);

  Holder third([&] { pthread_mutex_lock(m.get()); }, [&] { pthread_mutex_unlock(m.get()); });
  EXPECT_EQ(callout_reset(&c, 1, probe_fn, &p), 0);
  ASSERT_TRUE(poll_until([&] { return !callout_pending(&c); }));
  Drainer drainer(d, &c, &p);
  ASSERT_TRUE(drainer.wait_until_blocked()) << "drain returned while the dispatch waited for the mutex";
  third.release();
  EXPECT_EQ(drainer.join(), -1);
  EXPECT_EQ(p.runs.get(), 1) << "FreeBSD's drain does not cancel the dispatch: the handler runs";
  EXPECT_EQ(drainer.finished_at_return(), p.runs.get());
}

// ---- row 4: the handler is executing ---------------------------------------

// stop -> 0, and a re-arm made meanwhile (by another thread, or by the
// handler itself) is taken out: still 0.
TEST(FreeBsdStopTable, StopWhileRunningIsZeroAndRemovesAReArm) {
  Running r;
  ASSERT_NO_FATAL_FAILURE(r.start());
  EXPECT_EQ(callout_stop(&r.c), 0);                      // running, nothing pending
  EXPECT_EQ(callout_reset(&r.c, 1, probe_fn, &r.p), 0);  // re-armed by this thread
  EXPECT_TRUE(callout_pending(&r.c));
  EXPECT_EQ(callout_stop(&r.c), 0);  // still running: 0, and the re-arm is gone
  EXPECT_FALSE(callout_pending(&r.c));
  EXPECT_FALSE(callout_active(&r.c));
  r.p.release.open();
  ASSERT_TRUE(r.p.finished.wait_for(1));
  EXPECT_EQ(callout_drain(&r.c), -1);  // 1 here would mean the re-arm survived
  EXPECT_EQ(r.p.runs.get(), 1);
}

TEST(FreeBsdStopTable, StopWhileRunningRemovesTheHandlersOwnReArm) {
  Running r([](Probe *q) { EXPECT_EQ(callout_reset(q->c, 1, probe_fn, q), 0); });
  ASSERT_NO_FATAL_FAILURE(r.start());
  EXPECT_TRUE(callout_pending(&r.c));
  EXPECT_EQ(callout_stop(&r.c), 0);
  EXPECT_FALSE(callout_pending(&r.c));
  r.p.release.open();
  ASSERT_TRUE(r.p.finished.wait_for(1));
  EXPECT_EQ(callout_drain(&r.c), -1);
  EXPECT_EQ(r.p.runs.get(), 1);
}

// drain sleeps until the handler returns (it must not return before the
// test releases it), then -1.
TEST(FreeBsdStopTable, DrainWhileRunningWaitsThenMinusOne) {
  Running r;
  ASSERT_NO_FATAL_FAILURE(r.start());
  Drainer &drainer = r.drain();
  const bool blocked = drainer.wait_until_blocked();
  r.p.release.open();
  EXPECT_TRUE(blocked) << "drain returned while the handler was still running";
  EXPECT_EQ(drainer.join(), -1);
  EXPECT_EQ(drainer.finished_at_return(), 1);
  EXPECT_FALSE(callout_active(&r.c));
}

// The handler re-armed itself before the drain: drain waits, takes the
// re-arm out and returns 1.
TEST(FreeBsdStopTable, DrainWhileRunningWithAReArmWaitsThenOne) {
  Running r([](Probe *q) { EXPECT_EQ(callout_reset(q->c, 1, probe_fn, q), 0); });
  ASSERT_NO_FATAL_FAILURE(r.start());
  ASSERT_TRUE(callout_pending(&r.c));
  Drainer &drainer = r.drain();
  const bool blocked = drainer.wait_until_blocked();
  r.p.release.open();
  EXPECT_TRUE(blocked) << "drain returned while the handler was still running";
  EXPECT_EQ(drainer.join(), 1);
  EXPECT_EQ(drainer.finished_at_return(), 1);
  EXPECT_FALSE(callout_pending(&r.c));
  EXPECT_EQ(callout_stop(&r.c), -1);
  EXPECT_EQ(r.p.runs.get(), 1);
}

// async drain: 0 at once; the function runs once, after the handler returns.
TEST(FreeBsdStopTable, AsyncDrainWhileRunningIsZeroAndCallsTheFunctionOnceAfterTheHandler) {
  Running r;
  ASSERT_NO_FATAL_FAILURE(r.start());
  EXPECT_EQ(callout_async_drain(&r.c, drain_fn), 0);
  EXPECT_FALSE(callout_active(&r.c));
  EXPECT_EQ(r.p.drained.get(), 0);  // the handler is still blocked
  r.p.release.open();
  ASSERT_TRUE(r.p.drained.wait_for(1));
  EXPECT_EQ(r.p.finished_at_drain.load(), 1);
  EXPECT_EQ(r.p.drain_arg.load(), static_cast<void *>(&r.p));
  ASSERT_EQ(callout_domain_drain(r.d), 0);
  EXPECT_EQ(r.p.drained.get(), 1);
  EXPECT_EQ(callout_stop(&r.c), -1);
}

// ---- giant-locked callouts (callout_init(c, 0)) ----------------------------

TEST(FreeBsdStopTable, GiantStopHoldingGiantCancelsTheWaitingDispatch) {
  Domain d(1, CALLOUT_CLOCK_MONOTONIC);
  struct callout c;
  Probe p(&c, d);
  callout_init_on(&c, 0, d);

  callout_giant_enter(d);
  EXPECT_EQ(callout_reset(&c, 1, probe_fn, &p), 0);
  ASSERT_TRUE(poll_until([&] { return !callout_pending(&c); }));
  EXPECT_EQ(callout_stop(&c), 1);
  callout_giant_exit(d);
  ASSERT_EQ(callout_domain_drain(d), 0);  // the dispatch is over
  EXPECT_EQ(p.runs.get(), 0);
  EXPECT_EQ(callout_drain(&c), -1);
}

TEST(FreeBsdStopTable, GiantStopNotHoldingGiantIsZeroAndTheHandlerRuns) {
  Domain d(1, CALLOUT_CLOCK_MONOTONIC);
  struct callout c;
  Probe p(&c, d);
  callout_init_on(&c, 0, d);

  Holder third([&] { callout_giant_enter(d); }, [&] { callout_giant_exit(d); });
  EXPECT_EQ(callout_reset(&c, 1, probe_fn, &p), 0);
  ASSERT_TRUE(poll_until([&] { return !callout_pending(&c); }));
  EXPECT_EQ(callout_stop(&c), 0);
  EXPECT_FALSE(callout_active(&c));
  third.release();
  ASSERT_TRUE(p.finished.wait_for(1));
  EXPECT_EQ(callout_drain(&c), -1);
  EXPECT_EQ(p.runs.get(), 1);
}

// ---- ACTIVE, PENDING, deactivate -------------------------------------------

TEST(FreeBsdState, ActivePendingDeactivateThroughAFullCycle) {
  Domain d(1, CALLOUT_CLOCK_VIRTUAL);
  struct callout c;
  Probe p(&c, d);
  callout_init_on(&c, 1, d);
  EXPECT_FALSE(callout_active(&c));
  EXPECT_FALSE(callout_pending(&c));

  EXPECT_EQ(callout_reset(&c, 10, probe_fn, &p), 0);  // reset sets both
  EXPECT_TRUE(callout_active(&c));
  EXPECT_TRUE(callout_pending(&c));
  ASSERT_EQ(d.advance(10), 0);
  ASSERT_EQ(p.runs.get(), 1);
  EXPECT_EQ(p.pending_in.load(), 0);  // the run clears PENDING ...
  EXPECT_EQ(p.active_in.load(), 1);   // ... but not ACTIVE
  EXPECT_FALSE(callout_pending(&c));
  EXPECT_TRUE(callout_active(&c));
  callout_deactivate(&c);
  EXPECT_FALSE(callout_active(&c));

  EXPECT_EQ(callout_reset(&c, 10, probe_fn, &p), 0);
  callout_deactivate(&c);  // ACTIVE only
  EXPECT_FALSE(callout_active(&c));
  EXPECT_TRUE(callout_pending(&c));
  EXPECT_EQ(callout_reset(&c, 10, probe_fn, &p), 1);
  EXPECT_TRUE(callout_active(&c));
  EXPECT_EQ(callout_stop(&c), 1);  // the 1 path
  EXPECT_FALSE(callout_active(&c));
  EXPECT_FALSE(callout_pending(&c));

  // The -1 paths clear ACTIVE too (the man page; FreeBSD's code does not).
  EXPECT_EQ(callout_reset(&c, 1, probe_fn, &p), 0);
  ASSERT_EQ(d.advance(1), 0);
  ASSERT_TRUE(callout_active(&c));
  EXPECT_EQ(callout_stop(&c), -1);
  EXPECT_FALSE(callout_active(&c));

  EXPECT_EQ(callout_reset(&c, 1, probe_fn, &p), 0);
  ASSERT_EQ(d.advance(1), 0);
  ASSERT_TRUE(callout_active(&c));
  EXPECT_EQ(callout_drain(&c), -1);
  EXPECT_FALSE(callout_active(&c));

  EXPECT_EQ(callout_reset(&c, 1, probe_fn, &p), 0);
  EXPECT_EQ(callout_drain(&c), 1);
  EXPECT_FALSE(callout_active(&c));

  EXPECT_EQ(callout_reset(&c, 1, probe_fn, &p), 0);
  ASSERT_EQ(d.advance(1), 0);
  ASSERT_TRUE(callout_active(&c));
  EXPECT_EQ(callout_async_drain(&c, drain_fn), -1);
  EXPECT_FALSE(callout_active(&c));
  EXPECT_EQ(p.runs.get(), 4);
}

// ---- resets ----------------------------------------------------------------

TEST(FreeBsdReset, ReturnsOneOnlyWhenItReplacesAPendingArming) {
  Domain d(1, CALLOUT_CLOCK_VIRTUAL);
  struct callout c;
  Probe p(&c, d);
  callout_init_on(&c, 1, d);
  EXPECT_EQ(callout_reset(&c, 5, probe_fn, &p), 0);
  EXPECT_EQ(callout_reset(&c, 7, probe_fn, &p), 1);
  EXPECT_EQ(callout_schedule(&c, 9), 1);
  EXPECT_EQ(callout_reset_sbt(&c, 4 * kTick1000, 0, probe_fn, &p, 0), 1);
  ASSERT_EQ(d.advance(4), 0);
  EXPECT_EQ(p.runs.get(), 1);  // one arming, replaced three times
  EXPECT_EQ(callout_schedule(&c, 3), 0);
  EXPECT_EQ(callout_reset_curcpu(&c, 3, probe_fn, &p), 1);
  EXPECT_EQ(callout_stop(&c), 1);
  EXPECT_EQ(callout_reset(&c, 3, probe_fn, &p), 0);
  ASSERT_EQ(d.advance(3), 0);
  EXPECT_EQ(p.runs.get(), 2);
}

// FreeBSD's stop takes the CPU lock like callout_stop, and its hold is
// sampled the same way: after twice the sample period of stops and nothing
// else, the longest API hold is set.
TEST(FreeBsdStats, StopHoldsAreSampled) {
  Domain d(1, CALLOUT_CLOCK_VIRTUAL);
  struct callout c;
  callout_init_on(&c, 1, d);
  EXPECT_EQ(api_hold_max(d), 0u);
  for (int i = 0; i < kTwiceTheHoldSample; ++i) EXPECT_EQ(callout_stop(&c), -1);
  EXPECT_GT(api_hold_max(d), 0u);
}

// While a drain sleeps on c, resets of c are ignored: 0, not pending, ACTIVE
// clear -- and drain, finding nothing to take out, returns -1.
TEST(FreeBsdReset, IgnoredWhileADrainWaits) {
  Running r;
  ASSERT_NO_FATAL_FAILURE(r.start());
  Drainer &drainer = r.drain();
  const bool blocked = drainer.wait_until_blocked();
  EXPECT_TRUE(blocked);
  EXPECT_EQ(callout_reset(&r.c, 1, probe_fn, &r.p), 0);
  EXPECT_EQ(callout_schedule(&r.c, 1), 0);
  EXPECT_EQ(callout_reset_sbt(&r.c, kTick1000, 0, probe_fn, &r.p, 0), 0);
  EXPECT_FALSE(callout_pending(&r.c));
  EXPECT_FALSE(callout_active(&r.c));
  r.p.release.open();
  EXPECT_EQ(drainer.join(), -1);
  EXPECT_EQ(callout_stop(&r.c), -1);
  EXPECT_EQ(r.p.runs.get(), 1);
}

// The same while an async drain is outstanding; once the drain function
// has run, resets work again.
TEST(FreeBsdReset, IgnoredWhileAnAsyncDrainIsOutstanding) {
  Running r;
  ASSERT_NO_FATAL_FAILURE(r.start());
  EXPECT_EQ(callout_async_drain(&r.c, drain_fn), 0);
  EXPECT_EQ(callout_reset(&r.c, 1, probe_fn, &r.p), 0);
  EXPECT_EQ(callout_schedule(&r.c, 1), 0);
  EXPECT_FALSE(callout_pending(&r.c));
  EXPECT_FALSE(callout_active(&r.c));
  r.p.release.open();
  ASSERT_TRUE(r.p.drained.wait_for(1));
  EXPECT_EQ(callout_stop(&r.c), -1);  // the ignored resets left nothing behind

  r.p.block = false;
  EXPECT_EQ(callout_reset(&r.c, 1000, probe_fn, &r.p), 0);
  EXPECT_TRUE(callout_pending(&r.c));
  EXPECT_TRUE(callout_active(&r.c));
  EXPECT_EQ(callout_stop(&r.c), 1);
  EXPECT_EQ(r.p.runs.get(), 1);
}

TEST(FreeBsdReset, ResetOnMovesTheCalloutToAnotherCpu) {
  Domain d(2, CALLOUT_CLOCK_VIRTUAL);
  struct callout c;
  Probe p(&c, d);
  callout_init_on(&c, 1, d);

  EXPECT_EQ(callout_reset(&c, 1, probe_fn, &p), 0);  // FreeBSD's default CPU
  ASSERT_EQ(d.advance(1), 0);
  EXPECT_EQ(p.cpu.load(), 0);
  EXPECT_EQ(callout_reset_on(&c, 1, probe_fn, &p, 1), 0);
  ASSERT_EQ(d.advance(1), 0);
  EXPECT_EQ(p.cpu.load(), 1);
  EXPECT_EQ(callout_reset(&c, 1, probe_fn, &p), 0);  // cpu -1: stays
  ASSERT_EQ(d.advance(1), 0);
  EXPECT_EQ(p.cpu.load(), 1);
  // A pending callout moves too, and the reset says it replaced an arming.
  EXPECT_EQ(callout_reset_on(&c, 5, probe_fn, &p, 1), 0);
  EXPECT_EQ(callout_reset_on(&c, 5, probe_fn, &p, 0), 1);
  ASSERT_EQ(d.advance(5), 0);
  EXPECT_EQ(p.cpu.load(), 0);
  EXPECT_EQ(callout_schedule_on(&c, 2, 1), 0);
  ASSERT_EQ(d.advance(2), 0);
  EXPECT_EQ(p.cpu.load(), 1);
  EXPECT_EQ(p.runs.get(), 5);
}

// callout_reset_sbt: the handler runs inside [sbt, sbt + precision], on the
// tick (virtual time: exact).  Precision from pr, or sbt / 2^k by C_PREL(k).
TEST(FreeBsdReset, ResetSbtLandsInsideItsPrecisionWindow) {
  struct Case {
    sbintime_t sbt, pr;
    int flags;
    std::uint64_t due, window;  // in ticks at 1000 Hz
  };
  const Case cases[] = {
      {100 * kTick1000, 0, 0, 100, 0},           // no precision: exactly due
      {100 * kTick1000, 0, C_PREL(2), 100, 25},  // sbt / 4
      {100 * kTick1000, 10 * kTick1000, 0, 100, 10},
      {64 * kTick1000, 0, C_PREL(0), 64, 64},             // sbt / 1
      {37 * kTick1000, 3 * kTick1000, C_PREL(4), 37, 3},  // the larger of the two
      {SBT_1S / 10, 0, C_PREL(1), 100, 50},               // 0.1 s = 100 ticks
  };
  for (const Case &k : cases) {
    Domain d(1, CALLOUT_CLOCK_VIRTUAL, 1000);
    struct callout c;
    Probe p(&c, d);
    callout_init_on(&c, 1, d);
    ASSERT_EQ(d.advance(12345), 0);  // an arbitrary start
    const std::uint64_t t0 = d.now();
    EXPECT_EQ(callout_reset_sbt(&c, k.sbt, k.pr, probe_fn, &p, k.flags), 0);
    for (std::uint64_t i = 0; i < k.due + k.window + 2 && p.runs.get() == 0; ++i) ASSERT_EQ(d.advance(1), 0);
    ASSERT_EQ(p.runs.get(), 1) << "sbt " << k.sbt << " pr " << k.pr << " flags " << k.flags;
    EXPECT_GE(p.tick.load(), t0 + k.due) << "early; flags " << k.flags;
    EXPECT_LE(p.tick.load(), t0 + k.due + k.window) << "late; flags " << k.flags;
  }
}

// ---- no destroy: freed and overwritten right after callout_drain -----------

// Callouts that re-arm themselves every tick (so each is running or pending
// when the drain comes) are drained, overwritten with 0xA5 and freed at once
// by the draining thread, as FreeBSD code does, while the domain keeps
// running other callouts on the same CPUs.  Every other one is caught with
// its handler running: the handler blocks until the drain sleeps, then
// re-arms (ignored) -- touching the callout, which a drain that returned
// early would already have freed.  Under ASan any access to a freed one is
// reported; the ones kept (overwritten, not freed) must stay 0xA5 in every
// build.
struct Victim {
  struct callout *c = nullptr;
  bool block = false;  // block the first run until `release`
  Latch release;
  Counter runs;
};
void victim_fn(void *arg) {
  auto *v = static_cast<Victim *>(arg);
  callout_reset(v->c, 1, victim_fn, v);  // ignored once a drain waits
  v->runs.add();
  if (v->block && !v->release.is_open()) {
    EXPECT_TRUE(v->release.wait());
    callout_reset(v->c, 1, victim_fn, v);  // a drain waits now: ignored
  }
}

struct Ticker {
  struct callout c;
  Counter runs;
};
void ticker_fn(void *arg) {
  auto *t = static_cast<Ticker *>(arg);
  callout_reset(&t->c, 1, ticker_fn, t);
  t->runs.add();
}

TEST(FreeBsdNoDestroy, FreedAndOverwrittenRightAfterDrainWhileTheDomainRuns) {
  Domain d(2, CALLOUT_CLOCK_MONOTONIC);
  Ticker tickers[2];
  for (int i = 0; i < 2; ++i) {
    callout_init_on(&tickers[i].c, 1, d);
    EXPECT_EQ(callout_reset_on(&tickers[i].c, 1, ticker_fn, &tickers[i], i), 0);
  }
  std::vector<unsigned char *> kept;
  constexpr int kRounds = 40;
  for (int i = 0; i < kRounds; ++i) {
    auto *mem = static_cast<unsigned char *>(std::malloc(sizeof(struct callout)));
    ASSERT_NE(mem, nullptr);
    auto *c = reinterpret_cast<struct callout *>(mem);
    auto v = std::make_unique<Victim>();
    v->c = c;
    v->block = (i % 2 == 1);
    const bool keep = (i % 4) >= 2;
    callout_init_on(c, 1, d);
    EXPECT_EQ(callout_reset_on(c, 1, victim_fn, v.get(), i % 2), 0);
    ASSERT_TRUE(v->runs.wait_for(v->block ? 1 : 1 + i % 3));
    const std::uint64_t w0 = halts_waited(d);
    std::atomic<int> rc{99}, runs_at_drain{-1}, pending_after{-1};
    Async drainer([&] {
      rc.store(callout_drain(c));
      pending_after.store(callout_pending(c));
      runs_at_drain.store(v->runs.get());
      std::memset(mem, 0xA5, sizeof(struct callout));
      if (!keep) std::free(mem);
    });
    if (v->block) {
      // Let the handler go only once the drain sleeps -- or, if the drain
      // returned while it ran, after the memory is gone, so that ASan sees
      // the handler's re-arm.
      EXPECT_TRUE(poll_until([&] { return halts_waited(d) > w0 || drainer.done(); }));
      if (drainer.done()) ADD_FAILURE() << "callout_drain returned while the handler ran";
      v->release.open();
    }
    drainer.join();
    // Pending or running at the drain: the arming taken out (1), or, drained
    // between the dispatch and the handler's re-arm, -1.  Never 0.
    EXPECT_TRUE(rc.load() == 1 || rc.load() == -1) << rc.load();
    EXPECT_EQ(pending_after.load(), 0);
    EXPECT_EQ(v->runs.get(), runs_at_drain.load());  // no handler after the drain
    if (keep) kept.push_back(mem);
  }
  // Let both CPUs run their tickers for a while longer.
  for (Ticker &t : tickers) ASSERT_TRUE(t.runs.wait_for(t.runs.get() + 20));
  for (unsigned char *mem : kept) {
    for (std::size_t j = 0; j < sizeof(struct callout); ++j) ASSERT_EQ(mem[j], 0xA5) << "byte " << j;
    std::free(mem);
  }
  for (Ticker &t : tickers) {
    const int rc = callout_drain(&t.c);
    EXPECT_TRUE(rc == 1 || rc == -1) << rc;  // -1: drained between dispatch and re-arm
  }
}

// ---- misuse ----------------------------------------------------------------

void drain_self_fn(void *arg) { callout_drain(static_cast<struct callout *>(arg)); }

TEST(FreeBsdDeathTest, DrainFromTheCalloutsOwnHandlerAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        Domain d(1, CALLOUT_CLOCK_VIRTUAL);
        struct callout c;
        callout_init_on(&c, 1, d);
        callout_reset(&c, 1, drain_self_fn, &c);
        d.advance(1);
      },
      "callout_drain \\(FreeBSD\\).*called from the callout's own handler");
}

// ---- hz and ticks ----------------------------------------------------------

TEST(FreeBsdTime, HzAndTicksAreTheDomainsValues) {
  // In a handler: its domain's.
  Domain d(1, CALLOUT_CLOCK_VIRTUAL, 250);
  struct callout c;
  Probe p(&c, d);
  std::atomic<int> seen_hz{0}, seen_ticks{0};
  p.body = [&](Probe *) {
    seen_hz.store(hz);
    seen_ticks.store(ticks);
  };
  callout_init_on(&c, 1, d);
  ASSERT_EQ(d.advance(1000), 0);
  EXPECT_EQ(callout_reset(&c, 7, probe_fn, &p), 0);
  ASSERT_EQ(d.advance(7), 0);
  ASSERT_EQ(p.runs.get(), 1);
  EXPECT_EQ(seen_hz.load(), 250);
  EXPECT_EQ(seen_ticks.load(), 1007);

  // Elsewhere: the default domain's (this thread runs no handler).
  ASSERT_EQ(callout_domain_current(), callout_domain_default());
  EXPECT_EQ(hz, static_cast<int>(callout_domain_hz(callout_domain_default())));
  const auto before = static_cast<int>(callout_domain_ticks(callout_domain_default()));
  const int now = ticks;
  const auto after = static_cast<int>(callout_domain_ticks(callout_domain_default()));
  EXPECT_LE(before, now);
  EXPECT_LE(now, after);
}

}  // namespace
