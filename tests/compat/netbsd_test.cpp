// netbsd_test.cpp -- the NetBSD kernel's callout(9) KPI through
// <callout/compat/netbsd.h>: the native suite's key cases, spelled as a
// NetBSD kernel file spells them (callout_halt with a kmutex_t as void *,
// callout_bind with a struct cpu_info *, KERNEL_LOCK, getticks(), hz), and
// where the header follows NetBSD over the native API (negative ticks).
// The order matters (compat_util.h says why):
// clang-format off
#include "compat_util.h"

#include <errno.h>

#include <callout/compat/netbsd.h>
// clang-format on

namespace {

using namespace compat;  // the helpers of compat_util.h

struct Probe {
  callout_t *c = nullptr;
  callout_domain_t *d = nullptr;
  bool block = false;
  std::function<void(Probe *)> body;
  Counter runs, finished;
  Latch release;
  std::atomic<int> cpu{-2}, cpu_info_index{-2};
  std::atomic<int> invoking_before{-1}, invoking_after{-1};
  std::atomic<int> ticks_seen{-1}, hz_seen{-1};

  Probe(callout_t *c_, callout_domain_t *d_) : c(c_), d(d_) {}
};

void probe_fn(void *arg) {
  auto *p = static_cast<Probe *>(arg);
  p->cpu.store(callout_domain_curcpu(p->d));
  p->cpu_info_index.store(static_cast<int>(cpu_index(curcpu())));
  p->ticks_seen.store(getticks());
  p->hz_seen.store(hz);
  if (p->body) p->body(p);
  p->runs.add();
  if (p->block) {
    EXPECT_TRUE(p->release.wait());
  }
  p->finished.add();  // last
}

// A CALLOUT_MPSAFE callout on a private domain, and the probe its handler
// fills (torn down before the domain, which is checked last).
struct MpsafeCallout {
  Domain d;
  callout_t c;
  Probe p{&c, d};

  MpsafeCallout(unsigned ncpu, callout_clock clk, unsigned ticks_per_s = 1000) : d(ncpu, clk, ticks_per_s) {
    callout_init_domain(&c, CALLOUT_MPSAFE, d);
  }
};

// callout_halt(c, interlock): the interlock (a kmutex_t passed as void *, as
// NetBSD does) is released while halt waits for the running handler and
// held again when it returns; halt says it waited.
TEST(NetBsdCallout, HaltWaitsAndDropsTheInterlock) {
  Domain d(1, CALLOUT_CLOCK_MONOTONIC);
  kmutex_t lock;
  mutex_init(&lock, MUTEX_DEFAULT, IPL_SOFTCLOCK);
  callout_t c;
  Probe p(&c, d);
  p.block = true;
  callout_init_domain(&c, CALLOUT_MPSAFE, d);
  callout_setfunc(&c, probe_fn, &p);

  callout_schedule(&c, 1);
  ASSERT_TRUE(p.runs.wait_for(1));
  Latch entered, may_exit;
  std::atomic<bool> returned{false};
  std::atomic<int> rc{-1};
  Async halter([&] {
    mutex_enter(&lock);
    entered.open();
    void *interlock = &lock;
    rc.store(callout_halt(&c, interlock) ? 1 : 0);
    returned.store(true);
    EXPECT_TRUE(may_exit.wait());
    mutex_exit(&lock);
  });
  ASSERT_TRUE(entered.wait());
  // The interlock becomes free while the handler is still blocked: halt
  // dropped it to wait.
  EXPECT_TRUE(poll_until([&] {
    if (pthread_mutex_trylock(&lock) != 0) return false;
    pthread_mutex_unlock(&lock);
    return true;
  }));
  EXPECT_FALSE(returned.load());
  p.release.open();
  ASSERT_TRUE(poll_until([&] { return returned.load(); }));
  EXPECT_EQ(pthread_mutex_trylock(&lock), EBUSY);  // held again by the halter
  may_exit.open();
  halter.join();
  EXPECT_EQ(rc.load(), 1);
  EXPECT_EQ(p.finished.get(), 1);
  callout_destroy(&c);
  mutex_destroy(&lock);
}

TEST(NetBsdCallout, StopReturnsExpired) {
  MpsafeCallout m(1, CALLOUT_CLOCK_VIRTUAL);
  callout_reset(&m.c, 5, probe_fn, &m.p);
  EXPECT_FALSE(callout_stop(&m.c));  // pending, not fired
  EXPECT_FALSE(callout_pending(&m.c));
  callout_reset(&m.c, 1, probe_fn, &m.p);
  ASSERT_EQ(m.d.advance(1), 0);
  ASSERT_EQ(m.p.runs.get(), 1);
  EXPECT_TRUE(callout_expired(&m.c));
  EXPECT_TRUE(callout_stop(&m.c));  // it had fired
  EXPECT_FALSE(callout_expired(&m.c));
  EXPECT_FALSE(callout_stop(&m.c));
  callout_destroy(&m.c);
}

TEST(NetBsdCallout, InvokingUntilAck) {
  MpsafeCallout m(1, CALLOUT_CLOCK_VIRTUAL);
  m.p.body = [](Probe *q) {
    q->invoking_before.store(callout_invoking(q->c));
    callout_ack(q->c);
    q->invoking_after.store(callout_invoking(q->c));
  };
  EXPECT_FALSE(callout_invoking(&m.c));
  callout_reset(&m.c, 2, probe_fn, &m.p);
  ASSERT_EQ(m.d.advance(2), 0);
  ASSERT_EQ(m.p.runs.get(), 1);
  EXPECT_EQ(m.p.invoking_before.load(), 1);
  EXPECT_EQ(m.p.invoking_after.load(), 0);
  callout_destroy(&m.c);
}

TEST(NetBsdCallout, BindToCpuLookupOneRunsOnCpuOne) {
  MpsafeCallout m(2, CALLOUT_CLOCK_MANUAL);
  callout_bind(&m.c, cpu_lookup(1));
  callout_reset(&m.c, 1, probe_fn, &m.p);
  ASSERT_EQ(m.d.advance(1), 0);
  ASSERT_EQ(m.p.runs.get(), 1);
  EXPECT_EQ(m.p.cpu.load(), 1);
  EXPECT_EQ(m.p.cpu_info_index.load(), 1);  // curcpu() in the handler
  callout_bind(&m.c, cpu_lookup(0));
  callout_reset(&m.c, 1, probe_fn, &m.p);
  ASSERT_EQ(m.d.advance(1), 0);
  ASSERT_EQ(m.p.runs.get(), 2);
  EXPECT_EQ(m.p.cpu.load(), 0);
  EXPECT_EQ(m.p.cpu_info_index.load(), 0);
  EXPECT_EQ(cpu_index(curcpu()), 0u);  // not a softclock: CPU 0
  callout_halt(&m.c, nullptr);
  callout_destroy(&m.c);
}

// KERNEL_LOCK is the giant a callout without CALLOUT_MPSAFE runs under (on
// the default domain, which callout_init and KERNEL_LOCK use here).
TEST(NetBsdCallout, KernelLockIsTheGiantOfNonMpsafeHandlers) {
  callout_domain_t *dd = callout_domain_default();
  ASSERT_EQ(callout_domain_current(), dd);
  callout_t c;
  Probe p(&c, dd);
  std::atomic<bool> test_holds{false};
  std::atomic<int> ran_while_held{0};
  p.body = [&](Probe *) {
    if (test_holds.load()) ran_while_held.fetch_add(1);
    // The handler holds exactly the lock KERNEL_LOCK names: releasing one
    // level and taking it back is fine only then (misuse otherwise), and
    // the softclock checks the depth when the handler returns.
    KERNEL_UNLOCK_ONE(NULL);
    KERNEL_LOCK(1, NULL);
  };
  callout_init(&c, 0);

  // Held by the test when the softclock takes the callout: the dispatch
  // waits for it, so a stop cancels it and the handler never runs.
  KERNEL_LOCK(1, NULL);
  test_holds.store(true);
  callout_reset(&c, 1, probe_fn, &p);
  ASSERT_TRUE(poll_until([&] { return !callout_pending(&c); }));
  callout_stop(&c);
  test_holds.store(false);
  KERNEL_UNLOCK_ONE(NULL);
  callout_halt(&c, nullptr);  // waits for the cancelled dispatch to end
  EXPECT_EQ(p.runs.get(), 0);

  // Held again, then released: the handler runs only after.
  KERNEL_LOCK(1, NULL);
  test_holds.store(true);
  callout_reset(&c, 1, probe_fn, &p);
  ASSERT_TRUE(poll_until([&] { return !callout_pending(&c); }));
  test_holds.store(false);
  KERNEL_UNLOCK_ONE(NULL);
  ASSERT_TRUE(p.finished.wait_for(1));
  EXPECT_EQ(ran_while_held.load(), 0);
  callout_halt(&c, nullptr);
  callout_destroy(&c);
}

TEST(NetBsdCallout, GetticksAndHzAreTheDomainsValues) {
  MpsafeCallout m(1, CALLOUT_CLOCK_VIRTUAL, 100);
  ASSERT_EQ(m.d.advance(40), 0);
  callout_reset(&m.c, 0, probe_fn, &m.p);  // 0 ticks: the next tick, as NetBSD
  ASSERT_EQ(m.d.advance(1), 0);
  ASSERT_EQ(m.p.runs.get(), 1);
  EXPECT_EQ(m.p.ticks_seen.load(), 41);
  EXPECT_EQ(m.p.hz_seen.load(), 100);
  callout_schedule(&m.c, 3);
  ASSERT_EQ(m.d.advance(3), 0);
  EXPECT_EQ(m.p.ticks_seen.load(), 44);
  // Outside a handler: the default domain's.
  EXPECT_EQ(hz, static_cast<int>(callout_domain_hz(callout_domain_default())));
  const auto before = static_cast<int>(callout_domain_ticks(callout_domain_default()));
  const int now = getticks();
  const auto after = static_cast<int>(callout_domain_ticks(callout_domain_default()));
  EXPECT_LE(before, now);
  EXPECT_LE(now, after);
  callout_destroy(&m.c);
}

void nop_fn(void *) {}

TEST(NetBsdCalloutDeathTest, NegativeTicksAbortWithAMessage) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        Domain d(1, CALLOUT_CLOCK_VIRTUAL);
        callout_t c;
        callout_init_domain(&c, CALLOUT_MPSAFE, d);
        callout_reset(&c, -1, nop_fn, nullptr);
      },
      "callout_reset: callout .*negative tick count -1");
  EXPECT_DEATH(
      {
        Domain d(1, CALLOUT_CLOCK_VIRTUAL);
        callout_t c;
        callout_init_domain(&c, CALLOUT_MPSAFE, d);
        callout_setfunc(&c, nop_fn, nullptr);
        callout_schedule(&c, -5);
      },
      "callout_schedule: callout .*negative tick count -5");
}

}  // namespace
