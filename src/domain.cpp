// domain.cpp -- domains: configuration (and its validation), creation and
// destruction, the default domain (its late configuration, the environment
// variable), the accessors, advance() for the manual and virtual clocks, and
// the drain.  The giant lock, fork handling and event-loop embedding have
// their own files (domain.h lists them).
#include "domain.h"

#include <errno.h>
#include <signal.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

using libcallout::internal::Cpu;
using libcallout::internal::Wheel;

namespace libcallout::internal {

int start_thread(Cpu *cpu) {
  // Softclock threads take no signals: they belong to the application's
  // threads.  The mask is inherited from the creating thread.
  //
  // The processor and the scheduling policy are attributes of the creation:
  // the thread never runs a moment elsewhere or under another policy, and a
  // policy the process may not use fails pthread_create itself (EPERM),
  // which then has reaped the thread.
  const callout_domain *d = cpu->domain;
  pthread_attr_t attr;
  if (int err = pthread_attr_init(&attr); err != 0) return err;
  int err = 0;
  if (d->pinned_os_cpu != nullptr) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(d->pinned_os_cpu[cpu->index], &one);
    err = pthread_attr_setaffinity_np(&attr, sizeof one, &one);
  }
  if (err == 0 && d->sched_policy != SCHED_OTHER) {
    sched_param param{};
    param.sched_priority = d->sched_priority;
    err = pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED);
    if (err == 0) err = pthread_attr_setschedpolicy(&attr, d->sched_policy);
    if (err == 0) err = pthread_attr_setschedparam(&attr, &param);
  }
  if (err != 0) {
    pthread_attr_destroy(&attr);
    return err;
  }
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  cpu->thread_running.store(false, std::memory_order_relaxed);
  err = pthread_create(&cpu->thread, &attr, softclock_main, cpu);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  pthread_attr_destroy(&attr);
  cpu->thread_started = err == 0;
  // Return only once the thread runs our code.  Until then it may be inside
  // the C library's or a sanitizer's thread set-up, holding their internal
  // locks (ASan's allocator: pthread_getattr_np calls calloc); a fork() at
  // that moment would hand the child those locks held by a thread that does
  // not exist there, and every thread the child starts would block on them
  // for ever (seen with gcc 12's ASan: DESIGN.md section 8).
  if (err == 0) {
    const timespec pause{0, 20'000};
    while (!cpu->thread_running.load(std::memory_order_acquire)) nanosleep(&pause, nullptr);
  }
  return err;
}

namespace {

constexpr unsigned kMaxCpus = 1024;
constexpr unsigned kMaxHz = 1'000'000;

// Frees d and what it owns; its threads are joined already (or never ran).
void free_domain(callout_domain *d) {
  delete[] d->cpus;
  delete[] d->pinned_os_cpu;
  delete[] d->home_of_os_cpu;
  pthread_mutex_destroy(&d->advance_mutex);
  delete d;
}

// Stops and joins the softclock threads that were started, frees d.
void teardown(callout_domain *d) {
  unregister_domain(d);
  for (unsigned i = 0; i < d->ncpu; ++i) {
    Cpu *cpu = &d->cpus[i];
    cpu->lock.lock();
    cpu->stopping = true;
    cpu->lock.unlock();
    cpu->kick.wake_all();
  }
  for (unsigned i = 0; i < d->ncpu; ++i) {
    if (d->cpus[i].thread_started) pthread_join(d->cpus[i].thread, nullptr);
    if (d->cpus[i].timer_fd >= 0) close(d->cpus[i].timer_fd);
  }
  free_domain(d);
}

// The 1.0 config, which a program built against the 1.0 header passes (its
// size says so); the 1.1 fields start right after it.
struct ConfigV1 {
  size_t size;
  unsigned ncpu;
  unsigned hz;
  enum callout_clock clock;
};
static_assert(offsetof(callout_domain_config, flags) == sizeof(ConfigV1),
              "the 1.1 fields must start past the 1.0 struct, tail padding included");
constexpr std::uint64_t kKnownFlags = CALLOUT_DOMAIN_PIN;

// The effective values of a config.
struct Settings {
  unsigned ncpu, hz;
  enum callout_clock clock;
  std::uint64_t flags;
  int policy, priority;
};

// Copies cfg, of whatever size its caller's header had, into *out at the
// current size: the fields an older caller does not have are zero, their
// defaults.  The sizes accepted are those a header has had (1.0's, the
// current one) -- a size in between would cut a field in two -- and a
// newer, larger config's as long as the fields we do not know are zero.
int normalise_config(const callout_domain_config *cfg, callout_domain_config *out) {
  if (cfg == nullptr || cfg->size > 4096) return EINVAL;
  if (cfg->size != sizeof(ConfigV1) && cfg->size < sizeof *cfg) return EINVAL;
  const auto *bytes = reinterpret_cast<const unsigned char *>(cfg);
  for (size_t i = sizeof *cfg; i < cfg->size; ++i)
    if (bytes[i] != 0) return EINVAL;
  std::memset(static_cast<void *>(out), 0, sizeof *out);
  std::memcpy(static_cast<void *>(out), cfg, std::min(cfg->size, sizeof *out));
  out->size = sizeof *out;
  return 0;
}

// Validates cfg (SPEC §3) into the effective values.
int read_config(const callout_domain_config *raw, Settings *s) {
  callout_domain_config copy;
  if (int err = normalise_config(raw, &copy); err != 0) return err;
  const callout_domain_config *cfg = &copy;
  if (cfg->hz > kMaxHz || cfg->ncpu > kMaxCpus) return EINVAL;
  if ((cfg->flags & ~kKnownFlags) != 0) return EINVAL;
  if (cfg->sched_policy == SCHED_OTHER) {
    if (cfg->sched_priority != 0) return EINVAL;
  } else if (cfg->sched_policy == SCHED_FIFO || cfg->sched_policy == SCHED_RR) {
    if (cfg->sched_priority < sched_get_priority_min(cfg->sched_policy) ||
        cfg->sched_priority > sched_get_priority_max(cfg->sched_policy))
      return EINVAL;
  } else {
    return EINVAL;
  }
  s->flags = cfg->flags;
  s->policy = cfg->sched_policy;
  s->priority = cfg->sched_priority;
  unsigned *const ncpu = &s->ncpu, *const hz = &s->hz;
  // A C caller may store any int in the enum; in C++ loading a value outside
  // the enumerators' range is undefined, so read it as the int it is.
  static_assert(sizeof(enum callout_clock) == sizeof(int));
  int kind;
  std::memcpy(&kind, &cfg->clock, sizeof kind);
  if (kind != CALLOUT_CLOCK_MONOTONIC && kind != CALLOUT_CLOCK_MANUAL && kind != CALLOUT_CLOCK_EXTERNAL &&
      kind != CALLOUT_CLOCK_VIRTUAL)
    return EINVAL;
  *hz = cfg->hz == 0 ? 1000 : cfg->hz;
  *ncpu = cfg->ncpu;
  if (kind == CALLOUT_CLOCK_EXTERNAL) {
    // One loop thread runs the handlers: one CPU.
    if (*ncpu > 1) return EINVAL;
    *ncpu = 1;
  } else if (kind == CALLOUT_CLOCK_VIRTUAL && *ncpu == 0) {
    // Virtual time is for deterministic runs: one CPU unless asked, so that
    // nothing depends on the machine it runs on.
    *ncpu = 1;
  } else if (*ncpu == 0) {
    const long online = sysconf(_SC_NPROCESSORS_ONLN);
    *ncpu = static_cast<unsigned>(std::clamp<long>(online, 1, kMaxCpus));
  }
  s->clock = static_cast<enum callout_clock>(kind);
  return 0;
}

// Pins thread i of d to the (i mod count)-th processor of the calling
// thread's affinity mask, and records which CPU of d each processor homes.
// Wrapping rather than EINVAL when ncpu exceeds the mask: the default ncpu
// is the number of online processors, which a narrowed mask (taskset, a
// cpuset cgroup) has fewer of, and the default config with the pin flag
// must work there too.
int plan_pinning(callout_domain *d) {
  cpu_set_t mask;
  CPU_ZERO(&mask);
  if (sched_getaffinity(0, sizeof mask, &mask) != 0) return errno;
  int allowed[CPU_SETSIZE];
  unsigned count = 0;
  for (int p = 0; p < CPU_SETSIZE; ++p)
    if (CPU_ISSET(p, &mask)) allowed[count++] = p;
  if (count == 0) return EINVAL;
  d->pinned_os_cpu = new (std::nothrow) int[d->ncpu];
  if (d->pinned_os_cpu == nullptr) return ENOMEM;
  unsigned span = 0;
  for (unsigned i = 0; i < d->ncpu; ++i) {
    d->pinned_os_cpu[i] = allowed[i % count];
    span = std::max(span, static_cast<unsigned>(d->pinned_os_cpu[i]) + 1);
  }
  d->home_of_os_cpu = new (std::nothrow) int[span];
  if (d->home_of_os_cpu == nullptr) return ENOMEM;
  std::fill_n(d->home_of_os_cpu, span, -1);
  for (unsigned i = d->ncpu; i-- > 0;) d->home_of_os_cpu[d->pinned_os_cpu[i]] = static_cast<int>(i);
  d->os_cpu_span = span;
  return 0;
}

int create(const callout_domain_config *cfg, callout_domain **dp, bool is_default) {
  Settings s;
  if (int err = read_config(cfg, &s); err != 0) return err;
  const unsigned ncpu = s.ncpu;
  const enum callout_clock kind = s.clock;
  auto *d = new (std::nothrow) callout_domain(kind, s.hz, ncpu);
  if (d == nullptr) return ENOMEM;
  d->is_default = is_default;
  d->cpus = new (std::nothrow) Cpu[ncpu];
  if (d->cpus == nullptr) {
    free_domain(d);
    return ENOMEM;
  }
  // Only threads are placed: an external or virtual clock has none.
  if (d->clock.threaded()) {
    if ((s.flags & CALLOUT_DOMAIN_PIN) != 0)
      if (int err = plan_pinning(d); err != 0) {
        free_domain(d);
        return err;
      }
    d->sched_policy = s.policy;
    d->sched_priority = s.priority;
  }
  for (unsigned i = 0; i < ncpu; ++i) {
    d->cpus[i].domain = d;
    d->cpus[i].index = i;
  }
  if (kind == CALLOUT_CLOCK_EXTERNAL) {
    Cpu *cpu = &d->cpus[0];
    cpu->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (cpu->timer_fd < 0) {
      const int err = errno == ENOMEM ? ENOMEM : EAGAIN;
      free_domain(d);
      return err;
    }
    cpu->lock.lock();
    cpu->wake_tick = Wheel::kNever;  // disarmed: nothing pending
    cpu->lock.unlock();
  }
  // Registered before the threads start, so that a fork from another
  // thread while they start finds every CPU lock it must hold.
  register_domain(d);
  int err = 0;
  if (d->clock.threaded())
    for (unsigned i = 0; i < ncpu && err == 0; ++i) err = start_thread(&d->cpus[i]);
  if (err != 0) {
    teardown(d);
    // EPERM: the policy or priority is not the process's to use; EINVAL: a
    // processor of the mask went away meanwhile.
    return err == ENOMEM || err == EPERM || err == EINVAL ? err : EAGAIN;
  }
  *dp = d;
  return 0;
}

// The default domain: created on first use, from the configuration set by
// callout_domain_default_configure() if any, else from the environment
// variable CALLOUT_DEFAULT_DOMAIN, else the defaults.  default_lock guards
// its creation and the stored configuration; once created, the pointer is
// only read (acquire, pairing with the release store below).
pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;
std::atomic<callout_domain *> default_domain{nullptr};
bool default_configured = false;  // GUARDED_BY(default_lock)
callout_domain_config default_config;

void init_config(callout_domain_config *cfg) {
  std::memset(static_cast<void *>(cfg), 0, sizeof *cfg);
  cfg->size = sizeof *cfg;
  cfg->clock = CALLOUT_CLOCK_MONOTONIC;
  cfg->sched_policy = SCHED_OTHER;
}

[[noreturn]] void bad_environment(const char *value, const char *why) {
  std::fprintf(stderr, "libcallout: callout_domain_default: CALLOUT_DEFAULT_DOMAIN=\"%s\": %s\n", value, why);
  std::abort();
}

// Reads CALLOUT_DEFAULT_DOMAIN, "key=value,..." with the keys clock
// (monotonic, manual, external or virtual), hz, ncpu, pin (0 or 1), policy
// (other, fifo or rr) and priority, into cfg.  A
// malformed value is the program's bug: it aborts with a message.
void read_environment(callout_domain_config *cfg) {
  const char *value = std::getenv("CALLOUT_DEFAULT_DOMAIN");
  if (value == nullptr || *value == '\0') return;
  char buf[256];
  if (std::strlen(value) >= sizeof buf) bad_environment(value, "too long");
  std::strcpy(buf, value);
  char *save = nullptr;
  for (char *item = strtok_r(buf, ",", &save); item != nullptr; item = strtok_r(nullptr, ",", &save)) {
    char *eq = std::strchr(item, '=');
    if (eq == nullptr) bad_environment(value, "expected key=value items separated by commas");
    *eq = '\0';
    const char *key = item, *val = eq + 1;
    if (std::strcmp(key, "clock") == 0) {
      static const struct {
        const char *name;
        enum callout_clock clock;
      } clocks[] = {{"monotonic", CALLOUT_CLOCK_MONOTONIC},
                    {"manual", CALLOUT_CLOCK_MANUAL},
                    {"external", CALLOUT_CLOCK_EXTERNAL},
                    {"virtual", CALLOUT_CLOCK_VIRTUAL}};
      bool found = false;
      for (const auto &c : clocks)
        if (std::strcmp(val, c.name) == 0) cfg->clock = c.clock, found = true;
      if (!found) bad_environment(value, "clock must be monotonic, manual, external or virtual");
    } else if (std::strcmp(key, "policy") == 0) {
      if (std::strcmp(val, "other") == 0)
        cfg->sched_policy = SCHED_OTHER;
      else if (std::strcmp(val, "fifo") == 0)
        cfg->sched_policy = SCHED_FIFO;
      else if (std::strcmp(val, "rr") == 0)
        cfg->sched_policy = SCHED_RR;
      else
        bad_environment(value, "policy must be other, fifo or rr");
    } else if (std::strcmp(key, "hz") == 0 || std::strcmp(key, "ncpu") == 0 || std::strcmp(key, "pin") == 0 ||
               std::strcmp(key, "priority") == 0) {
      char *end = nullptr;
      errno = 0;
      const unsigned long n = std::strtoul(val, &end, 10);
      if (*val == '\0' || *val == '-' || *end != '\0' || errno != 0 || n > 1'000'000)
        bad_environment(value, "hz, ncpu, pin and priority take a decimal number");
      if (key[0] == 'h') {
        cfg->hz = static_cast<unsigned>(n);
      } else if (key[0] == 'n') {
        cfg->ncpu = static_cast<unsigned>(n);
      } else if (key[1] == 'i') {
        if (n > 1) bad_environment(value, "pin is 0 or 1");
        cfg->flags =
            n != 0 ? cfg->flags | CALLOUT_DOMAIN_PIN : cfg->flags & ~std::uint64_t{CALLOUT_DOMAIN_PIN};
      } else {
        cfg->sched_priority = static_cast<int>(n);
      }
    } else {
      bad_environment(value, "unknown key (clock, hz, ncpu, pin, policy and priority are known)");
    }
  }
  Settings s;
  if (read_config(cfg, &s) != 0) bad_environment(value, "not a valid domain configuration");
}

callout_domain *create_default() NO_THREAD_SAFETY_ANALYSIS {
  pthread_mutex_lock(&default_lock);
  callout_domain *d = default_domain.load(std::memory_order_relaxed);
  if (d == nullptr) {
    callout_domain_config cfg;
    if (default_configured) {
      cfg = default_config;
    } else {
      init_config(&cfg);
      read_environment(&cfg);
    }
    if (int err = create(&cfg, &d, true); err != 0) {
      std::fprintf(stderr, "libcallout: callout_domain_default: cannot start the default domain: %s\n",
                   std::strerror(err));
      std::abort();
    }
    default_domain.store(d, std::memory_order_release);
  }
  pthread_mutex_unlock(&default_lock);
  return d;
}

}  // namespace
}  // namespace libcallout::internal

using namespace libcallout::internal;

namespace {
bool busy(callout_domain *d);
}

/*
 * callout_domain_config_init: fills *cfg with the defaults (one CPU per
 * online processor, 1000 Hz, monotonic clock, threads floating under the
 * inherited policy) and its size.  Any thread, any time; never blocks.
 *
 * Two versions of the symbol: a program linked against 1.0 passes the 1.0
 * struct and gets callout_domain_config_init@CALLOUT_1.0, which
 * writes only that much (writing the 1.1 struct would overrun its storage);
 * everything linked since gets the default, @@CALLOUT_1.1.  A static link
 * resolves the plain name to the default.
 */
// GCC's symver attribute where it has one: with -flto a top-level .symver
// reaches the assembler in a partition that does not define the symbol, and
// "@@" is then rejected (a default version of an undefined symbol).  Clang
// has no such attribute and keeps top-level asm with its function.
#if defined(__has_attribute) && !defined(__clang__)
#if __has_attribute(symver)
#define CALLOUT_SYMVER_ATTRIBUTE 1
#endif
#endif
#ifdef CALLOUT_SYMVER_ATTRIBUTE
extern "C" CALLOUT_API __attribute__((symver("callout_domain_config_init@@CALLOUT_1.1"))) void
libcallout_config_init_v1_1(struct callout_domain_config *cfg);
extern "C" CALLOUT_API __attribute__((symver("callout_domain_config_init@CALLOUT_1.0"))) void
libcallout_config_init_v1_0(void *cfg);
#else
extern "C" CALLOUT_API void libcallout_config_init_v1_1(struct callout_domain_config *cfg);
extern "C" CALLOUT_API void libcallout_config_init_v1_0(void *cfg);
__asm__(".symver libcallout_config_init_v1_1, callout_domain_config_init@@CALLOUT_1.1");
__asm__(".symver libcallout_config_init_v1_0, callout_domain_config_init@CALLOUT_1.0");
#endif

extern "C" void libcallout_config_init_v1_1(struct callout_domain_config *cfg) { init_config(cfg); }

extern "C" void libcallout_config_init_v1_0(void *cfg) {
  callout_domain_config full;
  init_config(&full);
  full.size = sizeof(ConfigV1);
  std::memcpy(cfg, &full, sizeof(ConfigV1));
}

/*
 * callout_domain_create: builds a domain and starts its ncpu softclock
 * threads ("callout/N"; none for an external or a virtual clock).  Returns 0
 * and sets *dp; EINVAL for a bad size, hz > 10^6, ncpu > 1024 (> 1 for an
 * external clock) or an unknown clock; EAGAIN or ENOMEM when threads,
 * memory or the external clock's timerfd cannot be had.  On error *dp is untouched and nothing leaks.
 * Any thread; may block briefly (thread creation).
 */
extern "C" int callout_domain_create(const struct callout_domain_config *cfg, callout_domain_t **dp) {
  if (dp == nullptr) return EINVAL;
  return create(cfg, dp, false);
}

/*
 * callout_domain_destroy: joins d's threads and frees it.  EBUSY (nothing
 * changed) while a callout initialised on d is not destroyed or a callout
 * of d is pending; EINVAL for
 * the default domain or NULL; EDEADLK from one of d's own softclock threads.
 * Blocks until the threads exit; not from a handler of d.
 */
extern "C" int callout_domain_destroy(callout_domain_t *d) {
  if (d == nullptr || d->is_default) return EINVAL;
  if (Cpu *here = current_cpu(); here != nullptr && here->domain == d) return EDEADLK;
  if (busy(d)) return EBUSY;
  teardown(d);
  return 0;
}

/*
 * callout_domain_default: the process-wide domain, started on first use
 * (monotonic, 1000 Hz, a CPU per online processor).  Lives until exit.
 * Any thread.  Aborts with a message if its threads cannot be started.
 */
extern "C" callout_domain_t *callout_domain_default(void) {
  if (callout_domain *d = default_domain.load(std::memory_order_acquire); d != nullptr) return d;
  return create_default();
}

/*
 * callout_domain_default_configure: sets the configuration the default
 * domain will be created with.  Only before its first use: EBUSY (nothing
 * changed) once it exists.  EINVAL for a bad cfg (as callout_domain_create).
 * It wins over the CALLOUT_DEFAULT_DOMAIN environment variable.  Any thread;
 * never sleeps.
 */
extern "C" int callout_domain_default_configure(const struct callout_domain_config *cfg) {
  Settings s;
  if (int err = read_config(cfg, &s); err != 0) return err;
  pthread_mutex_lock(&default_lock);
  int err = 0;
  if (default_domain.load(std::memory_order_relaxed) != nullptr) {
    err = EBUSY;
  } else {
    // At the current size: an older caller's missing fields are defaults, a
    // newer caller's unknown tail is zero (both checked by read_config).
    normalise_config(cfg, &default_config);
    default_configured = true;
  }
  pthread_mutex_unlock(&default_lock);
  return err;
}

/*
 * callout_domain_current: the domain of the handler the calling thread is
 * running (it is a softclock thread, or runs handlers for an external or
 * virtual domain), else the default domain.  The domain callout_init uses.
 */
extern "C" callout_domain_t *callout_domain_current(void) {
  if (Cpu *here = current_cpu(); here != nullptr) return here->domain;
  return callout_domain_default();
}

extern "C" unsigned callout_domain_ncpu(const callout_domain_t *d) { return d->ncpu; }
extern "C" unsigned callout_domain_hz(const callout_domain_t *d) { return d->clock.hz(); }

/*
 * callout_domain_ticks: the domain's tick count (0 at creation).  Inside a
 * handler run by callout_domain_advance, the tick being processed.  Any
 * thread; never blocks.
 */
extern "C" uint64_t callout_domain_ticks(const callout_domain_t *d) { return d->clock.ticks(); }

/*
 * callout_domain_curcpu: the CPU index if the caller is one of d's softclock
 * threads, or the thread running d's handlers inside callout_domain_run or
 * a virtual callout_domain_advance (in short: a handler of d is calling),
 * else -1.
 */
extern "C" int callout_domain_curcpu(const callout_domain_t *d) {
  Cpu *cpu = current_cpu();
  return cpu != nullptr && cpu->domain == d ? static_cast<int>(cpu->index) : -1;
}

namespace {

// Whether d still has users: a callout initialised on d and not destroyed
// (CALLOUT_NODESTROY ones are not counted), or a pending callout (which a
// never-destroyed callout may be).  A handler still running is no obstacle:
// teardown joins the threads, so it finishes first.  Takes every CPU lock at once (in index order, the CPU
// lock order) so that the answer is a snapshot; the analysis cannot follow a loop of locks.
bool busy(callout_domain *d) NO_THREAD_SAFETY_ANALYSIS {
  std::uint64_t live = 0;
  bool in_use = false;
  for (unsigned i = 0; i < d->ncpu; ++i) {
    Cpu *cpu = &d->cpus[i];
    cpu->lock.lock();
    live += cpu->live;
    if (cpu->wheel.size() != 0) in_use = true;
  }
  for (unsigned i = d->ncpu; i-- > 0;) d->cpus[i].lock.unlock();
  return live != 0 || in_use;
}

}  // namespace

Cpu *libcallout::internal::caller_home(callout_domain *d) {
  const int p = sched_getcpu();
  if (p < 0) return &d->cpus[0];
  const auto os_cpu = static_cast<unsigned>(p);
  // Pinned: the handler then runs on the processor the caller ran on.
  if (os_cpu < d->os_cpu_span && d->home_of_os_cpu[os_cpu] >= 0) return &d->cpus[d->home_of_os_cpu[os_cpu]];
  return &d->cpus[os_cpu % d->ncpu];
}

std::uint64_t libcallout::internal::earliest_next_due(callout_domain *d) {
  std::uint64_t next = Wheel::kNever;
  for (unsigned i = 0; i < d->ncpu; ++i) {
    Cpu *cpu = &d->cpus[i];
    cpu->lock.lock();
    next = std::min(next, cpu->wheel.next_due());
    cpu->lock.unlock();
  }
  return next;
}

namespace {

// One step of advance(): kick the CPUs with something on their expired
// list, then wait until every CPU has drained it and has no handler running.
// Returns whether anything was due.
bool run_step(callout_domain *d) {
  bool any = false;
  for (unsigned i = 0; i < d->ncpu; ++i) {
    Cpu *cpu = &d->cpus[i];
    cpu->lock.lock();
    const bool due = cpu->wheel.has_expired();
    // A softclock still awake from the previous step may already have
    // popped this step's callout: its list is empty but it is running one
    // of this tick's handlers, which must finish before the next tick.
    const bool busy = due || cpu->running != nullptr;
    cpu->lock.unlock();
    if (busy) any = true;
    if (due) cpu->kick.wake_all();
  }
  if (!any) return false;
  for (unsigned i = 0; i < d->ncpu; ++i) {
    Cpu *cpu = &d->cpus[i];
    cpu->lock.lock();
    while (cpu->wheel.has_expired() || cpu->running != nullptr) {
      wait_for_idle(cpu);
      cpu->lock.lock();
    }
    cpu->lock.unlock();
  }
  return true;
}

}  // namespace

namespace {

// One step of advance() on a virtual clock: the due handlers run right here,
// CPU by CPU in index order, each CPU's in the order its wheel hands them
// over (for callouts due at the same tick: the order in which they were
// armed, except that a callout moved later while pending takes its place
// when the wheel re-places it -- a function of the calls made, never of
// timing).  While a callout_domain_drain() holds dispatch, wait for it.
// Returns whether anything was due.
bool run_step_here(callout_domain *d) NO_THREAD_SAFETY_ANALYSIS {
  bool any = false;
  for (unsigned i = 0; i < d->ncpu; ++i) {
    Cpu *cpu = &d->cpus[i];
    cpu->lock.lock();
    while (cpu->holds != 0 && cpu->wheel.has_expired()) {
      const std::uint32_t seen = cpu->kick.generation();
      cpu->lock.unlock();
      cpu->kick.wait(seen);
      cpu->lock.lock();
    }
    if (cpu->wheel.has_expired()) {
      any = true;
      Cpu *const previous = set_current_cpu(cpu);
      run_expired(cpu);
      set_current_cpu(previous);
    }
    cpu->lock.unlock();
  }
  return any;
}

}  // namespace

/*
 * callout_domain_advance: manual and virtual clocks only (EINVAL otherwise).
 * Moves the clock forward nticks ticks, tick by tick: every callout due at
 * tick t, on every CPU, has run (or been skipped) before any callout due at
 * t + 1 starts, including callouts scheduled by handlers during the advance.
 * Returns 0 once everything due up to the new tick has finished.  On the
 * manual clock the softclock threads run the handlers; on the virtual clock
 * the calling thread does, acting as each CPU's softclock in turn, so the
 * order is deterministic (run_step_here).  Empty
 * stretches cost O(1) each: the step goes straight to the earliest next-due
 * tick over all CPUs.  Concurrent calls are serialised.  May block (it waits
 * for handlers); EDEADLK if called from a handler of d.
 */
extern "C" int callout_domain_advance(callout_domain_t *d, uint64_t nticks) {
  if (d == nullptr || !d->clock.manual()) return EINVAL;
  if (Cpu *here = current_cpu(); here != nullptr && here->domain == d) return EDEADLK;
  pthread_mutex_lock(&d->advance_mutex);
  const std::uint64_t start = d->clock.ticks();
  const std::uint64_t target = nticks > Wheel::kNever - 1 - start ? Wheel::kNever - 1 : start + nticks;
  for (;;) {
    const std::uint64_t next = earliest_next_due(d);
    const std::uint64_t now = d->clock.ticks();
    const std::uint64_t step = std::max(std::min(next, target), now);
    if (step > now) {
      // Publish the tick first: a handler or thread that reads it from now on
      // schedules at step + 1 or later, which no wheel has reached.
      d->clock.set_ticks(step);
      for (unsigned i = 0; i < d->ncpu; ++i) {
        Cpu *cpu = &d->cpus[i];
        cpu->lock.lock();
        // Re-placing a passed bucket's callouts is the one long hold here:
        // bounded and timed as on the softclock (a step that cascades
        // nothing pays no clock read).  Between chunks only other threads'
        // resets and stops get in; the handlers run after every CPU's
        // step, in the order the cascade put them in.
        advance_bounded(cpu, step);
        cpu->lock.unlock();
      }
    }
    const bool ran = d->clock.caller_runs() ? run_step_here(d) : run_step(d);
    if (step == target && !ran) break;
  }
  pthread_mutex_unlock(&d->advance_mutex);
  return 0;
}

/*
 * callout_domain_drain: returns once no handler of d is running and none is
 * being dispatched.  While it waits, no new dispatch starts on d (each CPU
 * holds its expired list); handlers already running finish; pending
 * callouts stay pending and run after it returns.  0; EINVAL for NULL;
 * EDEADLK from a handler of d (it would wait for itself).  May sleep: not
 * while holding a lock that a running handler or a waiting dispatch of d
 * needs (giant or an associated mutex), which would deadlock.
 */
extern "C" int callout_domain_drain(callout_domain_t *d) {
  if (d == nullptr) return EINVAL;
  if (Cpu *here = current_cpu(); here != nullptr && here->domain == d) return EDEADLK;
  for (unsigned i = 0; i < d->ncpu; ++i) {
    Cpu *cpu = &d->cpus[i];
    cpu->lock.lock();
    ++cpu->holds;
    cpu->lock.unlock();
  }
  for (unsigned i = 0; i < d->ncpu; ++i) {
    Cpu *cpu = &d->cpus[i];
    cpu->lock.lock();
    while (cpu->running != nullptr) {
      wait_for_done(cpu);
      cpu->lock.lock();
    }
    cpu->lock.unlock();
  }
  for (unsigned i = 0; i < d->ncpu; ++i) {
    Cpu *cpu = &d->cpus[i];
    cpu->lock.lock();
    --cpu->holds;
    cpu->lock.unlock();
    cpu->kick.wake_all();
  }
  return 0;
}
