// placement_test.cpp -- the softclock threads' placement and scheduling
// policy (callout_domain_config's flags, sched_policy, sched_priority): read
// back from inside handlers, the EPERM path in a child without the
// privilege, the 1.0-sized config, and the values refused with EINVAL.
//
// Manual-clock domains: callout_domain_advance() returns once the handler
// has run on its softclock thread, so no test waits on time.
#include <callout/callout.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PLACEMENT_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define PLACEMENT_TSAN 1
#endif
#if defined(PLACEMENT_TSAN)
// The fork tests start threads in a child of a multi-threaded process,
// which TSan refuses by default.
extern "C" const char *__tsan_default_options() { return "die_after_fork=0"; }
#endif

namespace {

// The processors of the calling thread's affinity mask, in order.
std::vector<int> allowed_cpus() {
  cpu_set_t mask;
  CPU_ZERO(&mask);
  EXPECT_EQ(sched_getaffinity(0, sizeof mask, &mask), 0);
  std::vector<int> v;
  for (int p = 0; p < CPU_SETSIZE; ++p)
    if (CPU_ISSET(p, &mask)) v.push_back(p);
  return v;
}

// What a handler saw of the thread running it.
struct Seen {
  int curcpu = -2;
  int os_cpu = -1;
  std::vector<int> affinity;
  int policy = -1;
  int priority = -1;
};

struct Probe {
  callout_domain_t *d;
  Seen seen;
};

void probe_handler(void *arg) {
  auto *p = static_cast<Probe *>(arg);
  p->seen.curcpu = callout_domain_curcpu(p->d);
  p->seen.os_cpu = sched_getcpu();
  cpu_set_t mask;
  CPU_ZERO(&mask);
  if (pthread_getaffinity_np(pthread_self(), sizeof mask, &mask) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &mask)) p->seen.affinity.push_back(c);
  sched_param param{};
  int policy = -1;
  if (pthread_getschedparam(pthread_self(), &policy, &param) == 0) {
    p->seen.policy = policy;
    p->seen.priority = param.sched_priority;
  }
}

// Runs probe_handler once on d: on CPU `cpu` if >= 0 (bound), else wherever
// a callout initialised by the calling thread is homed.
Seen probe(callout_domain_t *d, int cpu) {
  Probe p{d, {}};
  callout_t c;
  callout_init_domain(&c, CALLOUT_MPSAFE, d);
  if (cpu >= 0) callout_bind(&c, static_cast<unsigned>(cpu));
  callout_reset(&c, 1, probe_handler, &p);
  EXPECT_EQ(callout_domain_advance(d, 1), 0);
  callout_halt(&c, nullptr);
  callout_destroy(&c);
  return p.seen;
}

callout_domain_config manual_config(unsigned ncpu) {
  callout_domain_config cfg;
  callout_domain_config_init(&cfg);
  cfg.clock = CALLOUT_CLOCK_MANUAL;
  cfg.ncpu = ncpu;
  return cfg;
}

// The process's softclock threads: those named "callout/N" (softclock_main
// names itself first).  Only ours: a sanitizer runtime may start threads of
// its own at any time (TSan's background thread does, in a forked child).
unsigned thread_count() {
  unsigned n = 0;
  if (DIR *dir = opendir("/proc/self/task"); dir != nullptr) {
    while (const dirent *e = readdir(dir)) {
      if (e->d_name[0] == '.') continue;
      char path[300];
      std::snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
      if (FILE *f = std::fopen(path, "r"); f != nullptr) {
        char comm[32] = {};
        if (std::fgets(comm, sizeof comm, f) != nullptr && std::strncmp(comm, "callout/", 8) == 0) ++n;
        std::fclose(f);
      }
    }
    closedir(dir);
  }
  return n;
}

// The 1.0 struct's size: where the 1.1 fields begin.
constexpr size_t kV1Size = offsetof(callout_domain_config, flags);

TEST(PlacementTest, DefaultsFloatAndInherit) {
  callout_domain_config cfg;
  std::memset(&cfg, 0xA5, sizeof cfg);
  callout_domain_config_init(&cfg);
  EXPECT_EQ(cfg.size, sizeof cfg);
  EXPECT_EQ(cfg.flags, 0u);
  EXPECT_EQ(cfg.sched_policy, SCHED_OTHER);
  EXPECT_EQ(cfg.sched_priority, 0);
  cfg.clock = CALLOUT_CLOCK_MANUAL;
  cfg.ncpu = 2;
  callout_domain_t *d = nullptr;
  ASSERT_EQ(callout_domain_create(&cfg, &d), 0);
  for (int i = 0; i < 2; ++i) {
    const Seen s = probe(d, i);
    EXPECT_EQ(s.curcpu, i);
    EXPECT_EQ(s.affinity, allowed_cpus()) << "an unpinned thread keeps the creator's mask";
    EXPECT_EQ(s.policy, SCHED_OTHER);
  }
  EXPECT_EQ(callout_domain_destroy(d), 0);
}

// Thread i runs only on the (i mod count)-th allowed processor; one more
// CPU than the mask has wraps around to the first.
TEST(PlacementTest, PinnedThreadsRunOnTheirProcessor) {
  const std::vector<int> allowed = allowed_cpus();
  const auto n = static_cast<unsigned>(allowed.size()) + 1;
  callout_domain_config cfg = manual_config(n);
  cfg.flags = CALLOUT_DOMAIN_PIN;
  callout_domain_t *d = nullptr;
  ASSERT_EQ(callout_domain_create(&cfg, &d), 0);
  for (unsigned i = 0; i < n; ++i) {
    const Seen s = probe(d, static_cast<int>(i));
    const int want = allowed[i % allowed.size()];
    EXPECT_EQ(s.curcpu, static_cast<int>(i));
    EXPECT_EQ(s.affinity, std::vector<int>{want}) << "thread " << i;
    EXPECT_EQ(s.os_cpu, want) << "thread " << i;
  }
  EXPECT_EQ(callout_domain_destroy(d), 0);
}

// An unbound callout initialised on processor p is homed on the CPU pinned
// to p, and its handler runs on p.  The creator narrows its mask to the last
// processor, so both threads of a 2-CPU domain sit there and the CPU pinned
// to it is 0 -- where sched_getcpu() % ncpu would say 1 on a 2-way machine.
TEST(PlacementTest, HomingFollowsTheCallersProcessor) {
  const std::vector<int> allowed = allowed_cpus();
  if (allowed.size() < 2) GTEST_SKIP() << "needs two processors in the affinity mask";
  const int last = allowed.back();
  ASSERT_EQ(last % 2, 1) << "the check below assumes an odd last processor";
  Seen seen;
  std::thread t([&] {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(last, &one);
    ASSERT_EQ(pthread_setaffinity_np(pthread_self(), sizeof one, &one), 0);
    callout_domain_config cfg = manual_config(2);
    cfg.flags = CALLOUT_DOMAIN_PIN;
    callout_domain_t *d = nullptr;
    ASSERT_EQ(callout_domain_create(&cfg, &d), 0);
    seen = probe(d, -1);
    EXPECT_EQ(callout_domain_destroy(d), 0);
  });
  t.join();
  EXPECT_EQ(seen.curcpu, 0);
  EXPECT_EQ(seen.os_cpu, last);
  EXPECT_EQ(seen.affinity, std::vector<int>{last});
}

// Every allowed processor homes its callouts on the thread pinned there.
TEST(PlacementTest, EachProcessorHomesOnItsThread) {
  const std::vector<int> allowed = allowed_cpus();
  const auto n = static_cast<unsigned>(allowed.size());
  callout_domain_config cfg = manual_config(n);
  cfg.flags = CALLOUT_DOMAIN_PIN;
  callout_domain_t *d = nullptr;
  ASSERT_EQ(callout_domain_create(&cfg, &d), 0);
  for (unsigned k = 0; k < n; ++k) {
    Seen seen;
    std::thread t([&] {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(allowed[k], &one);
      ASSERT_EQ(pthread_setaffinity_np(pthread_self(), sizeof one, &one), 0);
      seen = probe(d, -1);
    });
    t.join();
    EXPECT_EQ(seen.curcpu, static_cast<int>(k));
    EXPECT_EQ(seen.os_cpu, allowed[k]);
  }
  EXPECT_EQ(callout_domain_destroy(d), 0);
}

TEST(PlacementTest, RealTimePolicyReadBackInHandler) {
  for (const int policy : {SCHED_FIFO, SCHED_RR}) {
    callout_domain_config cfg = manual_config(2);
    cfg.sched_policy = policy;
    cfg.sched_priority = 7;
    cfg.flags = CALLOUT_DOMAIN_PIN;
    callout_domain_t *d = nullptr;
    const int err = callout_domain_create(&cfg, &d);
    if (err == EPERM) GTEST_SKIP() << "this process may not use real-time policies";
    ASSERT_EQ(err, 0);
    for (int i = 0; i < 2; ++i) {
      const Seen s = probe(d, i);
      EXPECT_EQ(s.policy, policy);
      EXPECT_EQ(s.priority, 7);
      EXPECT_EQ(s.affinity.size(), 1u);
    }
    EXPECT_EQ(callout_domain_destroy(d), 0);
  }
}

// In a child that gives up the privilege: root becomes an unprivileged uid
// with RLIMIT_RTPRIO 5 (where the hard limit lets us raise it; else 0 and
// priority 5 is refused too).  Priority 6 is then EPERM, the failed create
// leaves no thread behind and *dp untouched, and the same domain under
// SCHED_OTHER (or priority 5, if the limit allows it) starts.
TEST(PlacementTest, RealTimeWithoutPrivilegeIsEperm) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to drop the privilege in a child";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    rlimit lim{5, 5};
    if (setrlimit(RLIMIT_RTPRIO, &lim) != 0) {
      lim = {0, 0};
      if (setrlimit(RLIMIT_RTPRIO, &lim) != 0) _exit(10);
    }
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(11);
    const unsigned before = thread_count();
    callout_domain_config cfg = manual_config(2);
    cfg.sched_policy = SCHED_FIFO;
    cfg.sched_priority = 6;
    callout_domain_t *d = reinterpret_cast<callout_domain_t *>(0x1);
    for (int i = 0; i < 50; ++i)
      if (callout_domain_create(&cfg, &d) != EPERM) _exit(12);
    if (d != reinterpret_cast<callout_domain_t *>(0x1)) _exit(13);
    if (thread_count() != before) _exit(14);
    cfg.sched_policy = SCHED_RR;
    if (callout_domain_create(&cfg, &d) != EPERM) _exit(15);
    cfg.sched_priority = 5;
    if (lim.rlim_cur == 0) {
      if (callout_domain_create(&cfg, &d) != EPERM) _exit(19);
      cfg.sched_policy = SCHED_OTHER;
      cfg.sched_priority = 0;
    }
    if (callout_domain_create(&cfg, &d) != 0) _exit(16);
    if (thread_count() != before + 2) _exit(17);
    if (callout_domain_destroy(d) != 0) _exit(18);
    // exit, not _exit: a leak checker (LeakSanitizer in the sanitizer
    // builds) then looks at the child, which went through the failed creates.
    std::exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "child failed at step " << WEXITSTATUS(status);
}

// A caller built against the 1.0 header passes the 1.0 size; whatever lies
// past it in memory (here 0xA5 bytes) is not read: defaults apply.
TEST(PlacementTest, OldSizeConfigGetsDefaults) {
  callout_domain_config cfg;
  std::memset(&cfg, 0xA5, sizeof cfg);
  cfg.size = kV1Size;
  cfg.ncpu = 2;
  cfg.hz = 0;
  cfg.clock = CALLOUT_CLOCK_MANUAL;
  callout_domain_t *d = nullptr;
  ASSERT_EQ(callout_domain_create(&cfg, &d), 0);
  for (int i = 0; i < 2; ++i) {
    const Seen s = probe(d, i);
    EXPECT_EQ(s.affinity, allowed_cpus());
    EXPECT_EQ(s.policy, SCHED_OTHER);
  }
  EXPECT_EQ(callout_domain_destroy(d), 0);
  // Sizes no header has had cut a field in two.
  for (const size_t bad : {kV1Size - 1, kV1Size + 1, kV1Size + 8, sizeof cfg - 1}) {
    cfg.size = bad;
    EXPECT_EQ(callout_domain_create(&cfg, &d), EINVAL) << bad;
  }
}

// The same for the default domain's late configuration, in a child (the
// default domain starts once per process).
TEST(PlacementTest, OldSizeDefaultConfigure) {
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    callout_domain_config cfg;
    std::memset(&cfg, 0xA5, sizeof cfg);
    cfg.size = kV1Size;
    cfg.ncpu = 1;
    cfg.hz = 100;
    cfg.clock = CALLOUT_CLOCK_MANUAL;
    if (callout_domain_default_configure(&cfg) != 0) _exit(10);
    callout_domain_t *d = callout_domain_default();
    if (callout_domain_ncpu(d) != 1 || callout_domain_hz(d) != 100) _exit(11);
    const Seen s = probe(d, 0);
    if (s.policy != SCHED_OTHER || s.affinity != allowed_cpus()) _exit(12);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "child failed at step " << WEXITSTATUS(status);
}

// CALLOUT_DEFAULT_DOMAIN's keys pin, policy and priority, in a child.
TEST(PlacementTest, EnvironmentKeys) {
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (setenv("CALLOUT_DEFAULT_DOMAIN", "clock=manual,ncpu=1,pin=1,policy=rr,priority=3", 1) != 0) _exit(10);
    callout_domain_t *d = callout_domain_default();
    const Seen s = probe(d, 0);
    if (s.policy != SCHED_RR || s.priority != 3) _exit(11);
    if (s.affinity != std::vector<int>{allowed_cpus()[0]}) _exit(12);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "child failed at step " << WEXITSTATUS(status);
}

TEST(PlacementDeathTest, EnvironmentBadValuesAbort) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  for (const char *bad : {"policy=batch", "pin=2", "priority=-1", "policy=other,priority=3", "policy=fifo",
                          "policy=fifo,priority=100", "pin=yes"}) {
    EXPECT_DEATH(
        {
          setenv("CALLOUT_DEFAULT_DOMAIN", bad, 1);
          callout_domain_default();
        },
        "CALLOUT_DEFAULT_DOMAIN")
        << bad;
  }
}

TEST(PlacementTest, BadValuesAreEinval) {
  callout_domain_t *d = nullptr;
  auto create = [&](auto edit) {
    callout_domain_config cfg = manual_config(1);
    edit(cfg);
    return callout_domain_create(&cfg, &d);
  };
  EXPECT_EQ(create([](callout_domain_config &c) { c.flags = 0x2; }), EINVAL);
  EXPECT_EQ(create([](callout_domain_config &c) { c.flags = uint64_t{1} << 63; }), EINVAL);
  EXPECT_EQ(create([](callout_domain_config &c) { c.sched_policy = SCHED_BATCH; }), EINVAL);
  EXPECT_EQ(create([](callout_domain_config &c) { c.sched_policy = SCHED_IDLE; }), EINVAL);
  EXPECT_EQ(create([](callout_domain_config &c) { c.sched_policy = -1; }), EINVAL);
  EXPECT_EQ(create([](callout_domain_config &c) { c.sched_priority = 1; }), EINVAL);
  EXPECT_EQ(create([](callout_domain_config &c) { c.sched_policy = SCHED_FIFO; }), EINVAL);
  EXPECT_EQ(create([](callout_domain_config &c) {
              c.sched_policy = SCHED_FIFO;
              c.sched_priority = sched_get_priority_max(SCHED_FIFO) + 1;
            }),
            EINVAL);
  EXPECT_EQ(create([](callout_domain_config &c) {
              c.sched_policy = SCHED_RR;
              c.sched_priority = -1;
            }),
            EINVAL);
  EXPECT_EQ(d, nullptr);
  // The same checks guard the default domain's configuration.
  callout_domain_config cfg = manual_config(1);
  cfg.sched_policy = SCHED_FIFO;
  EXPECT_EQ(callout_domain_default_configure(&cfg), EINVAL);
  cfg.sched_policy = SCHED_OTHER;
  cfg.flags = 0x4;
  EXPECT_EQ(callout_domain_default_configure(&cfg), EINVAL);
}

// No threads on external and virtual clocks: the options are checked, then
// have nothing to apply to; the calling thread is left as it was.
TEST(PlacementTest, ThreadlessClocksIgnoreTheOptions) {
  for (const auto clock : {CALLOUT_CLOCK_EXTERNAL, CALLOUT_CLOCK_VIRTUAL}) {
    callout_domain_config cfg = manual_config(1);
    cfg.clock = clock;
    cfg.flags = CALLOUT_DOMAIN_PIN;
    cfg.sched_policy = SCHED_FIFO;
    cfg.sched_priority = 5;
    callout_domain_t *d = nullptr;
    ASSERT_EQ(callout_domain_create(&cfg, &d), 0);
    if (clock == CALLOUT_CLOCK_VIRTUAL) {
      const Seen s = probe(d, 0);
      EXPECT_EQ(s.curcpu, 0);
      EXPECT_EQ(s.policy, SCHED_OTHER);
      EXPECT_EQ(s.affinity, allowed_cpus());
    }
    EXPECT_EQ(callout_domain_destroy(d), 0);
  }
}

// A fork child restarts the softclock threads with the same placement and
// policy.
TEST(PlacementTest, ForkChildKeepsPlacementAndPolicy) {
  callout_domain_config cfg = manual_config(1);
  cfg.flags = CALLOUT_DOMAIN_PIN;
  cfg.sched_policy = SCHED_FIFO;
  cfg.sched_priority = 4;
  callout_domain_t *d = nullptr;
  const int err = callout_domain_create(&cfg, &d);
  if (err == EPERM) GTEST_SKIP() << "this process may not use real-time policies";
  ASSERT_EQ(err, 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const Seen s = probe(d, 0);
    if (s.policy != SCHED_FIFO || s.priority != 4) _exit(10);
    if (s.affinity != std::vector<int>{allowed_cpus()[0]}) _exit(11);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "child failed at step " << WEXITSTATUS(status);
  EXPECT_EQ(callout_domain_destroy(d), 0);
}

}  // namespace
