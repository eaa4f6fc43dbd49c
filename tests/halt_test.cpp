// halt_test.cpp -- callout_halt: it waits iff the handler is running (H1,
// H2), on a quiescent manual domain it never waits, and it drops and retakes
// the interlock and giant while it waits (H6); callout_halt_async calls its
// completion on the softclock once the handler returns; and, under stress,
// many threads halting one callout at once all see it stopped.
//
// Wherever a property can be shown on the manual clock it is (advance runs on
// a helper thread so the test thread can act while a handler is blocked);
// the monotonic clock is used for the races that need time to move by itself.
// Handlers block on Gates the test opens, never on tight sleeps, and every
// wait has a timeout of seconds.
#include <callout/callout.h>
#include <gtest/gtest.h>
#include <pthread.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "test_util.h"

namespace {

using namespace ct;

constexpr unsigned kMp = CALLOUT_MPSAFE;

// ============================================================================
// Halt on a quiescent manual domain
// ============================================================================

TEST(HaltTest, ReturnsFalseWhenNothingIsRunning) {
  Domain d(2);
  std::atomic<int> runs{0};
  Callout c(d, kMp);
  c.fn = [&] { runs++; };
  EXPECT_FALSE(c.halt()) << "idle";
  c.reset(2);
  EXPECT_FALSE(c.halt()) << "pending";
  EXPECT_FALSE(c.pending());
  EXPECT_EQ(d.advance(5), 0);
  EXPECT_EQ(runs.load(), 0) << "a halted callout fired";
  c.reset(1);
  EXPECT_EQ(d.advance(1), 0);
  EXPECT_EQ(runs.load(), 1);
  EXPECT_FALSE(c.halt()) << "fired and finished";
  EXPECT_FALSE(c.expired());
  Mutex m;
  m.lock();
  c.reset(1);
  EXPECT_FALSE(c.halt(m.get())) << "pending, with interlock";
  EXPECT_EQ(trylock_from_other_thread(m.get()), EBUSY) << "interlock must still be held";
  m.unlock();
}

// ============================================================================
// halt: waits iff something is running; H1, H2
// ============================================================================

TEST(HaltThreadTest, WaitsForARunningHandlerAndReturnsTrue) {
  Domain d(2);
  Gate gate;
  std::atomic<bool> entered{false}, finished{false};
  Callout c(d, kMp);
  c.fn = [&] {
    entered.store(true);
    gate.wait();
    finished.store(true);
  };
  c.reset(1);
  Watchdog w("halt of a running handler");
  AsyncAdvance adv(d, 1);
  ASSERT_TRUE(wait_until([&] { return entered.load(); }));
  {
    DelayedOpen opener(gate, 200ms);
    EXPECT_TRUE(c.halt()) << "halt did not report waiting for a running handler";
    EXPECT_TRUE(finished.load()) << "halt returned while the handler was still running";
  }
  EXPECT_EQ(adv.join(), 0);
  EXPECT_FALSE(c.halt()) << "nothing running any more";
}

TEST(HaltThreadTest, TwoConcurrentHaltsBothWait) {
  Domain d(2);
  Gate gate;
  std::atomic<bool> entered{false}, finished{false};
  Callout c(d, kMp);
  c.fn = [&] {
    entered.store(true);
    gate.wait();
    finished.store(true);
  };
  c.reset(1);
  Watchdog w("two halts");
  AsyncAdvance adv(d, 1);
  ASSERT_TRUE(wait_until([&] { return entered.load(); }));
  std::atomic<int> other_ret{-1};
  std::atomic<bool> other_saw_finished{false};
  std::thread other([&] {
    other_ret.store(c.halt() ? 1 : 0);
    other_saw_finished.store(finished.load());
  });
  {
    DelayedOpen opener(gate, 200ms);
    EXPECT_TRUE(c.halt());
    EXPECT_TRUE(finished.load());
  }
  other.join();
  EXPECT_EQ(other_ret.load(), 1);
  EXPECT_TRUE(other_saw_finished.load());
  EXPECT_EQ(adv.join(), 0);
}

// H1: a handler that always re-arms itself, halted while it runs.
TEST(HaltThreadTest, H1_SelfRearmingCalloutHaltedWhileRunning) {
  Domain d(2, CALLOUT_CLOCK_MONOTONIC, 1000);
  Overlap ov;
  std::atomic<int> runs{0};
  std::atomic<bool> block{false}, blocked{false};
  Gate gate;
  Callout c(d, kMp);
  c.fn = [&] {
    ov.enter();
    callout_schedule(c.p(), 1);  // re-arm first: the H1 sequence
    runs++;
    if (block.load()) {
      blocked.store(true);
      gate.wait();
    } else {
      std::this_thread::sleep_for(300us);
    }
    ov.leave();
  };
  Watchdog w("H1", 20000ms);
  // Deterministic part: halt while the handler is certainly running.
  c.reset(1);
  ASSERT_TRUE(wait_until([&] { return runs.load() >= 3; }));
  block.store(true);
  ASSERT_TRUE(wait_until([&] { return blocked.load(); }));
  {
    DelayedOpen opener(gate, 150ms);
    EXPECT_TRUE(c.halt());
    EXPECT_EQ(ov.inside.load(), 0) << "halt returned while the handler ran";
    EXPECT_FALSE(c.pending()) << "halt left the self-re-armed callout pending";
  }
  block.store(false);
  int frozen = runs.load();
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(runs.load(), frozen) << "ran again after halt";

  // Random part: halt at arbitrary points of the handler's life.
  std::mt19937 rng(7);
  for (int i = 0; i < 25; ++i) {
    c.reset(static_cast<int>(rng() % 2));
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 4000));
    c.halt();
    EXPECT_EQ(ov.inside.load(), 0) << "iteration " << i;
    EXPECT_FALSE(c.pending()) << "iteration " << i;
    frozen = runs.load();
    std::this_thread::sleep_for(10ms);
    EXPECT_EQ(runs.load(), frozen) << "iteration " << i << ": ran again after halt";
  }
  EXPECT_EQ(ov.max_inside.load(), 1);
  EXPECT_GT(runs.load(), 3);
  EXPECT_EQ(d.check(), 0);
}

// H2: halt must key its wait on "running", not on FIRED.
TEST(HaltThreadTest, H2_StopThenHaltWaitsForASlowHandler) {
  Domain d(2);
  Gate gate;
  std::atomic<bool> entered{false}, finished{false};
  std::atomic<int> runs{0};
  Callout c(d, kMp);
  c.fn = [&] {
    runs++;
    entered.store(true);
    gate.wait();
    finished.store(true);
  };
  c.reset(1);
  Watchdog w("H2 stop-then-halt");
  AsyncAdvance adv(d, 1);
  ASSERT_TRUE(wait_until([&] { return entered.load(); }));
  EXPECT_TRUE(c.stop()) << "the handler is running: FIRED";
  EXPECT_FALSE(c.expired()) << "stop clears FIRED";
  {
    DelayedOpen opener(gate, 200ms);
    EXPECT_TRUE(c.halt()) << "FIRED was cleared by stop, but the handler still runs";
    EXPECT_TRUE(finished.load()) << "halt returned while the handler was running";
  }
  EXPECT_EQ(adv.join(), 0);
  EXPECT_EQ(runs.load(), 1);
}

TEST(HaltThreadTest, H2_HandlerReschedulesThenHaltWaits) {
  for (bool stop_first : {false, true}) {
    Domain d(2);
    Gate gate;
    std::atomic<bool> entered{false}, finished{false};
    std::atomic<int> runs{0};
    Callout c(d, kMp);
    c.fn = [&] {
      runs++;
      callout_schedule(c.p(), 1);  // clears FIRED, sets PENDING
      entered.store(true);
      gate.wait();
      finished.store(true);
    };
    c.reset(1);
    Watchdog w("H2 reschedule-then-halt");
    AsyncAdvance adv(d, 1);
    ASSERT_TRUE(wait_until([&] { return entered.load(); }));
    EXPECT_TRUE(c.pending());
    EXPECT_FALSE(c.expired());
    if (stop_first) {
      EXPECT_FALSE(c.stop()) << "FIRED was cleared by the handler's schedule";
    }
    {
      DelayedOpen opener(gate, 200ms);
      EXPECT_TRUE(c.halt()) << "stop_first=" << stop_first;
      EXPECT_TRUE(finished.load()) << "stop_first=" << stop_first
                                   << ": halt returned while the handler was running";
      EXPECT_FALSE(c.pending()) << "stop_first=" << stop_first;
    }
    EXPECT_EQ(adv.join(), 0);
    ASSERT_EQ(d.advance(10), 0);
    EXPECT_EQ(runs.load(), 1) << "stop_first=" << stop_first << ": ran again after halt";
  }
}

// ============================================================================
// H6: halt and locks
// ============================================================================

TEST(HaltLockTest, H6a_InterlockIsReleasedWhileWaitingAndHeldOnReturn) {
  Domain d(2);
  Mutex m;
  std::atomic<bool> entered{false}, got_m{false};
  Callout c(d, kMp);
  c.fn = [&] {
    entered.store(true);
    pthread_mutex_lock(m.get());  // the caller of halt holds m
    got_m.store(true);
    pthread_mutex_unlock(m.get());
  };
  c.reset(1);
  Watchdog w("H6a halt with interlock");
  m.lock();
  AsyncAdvance adv(d, 1);
  ASSERT_TRUE(wait_until([&] { return entered.load(); }));
  EXPECT_TRUE(c.halt(m.get())) << "the handler was running: halt had to wait";
  EXPECT_TRUE(got_m.load()) << "the interlock was not released while waiting";
  EXPECT_EQ(trylock_from_other_thread(m.get()), EBUSY) << "interlock not re-acquired";
  m.unlock();
  EXPECT_EQ(adv.join(), 0);
}

TEST(HaltLockTest, H6a_InterlockUntouchedWhenNoWaitIsNeeded) {
  Domain d(1);
  Mutex m;
  Callout c(d, kMp);
  c.fn = [] {};
  c.reset(3);
  m.lock();
  EXPECT_FALSE(c.halt(m.get()));
  EXPECT_EQ(trylock_from_other_thread(m.get()), EBUSY);
  m.unlock();
}

TEST(HaltLockTest, H6d_HaltFromItsOwnHandlerDoesNotWait) {
  Domain d(2);
  std::atomic<int> ret{-1};
  std::atomic<bool> pending_after{true};
  std::atomic<int> runs{0};
  Callout c(d, kMp);
  c.fn = [&] {
    runs++;
    callout_schedule(c.p(), 1);  // re-arm, then halt itself
    ret.store(callout_halt(c.p(), nullptr) ? 1 : 0);
    pending_after.store(callout_pending(c.p()));
  };
  c.reset(1);
  Watchdog w("halt from own handler");
  ASSERT_EQ(d.advance(1), 0);
  EXPECT_EQ(ret.load(), 0);
  EXPECT_FALSE(pending_after.load());
  ASSERT_EQ(d.advance(5), 0);
  EXPECT_EQ(runs.load(), 1);
}

// The caller holds giant (depth 2) and halts a giant callout whose dispatch
// is waiting for giant: halt must drop giant completely, and take it back to
// the same depth.
TEST(HaltLockTest, H6_GiantHolderHaltsAGiantCalloutWaitingForGiant) {
  Domain d(2);
  std::atomic<int> runs{0};
  Callout c(d, 0u);
  c.fn = [&] { runs++; };
  c.reset(1);
  Watchdog w("H6 giant halt");
  callout_giant_enter(d);
  callout_giant_enter(d);
  AsyncAdvance adv(d, 1);
  // The softclock is now (or soon) blocked on giant: it took c off the wheel.
  ASSERT_TRUE(wait_until([&] { return !c.pending(); }));
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(adv.done());
  EXPECT_TRUE(c.halt()) << "the softclock was dispatching c: halt had to wait";
  EXPECT_EQ(runs.load(), 0) << "handler invoked although stopped while waiting for giant";
  EXPECT_TRUE(wait_until([&] { return adv.done(); })) << "advance did not finish";
  {
    GiantProbe probe(d);
    callout_giant_exit(d);  // depth 2 -> 1: still held
    EXPECT_TRUE(stays_false([&] { return probe.acquired(); }, 100ms))
        << "halt did not restore the giant depth";
    callout_giant_exit(d);  // 1 -> 0
    EXPECT_TRUE(wait_until([&] { return probe.acquired(); }));
  }
  EXPECT_EQ(adv.join(), 0);
  EXPECT_EQ(runs.load(), 0);
}

// An MPSAFE handler that takes giant, halted by a giant holder.
TEST(HaltLockTest, H6_GiantHolderHaltsAHandlerThatTakesGiant) {
  Domain d(2);
  std::atomic<bool> entered{false}, got_giant{false};
  Callout c(d, kMp);
  c.fn = [&] {
    entered.store(true);
    callout_giant_enter(d);
    got_giant.store(true);
    callout_giant_exit(d);
  };
  c.reset(1);
  Watchdog w("H6 giant halt, handler takes giant");
  callout_giant_enter(d);
  callout_giant_enter(d);
  callout_giant_enter(d);
  AsyncAdvance adv(d, 1);
  ASSERT_TRUE(wait_until([&] { return entered.load(); }));
  EXPECT_TRUE(c.halt());
  EXPECT_TRUE(got_giant.load());
  {
    GiantProbe probe(d);
    callout_giant_exit(d);
    callout_giant_exit(d);
    EXPECT_TRUE(stays_false([&] { return probe.acquired(); }, 100ms))
        << "halt did not restore the giant depth (3)";
    callout_giant_exit(d);
    EXPECT_TRUE(wait_until([&] { return probe.acquired(); }));
  }
  EXPECT_EQ(adv.join(), 0);
}

// ============================================================================
// halt_async: the completion runs on the softclock once the handler returns
// ============================================================================

struct DrainRecord {
  std::atomic<int> calls{0};
  std::atomic<int> cpu{-2};
  callout_domain_t *d = nullptr;
};
void on_drained(void *p) {
  auto *r = static_cast<DrainRecord *>(p);
  r->cpu.store(callout_domain_curcpu(r->d));
  r->calls.fetch_add(1);
}

TEST(HaltAsync, CompletesOnTheSoftclockAndIgnoresRearms) {
  Domain d(2);
  Gate gate;
  std::atomic<bool> entered{false};
  std::atomic<int> runs{0};
  std::atomic<bool> rearm{true};  // the handler tries to re-arm itself: must be ignored
  DrainRecord rec;
  rec.d = d;
  Callout c(d, kMp);
  c.fn = [&] {
    runs.fetch_add(1);
    entered.store(true);
    gate.wait();
    if (rearm.load()) c.schedule(1);
  };
  c.reset(1);
  {
    AsyncAdvance adv(d, 1);
    ASSERT_TRUE(wait_until([&] { return entered.load(); }, 10000ms));
    EXPECT_TRUE(callout_halt_async(c.p(), on_drained, &rec));
    c.reset(1);  // ignored: draining
    EXPECT_FALSE(c.pending());
    EXPECT_EQ(rec.calls.load(), 0);
    gate.open();
  }
  ASSERT_TRUE(wait_until([&] { return rec.calls.load() == 1; }, 10000ms));
  EXPECT_GE(rec.cpu.load(), 0);  // called on a softclock thread of d
  EXPECT_FALSE(c.pending());
  callout_stats st;
  st.size = sizeof st;
  EXPECT_EQ(callout_domain_stats(d, -1, &st), 0);
  EXPECT_EQ(st.ignored, 2u);  // the test's reset and the handler's
  ASSERT_EQ(d.advance(5), 0);
  EXPECT_EQ(runs.load(), 1);
  // Idle now: returns false, never calls the completion.
  EXPECT_FALSE(callout_halt_async(c.p(), on_drained, &rec));
  rearm.store(false);
  c.reset(1);  // accepted again after the drain
  EXPECT_TRUE(c.pending());
  ASSERT_EQ(d.advance(1), 0);
  EXPECT_EQ(runs.load(), 2);
  EXPECT_EQ(rec.calls.load(), 1);
}

void destroy_and_free(void *p) {
  callout_destroy(static_cast<callout_t *>(p));
  delete static_cast<callout_t *>(p);
}

TEST(HaltAsync, CompletionMayFreeTheCallout) {
  Domain d(1);  // its destructor checks that destroy succeeds: nothing live
  Gate gate;
  std::atomic<bool> entered{false};
  Fn fn = [&] {
    entered.store(true);
    gate.wait();
  };
  auto *c = new callout_t;
  callout_init_domain(c, kMp, d);
  callout_reset(c, 1, fn_trampoline, &fn);
  {
    AsyncAdvance adv(d, 1);
    ASSERT_TRUE(wait_until([&] { return entered.load(); }, 10000ms));
    ASSERT_TRUE(callout_halt_async(c, destroy_and_free, c));
    gate.open();
  }
}

// ============================================================================
// Stress: many threads halting one callout
// ============================================================================

struct Blocker {
  std::atomic<bool> open{false};
  std::atomic<int> inside{0};
  std::atomic<int> entered{0};
  std::atomic<int> overlap{0};
  callout_t *self = nullptr;
  bool rearm = false;
  pthread_mutex_t *take = nullptr;  // a mutex the handler takes (the halters' interlock)
};
void blocking_handler(void *arg) {
  auto *b = static_cast<Blocker *>(arg);
  if (b->inside.fetch_add(1) != 0) b->overlap.fetch_add(1);
  b->entered.fetch_add(1);
  const auto until = SteadyClock::now() + 20s;
  while (!b->open.load() && SteadyClock::now() < until) std::this_thread::sleep_for(200us);
  // Re-armed while the halters wait (H1): each halt must undo it on waking.
  if (b->rearm) callout_reset(b->self, 1, blocking_handler, b);
  if (b->take != nullptr) {
    pthread_mutex_lock(b->take);
    pthread_mutex_unlock(b->take);
  }
  b->inside.fetch_sub(1);
}

// Property: several threads halting one running callout all wait until the
// handler returns, all return true, and on return the callout is neither
// running nor pending -- also when the handler re-arms itself (H1) and when
// the halters pass an interlock the handler needs (H6).  A halt with nothing
// running returns false at once.
void concurrent_halts(bool rearm, bool interlock) {
  Domain d(2, CALLOUT_CLOCK_MANUAL, 1000);  // on return: checked and destroyed
  callout_t c;
  Blocker b;
  b.self = &c;
  b.rearm = rearm;
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  if (interlock) b.take = &m;
  callout_init_domain(&c, CALLOUT_MPSAFE, d);
  EXPECT_FALSE(callout_halt(&c, nullptr)) << "halt of an idle callout waited";
  callout_reset(&c, 1, blocking_handler, &b);
  std::thread adv([&] { EXPECT_EQ(callout_domain_advance(d, 1), 0); });
  ASSERT_TRUE(wait_until([&] { return b.entered.load() == 1; }, 5000ms));

  constexpr int kHalters = 6;
  std::atomic<int> returned{0}, returned_true{0}, bad{0};
  std::vector<std::thread> halters;
  for (int i = 0; i < kHalters; ++i) {
    halters.emplace_back([&] {
      if (interlock) pthread_mutex_lock(&m);
      const bool r = callout_halt(&c, interlock ? &m : nullptr);
      // On return: nothing running, nothing pending (nobody resets it but the handler).
      if (b.inside.load() != 0 || callout_pending(&c)) bad.fetch_add(1);
      if (interlock) pthread_mutex_unlock(&m);
      returned.fetch_add(1);
      if (r) returned_true.fetch_add(1);
    });
  }
  // Every halter is blocked while the handler is.
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(returned.load(), 0) << "a halt returned while the handler was still running";
  b.open.store(true);
  for (auto &h : halters) h.join();
  adv.join();
  EXPECT_EQ(returned_true.load(), kHalters);
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(b.overlap.load(), 0);
  EXPECT_FALSE(callout_pending(&c));
  // A re-arm made during the halts was undone: nothing runs any more.
  ASSERT_EQ(callout_domain_advance(d, 5), 0);
  EXPECT_EQ(b.entered.load(), 1);
  EXPECT_FALSE(callout_halt(&c, nullptr));
  callout_destroy(&c);
}

TEST(Halt, SixThreadsHaltOneRunningCallout) { concurrent_halts(false, false); }
TEST(Halt, SixThreadsHaltOneSelfRearmingCallout) { concurrent_halts(true, false); }
TEST(Halt, SixThreadsHaltWithTheInterlockTheHandlerNeeds) { concurrent_halts(true, true); }

struct Spinner {
  callout_domain_t *d;
  callout_t *self;
  std::atomic<int> inside{0};
  std::atomic<int> overlap{0};
  std::atomic<std::uint64_t> runs{0};
  std::atomic<bool> rearm{true};
};
void spinning_handler(void *arg) {
  auto *s = static_cast<Spinner *>(arg);
  if (s->inside.fetch_add(1) != 0) s->overlap.fetch_add(1);
  if (s->rearm.load()) callout_reset(s->self, 0, spinning_handler, s);  // every tick
  const auto until = SteadyClock::now() + std::chrono::microseconds(s->runs.fetch_add(1) % 300);
  while (SteadyClock::now() < until) {
  }
  s->inside.fetch_sub(1);
}

// Property: the same on the monotonic clock with random timing: a callout
// that re-arms itself every tick, halted over and over by four threads at
// once, is never running or pending when a halt returns (until someone
// resets it), and never runs twice at once.
TEST(Halt, RacingHaltersOnASelfRearmingCalloutMonotonic) {
  Domain d(2, CALLOUT_CLOCK_MONOTONIC, 20000);  // on return: checked and destroyed
  callout_t c;
  Spinner s;
  s.d = d;
  s.self = &c;
  callout_init_domain(&c, CALLOUT_MPSAFE, d);
  std::mutex m;  // serialises the re-starts against the halts' checks
  std::atomic<int> bad{0}, waited{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; ++i) {
    ts.emplace_back([&, i] {
      unsigned seed = static_cast<unsigned>(i) * 7919u + 1;
      while (!stop.load()) {
        seed = seed * 1103515245u + 12345u;
        if ((seed >> 16) % 3 == 0) {
          std::lock_guard<std::mutex> g(m);
          callout_reset(&c, 1, spinning_handler, &s);
        } else {
          // First a halt racing the other threads' halts and resets, then,
          // with resets excluded (m), one more: once it returns nothing may
          // run or be pending, since only the handler re-arms and halt undoes
          // that.
          if (callout_halt(&c, nullptr)) waited.fetch_add(1);
          std::lock_guard<std::mutex> g(m);
          if (callout_halt(&c, nullptr)) waited.fetch_add(1);
          if (s.inside.load() != 0 || callout_pending(&c)) bad.fetch_add(1);
        }
        std::this_thread::sleep_for(std::chrono::microseconds((seed >> 8) % 200));
      }
    });
  }
  std::this_thread::sleep_for(1500ms);
  stop.store(true);
  for (auto &t : ts) t.join();
  s.rearm.store(false);
  callout_halt(&c, nullptr);
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(s.overlap.load(), 0);
  EXPECT_GT(s.runs.load(), 0u);
  std::fprintf(stderr, "RacingHalters: %llu handler runs, %d halts waited\n",
               (unsigned long long)s.runs.load(), waited.load());
  callout_destroy(&c);
}

}  // namespace
