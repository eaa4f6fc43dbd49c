// domain.cpp -- domains: configuration, creation and destruction, the
// default domain, the accessors, and the manual clock's advance().  The giant
// lock, fork handling and event-loop embedding have their own files
// (domain.h lists them).
#include "domain.h"

#include <errno.h>
#include <signal.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
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
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  cpu->thread_running.store(false, std::memory_order_relaxed);
  const int err = pthread_create(&cpu->thread, nullptr, softclock_main, cpu);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
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
  delete[] d->cpus;
  pthread_mutex_destroy(&d->advance_mutex);
  delete d;
}

// Validates cfg (SPEC §3) into the effective values.  A caller built against
// a newer, larger config may pass a bigger size as long as the fields we do
// not know are zero.
int read_config(const callout_domain_config *cfg, unsigned *ncpu, unsigned *hz, enum callout_clock *clock) {
  if (cfg == nullptr || cfg->size < sizeof *cfg || cfg->size > 4096) return EINVAL;
  const auto *bytes = reinterpret_cast<const unsigned char *>(cfg);
  for (size_t i = sizeof *cfg; i < cfg->size; ++i)
    if (bytes[i] != 0) return EINVAL;
  if (cfg->hz > kMaxHz || cfg->ncpu > kMaxCpus) return EINVAL;
  // A C caller may store any int in the enum; in C++ loading a value outside
  // the enumerators' range is undefined, so read it as the int it is.
  static_assert(sizeof(enum callout_clock) == sizeof(int));
  int kind;
  std::memcpy(&kind, &cfg->clock, sizeof kind);
  if (kind != CALLOUT_CLOCK_MONOTONIC && kind != CALLOUT_CLOCK_MANUAL && kind != CALLOUT_CLOCK_EXTERNAL)
    return EINVAL;
  *hz = cfg->hz == 0 ? 1000 : cfg->hz;
  *ncpu = cfg->ncpu;
  if (kind == CALLOUT_CLOCK_EXTERNAL) {
    // One loop thread runs the handlers: one CPU.
    if (*ncpu > 1) return EINVAL;
    *ncpu = 1;
  } else if (*ncpu == 0) {
    const long online = sysconf(_SC_NPROCESSORS_ONLN);
    *ncpu = static_cast<unsigned>(std::clamp<long>(online, 1, kMaxCpus));
  }
  *clock = static_cast<enum callout_clock>(kind);
  return 0;
}

int create(const callout_domain_config *cfg, callout_domain **dp, bool is_default) {
  unsigned ncpu, hz;
  enum callout_clock kind;
  if (int err = read_config(cfg, &ncpu, &hz, &kind); err != 0) return err;
  auto *d = new (std::nothrow) callout_domain(kind, hz, ncpu);
  if (d == nullptr) return ENOMEM;
  d->is_default = is_default;
  d->cpus = new (std::nothrow) Cpu[ncpu];
  if (d->cpus == nullptr) {
    delete d;
    return ENOMEM;
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
      delete[] d->cpus;
      delete d;
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
  if (kind != CALLOUT_CLOCK_EXTERNAL)
    for (unsigned i = 0; i < ncpu && err == 0; ++i) err = start_thread(&d->cpus[i]);
  if (err != 0) {
    teardown(d);
    return err == ENOMEM ? ENOMEM : EAGAIN;
  }
  *dp = d;
  return 0;
}

callout_domain *default_domain;
pthread_once_t default_once = PTHREAD_ONCE_INIT;

void create_default() {
  callout_domain_config cfg;
  callout_domain_config_init(&cfg);
  callout_domain *d = nullptr;
  if (int err = create(&cfg, &d, true); err != 0) {
    std::fprintf(stderr, "libcallout: callout_domain_default: cannot start the default domain: %s\n",
                 std::strerror(err));
    std::abort();
  }
  default_domain = d;
}

}  // namespace
}  // namespace libcallout::internal

using namespace libcallout::internal;

namespace {
std::uint64_t live_callouts(callout_domain *d);
}

/*
 * callout_domain_config_init: fills *cfg with the defaults (one CPU per
 * online processor, 1000 Hz, monotonic clock) and its size.
 * Any thread, any time; never blocks.
 */
extern "C" void callout_domain_config_init(struct callout_domain_config *cfg) {
  std::memset(cfg, 0, sizeof *cfg);
  cfg->size = sizeof *cfg;
  cfg->clock = CALLOUT_CLOCK_MONOTONIC;
}

/*
 * callout_domain_create: builds a domain and starts its ncpu softclock
 * threads ("callout/N").  Returns 0 and sets *dp; EINVAL for a bad size,
 * hz > 10^6, ncpu > 1024 or an unknown clock; EAGAIN or ENOMEM when threads
 * or memory cannot be had.  On error *dp is untouched and nothing leaks.
 * Any thread; may block briefly (thread creation).
 */
extern "C" int callout_domain_create(const struct callout_domain_config *cfg, callout_domain_t **dp) {
  if (dp == nullptr) return EINVAL;
  return create(cfg, dp, false);
}

/*
 * callout_domain_destroy: joins d's threads and frees it.  EBUSY (nothing
 * changed) while a callout initialised on d is not destroyed; EINVAL for
 * the default domain or NULL; EDEADLK from one of d's own softclock threads.
 * Blocks until the threads exit; not from a handler of d.
 */
extern "C" int callout_domain_destroy(callout_domain_t *d) {
  if (d == nullptr || d->is_default) return EINVAL;
  if (Cpu *here = current_cpu(); here != nullptr && here->domain == d) return EDEADLK;
  if (live_callouts(d) != 0) return EBUSY;
  teardown(d);
  return 0;
}

/*
 * callout_domain_default: the process-wide domain, started on first use
 * (monotonic, 1000 Hz, a CPU per online processor).  Lives until exit.
 * Any thread.  Aborts with a message if its threads cannot be started.
 */
extern "C" callout_domain_t *callout_domain_default(void) {
  pthread_once(&default_once, create_default);
  return default_domain;
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
 * threads (that is, a handler of d is calling), else -1.
 */
extern "C" int callout_domain_curcpu(const callout_domain_t *d) {
  Cpu *cpu = current_cpu();
  return cpu != nullptr && cpu->domain == d ? static_cast<int>(cpu->index) : -1;
}

namespace {

// The number of callouts initialised on d and not destroyed.  Takes every
// CPU lock at once (in index order, the CPU lock order) so that the sum is
// a snapshot; the analysis cannot follow a loop of locks.
std::uint64_t live_callouts(callout_domain *d) NO_THREAD_SAFETY_ANALYSIS {
  std::uint64_t live = 0;
  for (unsigned i = 0; i < d->ncpu; ++i) {
    d->cpus[i].lock.lock();
    live += d->cpus[i].live;
  }
  for (unsigned i = d->ncpu; i-- > 0;) d->cpus[i].lock.unlock();
  return live;
}

}  // namespace

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

/*
 * callout_domain_advance: manual clock only (EINVAL otherwise).  Moves the
 * clock forward nticks ticks, tick by tick: every callout due at tick t, on
 * every CPU, has run (or been skipped) before any callout due at t + 1
 * starts, including callouts scheduled by handlers during the advance.
 * Returns 0 once everything due up to the new tick has finished.  Empty
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
        cpu->wheel.advance(step);
        cpu->lock.unlock();
      }
    }
    const bool ran = run_step(d);
    if (step == target && !ran) break;
  }
  pthread_mutex_unlock(&d->advance_mutex);
  return 0;
}
