// halt_test.cpp -- callout_halt: it waits iff the handler is running (H1,
// H2), on a quiescent manual domain it never waits, and it drops and retakes
// the interlock and giant while it waits (H6).
//
// Wherever a property can be shown on the manual clock it is (advance runs on
// a helper thread so the test thread can act while a handler is blocked);
// the monotonic clock is used for the races that need time to move by itself.
// Handlers block on Gates the test opens, never on tight sleeps, and every
// wait has a timeout of seconds.
#include <callout/callout.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <random>
#include <thread>

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

}  // namespace
