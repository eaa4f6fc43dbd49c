// torture_test.cpp -- many threads hammer a shared pool of callouts while
// every handler run and every return value is checked against a ledger.
//
// Shape (in the spirit of Concurrency Kit's torture programs):
//   - a domain of 2 or 4 CPUs, manual clock (a thread advances it all the
//     time) or monotonic clock;
//   - a pool of callouts ("slots") of five kinds: associated with the slot's
//     mutex M (with and without CALLOUT_RETURNUNLOCKED), MPSAFE whose handler
//     takes M itself, MPSAFE whose handler takes no lock, and giant-locked;
//   - N worker threads (N cycles through 2..8, one value per round) doing
//     random reset / schedule / stop / halt (with the interlock M, or none) /
//     bind / destroy+init / predicates / ack on random slots; handlers re-arm
//     themselves, stop or halt themselves, and reset other slots (which
//     migrates an idle callout to the handler's CPU);
//   - rounds end at a quiescent point: the workers stop, every pending
//     callout is run out, the ledgers are settled and callout_domain_check()
//     must find the wheels consistent.
//
// The ledger.  Workers operate on a slot holding its mutex M (and giant
// first, for a giant-locked slot), which is how callout(9) users work: the
// softc lock.  Every arming gets a fresh generation number that travels in
// the handler's argument, so a handler run names the arming it belongs to.
// The ledger (guarded by the slot's leaf lock L) records each arming and
// what the API promised about it:
//   - a run of an arming that was stopped with stop() == false, or that was
//     superseded while the handler was excluded by its lock, or that a halt
//     already returned for, or that already ran, is a violation (double run,
//     cancel contract);
//   - the last arming of a slot, never stopped, must have run exactly once
//     by the next quiescent point (no lost callout);
//   - a run before the arming's due tick is a violation (never early);
//   - stop() == true means the handler was invoked: it must show up (and
//     for lock-associated callouts whose lock the caller holds, stop()'s
//     value must equal exactly what the ledger saw);
//   - after halt() returns, nothing of that callout may run or be running,
//     and it is not pending unless another thread reset it meanwhile;
//   - halt() == true for an MPSAFE callout means a handler run was in
//     progress, so one must have finished while it waited; halt() == false
//     means it never released the interlock;
//   - at most one invocation of a callout runs at any time (an in-handler
//     counter);
//   - handlers run on a softclock thread of the domain: on the bound CPU for
//     bound callouts, on CPU 0 for giant-locked ones, with M held for
//     callout_init_mtx ones;
//   - the predicates agree with the ledger where the caller's locks make the
//     answer stable.
//
// Duration: CALLOUT_TORTURE_SECONDS seconds per configuration (default 15,
// 10 under ASan, 7 under TSan); CALLOUT_TORTURE_OPS stops a configuration
// once that many operations were done (for long runs); CALLOUT_TORTURE_SEED
// fixes the random seed.  docs/RELIABILITY.md has the long-run command.
#include <callout/callout.h>
#include <errno.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TORTURE_TSAN 1
#endif
#if __has_feature(address_sanitizer)
#define TORTURE_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define TORTURE_TSAN 1
#endif
#if defined(__SANITIZE_ADDRESS__)
#define TORTURE_ASAN 1
#endif

namespace {

using SteadyClock = std::chrono::steady_clock;

// ---- configuration ----------------------------------------------------------

double env_double(const char *name, double fallback) {
  const char *v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return std::strtod(v, nullptr);
}

double seconds_per_config() {
#if defined(TORTURE_TSAN)
  const double dflt = 7;
#elif defined(TORTURE_ASAN)
  const double dflt = 10;
#else
  const double dflt = 15;
#endif
  return env_double("CALLOUT_TORTURE_SECONDS", dflt);
}

// ---- random numbers ---------------------------------------------------------

struct Rng {
  std::uint64_t s;
  explicit Rng(std::uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull) {}
  std::uint64_t next() {  // xorshift64*
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1Dull;
  }
  unsigned below(unsigned n) { return static_cast<unsigned>((next() >> 33) % n); }
  bool one_in(unsigned n) { return below(n) == 0; }
};

// ---- violations -------------------------------------------------------------

std::atomic<std::uint64_t> g_violations{0};

void violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void violation(const char *fmt, ...) {
  const std::uint64_t n = g_violations.fetch_add(1) + 1;
  if (n > 40) return;  // the first ones tell the story
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "TORTURE VIOLATION: %s\n", buf);
}

// ---- the pool ---------------------------------------------------------------
struct Slot;
void dump_trace(const Slot *s);

// A violation about one slot: also prints the slot's recent ledger events.
#define slot_violation(slot, ...) \
  do {                            \
    violation(__VA_ARGS__);       \
    dump_trace(slot);             \
  } while (0)

enum Kind : int {
  kMtx,        // callout_init_mtx(M): the handler runs holding M
  kMtxRu,      // ... with CALLOUT_RETURNUNLOCKED: the handler unlocks M
  kMpLocking,  // MPSAFE; the handler takes M itself
  kMpFree,     // MPSAFE; the handler takes no lock of the slot
  kGiant,      // not MPSAFE: runs under the domain's giant lock
  kNumKinds
};
const char *const kKindName[kNumKinds] = {"mtx", "mtx-ru", "mp-locking", "mp-free", "giant"};

// Kinds whose handler cannot run while the worker holds what it holds (M,
// or giant + M): the ledger can then demand exact answers.
bool exclusive(Kind k) { return k == kMtx || k == kMtxRu || k == kGiant; }

// One arming (reset or schedule) of a slot.
struct Arming {
  std::uint64_t gen = 0;
  std::uint64_t min_due = 0;  // a lower bound on its due tick
  bool live = false;          // not stopped, halted or superseded
  bool ran = false;           // its handler has run (recorded)
  bool must_run = false;      // stop() returned true for it: it was invoked
  bool excused = false;       // a halt in progress stopped it; a run already begun may still record
  bool maybe = false;         // made during another thread's halt: may be cancelled silently
};

struct Slot {
  callout_t c;
  unsigned index = 0;
  pthread_mutex_t m;  // the "softc lock": workers hold it around operations
  std::atomic<int> kind{kMpFree};
  std::atomic<int> bound_cpu{-1};

  // Written under M (read by handlers, which hold M or read atomically).
  std::atomic<bool> closing{false};    // a bind or destroy+init owns the slot
  std::atomic<int> halting{0};         // threads inside callout_halt on it
  std::atomic<std::uint64_t> wseq{0};  // operations by anyone but its own handler

  // Written by the handler.
  std::atomic<int> inside{0};
  std::atomic<std::uint64_t> running_gen{0};
  std::atomic<std::uint64_t> finished{0};

  // The ledger, guarded by L (a leaf lock: nothing blocking is taken under it).
  std::mutex L;
  std::uint64_t next_gen = 0;
  bool has_cur = false;
  Arming cur;
  std::deque<Arming> older;  // superseded MPSAFE armings that may still run, by gen
  bool invoking = false;     // INVOKING as the ledger sees it

  // The last ledger events, printed with a violation about this slot.
  struct Event {
    char what;  // R reset, S schedule, X run, P stop, H halt begin, E halt end, I init, A ack
    std::uint8_t kind, halting;
    std::uint8_t result;
    std::uint64_t gen, tick;
  };
  static constexpr unsigned kTrace = 24;
  Event trace[kTrace]{};
  unsigned ntrace = 0;
  void note(char what, std::uint64_t g, unsigned result, std::uint64_t tick = 0) {
    trace[ntrace++ % kTrace] = Event{what,
                                     static_cast<std::uint8_t>(kind.load()),
                                     static_cast<std::uint8_t>(halting.load()),
                                     static_cast<std::uint8_t>(result),
                                     g,
                                     tick};
  }
};

void dump_trace(const Slot *s) {
  if (g_violations.load() > 40) return;
  std::fprintf(stderr, "  slot %u, last events (oldest first): kind/halting what gen result tick\n",
               s->index);
  const unsigned n = s->ntrace < Slot::kTrace ? s->ntrace : Slot::kTrace;
  for (unsigned i = 0; i < n; ++i) {
    const Slot::Event &e = s->trace[(s->ntrace - n + i) % Slot::kTrace];
    std::fprintf(stderr, "    %s/%u %c gen %llu r %u tick %llu\n", kKindName[e.kind], e.halting, e.what,
                 (unsigned long long)e.gen, e.result, (unsigned long long)e.tick);
  }
}

struct Stats {
  std::uint64_t ops = 0, resets = 0, schedules = 0, stops = 0, stops_true = 0, halts = 0, halts_waited = 0,
                binds = 0, reinits = 0, predicates = 0, acks = 0, runs = 0, rearms = 0, cross_resets = 0,
                self_stops = 0;
  void add(const Stats &o) {
    ops += o.ops;
    resets += o.resets;
    schedules += o.schedules;
    stops += o.stops;
    stops_true += o.stops_true;
    halts += o.halts;
    halts_waited += o.halts_waited;
    binds += o.binds;
    reinits += o.reinits;
    predicates += o.predicates;
    acks += o.acks;
    runs += o.runs;
    rearms += o.rearms;
    cross_resets += o.cross_resets;
    self_stops += o.self_stops;
  }
};

struct Torture;
Torture *g_torture = nullptr;  // the running configuration (one at a time)

void handler(void *arg);

struct Torture {
  callout_domain_t *d = nullptr;
  bool manual = false;
  unsigned ncpu = 0;
  int max_ticks = 0;  // the largest "small" delay
  std::vector<std::unique_ptr<Slot>> slots;
  std::atomic<bool> draining{false};
  std::mutex stats_mu;
  Stats total;

  void *token(const Slot *s, std::uint64_t gen) const {
    return reinterpret_cast<void *>(static_cast<std::uintptr_t>((gen << 8) | s->index));
  }
  Slot *slot_of(void *arg) const { return slots[reinterpret_cast<std::uintptr_t>(arg) & 0xff].get(); }
  static std::uint64_t gen_of(void *arg) { return reinterpret_cast<std::uintptr_t>(arg) >> 8; }
};

// ---- ledger (all under s->L) ---------------------------------------------

// Clamps a delay the way SPEC §4 does: ticks <= 0 means 1.
std::uint64_t clamp_ticks(int ticks) { return ticks <= 0 ? 1u : static_cast<std::uint64_t>(ticks); }

// A new arming replaces the current one.  `excl`: the arming's maker excludes
// the handler (holds the associated lock), so the old arming, unless it ran,
// can never run now (pending: rescheduled; dispatching: cancelled).
void ledger_arm(Slot *s, std::uint64_t gen, std::uint64_t min_due, bool excl, bool maybe) {
  if (s->has_cur) {
    Arming &o = s->cur;
    if (!o.ran && !excl && (o.live || o.must_run || o.excused)) {
      Arming keep = o;
      keep.live = false;
      s->older.push_back(keep);
    }
  }
  s->has_cur = true;
  s->cur = Arming{};
  s->cur.gen = gen;
  s->cur.min_due = min_due;
  s->cur.live = true;
  s->cur.maybe = maybe;
  s->invoking = false;  // reset and schedule clear INVOKING
}

void ledger_run(Torture *t, Slot *s, std::uint64_t gen, std::uint64_t now) {
  s->note('X', gen, 0, now);
  auto late_check = [&](const Arming &a) {
    if (now < a.min_due)
      slot_violation(s, "slot %u (%s): arming %llu ran at tick %llu, before its due tick >= %llu", s->index,
                     kKindName[s->kind.load()], (unsigned long long)gen, (unsigned long long)now,
                     (unsigned long long)a.min_due);
  };
  auto drop_older_than = [&](std::uint64_t g) {
    while (!s->older.empty() && s->older.front().gen < g) {
      const Arming &o = s->older.front();
      if (o.must_run && !o.ran)
        slot_violation(s, "slot %u: arming %llu was invoked (stop returned true) but arming %llu ran first",
                       s->index, (unsigned long long)o.gen, (unsigned long long)g);
      s->older.pop_front();
    }
  };
  s->invoking = true;
  if (s->has_cur && s->cur.gen == gen) {
    Arming &a = s->cur;
    if (a.ran) {
      slot_violation(s, "slot %u (%s): arming %llu ran twice", s->index, kKindName[s->kind.load()],
                     (unsigned long long)gen);
    } else if (!a.live && !a.must_run && !a.excused) {
      slot_violation(s, "slot %u (%s): arming %llu ran after stop returned false or halt returned", s->index,
                     kKindName[s->kind.load()], (unsigned long long)gen);
    }
    late_check(a);
    a.ran = true;
    drop_older_than(gen);
    return;
  }
  auto it = std::find_if(s->older.begin(), s->older.end(), [&](const Arming &a) { return a.gen == gen; });
  if (it == s->older.end()) {
    slot_violation(
        s,
        "slot %u (%s): arming %llu ran but cannot run (stopped, superseded under its lock, halted, "
        "already ran, or out of order; current %llu)",
        s->index, kKindName[s->kind.load()], (unsigned long long)gen,
        (unsigned long long)(s->has_cur ? s->cur.gen : 0));
    return;
  }
  late_check(*it);
  drop_older_than(gen);
  s->older.pop_front();  // it was the front now
  (void)t;
}

// stop() returned r.  `excl`: the caller excludes the handler.
void ledger_stop(Slot *s, bool r, bool excl, const char *who) {
  s->note('P', s->has_cur ? s->cur.gen : 0, r);
  const Kind k = static_cast<Kind>(s->kind.load());
  if (!s->has_cur || !s->cur.live) {
    if (r)
      slot_violation(s, "slot %u (%s): %s returned true but nothing was armed since the last stop", s->index,
                     kKindName[k], who);
    if (s->has_cur && r) s->cur.must_run = true;
    return;
  }
  Arming &a = s->cur;
  a.live = false;
  if (a.ran) {
    if (!r)
      slot_violation(s, "slot %u (%s): %s returned false although the handler ran", s->index, kKindName[k],
                     who);
    return;
  }
  if (r) {
    if (excl)
      slot_violation(s,
                     "slot %u (%s): %s under the associated lock returned true but the handler has not run",
                     s->index, kKindName[k], who);
    a.must_run = true;
  }
}

// A halt begins: whatever is armed now is stopped by it.
std::uint64_t ledger_halt_begin(Slot *s) {
  s->note('H', s->has_cur ? s->cur.gen : 0, 0);
  if (s->has_cur) {
    s->cur.excused = s->cur.live || s->cur.excused;
    s->cur.live = false;
  }
  for (Arming &o : s->older) o.excused = true;
  return s->next_gen + 1;  // armings with gen >= this one were made after the halt began
}

// A halt returned: nothing armed before it began may run any more.
void ledger_halt_end(Slot *s, std::uint64_t first_after, bool window_ops) {
  s->note('E', first_after, window_ops);
  auto settle = [&](Arming &a) {
    if (a.must_run && !a.ran)
      slot_violation(s, "slot %u (%s): halt returned before the invoked handler of arming %llu finished",
                     s->index, kKindName[s->kind.load()], (unsigned long long)a.gen);
    a.live = false;
    a.excused = false;
    a.must_run = false;
  };
  while (!s->older.empty() && (!window_ops || s->older.front().gen < first_after)) {
    settle(s->older.front());
    s->older.pop_front();
  }
  if (s->has_cur && (!window_ops || s->cur.gen < first_after)) settle(s->cur);
}

// ---- locking a slot for an operation ----------------------------------------

// Takes what a worker must hold to operate on s: giant first if the slot is
// giant-locked (or `want_giant`), then M.  Returns the kind, stable while
// held (only destroy+init changes it, holding giant and M).
Kind lock_slot(Torture *t, Slot *s, bool want_giant, bool *giant) {
  for (;;) {
    const Kind k = static_cast<Kind>(s->kind.load());
    *giant = want_giant || k == kGiant;
    if (*giant) callout_giant_enter(t->d);
    pthread_mutex_lock(&s->m);
    if (*giant || s->kind.load() != kGiant) return static_cast<Kind>(s->kind.load());
    pthread_mutex_unlock(&s->m);
  }
}

void unlock_slot(Torture *t, Slot *s, bool giant) {
  pthread_mutex_unlock(&s->m);
  if (giant) callout_giant_exit(t->d);
}

// ---- operations --------------------------------------------------------------

int random_ticks(Torture *t, Rng &r) {
  const unsigned p = r.below(100);
  if (p < 12) {
    static const int neg[] = {0, 0, -1, -7, INT_MIN};
    return neg[r.below(5)];
  }
  if (p < 80)
    return 1 + static_cast<int>(r.below(static_cast<unsigned>(t->max_ticks) < 8 ? t->max_ticks : 8));
  if (p < 97 || !t->manual) return 1 + static_cast<int>(r.below(static_cast<unsigned>(t->max_ticks)));
  static const int big[] = {INT_MAX, INT_MAX - 1, 1 << 20, 1 << 30, 4096, 262144};
  return big[r.below(6)];
}

// reset (or setfunc + schedule) of s with a new arming; caller holds M (and
// giant for giant slots, or is s's handler, or holds M via trylock).
void arm(Torture *t, Slot *s, bool excl, bool use_schedule, int ticks, Stats &st) {
  std::lock_guard<std::mutex> g(s->L);
  const std::uint64_t gen = ++s->next_gen;
  const std::uint64_t min_due = callout_domain_ticks(t->d) + clamp_ticks(ticks);
  // schedule keeps the arg of setfunc; an MPSAFE callout that may be pending
  // would fire its pending arming with the new arg, so only when it is not.
  const bool may_be_pending = s->has_cur && s->cur.live && !s->cur.ran;
  if (use_schedule && (excl || !may_be_pending) && s->halting.load() == 0) {
    ledger_arm(s, gen, min_due, excl, false);
    s->note('S', gen, excl, min_due);
    callout_setfunc(&s->c, handler, t->token(s, gen));
    callout_schedule(&s->c, ticks);
    ++st.schedules;
    st.ops += 2;
  } else {
    ledger_arm(s, gen, min_due, excl, s->halting.load() != 0);
    s->note('R', gen, excl, min_due);
    callout_reset(&s->c, ticks, handler, t->token(s, gen));
    ++st.resets;
    ++st.ops;
  }
}

void init_slot(Torture *t, Slot *s, Kind k) {
  s->kind.store(k);
  s->bound_cpu.store(-1);
  switch (k) {
    case kMtx:
      callout_init_mtx(&s->c, t->d, &s->m, 0);
      break;
    case kMtxRu:
      callout_init_mtx(&s->c, t->d, &s->m, CALLOUT_RETURNUNLOCKED);
      break;
    case kMpLocking:
    case kMpFree:
      callout_init_domain(&s->c, CALLOUT_MPSAFE, t->d);
      break;
    case kGiant:
      callout_init_domain(&s->c, 0, t->d);
      break;
    default:
      std::abort();
  }
}

// A halt by a worker holding M (and giant for giant slots).  `own`: the
// caller set `closing`, so nobody else operates on s meanwhile.
bool do_halt(Torture *t, Slot *s, Kind k, bool interlock, Stats &st) {
  std::uint64_t first_after, wseq0;
  {
    std::lock_guard<std::mutex> g(s->L);
    first_after = ledger_halt_begin(s);
    s->halting.fetch_add(1);
    wseq0 = s->wseq.fetch_add(1) + 1;
  }
  const bool r = callout_halt(&s->c, interlock ? &s->m : nullptr);
  ++st.halts;
  ++st.ops;
  if (r) ++st.halts_waited;
  std::lock_guard<std::mutex> g(s->L);
  s->halting.fetch_sub(1);
  const bool window_ops = s->wseq.load() != wseq0;
  if (!r && window_ops)
    slot_violation(s, "slot %u (%s): halt returned false but released its interlock", s->index, kKindName[k]);
  // (halt() == true is not checked against the handler's counters: a
  // handler past its last statement still counts as running until it
  // returns.  halt_test.cpp checks both values deterministically.)
  s->note('E', 0, r);
  if (!window_ops) {
    if (callout_pending(&s->c))
      slot_violation(s, "slot %u (%s): pending after halt returned (nobody reset it since)", s->index,
                     kKindName[k]);
    if (s->inside.load() != 0)
      slot_violation(s, "slot %u (%s): handler running after halt returned", s->index, kKindName[k]);
  } else if (s->inside.load() != 0 && s->running_gen.load() < first_after && s->running_gen.load() != 0) {
    slot_violation(s,
                   "slot %u (%s): handler of arming %llu (armed before the halt) running after halt returned",
                   s->index, kKindName[k], (unsigned long long)s->running_gen.load());
  }
  ledger_halt_end(s, first_after, window_ops);
  if (window_ops) {
    // Other threads armed or stopped c while the halt slept, and the halt
    // stops c again after every wake-up (H1): whether that cleared FIRED of
    // an arming that already ran depends on timing.  Settle it with a stop:
    // false is then fine for an arming that ran.
    const bool r2 = callout_stop(&s->c);
    ++st.stops;
    ++st.ops;
    if (!r2 && s->has_cur && s->cur.live && s->cur.ran) {
      s->cur.live = false;
      s->note('P', s->cur.gen, 2);
    } else {
      ledger_stop(s, r2, exclusive(k), "stop after a halt");
    }
  }
  return r;
}

void check_predicates(Torture *t, Slot *s, Kind k, Stats &st) {
  std::lock_guard<std::mutex> g(s->L);
  const bool p = callout_pending(&s->c);
  const bool e = callout_expired(&s->c);
  const bool a = callout_active(&s->c);
  const bool i = callout_invoking(&s->c);
  st.ops += 4;
  ++st.predicates;
  if (s->halting.load() != 0) return;  // another thread's halt may stop it any time
  const bool cur_live = s->has_cur && s->cur.live;
  if (p && !(cur_live && !s->cur.ran))
    slot_violation(s, "slot %u (%s): pending, but the ledger has no live unfired arming", s->index,
                   kKindName[k]);
  if (exclusive(k)) {
    // The handler cannot run (we hold its lock), so FIRED and INVOKING are stable.
    const bool want_e = cur_live && s->cur.ran;
    if (e != want_e)
      slot_violation(s, "slot %u (%s): expired()=%d, ledger says %d", s->index, kKindName[k], e, want_e);
    if (i != s->invoking)
      slot_violation(s, "slot %u (%s): invoking()=%d, ledger says %d", s->index, kKindName[k], i,
                     s->invoking);
    // PENDING may drop between the loads (the softclock pops without our
    // lock); FIRED cannot change.  The loads are in the order p, e, a.
    if ((!p && a != e) || (e && !a))
      slot_violation(s, "slot %u (%s): active()=%d, pending()=%d, expired()=%d", s->index, kKindName[k], a, p,
                     e);
  } else {
    if (e && !cur_live)
      slot_violation(s, "slot %u (%s): expired() with no live arming (stop clears FIRED)", s->index,
                     kKindName[k]);
  }
  (void)t;
}

void worker_op(Torture *t, Rng &r, Stats &st) {
  Slot *s = t->slots[r.below(static_cast<unsigned>(t->slots.size()))].get();
  const unsigned op = r.below(100);
  const bool reinit = op >= 97;
  const bool bind = op >= 94 && op < 97;
  bool giant;
  const Kind k = lock_slot(t, s, reinit, &giant);
  // bind and destroy+init need the slot to themselves: no other thread may
  // be inside callout_halt on it (it released M as its interlock).
  if (s->closing.load() || ((bind || reinit) && s->halting.load() != 0)) {
    unlock_slot(t, s, giant);
    return;
  }
  const bool excl = exclusive(k);
  if (op == 0 && t->manual && r.one_in(4)) {
    // Workers move the manual clock too (holding nothing: advance waits
    // for handlers, which may need M or giant), so that armings survive
    // long enough to fire while the other workers race them.
    unlock_slot(t, s, giant);
    const int rc = callout_domain_advance(t->d, 1 + r.below(4));
    if (rc != 0) violation("callout_domain_advance: %d", rc);
    ++st.ops;
    return;
  }
  if (op < 36) {
    s->wseq.fetch_add(1);
    arm(t, s, excl, r.one_in(3), random_ticks(t, r), st);
  } else if (op < 60) {
    std::lock_guard<std::mutex> g(s->L);
    s->wseq.fetch_add(1);
    const bool res = callout_stop(&s->c);
    ++st.stops;
    ++st.ops;
    if (res) ++st.stops_true;
    ledger_stop(s, res, excl, "stop");
  } else if (op < 76) {
    // The interlock is needed whenever the handler may need M (every kind
    // but kMpFree); for kMpFree try both -- unless we hold giant (the slot
    // was giant-locked when lock_slot looked): halt then drops giant and
    // takes it back, and re-taking it while still holding M would invert
    // the order giant -> M that every other thread follows (a deadlock the
    // hunt caught: this worker waiting for giant holding M, another holding
    // giant waiting for M).  Passing M as the interlock makes halt take
    // giant first, then M.  callout(3) states the rule.
    do_halt(t, s, k, k != kMpFree || giant || r.one_in(2), st);
  } else if (op < 90) {
    check_predicates(t, s, k, st);
  } else if (op < 94) {
    std::lock_guard<std::mutex> g(s->L);
    callout_ack(&s->c);
    ++st.acks;
    ++st.ops;
    s->invoking = false;
    s->note('A', 0, 0);
    if (excl && s->halting.load() == 0 && callout_invoking(&s->c))
      slot_violation(s, "slot %u (%s): invoking() after ack under the associated lock", s->index,
                     kKindName[k]);
  } else if (bind && k != kGiant) {
    s->closing.store(true);
    do_halt(t, s, k, true, st);
    const unsigned cpu = r.below(t->ncpu);
    callout_bind(&s->c, cpu);
    s->bound_cpu.store(static_cast<int>(cpu));
    ++st.binds;
    ++st.ops;
    s->closing.store(false);
  } else if (reinit) {
    s->closing.store(true);
    do_halt(t, s, k, true, st);
    {
      std::lock_guard<std::mutex> g(s->L);
      if (callout_pending(&s->c) || s->inside.load() != 0)
        slot_violation(s, "slot %u (%s): in use after halt, before destroy", s->index, kKindName[k]);
      callout_destroy(&s->c);
      init_slot(t, s, static_cast<Kind>(r.below(kNumKinds)));
      s->has_cur = false;
      s->older.clear();
      s->note('I', 0, 0);
      s->invoking = false;
    }
    st.ops += 2;
    ++st.reinits;
    s->closing.store(false);
  }
  unlock_slot(t, s, giant);
}

// ---- the handler -------------------------------------------------------------

void spin_for_ns(std::uint64_t ns) {
  const auto until = SteadyClock::now() + std::chrono::nanoseconds(ns);
  while (SteadyClock::now() < until) {
  }
}

// From a handler of `self` (holding giant iff self is giant-locked): reset
// another slot if its lock is free right now.  Resetting an idle callout
// from a softclock thread migrates it to this CPU.
void cross_reset(Torture *t, Slot *self, Kind self_kind, Rng &r, Stats &st) {
  Slot *o = t->slots[r.below(static_cast<unsigned>(t->slots.size()))].get();
  if (o == self) return;
  if (pthread_mutex_trylock(&o->m) != 0) return;
  const Kind k = static_cast<Kind>(o->kind.load());
  // A giant-locked slot needs giant, which only a giant-locked handler holds.
  if (!o->closing.load() && (k != kGiant || self_kind == kGiant)) {
    o->wseq.fetch_add(1);
    arm(t, o, exclusive(k), r.one_in(3), random_ticks(t, r), st);
    ++st.cross_resets;
  }
  pthread_mutex_unlock(&o->m);
}

void handler(void *arg) {
  Torture *t = g_torture;
  Slot *s = t->slot_of(arg);
  const std::uint64_t gen = Torture::gen_of(arg);
  static thread_local Rng rng(0x5eed + static_cast<std::uint64_t>(pthread_self()));
  static thread_local Stats hst;
  if (s->inside.fetch_add(1) != 0) slot_violation(s, "slot %u: two invocations run at once", s->index);
  s->running_gen.store(gen);
  const Kind k = static_cast<Kind>(s->kind.load());
  const int cpu = callout_domain_curcpu(t->d);
  if (cpu < 0) slot_violation(s, "slot %u: handler not on a softclock thread of its domain", s->index);
  const int bound = s->bound_cpu.load();
  if (bound >= 0 && cpu != bound)
    slot_violation(s, "slot %u: bound to CPU %d, ran on CPU %d", s->index, bound, cpu);
  if (k == kGiant && cpu != 0)
    slot_violation(s, "slot %u: giant-locked callout ran on CPU %d", s->index, cpu);
  if (k == kMtx || k == kMtxRu) {
    // M is an error-checking mutex: locking it again must say we hold it.
    const int rc = pthread_mutex_lock(&s->m);
    if (rc != EDEADLK) {
      slot_violation(s, "slot %u (%s): handler runs without its associated mutex (lock: %d)", s->index,
                     kKindName[k], rc);
      if (rc == 0) pthread_mutex_unlock(&s->m);
    }
  }
  const std::uint64_t now = callout_domain_ticks(t->d);
  const bool locked = k != kMpFree;
  if (k == kMpLocking) pthread_mutex_lock(&s->m);
  {
    std::lock_guard<std::mutex> g(s->L);
    ledger_run(t, s, gen, now);
    ++hst.runs;
    ++hst.ops;
    const bool current = s->has_cur && s->cur.gen == gen;
    if (locked && current && s->cur.live && s->halting.load() == 0) {
      // Nobody re-armed or stopped c since this invocation: FIRED and
      // INVOKING are set, PENDING is clear.
      // (INVOKING only for exclusive kinds: an MPSAFE handler takes M after
      // its invocation, so a worker may have acked meanwhile.)
      if (callout_pending(&s->c) || !callout_expired(&s->c) || (exclusive(k) && !callout_invoking(&s->c)))
        slot_violation(s, "slot %u (%s): in its handler: pending=%d expired=%d invoking=%d", s->index,
                       kKindName[k], callout_pending(&s->c), callout_expired(&s->c), callout_invoking(&s->c));
      hst.ops += 3;
    }
    if (locked && current && rng.one_in(24)) {
      // Stop or halt from the handler itself: never waits.
      if (rng.one_in(2)) {
        const bool res = callout_stop(&s->c);
        ledger_stop(s, res, true, "stop from own handler");
      } else {
        ledger_halt_begin(s);
        if (callout_halt(&s->c, nullptr))
          slot_violation(s, "slot %u: halt from its own handler waited", s->index);
        if (s->cur.live) slot_violation(s, "slot %u: ledger", s->index);
        s->cur.excused = false;
      }
      ++hst.self_stops;
      ++hst.ops;
    }
  }
  if (locked && !t->draining.load() && !s->closing.load() && rng.one_in(3)) {
    bool current;
    {
      std::lock_guard<std::mutex> g(s->L);
      current = s->has_cur && s->cur.gen == gen;
    }
    if (current) {
      // Re-arm itself: c is not pending (nobody armed it since this run).
      // During a halt this is the H1 case: halt must undo it.
      arm(t, s, true, rng.one_in(2), random_ticks(t, rng), hst);
      ++hst.rearms;
    }
  }
  if (k == kMpLocking) pthread_mutex_unlock(&s->m);
  if (!t->draining.load() && rng.one_in(6)) cross_reset(t, s, k, rng, hst);
  if (rng.one_in(16)) spin_for_ns(rng.below(60000));
  if (rng.one_in(512)) std::this_thread::sleep_for(std::chrono::microseconds(rng.below(2000)));
  s->running_gen.store(0);
  s->finished.fetch_add(1);
  s->inside.fetch_sub(1);
  if (k == kMtxRu) pthread_mutex_unlock(&s->m);
  if (hst.ops >= 4096) {
    std::lock_guard<std::mutex> g(t->stats_mu);
    t->total.add(hst);
    hst = Stats{};
  }
}

// ---- rounds -------------------------------------------------------------------

// Waits (monotonic clock) or advances (manual clock) until every armed
// callout has run, then settles the ledgers.
void drain_and_settle(Torture *t) {
  t->draining.store(true);
  if (t->manual) {
    // Every delay is at most INT_MAX ticks; handlers no longer re-arm, but
    // one that read `draining` just before it flipped may have.
    for (int i = 0; i < 3; ++i) {
      const int rc = callout_domain_advance(t->d, static_cast<std::uint64_t>(INT_MAX) + 2);
      if (rc != 0) violation("callout_domain_advance: %d", rc);
    }
  } else {
    // Waiting for "nothing pending, nothing inside a handler" is not enough
    // on its own: a callout leaves the wheel (no longer pending) before its
    // handler is entered, and a handler that read `draining` as false may
    // re-arm a slot the scan has already passed.  callout_domain_drain()
    // returns once no handler runs and none is being dispatched: after the
    // first one, no handler that could re-arm is left, so the pending set
    // only shrinks; a clean scan then sees the final state, and a second
    // drain lets the dispatches it caught mid-way finish.  (A sleep here
    // instead once stood for this; a softclock preempted between the two
    // steps for longer made a run look lost.)
    const auto deadline = SteadyClock::now() + std::chrono::seconds(30);
    for (;;) {
      const int rc = callout_domain_drain(t->d);
      if (rc != 0) violation("callout_domain_drain: %d", rc);
      bool busy = false;
      for (auto &sp : t->slots) {
        Slot *s = sp.get();
        std::lock_guard<std::mutex> g(s->L);
        if (callout_pending(&s->c) || s->inside.load() != 0) busy = true;
      }
      if (!busy) break;
      if (SteadyClock::now() > deadline) {
        violation("monotonic clock: callouts still pending or running 30 s after the workers stopped");
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    const int rc = callout_domain_drain(t->d);
    if (rc != 0) violation("callout_domain_drain: %d", rc);
  }
  for (auto &sp : t->slots) {
    Slot *s = sp.get();
    const bool giant = s->kind.load() == kGiant;
    if (giant) callout_giant_enter(t->d);
    pthread_mutex_lock(&s->m);
    {
      std::lock_guard<std::mutex> g(s->L);
      const Kind k = static_cast<Kind>(s->kind.load());
      if (callout_pending(&s->c))
        slot_violation(s, "slot %u (%s): still pending after the clock passed every due tick", s->index,
                       kKindName[k]);
      if (s->has_cur) {
        Arming &a = s->cur;
        if (a.live && !a.ran && !a.maybe)
          slot_violation(s, "slot %u (%s): arming %llu (due >= %llu) was never stopped and never ran: lost",
                         s->index, kKindName[k], (unsigned long long)a.gen, (unsigned long long)a.min_due);
        if (a.must_run && !a.ran)
          slot_violation(s, "slot %u (%s): stop returned true for arming %llu but it never ran", s->index,
                         kKindName[k], (unsigned long long)a.gen);
        if (a.live && !a.ran) a.live = false;  // a maybe-arming cancelled by a halt
        a.must_run = false;
        a.excused = false;
      }
      for (Arming &o : s->older)
        if (o.must_run && !o.ran)
          slot_violation(s, "slot %u (%s): stop returned true for arming %llu but it never ran", s->index,
                         kKindName[k], (unsigned long long)o.gen);
      s->older.clear();
    }
    pthread_mutex_unlock(&s->m);
    if (giant) callout_giant_exit(t->d);
  }
  const int bad = callout_domain_check(t->d, stderr);
  if (bad != 0) violation("callout_domain_check found %d problems at a quiescent point", bad);
  t->draining.store(false);
}

struct Config {
  const char *name;
  unsigned ncpu;
  callout_clock clock;
  unsigned hz;
  unsigned first_threads;  // N of the first round; later rounds cycle 2..8
};

void run_config(const Config &cfg) {
  const double seconds = seconds_per_config();
  const double ops_target = env_double("CALLOUT_TORTURE_OPS", 0);
  const std::uint64_t seed = static_cast<std::uint64_t>(env_double("CALLOUT_TORTURE_SEED", 0)) != 0
                                 ? static_cast<std::uint64_t>(env_double("CALLOUT_TORTURE_SEED", 0))
                                 : static_cast<std::uint64_t>(SteadyClock::now().time_since_epoch().count());
  std::fprintf(stderr, "torture %s: %.0f s, seed %llu%s\n", cfg.name, seconds, (unsigned long long)seed,
               ops_target > 0 ? " (ops target)" : "");
  g_violations.store(0);

  auto t = std::make_unique<Torture>();
  callout_domain_config dc;
  callout_domain_config_init(&dc);
  dc.ncpu = cfg.ncpu;
  dc.hz = cfg.hz;
  dc.clock = cfg.clock;
  ASSERT_EQ(callout_domain_create(&dc, &t->d), 0);
  t->manual = cfg.clock == CALLOUT_CLOCK_MANUAL;
  t->ncpu = cfg.ncpu;
  t->max_ticks = t->manual ? 300 : 20;
  g_torture = t.get();

  constexpr unsigned kSlots = 40;
  Rng setup(seed);
  for (unsigned i = 0; i < kSlots; ++i) {
    auto s = std::make_unique<Slot>();
    s->index = i;
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_init(&s->m, &ma);
    pthread_mutexattr_destroy(&ma);
    t->slots.push_back(std::move(s));
  }
  for (unsigned i = 0; i < kSlots; ++i)
    init_slot(t.get(), t->slots[i].get(), static_cast<Kind>(i % kNumKinds));

  // A watchdog turns a deadlock (a halt that never returns) into a failure.
  std::mutex wd_mu;
  std::condition_variable wd_cv;
  bool wd_done = false;
  std::atomic<std::uint64_t> progress{0};
  // CALLOUT_TORTURE_WATCHDOG: seconds without a finished round (default 120).
  const auto wd_period = std::chrono::seconds(static_cast<long>(env_double("CALLOUT_TORTURE_WATCHDOG", 120)));
  std::thread watchdog([&] {
    std::unique_lock<std::mutex> lk(wd_mu);
    std::uint64_t last = ~std::uint64_t{0};
    while (!wd_done) {
      if (wd_cv.wait_for(lk, wd_period, [&] { return wd_done; })) break;
      const std::uint64_t p = progress.load();
      if (p == last) {
        std::fprintf(stderr, "TORTURE WATCHDOG: no round finished for %ld s (deadlock?)\n",
                     static_cast<long>(wd_period.count()));
        callout_domain_dump(t->d, stderr);
        std::abort();
      }
      last = p;
    }
  });

  const auto start = SteadyClock::now();
  const auto end =
      start + std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(seconds));
  const double round_s = std::clamp(seconds / 8, 0.25, 3.0);
  unsigned round = 0;
  std::uint64_t ops_done = 0;
  while (g_violations.load() == 0) {
    const unsigned nthreads = 2 + (cfg.first_threads - 2 + round) % 7;
    std::atomic<bool> stop{false};
    std::vector<std::thread> workers;
    std::vector<Stats> wst(nthreads);
    for (unsigned w = 0; w < nthreads; ++w) {
      workers.emplace_back([&, w] {
        Rng r(seed + 1000003ull * round + w + 1);
        unsigned n = 0;
        while ((++n & 63) != 0 || !stop.load(std::memory_order_relaxed)) worker_op(t.get(), r, wst[w]);
      });
    }
    std::thread advancer;
    if (t->manual) {
      advancer = std::thread([&] {
        Rng r(seed ^ 0xadadadull ^ round);
        while (!stop.load(std::memory_order_relaxed)) {
          const unsigned p = r.below(100);
          const std::uint64_t n = p < 85 ? 1 + r.below(3) : p < 98 ? r.below(40) : r.below(2000);
          const int rc = callout_domain_advance(t->d, n);
          if (rc != 0) violation("callout_domain_advance: %d", rc);
          if (r.one_in(8)) std::this_thread::yield();
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(round_s));
    stop.store(true);
    for (auto &w : workers) w.join();
    if (advancer.joinable()) advancer.join();
    // Quiescent as far as the workers go: the wheels must be consistent even
    // with callouts pending (handlers may still be running).
    const int bad = callout_domain_check(t->d, stderr);
    if (bad != 0) violation("callout_domain_check found %d problems with the workers stopped", bad);
    drain_and_settle(t.get());
    {
      std::lock_guard<std::mutex> g(t->stats_mu);
      for (auto &w : wst) t->total.add(w);
      ops_done = t->total.ops;
    }
    ++round;
    progress.fetch_add(1);
    if (ops_target > 0 ? ops_done >= ops_target : SteadyClock::now() >= end) break;
    if (ops_target > 0 && (round % 20) == 0)
      std::fprintf(stderr, "torture %s: %llu ops after %u rounds\n", cfg.name, (unsigned long long)ops_done,
                   round);
  }

  // Tear down: every slot halted and destroyed, then the domain.
  for (auto &sp : t->slots) {
    Slot *s = sp.get();
    callout_halt(&s->c, nullptr);
    callout_destroy(&s->c);
  }
  struct callout_stats cs;
  std::memset(&cs, 0, sizeof cs);
  cs.size = sizeof cs;
  callout_domain_stats(t->d, -1, &cs);
  EXPECT_EQ(callout_domain_check(t->d, stderr), 0);
  EXPECT_EQ(callout_domain_destroy(t->d), 0);
  {
    std::lock_guard<std::mutex> lk(wd_mu);
    wd_done = true;
  }
  wd_cv.notify_all();
  watchdog.join();
  g_torture = nullptr;
  for (auto &sp : t->slots) pthread_mutex_destroy(&sp->m);

  const double secs = std::chrono::duration<double>(SteadyClock::now() - start).count();
  const Stats &s = t->total;
  std::fprintf(
      stderr,
      "torture %s: %llu operations in %.1f s (%.0f/s), %u rounds: resets %llu, schedules %llu, stops %llu "
      "(true %llu), halts %llu (waited %llu), binds %llu, destroy+init %llu, predicate checks %llu, acks "
      "%llu; handler runs %llu, self re-arms %llu, cross resets %llu, self stop/halt %llu; engine: fired "
      "%llu, dispatches cancelled %llu, halts waited %llu; violations %llu\n",
      cfg.name, (unsigned long long)s.ops, secs, s.ops / secs, round, (unsigned long long)s.resets,
      (unsigned long long)s.schedules, (unsigned long long)s.stops, (unsigned long long)s.stops_true,
      (unsigned long long)s.halts, (unsigned long long)s.halts_waited, (unsigned long long)s.binds,
      (unsigned long long)s.reinits, (unsigned long long)s.predicates, (unsigned long long)s.acks,
      (unsigned long long)s.runs, (unsigned long long)s.rearms, (unsigned long long)s.cross_resets,
      (unsigned long long)s.self_stops, (unsigned long long)cs.fired, (unsigned long long)cs.cancelled,
      (unsigned long long)cs.halts_waited, (unsigned long long)g_violations.load());
  EXPECT_EQ(g_violations.load(), 0u) << "see the TORTURE VIOLATION lines above";
  EXPECT_GT(s.runs, 0u);
}

TEST(Torture, Manual2Cpu) { run_config({"manual/2cpu", 2, CALLOUT_CLOCK_MANUAL, 1000, 4}); }
TEST(Torture, Manual4Cpu) { run_config({"manual/4cpu", 4, CALLOUT_CLOCK_MANUAL, 1000, 8}); }
// Monotonic: fast clocks (100 us and 20 us ticks), so that armings live
// about as long as the workers take to come back to them.
TEST(Torture, Monotonic2Cpu) { run_config({"monotonic/2cpu", 2, CALLOUT_CLOCK_MONOTONIC, 10000, 2}); }
TEST(Torture, Monotonic4Cpu) { run_config({"monotonic/4cpu", 4, CALLOUT_CLOCK_MONOTONIC, 50000, 6}); }

}  // namespace
