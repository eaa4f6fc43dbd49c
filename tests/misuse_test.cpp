// misuse_test.cpp -- SPEC.md section 5: misuse prints one line naming the
// function (and the callout's address) to stderr and calls abort().
//
// Death tests run in the "threadsafe" style (the child re-executes the
// binary), since the library runs softclock threads.
#include <callout/callout.h>
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <atomic>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <tuple>

#include "test_util.h"

// gcc defines __SANITIZE_THREAD__; clang 14 only answers __has_feature.
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CALLOUT_TEST_TSAN 1
#endif
#endif
#ifndef CALLOUT_TEST_TSAN
#define CALLOUT_TEST_TSAN 0
#endif

namespace {

using namespace ct;

constexpr unsigned kMp = CALLOUT_MPSAFE;

void noop(void *) {}

class MisuseTest : public testing::Test {
 protected:
  void SetUp() override { testing::FLAGS_gtest_death_test_style = "threadsafe"; }
};

// The address as "%p" prints it, without the 0x prefix (so both "0x7f.." and
// "7f.." spellings match).
std::string hex_of(const void *p) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%p", p);
  std::string s(buf);
  if (s.rfind("0x", 0) == 0) s = s.substr(2);
  return s;
}

// ============================================================================
// Uninitialised (0x00 / 0xA5 filled) and destroyed callouts, every operation
// ============================================================================

struct Op {
  const char *name;  // the function the message must name
  std::function<void(callout_t *)> call;
};

const Op kOps[] = {
    {"callout_reset", [](callout_t *c) { callout_reset(c, 1, noop, nullptr); }},
    {"callout_schedule", [](callout_t *c) { callout_schedule(c, 1); }},
    {"callout_setfunc", [](callout_t *c) { callout_setfunc(c, noop, nullptr); }},
    {"callout_stop", [](callout_t *c) { (void)callout_stop(c); }},
    {"callout_halt", [](callout_t *c) { (void)callout_halt(c, nullptr); }},
    {"callout_pending", [](callout_t *c) { (void)callout_pending(c); }},
    {"callout_expired", [](callout_t *c) { (void)callout_expired(c); }},
    {"callout_active", [](callout_t *c) { (void)callout_active(c); }},
    {"callout_invoking", [](callout_t *c) { (void)callout_invoking(c); }},
    {"callout_ack", [](callout_t *c) { callout_ack(c); }},
    {"callout_bind", [](callout_t *c) { callout_bind(c, 0); }},
    {"callout_destroy", [](callout_t *c) { callout_destroy(c); }},
};
constexpr int kNumOps = sizeof kOps / sizeof kOps[0];

enum class Bad { kZero, kA5, kDestroyed };

class BadCalloutTest : public testing::TestWithParam<std::tuple<Bad, int>> {
 protected:
  void SetUp() override { testing::FLAGS_gtest_death_test_style = "threadsafe"; }
};

TEST_P(BadCalloutTest, AbortsNamingTheFunction) {
  const Bad bad = std::get<0>(GetParam());
  const Op &op = kOps[std::get<1>(GetParam())];
  Domain d(2);
  callout_t c;
  switch (bad) {
    case Bad::kZero:
      std::memset(&c, 0, sizeof c);
      break;
    case Bad::kA5:
      std::memset(&c, 0xA5, sizeof c);
      break;
    case Bad::kDestroyed:
      callout_init_domain(&c, kMp, d);
      callout_setfunc(&c, noop, nullptr);
      callout_destroy(&c);
      break;
  }
  EXPECT_EXIT(op.call(&c), testing::KilledBySignal(SIGABRT), op.name);
}

std::string bad_name(const testing::TestParamInfo<std::tuple<Bad, int>> &info) {
  const Bad bad = std::get<0>(info.param);
  std::string s = bad == Bad::kZero ? "Zeroed_" : bad == Bad::kA5 ? "FilledA5_" : "Destroyed_";
  return s + kOps[std::get<1>(info.param)].name;
}

INSTANTIATE_TEST_SUITE_P(AllOps, BadCalloutTest,
                         testing::Combine(testing::Values(Bad::kZero, Bad::kA5, Bad::kDestroyed),
                                          testing::Range(0, kNumOps)),
                         bad_name);

// Callout storage at the same address in the parent and in the death-test
// child (which is a fresh exec, so stack and heap addresses differ): a fixed
// mapping, at the first candidate address the sanitizer layout allows.
callout_t *fixed_address_callout(int slot) {
  static void *base = [] {
#if defined(__SANITIZE_THREAD__) || CALLOUT_TEST_TSAN
    // TSan aborts on mappings outside its application ranges; this one is
    // in its low "main binary / MAP_32BIT" range.
    const uintptr_t candidates[] = {0x004a5a000000u};
#elif UINTPTR_MAX == UINT32_MAX
    // 32-bit targets: below the usual i386/armhf heap and library ranges.
    const uintptr_t candidates[] = {0x3a5a0000u, 0x4a5a0000u, 0x2a5a0000u};
#else
    const uintptr_t candidates[] = {0x3a5a00000000u, 0x004a5a000000u, 0x6a5a00000000u};
#endif
    for (uintptr_t a : candidates) {
      void *p = mmap(reinterpret_cast<void *>(a), 1 << 16, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
      if (p == reinterpret_cast<void *>(a)) return p;
      if (p != MAP_FAILED) munmap(p, 1 << 16);
    }
    return static_cast<void *>(nullptr);
  }();
  if (base == nullptr) return nullptr;
  return reinterpret_cast<callout_t *>(static_cast<char *>(base) + 0x100 + slot * 0x200);
}

TEST_F(MisuseTest, MessageNamesTheCalloutsAddress) {
  Domain d(1);
  callout_t *c = fixed_address_callout(0);
  callout_t *z = fixed_address_callout(1);
  if (c == nullptr || z == nullptr) GTEST_SKIP() << "no fixed mapping available";
  callout_init_domain(c, kMp, d);
  callout_destroy(c);
  EXPECT_EXIT(callout_reset(c, 1, noop, nullptr), testing::KilledBySignal(SIGABRT), hex_of(c));
  std::memset(z, 0xA5, sizeof *z);
  EXPECT_EXIT(callout_stop(z), testing::KilledBySignal(SIGABRT), hex_of(z));
  // One line: the function name and the address on the same line.
  EXPECT_EXIT(callout_stop(z), testing::KilledBySignal(SIGABRT),
              std::string("callout_stop[^\n]*") + hex_of(z));
}

// ============================================================================
// Unknown init flags
// ============================================================================

TEST_F(MisuseTest, UnknownFlagsToCalloutInit) {
  callout_t c;
  EXPECT_EXIT(callout_init(&c, 0x1u), testing::KilledBySignal(SIGABRT), "callout_init([^_]|$)");
  EXPECT_EXIT(callout_init(&c, CALLOUT_MPSAFE | 0x10000u), testing::KilledBySignal(SIGABRT),
              "callout_init([^_]|$)");
  EXPECT_EXIT(callout_init(&c, 0xFFFFFFFFu), testing::KilledBySignal(SIGABRT), "callout_init([^_]|$)");
}

TEST_F(MisuseTest, UnknownFlagsToCalloutInitDomain) {
  Domain d(1);
  callout_t c;
  EXPECT_EXIT(callout_init_domain(&c, 0x4u, d), testing::KilledBySignal(SIGABRT), "callout_init_domain");
  EXPECT_EXIT(callout_init_domain(&c, CALLOUT_MPSAFE | 0x80000000u, d), testing::KilledBySignal(SIGABRT),
              "callout_init_domain");
}

TEST_F(MisuseTest, UnknownFlagsToCalloutInitMtx) {
  Domain d(1);
  Mutex m;
  callout_t c;
  EXPECT_EXIT(callout_init_mtx(&c, d, m.get(), 0x8000u), testing::KilledBySignal(SIGABRT),
              "callout_init_mtx");
  EXPECT_EXIT(callout_init_mtx(&c, d, m.get(), CALLOUT_RETURNUNLOCKED | 0x1u),
              testing::KilledBySignal(SIGABRT), "callout_init_mtx");
}

// The two known flags are not misuse (control for the tests above).
TEST_F(MisuseTest, KnownFlagsAreAccepted) {
  Domain d(1);
  Mutex m;
  std::atomic<int> runs{0};
  Callout a, b;
  a.init(d, CALLOUT_MPSAFE | CALLOUT_RETURNUNLOCKED);
  b.init_mtx(d, m.get(), CALLOUT_MPSAFE);
  a.fn = [&] { runs++; };
  b.fn = [&] { runs++; };
  a.reset(1);
  b.reset(1);
  ASSERT_EQ(d.advance(1), 0);
  EXPECT_EQ(runs.load(), 2);
}

// ============================================================================
// destroy while pending / while running elsewhere
// ============================================================================

TEST_F(MisuseTest, DestroyWhilePending) {
  Domain d(1);
  callout_t c;
  callout_init_domain(&c, kMp, d);
  callout_reset(&c, 10, noop, nullptr);
  EXPECT_EXIT(callout_destroy(&c), testing::KilledBySignal(SIGABRT), "callout_destroy");
  // A giant callout, pending via schedule.
  callout_t g;
  callout_init_domain(&g, 0u, d);
  callout_setfunc(&g, noop, nullptr);
  callout_schedule(&g, 3);
  EXPECT_EXIT(callout_destroy(&g), testing::KilledBySignal(SIGABRT), "callout_destroy");
  callout_halt(&c, nullptr);
  callout_destroy(&c);
  callout_halt(&g, nullptr);
  callout_destroy(&g);
}

// Runs `action` on the test thread while c's handler is blocked on another
// thread (a softclock thread of a manual domain); used inside death tests.
void while_running(callout_domain_t *d, callout_t *c, unsigned flags, const std::function<void()> &action) {
  Gate gate;
  std::atomic<bool> entered{false};
  Fn h = [&] {
    entered.store(true);
    gate.wait();
  };
  callout_init_domain(c, flags, d);
  callout_reset(c, 1, fn_trampoline, &h);
  AsyncAdvance adv(d, 1);
  if (!wait_until([&] { return entered.load(); })) std::fprintf(stderr, "handler never ran\n");
  action();
  gate.open();
  adv.join();
}

TEST_F(MisuseTest, DestroyWhileRunningInAnotherThread) {
  Domain d(2);
  callout_t c;
  EXPECT_EXIT(while_running(d, &c, kMp, [&] { callout_destroy(&c); }), testing::KilledBySignal(SIGABRT),
              "callout_destroy");
}

// ============================================================================
// schedule with no handler
// ============================================================================

TEST_F(MisuseTest, ScheduleWithNoHandler) {
  Domain d(1);
  callout_t c;
  callout_init_domain(&c, kMp, d);
  EXPECT_EXIT(callout_schedule(&c, 1), testing::KilledBySignal(SIGABRT), "callout_schedule");
  callout_t g;
  callout_init_domain(&g, 0u, d);
  EXPECT_EXIT(callout_schedule(&g, 0), testing::KilledBySignal(SIGABRT), "callout_schedule");
  callout_destroy(&c);
  callout_destroy(&g);
}

// ============================================================================
// bind
// ============================================================================

TEST_F(MisuseTest, BindOutOfRange) {
  Domain d(2);
  callout_t c;
  callout_init_domain(&c, kMp, d);
  EXPECT_EXIT(callout_bind(&c, 2), testing::KilledBySignal(SIGABRT), "callout_bind");
  EXPECT_EXIT(callout_bind(&c, UINT_MAX), testing::KilledBySignal(SIGABRT), "callout_bind");
  callout_bind(&c, 1);  // in range: fine
  callout_destroy(&c);
}

TEST_F(MisuseTest, BindOnAPendingCallout) {
  Domain d(2);
  callout_t c;
  callout_init_domain(&c, kMp, d);
  callout_reset(&c, 5, noop, nullptr);
  EXPECT_EXIT(callout_bind(&c, 1), testing::KilledBySignal(SIGABRT), "callout_bind");
  callout_halt(&c, nullptr);
  callout_bind(&c, 1);  // stopped: fine
  callout_destroy(&c);
}

TEST_F(MisuseTest, BindOnARunningCallout) {
  Domain d(2);
  callout_t c;
  EXPECT_EXIT(while_running(d, &c, kMp, [&] { callout_bind(&c, 1); }), testing::KilledBySignal(SIGABRT),
              "callout_bind");
}

TEST_F(MisuseTest, BindOnAGiantLockedCallout) {
  Domain d(2);
  callout_t c;
  callout_init_domain(&c, 0u, d);
  EXPECT_EXIT(callout_bind(&c, 0), testing::KilledBySignal(SIGABRT), "callout_bind");
  EXPECT_EXIT(callout_bind(&c, 1), testing::KilledBySignal(SIGABRT), "callout_bind");
  callout_destroy(&c);
}

// ============================================================================
// giant_exit without giant_enter
// ============================================================================

TEST_F(MisuseTest, GiantExitWithoutEnter) {
  Domain d(1);
  EXPECT_EXIT(callout_giant_exit(d), testing::KilledBySignal(SIGABRT), "callout_giant_exit");
}

TEST_F(MisuseTest, GiantExitMoreTimesThanEntered) {
  Domain d(1);
  EXPECT_EXIT(
      {
        callout_giant_enter(d);
        callout_giant_enter(d);
        callout_giant_exit(d);
        callout_giant_exit(d);
        callout_giant_exit(d);
      },
      testing::KilledBySignal(SIGABRT), "callout_giant_exit");
}

TEST_F(MisuseTest, GiantExitByAThreadThatDoesNotHoldIt) {
  Domain d(1);
  EXPECT_EXIT(
      {
        GiantProbe holder(d);  // another thread holds giant
        wait_until([&] { return holder.acquired(); });
        callout_giant_exit(d);
        holder.release();
      },
      testing::KilledBySignal(SIGABRT), "callout_giant_exit");
}

// A giant-locked handler that returns without giant is misuse.  The check
// must not read giant's depth while another thread owns giant: the depth
// belongs to its owner.  The flags below are relaxed on purpose, so that
// nothing orders the holder's write of the depth before the softclock's
// check; under TSan (halt_on_error=1, as CI runs it) a check that read the
// depth first ended in a data race report instead of the misuse message.
void return_from_a_giant_handler_while_another_thread_holds_giant() {
  Domain d(1);
  std::atomic<bool> go{false}, taken{false}, leave{false};
  std::thread holder([&] {
    while (!go.load(std::memory_order_relaxed)) std::this_thread::sleep_for(200us);
    callout_giant_enter(d);
    taken.store(true, std::memory_order_relaxed);
    while (!leave.load(std::memory_order_relaxed)) std::this_thread::sleep_for(200us);
    callout_giant_exit(d);
  });
  Callout c(d, 0u);
  c.fn = [&] {
    callout_giant_exit(d);
    go.store(true, std::memory_order_relaxed);
    while (!taken.load(std::memory_order_relaxed)) std::this_thread::sleep_for(200us);
  };
  c.reset(1);
  (void)d.advance(1);
  leave.store(true);
  holder.join();
}

TEST_F(MisuseTest, GiantHandlerReturnsWhileAnotherThreadHoldsGiant) {
  EXPECT_EXIT(return_from_a_giant_handler_while_another_thread_holds_giant(),
              testing::KilledBySignal(SIGABRT), "softclock: callout .*giant lock taken or released unevenly");
}

}  // namespace
