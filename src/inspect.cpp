// inspect.cpp -- looking inside a running domain: the invariant checker,
// the counters and the "show callout" dump.  Each takes one CPU lock at a
// time, so all are safe while the domain runs (and consistent per CPU).
#include <errno.h>

#include <algorithm>
#include <cinttypes>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <vector>

#include "callout/callout.h"
#include "callout_impl.h"
#include "cpu.h"
#include "domain.h"
#include "symbols.h"

using namespace libcallout::internal;

/*
 * callout_domain_check: see callout.h.  Takes each CPU lock in turn.  What
 * it finds under a CPU lock goes to a memory stream opened before the lock
 * (writing to it never waits: the stream is ours alone), and is copied to
 * `out` once the lock is released: a CPU lock is never held across I/O on
 * a caller's stream, whose lock another thread may hold.
 */
extern "C" int callout_domain_check(callout_domain_t *d, FILE *out) {
  int bad = 0;
  std::vector<char> buf(out != nullptr ? 64 * 1024 : 0);
  for (unsigned i = 0; i < d->ncpu; ++i) {
    Cpu *cpu = &d->cpus[i];
    char who[48];
    std::snprintf(who, sizeof who, "callout_domain_check: cpu %u", i);
    FILE *const report = out != nullptr ? fmemopen(buf.data(), buf.size(), "w") : nullptr;
    cpu->lock.lock();
    bad += cpu->wheel.check(report, who);
    cpu->wheel.for_each([&](const WheelNode *n, std::uint32_t) {
      const auto *c = reinterpret_cast<const CalloutImpl *>(n);
      const char *what = nullptr;
      if (c->magic != kMagic)
        what = "pending callout has a bad magic number";
      else if (c->cpu.load(std::memory_order_relaxed) != cpu)
        what = "pending callout is homed on another CPU";
      else if ((c->flags.load(std::memory_order_relaxed) & kPending) == 0)
        what = "callout in a wheel is not marked PENDING";
      else if (c->func == nullptr)
        what = "pending callout has no handler";
      if (what != nullptr) {
        ++bad;
        if (report) std::fprintf(report, "%s: callout %p: %s\n", who, static_cast<const void *>(c), what);
      }
    });
    if (cpu->running == nullptr && cpu->dispatching) {
      ++bad;
      if (report) std::fprintf(report, "%s: dispatching with no running callout\n", who);
    }
    cpu->lock.unlock();
    if (report != nullptr) {
      const long n = std::ftell(report);
      std::fclose(report);
      if (n > 0) std::fwrite(buf.data(), 1, static_cast<size_t>(n), out);
      if (n >= static_cast<long>(buf.size()) - 1) std::fprintf(out, "%s: (report truncated)\n", who);
    }
  }
  return bad;
}

namespace {

void add_stats(callout_stats *out, const CpuStats &st, const HoldStats &hs, std::uint64_t pending,
               std::uint64_t scheduled, std::uint64_t rescheduled, std::uint64_t stopped) {
  out->scheduled += scheduled;
  out->rescheduled += rescheduled;
  out->stopped += stopped;
  out->fired += st.fired;
  out->fired_late += st.fired_late;
  if (st.late_max_ticks > out->late_max_ticks) out->late_max_ticks = st.late_max_ticks;
  out->cancelled += st.cancelled;
  out->halts += st.halts;
  out->halts_waited += st.halts_waited;
  out->run_ns_total += st.run_ns_total;
  if (st.run_ns_max > out->run_ns_max) out->run_ns_max = st.run_ns_max;
  out->ignored += st.ignored;
  out->wakeups += st.wakeups;
  out->pending += pending;
  for (int i = 0; i < CALLOUT_LATENCY_BUCKETS; ++i) out->lateness_ns_log2[i] += st.lateness_ns_log2[i];
  out->lock_hold_ns_max_cascade = std::max(out->lock_hold_ns_max_cascade, hs.hold_ns_max_cascade);
  out->lock_hold_ns_max_batch = std::max(out->lock_hold_ns_max_batch, hs.hold_ns_max_batch);
  out->lock_hold_ns_max_api = std::max(out->lock_hold_ns_max_api, hs.hold_ns_max_api);
  out->assoc_wait_ns_total += hs.assoc_wait_ns_total;
  out->assoc_wait_ns_max = std::max(out->assoc_wait_ns_max, hs.assoc_wait_ns_max);
}

// The size of struct callout_stats in 1.0, the smallest callout_domain_stats
// accepts: it ended with the lateness histogram.
constexpr size_t kStatsSizeV1 =
    offsetof(callout_stats, lateness_ns_log2) + sizeof(callout_stats::lateness_ns_log2);

}  // namespace

/*
 * callout_domain_stats: the counters of CPU `cpu` of d, or their sum over
 * every CPU when cpu < 0 (maxima are maxima).  out->size must be set by the
 * caller: at least the 1.0 struct's size.  A smaller struct (a program built
 * against an older header) gets the fields it has; a larger one (a newer
 * header) gets its unknown tail zeroed.  Returns 0, or EINVAL for a bad size
 * or CPU index.  Any thread; takes each CPU lock briefly.
 */
extern "C" int callout_domain_stats(callout_domain_t *d, int cpu, struct callout_stats *out) {
  if (d == nullptr || out == nullptr || out->size < kStatsSizeV1) return EINVAL;
  if (cpu >= static_cast<int>(d->ncpu)) return EINVAL;
  const size_t size = out->size;
  // Summed in a struct of our own size, then copied as far as the caller's
  // reaches: its struct may be shorter than ours.
  callout_stats all{};
  const unsigned first = cpu < 0 ? 0 : static_cast<unsigned>(cpu);
  const unsigned last = cpu < 0 ? d->ncpu : first + 1;
  for (unsigned i = first; i < last; ++i) {
    Cpu *c = &d->cpus[i];
    c->lock.lock();
    const CpuStats st = c->stats;
    const HoldStats hs = c->hold_stats;
    const std::uint64_t pending = c->wheel.size();
    const std::uint64_t scheduled = c->n_scheduled, rescheduled = c->n_rescheduled, stopped = c->n_stopped;
    c->lock.unlock();
    add_stats(&all, st, hs, pending, scheduled, rescheduled, stopped);
  }
  all.size = size;
  std::memcpy(out, &all, std::min(size, sizeof all));
  if (size > sizeof all) std::memset(reinterpret_cast<char *>(out) + sizeof all, 0, size - sizeof all);
  return 0;
}

namespace {

struct DumpEntry {
  const void *callout;
  std::uint64_t due;
  std::uint32_t where;
  callout_func_t func;
  void *arg;
};

// Copies CPU i's pending callouts and running callout.  The copy is taken
// under the lock into memory allocated before it (retrying if the wheel grew
// meanwhile), so that no allocation and no output happens under a CPU lock.
void snapshot(Cpu *cpu, std::vector<DumpEntry> *entries, DumpEntry *running, bool *dispatching,
              std::uint64_t *now) {
  for (;;) {
    cpu->lock.lock();
    const size_t size = cpu->wheel.size();
    cpu->lock.unlock();
    entries->clear();
    entries->reserve(size + 16);
    cpu->lock.lock();
    if (cpu->wheel.size() > entries->capacity()) {
      cpu->lock.unlock();
      continue;
    }
    cpu->wheel.for_each([&](const WheelNode *n, std::uint32_t list) {
      const auto *c = reinterpret_cast<const CalloutImpl *>(n);
      entries->push_back({c, n->due, list, c->func, c->arg});
    });
    *running = {cpu->running, 0, 0, cpu->running_func, cpu->running_arg};
    *dispatching = cpu->dispatching;
    // The tick the "ticks left" column counts from, taken with this CPU's
    // copy: printing an earlier CPU may have taken long (naming handlers).
    *now = cpu->domain->clock.ticks();
    cpu->lock.unlock();
    return;
  }
}

}  // namespace

/*
 * callout_domain_dump: NetBSD's "show callout" for one domain: for every
 * pending callout, the ticks left (negative: late), its CPU, its wheel
 * level/bucket ("expired" when it waits for the softclock), the argument
 * and the handler's symbol; then what each CPU is running.  Any thread,
 * while the domain runs; output is per-CPU consistent.
 */
extern "C" void callout_domain_dump(callout_domain_t *d, FILE *out) {
  std::fprintf(out, "domain %p: %u cpu, %u Hz, %s clock, ticks now %" PRIu64 "\n", static_cast<void *>(d),
               d->ncpu, d->clock.hz(),
               d->clock.caller_runs() ? "virtual"
               : d->clock.manual()    ? "manual"
               : d->clock.external()  ? "external"
                                      : "monotonic",
               d->clock.ticks());
  std::fprintf(out, "%12s %4s %-9s %-18s %-18s %s\n", "ticks-left", "cpu", "lvl/bkt", "callout", "arg",
               "handler");
  std::vector<DumpEntry> entries;
  SymbolNames names;
  for (unsigned i = 0; i < d->ncpu; ++i) {
    DumpEntry running{};
    bool dispatching = false;
    std::uint64_t now = 0;
    snapshot(&d->cpus[i], &entries, &running, &dispatching, &now);
    char handler[256];
    for (const DumpEntry &e : entries) {
      char where[16];
      if (e.where == Wheel::kExpired)
        std::snprintf(where, sizeof where, "expired");
      else
        std::snprintf(where, sizeof where, "%d/%u", Wheel::level_of(e.where), e.where % Wheel::kLevelSlots);
      names.describe(e.func, handler, sizeof handler);
      std::fprintf(out, "%12" PRId64 " %4u %-9s %-18p %-18p %s\n", static_cast<std::int64_t>(e.due - now), i,
                   where, e.callout, e.arg, handler);
    }
    if (running.callout != nullptr) {
      names.describe(running.func, handler, sizeof handler);
      std::fprintf(out, "cpu %u: %s callout %p, arg %p, handler %s\n", i,
                   dispatching ? "dispatching" : "running", running.callout, running.arg, handler);
    }
  }
}

namespace {

// Row i of a print_stats table: CPU i's counters, or for i == ncpu the
// totals, into *st, and the row's name ("0", "1", ..., "total").
void stats_row(callout_domain_t *d, int i, callout_stats *st, char *name, std::size_t len) {
  const int cpu = i < static_cast<int>(d->ncpu) ? i : -1;
  st->size = sizeof *st;
  callout_domain_stats(d, cpu, st);
  if (cpu < 0)
    std::snprintf(name, len, "total");
  else
    std::snprintf(name, len, "%d", cpu);
}

}  // namespace

/*
 * callout_domain_print_stats: the "callout-stat" view: one row of counters
 * per CPU and a total, a second table of the longest lock holds and the
 * associated-lock waits, then the lateness histogram as bars (monotonic and
 * external clocks).  Any thread, while the domain runs.
 */
extern "C" void callout_domain_print_stats(callout_domain_t *d, FILE *out) {
  std::fprintf(out, "%-6s %12s %12s %10s %12s %9s %9s %7s %8s %10s %10s %9s\n", "cpu", "scheduled",
               "rescheduled", "stopped", "fired", "late", "late-max", "halts", "waited", "run-avg-us",
               "run-max-us", "pending");
  callout_stats st;
  for (int i = 0; i <= static_cast<int>(d->ncpu); ++i) {
    char name[16];
    stats_row(d, i, &st, name, sizeof name);
    const double avg_us =
        st.fired != 0 ? static_cast<double>(st.run_ns_total) / static_cast<double>(st.fired) / 1e3 : 0;
    std::fprintf(out,
                 "%-6s %12" PRIu64 " %12" PRIu64 " %10" PRIu64 " %12" PRIu64 " %9" PRIu64 " %9" PRIu64
                 " %7" PRIu64 " %8" PRIu64 " %10.2f %10.1f %9" PRIu64 "\n",
                 name, st.scheduled, st.rescheduled, st.stopped, st.fired, st.fired_late, st.late_max_ticks,
                 st.halts, st.halts_waited, avg_us, static_cast<double>(st.run_ns_max) / 1e3, st.pending);
  }
  // The longest CPU-lock holds by cause, and the waits for associated
  // locks (the application's locks, not the wheel's): a second table, so
  // that the first stays narrow.
  std::fprintf(out, "%-6s %14s %14s %14s %16s %16s\n", "cpu", "hold-max-us", "", "", "assoc-wait-us", "");
  std::fprintf(out, "%-6s %14s %14s %14s %16s %16s\n", "", "cascade", "batch", "api", "total", "max");
  for (int i = 0; i <= static_cast<int>(d->ncpu); ++i) {
    char name[16];
    stats_row(d, i, &st, name, sizeof name);
    std::fprintf(out, "%-6s %14.1f %14.1f %14.1f %16.1f %16.1f\n", name,
                 static_cast<double>(st.lock_hold_ns_max_cascade) / 1e3,
                 static_cast<double>(st.lock_hold_ns_max_batch) / 1e3,
                 static_cast<double>(st.lock_hold_ns_max_api) / 1e3,
                 static_cast<double>(st.assoc_wait_ns_total) / 1e3,
                 static_cast<double>(st.assoc_wait_ns_max) / 1e3);
  }
  // st holds the total now.
  std::uint64_t most = 0;
  int lo = CALLOUT_LATENCY_BUCKETS, hi = -1;
  for (int i = 0; i < CALLOUT_LATENCY_BUCKETS; ++i)
    if (st.lateness_ns_log2[i] != 0) {
      if (st.lateness_ns_log2[i] > most) most = st.lateness_ns_log2[i];
      if (i < lo) lo = i;
      hi = i;
    }
  if (hi < 0) return;
  std::fprintf(out, "lateness past the start of the due tick (handlers started):\n");
  for (int i = lo; i <= hi; ++i) {
    const std::uint64_t n = st.lateness_ns_log2[i];
    const int bar = static_cast<int>((n * 50 + most - 1) / most);
    const double from = i == 0 ? 0 : static_cast<double>(std::uint64_t{1} << i);
    const char *unit = "ns";
    double scale = 1;
    if (from >= 1e6) {
      unit = "ms";
      scale = 1e6;
    } else if (from >= 1e3) {
      unit = "us";
      scale = 1e3;
    }
    std::fprintf(out, "  >= %8.1f %s %10" PRIu64 " %.*s\n", from / scale, unit, n, bar,
                 "##################################################");
  }
}

/*
 * callout_version: "MAJOR.MINOR.PATCH" of the library (the header's
 * CALLOUT_VERSION_* give the version a program was built against).
 */
extern "C" const char *callout_version(void) { return CALLOUT_LIBRARY_VERSION; }
