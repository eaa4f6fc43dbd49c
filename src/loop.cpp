// loop.cpp -- event-loop embedding: an external-clock domain has no
// softclock thread; the application's loop polls callout_domain_fd(), asks
// callout_domain_next_timeout() how long it may sleep, and runs what is due
// with callout_domain_run(), in its own thread.
#include <errno.h>
#include <unistd.h>

#include <cstdint>

#include "domain.h"
#include "misuse.h"

using namespace libcallout::internal;

/*
 * callout_domain_next_timeout: nanoseconds until the start of the earliest
 * tick at which something may be due on d (0: something is due now; -1:
 * nothing is pending, or d has a manual or virtual clock).  It may be early (a lazily
 * rescheduled callout), never late.  Any thread; never sleeps.
 */
extern "C" int64_t callout_domain_next_timeout(callout_domain_t *d) {
  if (d->clock.manual()) return -1;
  const std::uint64_t next = earliest_next_due(d);
  if (next == Wheel::kNever) return -1;
  const std::uint64_t start = d->clock.tick_start_ns(next);
  const std::uint64_t now = monotonic_ns();
  if (start <= now) return 0;
  const std::uint64_t left = start - now;
  return left > static_cast<std::uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<std::int64_t>(left);
}

/*
 * callout_domain_run: external-clock domains only (else returns 0).  Runs,
 * in the calling thread, every handler due by now, in tick order, and
 * returns how many ran.  During the call the thread is d's CPU 0 softclock:
 * callout_domain_curcpu() is 0, callout_halt() from it never waits for
 * itself.  One thread at a time (concurrent calls are misuse); not from a
 * handler.  Clears and re-arms callout_domain_fd().
 */
extern "C" unsigned callout_domain_run(callout_domain_t *d) {
  if (!d->clock.external()) return 0;
  Cpu *cpu = &d->cpus[0];
  if (current_cpu() == cpu) misuse_domain("callout_domain_run", d, "called from one of its own handlers");
  std::uint64_t expirations;
  while (read(cpu->timer_fd, &expirations, sizeof expirations) > 0) {
  }
  Cpu *const previous = set_current_cpu(cpu);
  unsigned ran = 0;
  cpu->lock.lock();
  if (cpu->looping) misuse_domain("callout_domain_run", d, "called concurrently from two threads");
  cpu->looping = true;
  for (;;) {
    // A callout_domain_drain() holds dispatch: return, the fd stays
    // readable and the loop comes back once the drain is over.
    if (cpu->holds != 0) break;
    const std::uint64_t now = d->clock.ticks();
    const std::uint64_t next = cpu->wheel.next_due();
    if (next > now) {
      cpu->wheel.advance(now);
      break;
    }
    // Bounded holds, as on the softclock: other threads reset and stop
    // callouts of this domain while the loop runs.
    advance_bounded(cpu, next);
    ran += run_expired(cpu);
  }
  cpu->looping = false;
  arm_timer(cpu, cpu->wheel.next_due());
  cpu->lock.unlock();
  set_current_cpu(previous);
  return ran;
}

/*
 * callout_domain_fd: the timerfd of an external-clock domain: readable
 * from the start of the next due tick, re-armed earlier when a callout is
 * added before it, cleared and re-armed by callout_domain_run().  Owned by
 * d (closed by callout_domain_destroy).  -1 with errno EINVAL otherwise.
 */
extern "C" int callout_domain_fd(callout_domain_t *d) {
  if (!d->clock.external()) {
    errno = EINVAL;
    return -1;
  }
  return d->cpus[0].timer_fd;
}
