// linux_test.cpp -- Linux's struct timer_list KPI through <callout/compat/linux.h>.
//
// Return values of timer_delete/del_timer and mod_timer; timer_delete_sync
// waits for a running handler and takes out its re-arm; timer_shutdown*
// turn later arms into no-ops until timer_setup; from_timer; the jiffies
// helpers; misuse; and POSIX timer_delete(timer_t) still reachable in the
// same file.  Timers live on private domains (timer_setup_on) at 1000 Hz,
// so that jiffies (HZ 1000) are the domain's ticks.
// The order matters (compat_util.h says why):
// clang-format off
#include "compat_util.h"

#include <errno.h>
#include <signal.h>
#include <time.h>

#include <climits>

#include <callout/compat/linux.h>
// clang-format on

namespace {

using namespace compat;  // the helpers of compat_util.h

static_assert(HZ == 1000, "the tests assume jiffies are the domains' 1000 Hz ticks");

// What a handler saw and did (kept out of Conn so that Conn stays
// standard-layout, as from_timer's offsetof needs).
struct State {
  callout_domain_t *d = nullptr;
  bool block = false;
  std::function<void(struct timer_list *)> after;  // runs after `release`
  Counter runs, finished;
  Latch release;
  std::atomic<void *> container{nullptr};
  std::atomic<unsigned long> jiffies_seen{0};
  std::atomic<std::uint64_t> ticks_seen{0};

  explicit State(callout_domain_t *d_, bool block_ = false) : d(d_), block(block_) {}
};

// A kernel-style object with an embedded timer, not at offset 0.
struct Conn {
  int id;
  struct timer_list retransmit;
  State *st;
};

void conn_timer(struct timer_list *t) {
  Conn *conn = from_timer(conn, t, retransmit);
  State *st = conn->st;
  st->container.store(conn);
  st->jiffies_seen.store(jiffies);
  st->ticks_seen.store(callout_domain_ticks(st->d));
  st->runs.add();
  if (st->block) {
    EXPECT_TRUE(st->release.wait());
  }
  if (st->after) st->after(t);
  st->finished.add();  // last
}

// jiffies of domain d, from a thread that is not one of its handlers.
unsigned long now_of(callout_domain_t *d) { return static_cast<unsigned long>(callout_domain_ticks(d)); }

// Arms conn's timer for the next jiffy and waits for its handler to enter
// (and block, if conn->st->block).  Call it under ASSERT_NO_FATAL_FAILURE.
void start_blocked(Conn *conn, callout_domain_t *d) {
  EXPECT_EQ(mod_timer(&conn->retransmit, now_of(d) + 1), 0);
  ASSERT_TRUE(conn->st->runs.wait_for(1));
}

TEST(LinuxTimer, DeleteReturnsWhetherItWasPending) {
  Domain d(1, CALLOUT_CLOCK_MANUAL);
  State st(d);
  Conn conn{1, {}, &st};
  timer_setup_on(&conn.retransmit, conn_timer, 0, d);

  EXPECT_EQ(timer_delete(&conn.retransmit), 0);
  EXPECT_EQ(mod_timer(&conn.retransmit, now_of(d) + 10), 0);
  EXPECT_TRUE(timer_pending(&conn.retransmit));
  EXPECT_EQ(timer_delete(&conn.retransmit), 1);
  EXPECT_FALSE(timer_pending(&conn.retransmit));
  EXPECT_EQ(timer_delete(&conn.retransmit), 0);

  EXPECT_EQ(mod_timer(&conn.retransmit, now_of(d) + 10), 0);
  EXPECT_EQ(del_timer(&conn.retransmit), 1);
  EXPECT_EQ(del_timer(&conn.retransmit), 0);

  // Expired and run: no longer pending, so 0.
  EXPECT_EQ(mod_timer(&conn.retransmit, now_of(d) + 3), 0);
  ASSERT_EQ(d.advance(3), 0);
  ASSERT_EQ(st.runs.get(), 1);
  EXPECT_EQ(timer_delete(&conn.retransmit), 0);
  EXPECT_EQ(timer_delete_sync(&conn.retransmit), 0);
  ASSERT_EQ(d.advance(20), 0);
  EXPECT_EQ(st.runs.get(), 1);  // the deleted armings never ran
}

TEST(LinuxTimer, ModTimerReturnsWhetherItWasPending) {
  Domain d(1, CALLOUT_CLOCK_MANUAL);
  State st(d);
  Conn conn{2, {}, &st};
  timer_setup_on(&conn.retransmit, conn_timer, 0, d);
  const unsigned long base = now_of(d);

  EXPECT_EQ(mod_timer_pending(&conn.retransmit, base + 5), 0);  // idle: nothing
  EXPECT_FALSE(timer_pending(&conn.retransmit));
  EXPECT_EQ(mod_timer(&conn.retransmit, base + 10), 0);
  EXPECT_EQ(mod_timer(&conn.retransmit, base + 20), 1);
  EXPECT_EQ(conn.retransmit.expires, base + 20);
  EXPECT_EQ(mod_timer_pending(&conn.retransmit, base + 30), 1);
  ASSERT_EQ(d.advance(29), 0);
  EXPECT_EQ(st.runs.get(), 0);  // moved: neither 10 nor 20
  ASSERT_EQ(d.advance(1), 0);
  ASSERT_EQ(st.runs.get(), 1);
  EXPECT_EQ(st.ticks_seen.load(), base + 30);
  EXPECT_EQ(mod_timer(&conn.retransmit, base + 40), 0);  // ran: idle again
  EXPECT_EQ(timer_delete(&conn.retransmit), 1);

  // add_timer arms at t->expires; a time in the past means the next tick.
  conn.retransmit.expires = now_of(d) - 5;
  add_timer(&conn.retransmit);
  EXPECT_TRUE(timer_pending(&conn.retransmit));
  ASSERT_EQ(d.advance(1), 0);
  EXPECT_EQ(st.runs.get(), 2);
}

// timer_delete_sync sleeps while the handler runs (it must not return before
// the test releases it) and, with nothing pending, returns 0.
TEST(LinuxTimer, DeleteSyncWaitsForTheRunningHandler) {
  Domain d(1, CALLOUT_CLOCK_MONOTONIC);
  State st(d, true);
  Conn conn{3, {}, &st};
  timer_setup_on(&conn.retransmit, conn_timer, 0, d);

  ASSERT_NO_FATAL_FAILURE(start_blocked(&conn, d));
  std::atomic<int> rc{99}, finished_at_return{-1};
  BlockingCall deleter(d, [&] {
    rc.store(timer_delete_sync(&conn.retransmit));
    finished_at_return.store(st.finished.get());
  });
  const bool blocked = deleter.wait_until_blocked();
  st.release.open();
  EXPECT_TRUE(blocked) << "timer_delete_sync returned while the handler ran";
  deleter.join();
  EXPECT_EQ(rc.load(), 0);
  EXPECT_EQ(finished_at_return.load(), 1);
}

// The handler re-arms its timer while timer_delete_sync waits: the re-arm is
// taken out and the call returns 1.
TEST(LinuxTimer, DeleteSyncRemovesTheHandlersReArmAndReturnsOne) {
  Domain d(1, CALLOUT_CLOCK_MONOTONIC);
  State st(d, true);
  std::atomic<int> rearm_rc{99};
  st.after = [&](struct timer_list *t) { rearm_rc.store(mod_timer(t, jiffies + 1000)); };
  Conn conn{4, {}, &st};
  timer_setup_on(&conn.retransmit, conn_timer, 0, d);

  ASSERT_NO_FATAL_FAILURE(start_blocked(&conn, d));
  std::atomic<int> rc{99};
  BlockingCall deleter(d, [&] { rc.store(del_timer_sync(&conn.retransmit)); });
  const bool blocked = deleter.wait_until_blocked();
  st.release.open();
  EXPECT_TRUE(blocked);
  deleter.join();
  EXPECT_EQ(rearm_rc.load(), 0);  // the re-arm happened (it was not pending)
  EXPECT_EQ(rc.load(), 1);
  EXPECT_FALSE(timer_pending(&conn.retransmit));
  EXPECT_EQ(st.runs.get(), 1);
}

TEST(LinuxTimer, ShutdownMakesLaterArmsNoOpsUntilTimerSetup) {
  Domain d(1, CALLOUT_CLOCK_MANUAL);
  State st(d);
  Conn conn{5, {}, &st};
  timer_setup_on(&conn.retransmit, conn_timer, 0, d);

  EXPECT_EQ(mod_timer(&conn.retransmit, now_of(d) + 5), 0);
  EXPECT_EQ(timer_shutdown(&conn.retransmit), 1);
  EXPECT_EQ(mod_timer(&conn.retransmit, now_of(d) + 5), 0);
  EXPECT_FALSE(timer_pending(&conn.retransmit));
  EXPECT_EQ(mod_timer(&conn.retransmit, now_of(d) + 5), 0);  // still 0: nothing was armed
  conn.retransmit.expires = now_of(d) + 5;
  add_timer(&conn.retransmit);  // no-op, and not misuse although "re-added"
  add_timer(&conn.retransmit);
  EXPECT_FALSE(timer_pending(&conn.retransmit));
  EXPECT_EQ(timer_delete(&conn.retransmit), 0);
  ASSERT_EQ(d.advance(10), 0);
  EXPECT_EQ(st.runs.get(), 0);

  EXPECT_EQ(timer_shutdown_sync(&conn.retransmit), 0);
  EXPECT_EQ(mod_timer(&conn.retransmit, now_of(d) + 5), 0);
  EXPECT_FALSE(timer_pending(&conn.retransmit));

  timer_setup_on(&conn.retransmit, conn_timer, 0, d);  // usable again
  EXPECT_EQ(mod_timer(&conn.retransmit, now_of(d) + 5), 0);
  EXPECT_TRUE(timer_pending(&conn.retransmit));
  EXPECT_EQ(mod_timer(&conn.retransmit, now_of(d) + 5), 1);
  ASSERT_EQ(d.advance(5), 0);
  EXPECT_EQ(st.runs.get(), 1);
}

// timer_shutdown_sync while the handler runs: it waits, and the handler's
// re-arm (made while it waits) is ignored.
TEST(LinuxTimer, ShutdownSyncWaitsAndIgnoresTheHandlersReArm) {
  Domain d(1, CALLOUT_CLOCK_MONOTONIC);
  State st(d, true);
  std::atomic<int> rearm_rc{99};
  std::atomic<int> pending_after_rearm{-1};
  st.after = [&](struct timer_list *t) {
    rearm_rc.store(mod_timer(t, jiffies + 1));
    pending_after_rearm.store(timer_pending(t));
  };
  Conn conn{6, {}, &st};
  timer_setup_on(&conn.retransmit, conn_timer, 0, d);

  ASSERT_NO_FATAL_FAILURE(start_blocked(&conn, d));
  std::atomic<int> rc{99};
  BlockingCall stopper(d, [&] { rc.store(timer_shutdown_sync(&conn.retransmit)); });
  const bool blocked = stopper.wait_until_blocked();
  st.release.open();
  EXPECT_TRUE(blocked);
  stopper.join();
  EXPECT_EQ(rc.load(), 0);
  EXPECT_EQ(rearm_rc.load(), 0);
  EXPECT_EQ(pending_after_rearm.load(), 0);
  EXPECT_EQ(mod_timer(&conn.retransmit, now_of(d) + 1), 0);
  EXPECT_FALSE(timer_pending(&conn.retransmit));
  EXPECT_EQ(st.runs.get(), 1);
}

TEST(LinuxTimer, FromTimerRecoversTheContainer) {
  Domain d(1, CALLOUT_CLOCK_VIRTUAL);
  State a_st(d), b_st(d);
  Conn a{7, {}, &a_st}, b{8, {}, &b_st};
  timer_setup_on(&a.retransmit, conn_timer, 0, d);
  timer_setup_on(&b.retransmit, conn_timer, 0, d);
  EXPECT_EQ(mod_timer(&a.retransmit, now_of(d) + 2), 0);
  EXPECT_EQ(mod_timer(&b.retransmit, now_of(d) + 1), 0);
  ASSERT_EQ(d.advance(2), 0);
  EXPECT_EQ(a_st.container.load(), static_cast<void *>(&a));
  EXPECT_EQ(b_st.container.load(), static_cast<void *>(&b));
  Conn *from_a = from_timer(from_a, &a.retransmit, retransmit);
  EXPECT_EQ(from_a, &a);
  EXPECT_EQ(from_a->id, 7);
}

TEST(LinuxTimer, JiffiesHelpers) {
  EXPECT_EQ(msecs_to_jiffies(0), 0UL);
  EXPECT_EQ(msecs_to_jiffies(1), 1UL);
  EXPECT_EQ(msecs_to_jiffies(1500), 1500UL);
  EXPECT_EQ(usecs_to_jiffies(1), 1UL);  // rounded up: never early
  EXPECT_EQ(usecs_to_jiffies(1000), 1UL);
  EXPECT_EQ(usecs_to_jiffies(1001), 2UL);
  EXPECT_EQ(jiffies_to_msecs(250), 250U);
  EXPECT_TRUE(time_after(10UL, 5UL));
  EXPECT_FALSE(time_after(5UL, 10UL));
  EXPECT_FALSE(time_after(5UL, 5UL));
  EXPECT_TRUE(time_after_eq(5UL, 5UL));
  EXPECT_TRUE(time_before(5UL, 10UL));
  EXPECT_TRUE(time_before_eq(5UL, 5UL));
  EXPECT_TRUE(time_after(4UL, ULONG_MAX - 4));  // across the wrap
  EXPECT_TRUE(time_before(ULONG_MAX - 4, 4UL));
  EXPECT_TRUE(time_in_range(5UL, 5UL, 6UL));
  EXPECT_FALSE(time_in_range(7UL, 5UL, 6UL));

  // jiffies in a handler: its domain's ticks (HZ == the domain's hz).
  Domain d(1, CALLOUT_CLOCK_VIRTUAL);
  State st(d);
  Conn conn{9, {}, &st};
  timer_setup_on(&conn.retransmit, conn_timer, 0, d);
  ASSERT_EQ(d.advance(777), 0);
  EXPECT_EQ(mod_timer(&conn.retransmit, now_of(d) + msecs_to_jiffies(3)), 0);
  ASSERT_EQ(d.advance(3), 0);
  ASSERT_EQ(st.runs.get(), 1);
  EXPECT_EQ(st.jiffies_seen.load(), 780UL);

  // Elsewhere: the default domain's.
  const auto before = static_cast<unsigned long>(callout_domain_ticks(callout_domain_default()));
  const unsigned long j = jiffies;
  const auto after = static_cast<unsigned long>(callout_domain_ticks(callout_domain_default()));
  EXPECT_TRUE(time_after_eq(j, before));
  EXPECT_TRUE(time_before_eq(j, after));
}

// POSIX timer_delete(timer_t) in the same file: C++ picks the POSIX overload.
TEST(LinuxTimer, PosixTimerDeleteStillWorks) {
  struct sigevent sev {};
  sev.sigev_notify = SIGEV_NONE;
  timer_t id;
  ASSERT_EQ(timer_create(CLOCK_MONOTONIC, &sev, &id), 0);
  struct itimerspec its {};
  its.it_value.tv_sec = 100;
  ASSERT_EQ(timer_settime(id, 0, &its, nullptr), 0);
  EXPECT_EQ(timer_delete(id), 0);
  errno = 0;
  EXPECT_EQ(timer_delete(id), -1);  // the kernel no longer knows it
  EXPECT_EQ(errno, EINVAL);
}

void noop_timer_fn(struct timer_list *t) { (void)t; }

// timer_delete takes the CPU lock like callout_stop, and its hold is
// sampled the same way: after twice the sample period of deletes and
// nothing else, the longest API hold is set.
TEST(LinuxTimer, DeleteHoldsAreSampled) {
  Domain d(1, CALLOUT_CLOCK_VIRTUAL);
  struct timer_list t;
  timer_setup_on(&t, noop_timer_fn, 0, d);
  EXPECT_EQ(api_hold_max(d), 0u);
  for (int i = 0; i < kTwiceTheHoldSample; ++i) EXPECT_EQ(timer_delete(&t), 0);
  EXPECT_GT(api_hold_max(d), 0u);
}

void add_self_fn(struct timer_list *t) { (void)t; }
void delete_sync_self_fn(struct timer_list *t) { timer_delete_sync(t); }

TEST(LinuxTimerDeathTest, AddTimerOnAPendingTimerAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        Domain d(1, CALLOUT_CLOCK_VIRTUAL);
        struct timer_list t;
        timer_setup_on(&t, add_self_fn, 0, d);
        t.expires = now_of(d) + 5;
        add_timer(&t);
        add_timer(&t);
      },
      "add_timer.*already pending");
}

TEST(LinuxTimerDeathTest, DeleteSyncFromTheTimersOwnHandlerAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        Domain d(1, CALLOUT_CLOCK_VIRTUAL);
        struct timer_list t;
        timer_setup_on(&t, delete_sync_self_fn, 0, d);
        mod_timer(&t, now_of(d) + 1);
        d.advance(1);
      },
      "timer_delete_sync.*called from the timer's own handler");
}

}  // namespace
