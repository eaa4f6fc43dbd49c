// virtual_test.cpp -- the caller-driven virtual clock, callout_domain_drain,
// and the accounting of CALLOUT_NODESTROY callouts at domain destroy.
//
// The virtual clock's promise is determinism: callout_domain_advance() runs
// every due handler in the calling thread, in due-tick order, ties broken
// by CPU index and then by arming order, so the same calls give the same
// trace.  The tests check each part of that order, a randomised program run
// twice, and that halt, lock-associated cancel and giant keep their meaning
// when the "softclock" is the test's own thread.
#include <sched.h>

#include <algorithm>
#include <random>
#include <utility>
#include <vector>

#include "../test_util.h"
#include "domain.h"
#include "fbsd_callouts.h"

namespace {

using namespace ct;
using Trace = std::vector<std::pair<std::uint64_t, int>>;

// A callout with an id that appends (tick, id) to a trace when it runs.
struct Tracer {
  Trace *trace = nullptr;
  callout_domain_t *d = nullptr;
  int id = 0;
  callout_t c;
};
void trace_handler(void *arg) {
  auto *t = static_cast<Tracer *>(arg);
  t->trace->emplace_back(callout_domain_ticks(t->d), t->id);
}

// ---- the virtual clock: where and in which order handlers run -------------

TEST(Virtual, HandlersRunInTheCallersThreadOnTheirCpu) {
  Domain d(2, CALLOUT_CLOCK_VIRTUAL);
  struct Seen {
    pthread_t thread;
    int cpu = -2;
    callout_domain_t *current = nullptr;
    int runs = 0;
  } seen[2];
  Callout c0(d, CALLOUT_MPSAFE), c1(d, CALLOUT_MPSAFE);
  c1.bind(1);
  Callout *cs[2] = {&c0, &c1};
  for (int i = 0; i < 2; ++i) {
    Seen *s = &seen[i];
    cs[i]->fn = [s, &d] {
      s->thread = pthread_self();
      s->cpu = callout_domain_curcpu(d);
      s->current = callout_domain_current();
      ++s->runs;
    };
    cs[i]->reset(3 + i);
  }
  // Nothing runs until the caller advances: there is no softclock thread.
  ASSERT_EQ(d.advance(2), 0);
  EXPECT_EQ(seen[0].runs + seen[1].runs, 0);
  ASSERT_EQ(d.advance(10), 0);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(seen[i].runs, 1) << i;
    EXPECT_TRUE(pthread_equal(seen[i].thread, pthread_self())) << "handler " << i << " ran in another thread";
    EXPECT_EQ(seen[i].cpu, i);
    EXPECT_EQ(seen[i].current, d.get());
  }
  // Outside a handler the caller is no CPU of the domain.
  EXPECT_EQ(callout_domain_curcpu(d), -1);
}

TEST(Virtual, HandlersRunInDueTickOrderAtTheirTick) {
  Domain d(1, CALLOUT_CLOCK_VIRTUAL);
  Trace trace;
  const int due[] = {7, 3, 200, 1, 64, 65, 4096, 2};
  std::vector<Tracer> ts(std::size(due));
  for (size_t i = 0; i < ts.size(); ++i) {
    ts[i].trace = &trace;
    ts[i].d = d;
    ts[i].id = due[i];  // the id is the due tick
    callout_init_domain(&ts[i].c, CALLOUT_MPSAFE, d);
    callout_reset(&ts[i].c, due[i], trace_handler, &ts[i]);
  }
  ASSERT_EQ(d.advance(5000), 0);
  Trace want;
  for (int t : due) want.emplace_back(t, t);
  std::sort(want.begin(), want.end());
  EXPECT_EQ(trace, want);
  EXPECT_EQ(d.ticks(), 5000u);
  for (auto &t : ts) callout_destroy(&t.c);
}

TEST(Virtual, TiesRunCpuByCpuInIndexOrderThenInArmingOrder) {
  Domain d(3, CALLOUT_CLOCK_VIRTUAL);
  Trace trace;
  // Armed CPU 2 first, then 1, then 0, two per CPU, all due at tick 10:
  // the run order must be CPU 0's pair, CPU 1's, CPU 2's, each pair in the
  // order it was armed.
  struct Arm {
    int id;
    unsigned cpu;
  } arms[] = {{20, 2}, {10, 1}, {21, 2}, {0, 0}, {11, 1}, {1, 0}};
  std::vector<Tracer> ts(std::size(arms));
  for (size_t i = 0; i < ts.size(); ++i) {
    ts[i].trace = &trace;
    ts[i].d = d;
    ts[i].id = arms[i].id;
    callout_init_domain(&ts[i].c, CALLOUT_MPSAFE, d);
    callout_bind(&ts[i].c, arms[i].cpu);
    callout_reset(&ts[i].c, 10, trace_handler, &ts[i]);
  }
  ASSERT_EQ(d.advance(10), 0);
  EXPECT_EQ(trace, (Trace{{10, 0}, {10, 1}, {10, 10}, {10, 11}, {10, 20}, {10, 21}}));
  for (auto &t : ts) callout_destroy(&t.c);
}

TEST(Virtual, ACalloutMovedLaterWhilePendingIsOrderedByTheCallsMade) {
  Domain d(1, CALLOUT_CLOCK_VIRTUAL);
  Trace trace;
  Tracer a, b, c;
  for (Tracer *t : {&a, &b, &c}) {
    t->trace = &trace;
    t->d = d;
    callout_init_domain(&t->c, CALLOUT_MPSAFE, d);
  }
  a.id = 1, b.id = 2, c.id = 3;
  // A is armed first (due 300), then B (due 310); then A is moved later, to
  // 310, while pending.  Both wait in the same level-1 bucket (ticks
  // 256..511 with 8-bit digits), so the lazy move keeps A ahead of B; the
  // cascade at tick 256 keeps that order.
  callout_reset(&a.c, 300, trace_handler, &a);
  callout_reset(&b.c, 310, trace_handler, &b);
  callout_reset(&a.c, 310, trace_handler, &a);
  // C, armed (due 310) after all of that, runs last.
  callout_reset(&c.c, 310, trace_handler, &c);
  ASSERT_EQ(d.advance(400), 0);
  EXPECT_EQ(trace, (Trace{{310, 1}, {310, 2}, {310, 3}}));

  // Level-0 buckets instead (due 465 and 470 from tick 400): A moved from
  // 465 to 470 stays in bucket 465 until tick 465, when it is re-placed
  // behind B, which has been waiting in bucket 470 since it was armed.
  trace.clear();
  callout_reset(&a.c, 65, trace_handler, &a);
  callout_reset(&b.c, 70, trace_handler, &b);
  callout_reset(&a.c, 70, trace_handler, &a);
  ASSERT_EQ(d.advance(100), 0);
  EXPECT_EQ(trace, (Trace{{470, 2}, {470, 1}}));

  // Stopped and armed again, A is a new arming and runs after B: stop and
  // reset is how a caller asks for "last", whatever the geometry.
  trace.clear();
  callout_reset(&a.c, 300, trace_handler, &a);
  callout_reset(&b.c, 310, trace_handler, &b);
  callout_stop(&a.c);
  callout_reset(&a.c, 310, trace_handler, &a);
  ASSERT_EQ(d.advance(400), 0);
  EXPECT_EQ(trace, (Trace{{810, 2}, {810, 1}}));
  for (Tracer *t : {&a, &b, &c}) callout_destroy(&t->c);
}

// ---- determinism: a randomised program, twice ------------------------------

// A program of many callouts on two CPUs (odd ids bound to CPU 1) whose
// handlers and whose driver (the test thread) reset, stop, halt and
// reschedule callouts at random from one fixed seed.  All randomness comes
// from one generator consumed in program order, so the same library must
// give the same trace every time.
struct Program {
  static constexpr int kCallouts = 48;
  struct Slot {
    Program *p;
    int id;
    callout_t c;
  };
  callout_domain_t *d = nullptr;
  std::mt19937 rng;
  Trace trace;
  Slot slots[kCallouts];

  explicit Program(unsigned seed) : rng(seed) {}
  unsigned pick(unsigned n) { return static_cast<unsigned>(rng() % n); }
  callout_t *any() { return &slots[pick(kCallouts)].c; }

  static void handler(void *arg) {
    auto *s = static_cast<Slot *>(arg);
    Program *p = s->p;
    p->trace.emplace_back(callout_domain_ticks(p->d), s->id);
    switch (p->pick(10)) {
      case 0:
      case 1:
      case 2:
      case 3:
        callout_schedule(&s->c, 1 + static_cast<int>(p->pick(40)));
        break;
      case 4: {
        // One pick per statement: argument evaluation order is unspecified,
        // and the program must be the same with every compiler.
        callout_t *other = p->any();
        callout_schedule(other, 1 + static_cast<int>(p->pick(40)));
        break;
      }
      case 5:
        callout_stop(p->any());
        break;
      case 6:
        callout_halt(p->any(), nullptr);
        break;
      case 7:
        // Two at the same tick: a tie for the order rules to break.
        callout_schedule(p->any(), 5);
        callout_schedule(p->any(), 5);
        break;
      default:
        break;
    }
  }

  Trace run() {
    callout_domain_config cfg = make_config(2, CALLOUT_CLOCK_VIRTUAL, 100);
    EXPECT_EQ(callout_domain_create(&cfg, &d), 0);
    for (int i = 0; i < kCallouts; ++i) {
      slots[i].p = this;
      slots[i].id = i;
      callout_init_domain(&slots[i].c, CALLOUT_MPSAFE, d);
      callout_setfunc(&slots[i].c, handler, &slots[i]);
      if (i % 2 == 1) callout_bind(&slots[i].c, 1);
    }
    for (int step = 0; step < 400; ++step) {
      for (int k = 0; k < 3; ++k) {
        switch (pick(6)) {
          case 0:
          case 1:
          case 2: {
            callout_t *c = any();
            callout_schedule(c, 1 + static_cast<int>(pick(60)));
            break;
          }
          case 3:
            callout_stop(any());
            break;
          case 4:
            callout_halt(any(), nullptr);
            break;
          default:
            break;
        }
      }
      EXPECT_EQ(callout_domain_advance(d, 1 + pick(12)), 0);
    }
    for (auto &s : slots) {
      callout_halt(&s.c, nullptr);
      callout_destroy(&s.c);
    }
    EXPECT_EQ(callout_domain_destroy(d), 0);
    return trace;
  }
};

TEST(Virtual, TheSameProgramGivesTheSameTraceInTwoFreshDomains) {
  auto first = std::make_unique<Program>(20261203u);
  auto second = std::make_unique<Program>(20261203u);
  const Trace a = first->run();
  const Trace b = second->run();
  // Not trivially equal: the program did fire many handlers on both CPUs,
  // in tick order.
  ASSERT_GT(a.size(), 500u);
  EXPECT_TRUE(std::any_of(a.begin(), a.end(), [](auto &e) { return e.second % 2 == 1; }));
  EXPECT_TRUE(std::any_of(a.begin(), a.end(), [](auto &e) { return e.second % 2 == 0; }));
  EXPECT_TRUE(std::is_sorted(a.begin(), a.end(), [](auto &x, auto &y) { return x.first < y.first; }));
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i], b[i]) << "traces diverge at entry " << i;
  }
  // And the trace is a function of the program: another seed differs.
  const Trace c = std::make_unique<Program>(7u)->run();
  EXPECT_NE(a, c);
}

// ---- halt, lock-associated cancel and giant on the virtual clock -----------

TEST(Virtual, HaltFromAnotherThreadWaitsForTheHandlerAdvanceRuns) {
  Watchdog wd("virtual halt");
  Domain d(1, CALLOUT_CLOCK_VIRTUAL);
  Gate gate;
  std::atomic<bool> started{false}, finished{false};
  Callout c(d, CALLOUT_MPSAFE);
  c.fn = [&] {
    started = true;
    gate.wait();
    c.reset(1);  // a re-arm that the halt must undo
    finished = true;
  };
  ScopeExit open([&] { gate.open(); });
  c.reset(1);
  AsyncAdvance adv(d, 5);
  ASSERT_TRUE(wait_until([&] { return started.load(); }));
  std::atomic<bool> halted{false}, finished_at_halt{false};
  std::atomic<int> rc{-1};
  std::thread halter([&] {
    rc = c.halt() ? 1 : 0;
    finished_at_halt = finished.load();
    halted = true;
  });
  // The handler is blocked in the advancing thread: the halt must wait.
  EXPECT_TRUE(stays_false([&] { return halted.load(); }, 100ms));
  gate.open();
  halter.join();
  EXPECT_EQ(rc.load(), 1) << "halt says it waited";
  EXPECT_TRUE(finished_at_halt.load()) << "halt returned before the handler finished";
  EXPECT_EQ(adv.join(), 0);
  EXPECT_FALSE(c.pending()) << "the handler's re-arm was not undone";
}

TEST(Virtual, AStopHoldingTheMutexCancelsTheDispatchAdvanceWaitsIn) {
  Watchdog wd("virtual mutex cancel");
  Domain d(1, CALLOUT_CLOCK_VIRTUAL);
  Mutex m;
  std::atomic<int> runs{0};
  Callout c;
  c.init_mtx(d, m.get(), 0);
  c.fn = [&] { ++runs; };
  m.lock();
  c.reset(1);
  AsyncAdvance adv(d, 3);
  // Dispatched (no longer pending) and waiting for the mutex we hold.
  ASSERT_TRUE(wait_until([&] { return !c.pending(); }));
  EXPECT_TRUE(stays_false([&] { return adv.done(); }, 50ms));
  EXPECT_FALSE(c.stop()) << "the handler had not run for this arming";
  m.unlock();
  EXPECT_EQ(adv.join(), 0);
  EXPECT_EQ(runs.load(), 0) << "the cancelled handler ran";
  callout_stats st;
  st.size = sizeof st;
  ASSERT_EQ(callout_domain_stats(d, -1, &st), 0);
  EXPECT_EQ(st.cancelled, 1u);

  // Without a stop the handler runs in the advancing thread, holding m.
  std::atomic<int> held{-1};
  c.fn = [&] {
    held = trylock_from_other_thread(m.get());
    ++runs;
  };
  c.reset(1);
  ASSERT_EQ(d.advance(1), 0);
  EXPECT_EQ(runs.load(), 1);
  EXPECT_EQ(held.load(), EBUSY);
}

TEST(Virtual, GiantLockedHandlersRunUnderGiant) {
  Watchdog wd("virtual giant");
  Domain d(1, CALLOUT_CLOCK_VIRTUAL);
  std::unique_ptr<GiantProbe> probe;
  std::atomic<bool> probe_blocked{false};
  Callout c(d, 0);
  c.fn = [&] {
    probe = std::make_unique<GiantProbe>(d);
    probe_blocked = stays_false([&] { return probe->acquired(); }, 50ms);
  };
  c.reset(2);
  ASSERT_EQ(d.advance(2), 0);
  EXPECT_TRUE(probe_blocked.load()) << "another thread took giant while the handler ran";
  ASSERT_TRUE(probe);
  EXPECT_TRUE(wait_until([&] { return probe->acquired(); })) << "giant still held after advance";
  probe.reset();
}

// advance() from a thread that itself holds giant, with a giant-locked
// handler due: giant is recursive, so the handler runs in that thread (the
// dispatch must count the level the caller already holds, not abort with
// "handler returned with the giant lock taken or released unevenly").
TEST(Virtual, AdvanceWhileHoldingGiantRunsGiantHandlers) {
  Watchdog wd("virtual advance under giant");
  Domain d(1, CALLOUT_CLOCK_VIRTUAL);
  int runs = 0;
  Callout c(d, 0);
  c.fn = [&] { ++runs; };
  c.reset(1);
  callout_giant_enter(d);
  EXPECT_EQ(d.advance(1), 0);
  callout_giant_exit(d);
  EXPECT_EQ(runs, 1);
}

TEST(Virtual, WhatAHandlerMayNotCall) {
  Domain d(1, CALLOUT_CLOCK_VIRTUAL);
  int advance_rc = -1, drain_rc = -1, destroy_rc = -1;
  Callout c(d, CALLOUT_MPSAFE);
  c.fn = [&] {
    advance_rc = callout_domain_advance(d, 1);
    drain_rc = callout_domain_drain(d);
    destroy_rc = callout_domain_destroy(d);
  };
  c.reset(1);
  ASSERT_EQ(d.advance(1), 0);
  EXPECT_EQ(advance_rc, EDEADLK);
  EXPECT_EQ(drain_rc, EDEADLK);
  EXPECT_EQ(destroy_rc, EDEADLK);
}

TEST(Virtual, IsNotAnEventLoopClock) {
  Domain d(1, CALLOUT_CLOCK_VIRTUAL);
  Callout c(d, CALLOUT_MPSAFE);
  c.fn = [] {};
  c.reset(1);
  EXPECT_EQ(callout_domain_next_timeout(d), -1) << "virtual time has no wall-clock deadline";
  EXPECT_EQ(callout_domain_run(d), 0u);
  errno = 0;
  EXPECT_EQ(callout_domain_fd(d), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_TRUE(c.pending());
}

TEST(Virtual, DestroyRefusesWhileUsedAndSucceedsAfter) {
  callout_domain_config cfg = make_config(2, CALLOUT_CLOCK_VIRTUAL, 100);
  callout_domain_t *d = nullptr;
  ASSERT_EQ(callout_domain_create(&cfg, &d), 0);
  EXPECT_EQ(callout_domain_ncpu(d), 2u);
  EXPECT_EQ(callout_domain_hz(d), 100u);
  int runs = 0;
  Fn fn([&] { ++runs; });
  callout_t c;
  callout_init_domain(&c, CALLOUT_MPSAFE, d);
  callout_reset(&c, 3, fn_trampoline, &fn);
  EXPECT_EQ(callout_domain_destroy(d), EBUSY) << "a pending callout keeps the domain";
  ASSERT_EQ(callout_domain_advance(d, 3), 0);
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(callout_domain_destroy(d), EBUSY) << "an initialised callout keeps the domain";
  callout_destroy(&c);
  EXPECT_EQ(callout_domain_destroy(d), 0);
}

// On a virtual domain the handler order must be a function of the calls
// made, not of the processor the caller happens to run on: FreeBSD's
// callout_reset_curcpu from a thread that is not a handler must not pick
// its CPU from sched_getcpu() there (pinned to two different processors,
// the same program must land its callout on the same CPU).
TEST(Virtual, FreeBSDResetCurcpuDoesNotDependOnTheOsProcessor) {
  cpu_set_t saved;
  ASSERT_EQ(sched_getaffinity(0, sizeof saved, &saved), 0);
  if (CPU_COUNT(&saved) < 2) GTEST_SKIP() << "needs two processors";
  int os_cpus[2], n = 0;
  for (int i = 0; i < CPU_SETSIZE && n < 2; ++i)
    if (CPU_ISSET(i, &saved)) os_cpus[n++] = i;
  int landed[2];
  for (int k = 0; k < 2; ++k) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(os_cpus[k], &one);
    ASSERT_EQ(sched_setaffinity(0, sizeof one, &one), 0);
    Domain d(2, CALLOUT_CLOCK_VIRTUAL);
    landed[k] = fbsd_curcpu_lands_on(d);
  }
  ASSERT_EQ(sched_setaffinity(0, sizeof saved, &saved), 0);
  EXPECT_EQ(landed[0], landed[1]) << "the callout's CPU followed the OS processor";
}

// ---- callout_domain_drain ---------------------------------------------------

// Whether a callout_domain_drain() holds dispatch on CPU `cpu` of d (an
// internal count: no public call tells when a drain has taken hold).
bool drain_holds(callout_domain_t *d, unsigned cpu) {
  libcallout::internal::Cpu *c = &d->cpus[cpu];
  c->lock.lock();
  const bool held = c->holds != 0;
  c->lock.unlock();
  return held;
}

TEST(Drain, WaitsForAHandlerOnAnotherCpuAndHoldsNewDispatch) {
  Watchdog wd("drain");
  Domain d(2, CALLOUT_CLOCK_MONOTONIC);
  Gate gate;
  std::atomic<bool> a_started{false}, a_finished{false}, b_started{false}, b_saw_a_finished{false};
  Callout a(d, CALLOUT_MPSAFE), b(d, CALLOUT_MPSAFE);
  a.bind(1);
  a.fn = [&] {
    a_started = true;
    gate.wait();
    a_finished = true;
  };
  b.fn = [&] {
    b_saw_a_finished = a_finished.load();
    b_started = true;
  };
  ScopeExit open([&] { gate.open(); });
  a.reset(1);
  ASSERT_TRUE(wait_until([&] { return a_started.load(); }));
  std::atomic<bool> drained{false}, a_finished_at_return{false};
  std::thread drainer([&] {
    EXPECT_EQ(callout_domain_drain(d), 0);
    a_finished_at_return = a_finished.load();
    drained = true;
  });
  // The drain holds dispatch on every CPU before it waits for A.  Wait for
  // that, not for a while: a drainer thread that had not got a CPU yet
  // would let B run, failing the test with nothing wrong.
  ASSERT_TRUE(wait_until([&] { return drain_holds(d, 0) && drain_holds(d, 1); }))
      << "the drain never held dispatch";
  // B, on CPU 0, comes due while the drain waits: it must not start.
  b.reset(2);
  EXPECT_TRUE(stays_false([&] { return drained.load() || b_started.load(); }, 150ms));
  EXPECT_TRUE(b.pending()) << "a held callout stays pending";
  gate.open();
  drainer.join();
  EXPECT_TRUE(a_finished_at_return.load()) << "drain returned while a handler still ran";
  // B fires after the drain, and not before A had finished.
  ASSERT_TRUE(wait_until([&] { return b_started.load(); }));
  EXPECT_TRUE(b_saw_a_finished.load());
}

TEST(Drain, WaitsForAHandlerThatAdvanceRunsOnAVirtualClock) {
  Watchdog wd("drain virtual");
  Domain d(1, CALLOUT_CLOCK_VIRTUAL);
  Gate gate;
  std::atomic<bool> a_started{false}, a_finished{false};
  std::atomic<int> b_runs{0};
  Callout a(d, CALLOUT_MPSAFE), b(d, CALLOUT_MPSAFE);
  a.fn = [&] {
    a_started = true;
    gate.wait();
    a_finished = true;
  };
  b.fn = [&] { ++b_runs; };
  ScopeExit open([&] { gate.open(); });
  a.reset(1);
  b.reset(2);
  AsyncAdvance adv(d, 5);
  ASSERT_TRUE(wait_until([&] { return a_started.load(); }));
  std::atomic<bool> drained{false}, a_finished_at_return{false};
  std::thread drainer([&] {
    EXPECT_EQ(callout_domain_drain(d), 0);
    a_finished_at_return = a_finished.load();
    drained = true;
  });
  EXPECT_TRUE(stays_false([&] { return drained.load(); }, 100ms))
      << "drain returned while advance ran a handler";
  gate.open();
  drainer.join();
  EXPECT_TRUE(a_finished_at_return.load());
  // The advance goes on after the drain: B runs, at its tick.
  EXPECT_EQ(adv.join(), 0);
  EXPECT_EQ(b_runs.load(), 1);
}

TEST(Drain, PendingCalloutsStayPendingAndFireAfter) {
  Watchdog wd("drain pending");
  Domain d(2, CALLOUT_CLOCK_MANUAL);
  std::atomic<int> runs{0};
  Callout c(d, CALLOUT_MPSAFE);
  c.fn = [&] { ++runs; };
  c.reset(5);
  EXPECT_EQ(callout_domain_drain(d), 0);
  EXPECT_TRUE(c.pending());
  ASSERT_EQ(d.advance(5), 0);
  EXPECT_EQ(runs.load(), 1);
}

TEST(Drain, ErrorsAndTheIdleCase) {
  Watchdog wd("drain errors");
  EXPECT_EQ(callout_domain_drain(nullptr), EINVAL);
  Domain d(2, CALLOUT_CLOCK_MONOTONIC);
  // Idle: returns at once (the watchdog turns a hang into a failure).
  EXPECT_EQ(callout_domain_drain(d), 0);
  std::atomic<int> rc{-1};
  Callout c(d, CALLOUT_MPSAFE);
  c.fn = [&] { rc = callout_domain_drain(d); };
  c.reset(1);
  ASSERT_TRUE(wait_until([&] { return rc.load() != -1; }));
  EXPECT_EQ(rc.load(), EDEADLK);
  // A handler of another domain may drain this one.
  Domain other(1, CALLOUT_CLOCK_VIRTUAL);
  int other_rc = -1;
  Callout o(other, CALLOUT_MPSAFE);
  o.fn = [&] { other_rc = callout_domain_drain(d); };
  o.reset(1);
  ASSERT_EQ(other.advance(1), 0);
  EXPECT_EQ(other_rc, 0);
}

// ---- CALLOUT_NODESTROY and callout_domain_destroy --------------------------

callout_domain_t *make_domain(callout_clock clk) {
  callout_domain_config cfg = make_config(2, clk, 1000);
  callout_domain_t *d = nullptr;
  EXPECT_EQ(callout_domain_create(&cfg, &d), 0);
  return d;
}

void nothing(void *) {}

// A CALLOUT_NODESTROY callout on d, pending `ticks` ticks from now.
void arm_nodestroy(callout_t *c, callout_domain_t *d, int ticks) {
  callout_init_domain(c, CALLOUT_MPSAFE | CALLOUT_NODESTROY, d);
  callout_reset(c, ticks, nothing, nullptr);
}

TEST(NoDestroy, DrainedAndFreedCalloutsDoNotKeepTheDomain) {
  callout_domain_t *d = make_domain(CALLOUT_CLOCK_MONOTONIC);
  std::vector<callout_t *> cs;
  for (int i = 0; i < 8; ++i) {
    auto *c = new callout_t;
    // A minute ahead: on the monotonic clock a few ticks can pass before the
    // destroy below (a preempted test thread), and callouts that fired would
    // no longer keep the domain.
    arm_nodestroy(c, d, 60000 + i);
    cs.push_back(c);
  }
  EXPECT_EQ(callout_domain_destroy(d), EBUSY) << "pending no-destroy callouts";
  for (callout_t *c : cs) {
    callout_halt(c, nullptr);
    std::memset(c, 0xa5, sizeof *c);  // freed memory is reused: no further call
    delete c;
  }
  EXPECT_EQ(callout_domain_destroy(d), 0);
}

TEST(NoDestroy, OnePendingKeepsTheDomainUntilStopped) {
  callout_domain_t *d = make_domain(CALLOUT_CLOCK_MANUAL);
  callout_t c;
  arm_nodestroy(&c, d, 10);
  EXPECT_EQ(callout_domain_destroy(d), EBUSY);
  EXPECT_TRUE(callout_pending(&c)) << "EBUSY changed nothing";
  ASSERT_EQ(callout_domain_advance(d, 10), 0);  // fired: no longer pending
  EXPECT_EQ(callout_domain_destroy(d), 0);
}

TEST(NoDestroy, DestroyIsStillAllowed) {
  callout_domain_t *d = make_domain(CALLOUT_CLOCK_MANUAL);
  callout_t c;
  arm_nodestroy(&c, d, 10);
  callout_stop(&c);
  callout_destroy(&c);
  EXPECT_EQ(callout_domain_destroy(d), 0);
}

TEST(NoDestroy, NativeCalloutsStillKeepTheDomainUntilDestroyed) {
  callout_domain_t *d = make_domain(CALLOUT_CLOCK_MANUAL);
  callout_t native, nd;
  callout_init_domain(&native, CALLOUT_MPSAFE, d);
  callout_init_domain(&nd, CALLOUT_MPSAFE | CALLOUT_NODESTROY, d);
  EXPECT_EQ(callout_domain_destroy(d), EBUSY) << "an idle native callout must be destroyed first";
  callout_destroy(&native);
  EXPECT_EQ(callout_domain_destroy(d), 0);
}

TEST(NoDestroy, FreeBSDCalloutsDrainedAndFreedDoNotKeepTheDomain) {
  callout_domain_t *d = make_domain(CALLOUT_CLOCK_MONOTONIC);
  fbsd_callouts *set = fbsd_callouts_new(d, 6);
  EXPECT_EQ(callout_domain_destroy(d), EBUSY) << "FreeBSD callouts pending";
  // A stop of a pending one returns 1; the rest are drained.
  EXPECT_EQ(fbsd_callouts_stop_first(set), 1);
  EXPECT_EQ(callout_domain_destroy(d), EBUSY) << "the others are still pending";
  fbsd_callouts_drain_and_free(set);  // drains, overwrites, frees
  EXPECT_EQ(callout_domain_destroy(d), 0);
}

}  // namespace
