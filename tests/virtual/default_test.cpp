// default_test.cpp -- choosing the default domain late:
// callout_domain_default_configure() and CALLOUT_DEFAULT_DOMAIN.
//
// The default domain starts once per process, so every check that needs a
// default domain not yet started runs in a fresh process: the Parent tests
// fork and exec this binary with a --gtest_filter naming one Child test and
// CALLOUT_TEST_CHILD=1 (plus the environment under test), and check that
// exactly that test ran and passed.  Run directly, the Child tests skip.
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "../test_util.h"

namespace {

using namespace ct;

bool in_child() {
  const char *v = std::getenv("CALLOUT_TEST_CHILD");
  return v != nullptr && std::strcmp(v, "1") == 0;
}

#define CHILD_ONLY() \
  if (!in_child()) GTEST_SKIP() << "runs in a child process started by a Parent test"

// Runs this binary's test `name` in a new process with CALLOUT_TEST_CHILD=1
// and CALLOUT_DEFAULT_DOMAIN=env (unset if env is NULL); returns its output,
// and its exit status in *status.
std::string run_child(const char *name, const char *env, int *status) {
  int fds[2];
  if (pipe(fds) != 0) return "pipe failed";
  const std::string filter = std::string("--gtest_filter=") + name;
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    close(fds[0]);
    close(fds[1]);
    setenv("CALLOUT_TEST_CHILD", "1", 1);
    if (env != nullptr)
      setenv("CALLOUT_DEFAULT_DOMAIN", env, 1);
    else
      unsetenv("CALLOUT_DEFAULT_DOMAIN");
    char self[] = "/proc/self/exe";
    char *argv[] = {self, const_cast<char *>(filter.c_str()), nullptr};
    execv(self, argv);
    _exit(127);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  waitpid(pid, status, 0);
  return out;
}

void expect_child_passes(const char *name, const char *env) {
  int status = -1;
  const std::string out = run_child(name, env, &status);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  // Not vacuous: the filter matched the one test, and it ran (not skipped).
  EXPECT_NE(out.find("[  PASSED  ] 1 test."), std::string::npos) << out;
  EXPECT_EQ(out.find("SKIPPED"), std::string::npos) << out;
}

// The default domain's clock: a virtual clock runs a due handler in the
// caller's thread during advance; manual runs it on a softclock thread;
// monotonic refuses advance.
void expect_default_is_virtual(unsigned hz, unsigned ncpu) {
  callout_domain_t *d = callout_domain_default();
  EXPECT_EQ(callout_domain_hz(d), hz);
  EXPECT_EQ(callout_domain_ncpu(d), ncpu);
  EXPECT_EQ(callout_domain_current(), d);
  callout_t c;
  pthread_t ran_in{};
  int runs = 0;
  Fn fn([&] {
    ran_in = pthread_self();
    ++runs;
  });
  callout_init(&c, CALLOUT_MPSAFE);  // no domain named: the default one
  callout_reset(&c, 2, fn_trampoline, &fn);
  ASSERT_EQ(callout_domain_advance(d, 1), 0);
  EXPECT_EQ(runs, 0);
  ASSERT_EQ(callout_domain_advance(d, 1), 0);
  EXPECT_EQ(runs, 1);
  EXPECT_TRUE(pthread_equal(ran_in, pthread_self()));
  callout_destroy(&c);
}

// ---- in the child ------------------------------------------------------------

TEST(Child, ConfigureBeforeFirstUse) {
  CHILD_ONLY();
  callout_domain_config bad = make_config(1, CALLOUT_CLOCK_VIRTUAL, 100);
  bad.size = 0;
  EXPECT_EQ(callout_domain_default_configure(&bad), EINVAL);
  EXPECT_EQ(callout_domain_default_configure(nullptr), EINVAL);
  bad = make_config(1, CALLOUT_CLOCK_VIRTUAL, 2'000'000);
  EXPECT_EQ(callout_domain_default_configure(&bad), EINVAL);
  bad = make_config(2000, CALLOUT_CLOCK_VIRTUAL, 100);
  EXPECT_EQ(callout_domain_default_configure(&bad), EINVAL);
  bad = make_config(2, CALLOUT_CLOCK_EXTERNAL, 100);
  EXPECT_EQ(callout_domain_default_configure(&bad), EINVAL);
  bad = make_config(1, CALLOUT_CLOCK_VIRTUAL, 100);
  const int seven = 7;
  std::memcpy(&bad.clock, &seven, sizeof seven);
  EXPECT_EQ(callout_domain_default_configure(&bad), EINVAL);

  callout_domain_config first = make_config(2, CALLOUT_CLOCK_VIRTUAL, 250);
  callout_domain_config second = make_config(1, CALLOUT_CLOCK_VIRTUAL, 100);
  EXPECT_EQ(callout_domain_default_configure(&first), 0);
  EXPECT_EQ(callout_domain_default_configure(&second), 0) << "the last call before first use wins";
  expect_default_is_virtual(100, 1);
  EXPECT_EQ(callout_domain_default_configure(&first), EBUSY);
  EXPECT_EQ(callout_domain_hz(callout_domain_default()), 100u) << "EBUSY changed nothing";
}

TEST(Child, EnvironmentConfiguresTheDefaultDomain) {
  CHILD_ONLY();
  expect_default_is_virtual(100, 3);
}

TEST(Child, ConfigureWinsOverTheEnvironment) {
  CHILD_ONLY();
  callout_domain_config cfg = make_config(2, CALLOUT_CLOCK_VIRTUAL, 250);
  ASSERT_EQ(callout_domain_default_configure(&cfg), 0);
  expect_default_is_virtual(250, 2);
}

TEST(Child, NoEnvironmentGivesTheMonotonicDefault) {
  CHILD_ONLY();
  callout_domain_t *d = callout_domain_default();
  EXPECT_EQ(callout_domain_hz(d), 1000u);
  EXPECT_EQ(callout_domain_advance(d, 1), EINVAL) << "not a manual or virtual clock";
}

TEST(Child, MalformedEnvironmentAborts) {
  CHILD_ONLY();
  callout_domain_default();
  ADD_FAILURE() << "a malformed CALLOUT_DEFAULT_DOMAIN was accepted";
}

// ---- in the parent ------------------------------------------------------------

TEST(Parent, ConfigureBeforeFirstUse) { expect_child_passes("Child.ConfigureBeforeFirstUse", nullptr); }

TEST(Parent, EnvironmentConfiguresTheDefaultDomain) {
  expect_child_passes("Child.EnvironmentConfiguresTheDefaultDomain", "clock=virtual,hz=100,ncpu=3");
  expect_child_passes("Child.EnvironmentConfiguresTheDefaultDomain", "ncpu=3,clock=virtual,hz=100");
}

TEST(Parent, ConfigureWinsOverTheEnvironment) {
  expect_child_passes("Child.ConfigureWinsOverTheEnvironment", "clock=monotonic,hz=100,ncpu=1");
}

TEST(Parent, NoOrEmptyEnvironmentGivesTheMonotonicDefault) {
  expect_child_passes("Child.NoEnvironmentGivesTheMonotonicDefault", nullptr);
  expect_child_passes("Child.NoEnvironmentGivesTheMonotonicDefault", "");
}

// A malformed value aborts at first use with a message naming the variable.
TEST(Parent, MalformedEnvironmentDies) {
  const char *bad[] = {"clock=sundial", "hz=abc",    "hz=",        "bogus=1",
                       "clock",         "ncpu=5000", "hz=2000000", "clock=external,ncpu=2"};
  for (const char *value : bad) {
    int status = -1;
    const std::string out = run_child("Child.MalformedEnvironmentAborts", value, &status);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT) << value << ": " << out;
    EXPECT_NE(out.find("CALLOUT_DEFAULT_DOMAIN"), std::string::npos) << value << ": " << out;
  }
}

// The same as a death test: the message names the variable and its value.
TEST(DefaultDomainDeathTest, MalformedEnvironmentNamesTheVariable) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        setenv("CALLOUT_DEFAULT_DOMAIN", "clock=sundial", 1);
        callout_domain_default();
      },
      "CALLOUT_DEFAULT_DOMAIN=\"clock=sundial\"");
}

}  // namespace
