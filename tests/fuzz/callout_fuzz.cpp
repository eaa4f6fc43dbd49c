// callout_fuzz.cpp -- differential fuzzing of the engine against a reference
// model.
//
// An input is a program: a CPU count, then operations (init with a kind,
// reset / schedule with tick values including 0, negative and INT_MAX,
// setfunc, stop, halt, bind, ack, destroy, "program the handler", advance by
// amounts up to 2^40).  It runs on a fresh manual-clock domain and, step by
// step, on a tiny model written for this test: an ordered set of
// (due tick, callout) plus each callout's flags.  After every operation the
// two must agree on every predicate of every callout, on every return value
// and on the tick count; after every advance, on the set of handler runs
// (which callout, at which tick, with which argument), tick by tick.
//
// Handlers act too (re-arm themselves with reset or schedule, reset or stop
// another callout, stop/halt/ack/destroy themselves).  Handlers of one tick
// run in parallel on several CPUs, so the model plans every handler action
// before the engine runs it and keeps only actions whose outcome does not
// depend on the order of the tick's handlers (a callout touched by a handler
// is neither due in that tick nor touched by another handler of it).  The
// handler follows the plan and checks what the engine answers.
//
// Any disagreement prints the trace and aborts (libFuzzer reports a crash).
// Built two ways (tests/fuzz/CMakeLists.txt): the libFuzzer target
// callout_fuzz (clang, -DCALLOUT_FUZZ=ON) and callout_fuzz_replay, which runs
// the committed corpus as a ctest with any compiler.
#include <callout/callout.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace {

constexpr int kSlots = 8;
// Per input, to keep every input fast (an advance step that runs handlers
// costs a round trip to the softclock threads): at most this many
// operations, handler runs and ticks at which handlers ran.
constexpr int kMaxOps = 160;
constexpr std::uint64_t kMaxFires = 4000;
constexpr std::uint64_t kMaxSteps = 96;

enum Kind : std::uint8_t { kMpsafe, kGiant, kMtx, kMtxRu, kKinds };
const char *const kKindName[kKinds] = {"mpsafe", "giant", "mtx", "mtx-ru"};

// What a handler does when it runs (set by the PROG operation).
enum Act : std::uint8_t {
  kNone,
  kRearmReset,     // callout_reset(self, r, same handler and argument)
  kRearmSchedule,  // callout_schedule(self, r)
  kResetOther,     // callout_reset(other, r, ...)
  kStopOther,      // callout_stop(other): its return value is predicted
  kStopSelf,       // callout_stop(self): true (it fired just now)
  kHaltSelf,       // callout_halt(self): false (never waits in its own handler)
  kAckSelf,        // callout_ack(self)
  kDestroySelf,    // callout_destroy(self): the handler may destroy its callout
  kActs
};
const char *const kActName[kActs] = {"none",        "rearm-reset", "rearm-schedule",
                                     "reset-other", "stop-other",  "stop-self",
                                     "halt-self",   "ack-self",    "destroy-self"};

struct Prog {
  Act act = kNone;
  int ticks = 1;
  int other = 0;
  int budget = 0;  // how many more runs perform the action
};

// ---- the reference model -------------------------------------------------------

struct MSlot {
  bool live = false;
  Kind kind = kMpsafe;
  bool has_func = false;
  std::uint32_t tag = 0;  // the handler's argument (with the slot index)
  bool pending = false;
  std::uint64_t due = 0;
  bool fired = false;
  bool invoking = false;
  int bound = -1;
  Prog prog;
};

struct Run {
  std::uint64_t tick;
  int slot;
  std::uint32_t tag;
  bool operator<(const Run &o) const { return std::tie(tick, slot, tag) < std::tie(o.tick, o.slot, o.tag); }
  bool operator==(const Run &o) const { return tick == o.tick && slot == o.slot && tag == o.tag; }
};

// One planned handler action, keyed by (slot, tick).
struct Plan {
  Act act = kNone;
  int ticks = 0;
  int other = -1;
  std::uint32_t other_tag = 0;  // reset-other: the argument to pass
  bool expect = false;          // stop-other / stop-self / halt-self: the return value
};

struct Model {
  unsigned ncpu = 1;
  std::uint64_t now = 0;
  MSlot s[kSlots];
  std::set<std::pair<std::uint64_t, int>> wheel;  // (due, slot): the pending callouts
  std::uint64_t fires = 0;
  std::uint64_t steps = 0;  // ticks at which handlers ran

  static std::uint64_t delta(int ticks) { return ticks <= 0 ? 1u : static_cast<std::uint64_t>(ticks); }

  void unschedule(int i) {
    if (s[i].pending) wheel.erase({s[i].due, i});
    s[i].pending = false;
  }
  void schedule(int i, std::uint64_t due) {
    unschedule(i);
    s[i].pending = true;
    s[i].due = due;
    s[i].fired = false;
    s[i].invoking = false;
    wheel.insert({due, i});
  }
  bool stop(int i) {
    const bool r = s[i].fired;
    unschedule(i);
    s[i].fired = false;
    return r;
  }

  // Advances to now + n, returning the runs and filling the plan.
  void advance(std::uint64_t n, std::vector<Run> *runs, std::map<std::pair<int, std::uint64_t>, Plan> *plan) {
    const std::uint64_t target = now + n;
    while (!wheel.empty() && wheel.begin()->first <= target) {
      const std::uint64_t t = wheel.begin()->first;
      now = t;
      ++steps;
      std::vector<int> due_now;
      while (!wheel.empty() && wheel.begin()->first == t) {
        due_now.push_back(wheel.begin()->second);
        wheel.erase(wheel.begin());
      }
      std::sort(due_now.begin(), due_now.end());
      for (int i : due_now) {
        s[i].pending = false;
        s[i].fired = true;
        s[i].invoking = true;
        runs->push_back({t, i, s[i].tag});
        ++fires;
      }
      std::set<int> touched(due_now.begin(), due_now.end());  // callouts this tick's handlers may not touch
      for (int i : due_now) {
        Prog &p = s[i].prog;
        Plan pl;
        if (p.budget > 0 && p.act != kNone) {
          switch (p.act) {
            case kRearmReset:
            case kRearmSchedule:
              pl.act = p.act;
              pl.ticks = p.ticks;
              schedule(i, t + delta(p.ticks));
              break;
            case kResetOther:
            case kStopOther: {
              const int j = p.other;
              if (j == i || !s[j].live || touched.count(j) != 0) break;
              touched.insert(j);
              pl.act = p.act;
              pl.other = j;
              pl.ticks = p.ticks;
              if (p.act == kResetOther) {
                s[j].has_func = true;
                pl.other_tag = s[j].tag;
                schedule(j, t + delta(p.ticks));
              } else {
                pl.expect = stop(j);
              }
              break;
            }
            case kStopSelf:
            case kHaltSelf:
              pl.act = p.act;
              pl.expect = p.act == kStopSelf;  // stop: FIRED was just set; halt: never waits here
              stop(i);
              break;
            case kAckSelf:
              pl.act = p.act;
              s[i].invoking = false;
              break;
            case kDestroySelf:
              pl.act = p.act;
              s[i] = MSlot{};
              break;
            default:
              break;
          }
          if (pl.act != kNone) --s[i].prog.budget;
        }
        (*plan)[{i, t}] = pl;
      }
    }
    now = target;
  }
};

// ---- the engine side -------------------------------------------------------------

// The trace of an input (every operation and planned handler action) is
// kept only with CALLOUT_FUZZ_TRACE=1: building it costs more than running
// the input.  A failure says how to get it.
bool tracing() {
  static const bool on = [] {
    const char *v = std::getenv("CALLOUT_FUZZ_TRACE");
    return v != nullptr && *v == '1';
  }();
  return on;
}

struct Failure {
  std::string trace;
  std::uint64_t start_tick = 0;
  void fail(const char *fmt, ...) __attribute__((format(printf, 2, 3))) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (tracing())
      std::fprintf(stderr, "callout_fuzz: trace of the failing input:\n%s", trace.c_str());
    else
      std::fprintf(stderr, "callout_fuzz: for the trace: CALLOUT_FUZZ_TRACE=1 callout_fuzz_replay INPUT\n");
    std::fprintf(
        stderr,
        "callout_fuzz: MISMATCH (input started at tick %llu; to replay: CALLOUT_FUZZ_START_TICK=%llu): %s\n",
        (unsigned long long)start_tick, (unsigned long long)start_tick, buf);
    std::abort();
  }
  void log(const char *fmt, ...) __attribute__((format(printf, 2, 3))) {
    if (!tracing()) return;
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    trace += "  ";
    trace += buf;
    trace += '\n';
  }
};

struct Engine {
  callout_domain_t *d = nullptr;
  callout_t c[kSlots];
  pthread_mutex_t mtx[3];
  Kind kind[kSlots] = {};
  int bound[kSlots] = {-1, -1, -1, -1, -1, -1, -1, -1};
  // Written by the handlers (serialised by mu), read after each advance.
  std::mutex mu;
  std::vector<Run> runs;
  std::vector<std::string> errors;
  std::atomic<int> inside{0};  // handlers running now
  // Read-only while an advance runs.
  std::map<std::pair<int, std::uint64_t>, Plan> plan;
};

Engine *g_engine = nullptr;

void *arg_of(int slot, std::uint32_t tag) {
  return reinterpret_cast<void *>((static_cast<std::uintptr_t>(tag) << 8) | static_cast<unsigned>(slot));
}

void handler_error(Engine *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void handler_error(Engine *e, const char *fmt, ...) {
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  std::lock_guard<std::mutex> g(e->mu);
  e->errors.push_back(buf);
}

void fuzz_handler(void *arg) {
  Engine *e = g_engine;
  const int i = static_cast<int>(reinterpret_cast<std::uintptr_t>(arg) & 0xff);
  const auto tag = static_cast<std::uint32_t>(reinterpret_cast<std::uintptr_t>(arg) >> 8);
  const std::uint64_t t = callout_domain_ticks(e->d);
  const int cpu = callout_domain_curcpu(e->d);
  const Kind k = e->kind[i];
  e->inside.fetch_add(1);
  {
    std::lock_guard<std::mutex> g(e->mu);
    e->runs.push_back({t, i, tag});
  }
  callout_t *self = &e->c[i];
  if (cpu < 0) handler_error(e, "slot %d: handler not on a softclock thread", i);
  if (k == kGiant && cpu != 0) handler_error(e, "slot %d: giant-locked handler on CPU %d", i, cpu);
  if (e->bound[i] >= 0 && cpu != e->bound[i])
    handler_error(e, "slot %d: bound to %d, ran on %d", i, e->bound[i], cpu);
  if (callout_pending(self) || !callout_expired(self) || !callout_invoking(self) || !callout_active(self))
    handler_error(e, "slot %d tick %llu: in its handler pending=%d expired=%d invoking=%d active=%d", i,
                  (unsigned long long)t, callout_pending(self), callout_expired(self), callout_invoking(self),
                  callout_active(self));
  const auto it = e->plan.find({i, t});
  if (it == e->plan.end()) {
    handler_error(e, "slot %d ran at tick %llu, which the model did not plan", i, (unsigned long long)t);
  } else {
    const Plan &p = it->second;
    switch (p.act) {
      case kRearmReset:
        callout_reset(self, p.ticks, fuzz_handler, arg);
        break;
      case kRearmSchedule:
        callout_schedule(self, p.ticks);
        break;
      case kResetOther:
        callout_reset(&e->c[p.other], p.ticks, fuzz_handler, arg_of(p.other, p.other_tag));
        break;
      case kStopOther:
        if (callout_stop(&e->c[p.other]) != p.expect)
          handler_error(e, "slot %d tick %llu: stop of slot %d returned %d, model %d", i,
                        (unsigned long long)t, p.other, !p.expect, p.expect);
        break;
      case kStopSelf:
      case kHaltSelf: {
        const bool r = p.act == kStopSelf ? callout_stop(self) : callout_halt(self, nullptr);
        if (r != p.expect)
          handler_error(e, "slot %d tick %llu: %s returned %d, model %d", i, (unsigned long long)t,
                        kActName[p.act], r, p.expect);
        break;
      }
      case kAckSelf:
        callout_ack(self);
        break;
      case kDestroySelf:
        callout_destroy(self);
        break;
      default:
        break;
    }
  }
  e->inside.fetch_sub(1);
  if (k == kMtxRu) pthread_mutex_unlock(&e->mtx[i % 3]);
}

// ---- decoding the input ------------------------------------------------------------

struct Reader {
  const std::uint8_t *p;
  std::size_t n;
  bool empty() const { return n == 0; }
  std::uint8_t byte() {
    if (n == 0) return 0;
    --n;
    return *p++;
  }
  std::uint32_t u32() {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | byte();
    return v;
  }
  // A tick count: mostly interesting values.
  int ticks() {
    static const int special[] = {0,       -1,      1,        2,           3,           63,
                                  64,      65,      4095,     4096,        4097,        262143,
                                  262144,  262145,  INT_MAX,  INT_MAX - 1, INT_MIN,     -64,
                                  1 << 20, 1 << 30, 16777215, 16777216,    1 << 24 | 1, 7};
    const std::uint8_t b = byte();
    if (b < 128) return special[b % 24];
    if (b < 224) return 1 + (b - 128);  // 1..96
    return static_cast<int>(u32());
  }
  std::uint64_t advance_amount() {
    static const std::uint64_t special[] = {0,
                                            1,
                                            2,
                                            3,
                                            5,
                                            63,
                                            64,
                                            65,
                                            4096,
                                            262144,
                                            INT_MAX,
                                            1ull << 31,
                                            (1ull << 31) + 1,
                                            1ull << 32,
                                            1ull << 40,
                                            16777216};
    const std::uint8_t b = byte();
    if (b < 96) return special[b % 16];
    if (b < 224) return b - 95;  // 1..128
    return u32();
  }
};

void check_predicates(Engine &e, const Model &m, Failure &f, const char *after) {
  for (int i = 0; i < kSlots; ++i) {
    if (!m.s[i].live) continue;
    const MSlot &s = m.s[i];
    const bool p = callout_pending(&e.c[i]), x = callout_expired(&e.c[i]), a = callout_active(&e.c[i]),
               v = callout_invoking(&e.c[i]);
    if (p != s.pending || x != s.fired || a != (s.pending || s.fired) || v != s.invoking)
      f.fail("after %s: slot %d (%s): engine pending=%d expired=%d active=%d invoking=%d, model %d %d %d %d",
             after, i, kKindName[s.kind], p, x, a, v, s.pending, s.fired, s.pending || s.fired, s.invoking);
  }
  if (callout_domain_ticks(e.d) != m.now)
    f.fail("after %s: ticks %llu, model %llu", after, (unsigned long long)callout_domain_ticks(e.d),
           (unsigned long long)m.now);
}

void init_slot(Engine &e, Model &m, int i, Kind k) {
  e.kind[i] = k;
  e.bound[i] = -1;
  switch (k) {
    case kMpsafe:
      callout_init_domain(&e.c[i], CALLOUT_MPSAFE, e.d);
      break;
    case kGiant:
      callout_init_domain(&e.c[i], 0, e.d);
      break;
    case kMtx:
      callout_init_mtx(&e.c[i], e.d, &e.mtx[i % 3], CALLOUT_MPSAFE);
      break;
    default:
      callout_init_mtx(&e.c[i], e.d, &e.mtx[i % 3], CALLOUT_RETURNUNLOCKED);
      break;
  }
  m.s[i] = MSlot{};
  m.s[i].live = true;
  m.s[i].kind = k;
}

// Domains.  Starting a domain's threads costs more than running most
// inputs, so by default one domain per CPU count is kept and reused (each
// input starts at whatever tick it reached: the model works from there, and
// the trace shows absolute ticks); every kRecycle inputs it is destroyed,
// which must succeed (no callout left initialised), and created anew.
// CALLOUT_FUZZ_FRESH_DOMAIN=1 (the replay tool sets it) gives every input a
// fresh domain starting at tick 0, for exact reproduction.
constexpr unsigned kRecycle = 1000;
callout_domain_t *g_pool[5];
unsigned g_uses[5];

callout_domain_t *create_domain(unsigned ncpu) {
  callout_domain_config cfg;
  callout_domain_config_init(&cfg);
  cfg.ncpu = ncpu;
  cfg.clock = CALLOUT_CLOCK_MANUAL;
  callout_domain_t *d = nullptr;
  if (callout_domain_create(&cfg, &d) != 0) {
    std::fprintf(stderr, "callout_fuzz: cannot create a domain\n");
    std::abort();
  }
  return d;
}

bool fresh_domains() {
  static const bool fresh = [] {
    const char *v = std::getenv("CALLOUT_FUZZ_FRESH_DOMAIN");
    return v != nullptr && *v == '1';
  }();
  return fresh;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  Reader in{data, size};
  Engine e;
  Model m;
  Failure f;
  m.ncpu = 1 + in.byte() % 4;
  if (fresh_domains()) {
    e.d = create_domain(m.ncpu);
    // CALLOUT_FUZZ_START_TICK=N: start the input at tick N (to replay a
    // failure seen on a reused domain).
    if (const char *v = std::getenv("CALLOUT_FUZZ_START_TICK"))
      callout_domain_advance(e.d, std::strtoull(v, nullptr, 10));
  } else {
    if (g_pool[m.ncpu] == nullptr) g_pool[m.ncpu] = create_domain(m.ncpu);
    e.d = g_pool[m.ncpu];
  }
  m.now = callout_domain_ticks(e.d);
  f.start_tick = m.now;
  for (auto &x : e.mtx) pthread_mutex_init(&x, nullptr);
  g_engine = &e;
  f.log("domain: %u CPUs, manual clock, starting at tick %llu", m.ncpu, (unsigned long long)m.now);
  std::uint32_t next_tag = 1;
  unsigned advances = 0;

  for (int op = 0; op < kMaxOps && !in.empty() && m.fires < kMaxFires && m.steps < kMaxSteps; ++op) {
    const std::uint8_t code = in.byte();
    const int i = (code >> 4) % kSlots;
    MSlot &s = m.s[i];
    char what[96];
    switch (code % 13) {
      case 0: {  // INIT (halt and destroy first if live)
        const Kind k = static_cast<Kind>(in.byte() % kKinds);
        if (s.live) {
          if (callout_halt(&e.c[i], nullptr)) f.fail("halt of slot %d waited with nothing running", i);
          m.stop(i);
          callout_destroy(&e.c[i]);
        }
        init_slot(e, m, i, k);
        std::snprintf(what, sizeof what, "init %d %s", i, kKindName[k]);
        break;
      }
      case 1:
      case 2: {  // RESET
        const int t = in.ticks();
        if (!s.live) continue;
        s.tag = next_tag++;
        s.has_func = true;
        const std::uint64_t due = m.now + Model::delta(t);
        m.schedule(i, due);
        callout_reset(&e.c[i], t, fuzz_handler, arg_of(i, s.tag));
        std::snprintf(what, sizeof what, "reset %d %d (due %llu, tag %u)", i, t, (unsigned long long)due,
                      s.tag);
        break;
      }
      case 3: {  // SCHEDULE
        const int t = in.ticks();
        if (!s.live || !s.has_func) continue;
        const std::uint64_t due = m.now + Model::delta(t);
        m.schedule(i, due);
        callout_schedule(&e.c[i], t);
        std::snprintf(what, sizeof what, "schedule %d %d (due %llu)", i, t, (unsigned long long)due);
        break;
      }
      case 4: {  // SETFUNC
        if (!s.live) continue;
        s.tag = next_tag++;
        s.has_func = true;
        callout_setfunc(&e.c[i], fuzz_handler, arg_of(i, s.tag));
        std::snprintf(what, sizeof what, "setfunc %d (tag %u)", i, s.tag);
        break;
      }
      case 5: {  // STOP
        if (!s.live) continue;
        const bool want = m.stop(i);
        const bool got = callout_stop(&e.c[i]);
        std::snprintf(what, sizeof what, "stop %d -> %d", i, got);
        f.log("%s", what);
        if (got != want) f.fail("stop of slot %d returned %d, model %d", i, got, want);
        check_predicates(e, m, f, what);
        continue;
      }
      case 6: {  // HALT: nothing runs outside advance, so it never waits
        if (!s.live) continue;
        m.stop(i);
        const bool got = callout_halt(&e.c[i], nullptr);
        std::snprintf(what, sizeof what, "halt %d -> %d", i, got);
        f.log("%s", what);
        if (got) f.fail("halt of slot %d waited with nothing running", i);
        check_predicates(e, m, f, what);
        continue;
      }
      case 7:
      case 8: {  // ADVANCE
        const std::uint64_t n = in.advance_amount();
        std::vector<Run> want;
        e.plan.clear();
        m.advance(n, &want, &e.plan);
        e.runs.clear();
        const int rc = callout_domain_advance(e.d, n);
        std::snprintf(what, sizeof what, "advance %llu (to %llu)", (unsigned long long)n,
                      (unsigned long long)m.now);
        f.log("%s", what);
        if (rc != 0) f.fail("advance returned %d", rc);
        // SPEC: advance returns once everything due up to the new tick has
        // finished.
        if (e.inside.load() != 0) f.fail("advance returned while a handler it ran was still running");
        for (const std::string &err : e.errors) f.fail("%s", err.c_str());
        std::vector<Run> got = e.runs;
        std::sort(got.begin(), got.end());
        std::sort(want.begin(), want.end());
        if (got != want) {
          std::string msg;
          for (const Run &r : got) msg += " " + std::to_string(r.slot) + "@" + std::to_string(r.tick);
          msg += " | model:";
          for (const Run &r : want) msg += " " + std::to_string(r.slot) + "@" + std::to_string(r.tick);
          f.fail("handler runs differ: engine:%s", msg.c_str());
        }
        for (const Run &r : want) {
          const Plan &p = e.plan[{r.slot, r.tick}];
          if (p.act != kNone)
            f.log("  run %d@%llu: %s%s%d", r.slot, (unsigned long long)r.tick, kActName[p.act],
                  p.other >= 0 ? " other " : " ", p.other >= 0 ? p.other : p.ticks);
        }
        // The full wheel walk dominates the run time under coverage
        // instrumentation: after every 8th advance, and at the end.
        if ((++advances & 7) == 0 && callout_domain_check(e.d, stderr) != 0)
          f.fail("callout_domain_check failed after %s", what);
        check_predicates(e, m, f, what);
        continue;
      }
      case 9: {  // BIND
        const unsigned cpu = in.byte() % m.ncpu;
        if (!s.live || s.pending || s.kind == kGiant) continue;
        callout_bind(&e.c[i], cpu);
        e.bound[i] = static_cast<int>(cpu);
        s.bound = static_cast<int>(cpu);
        std::snprintf(what, sizeof what, "bind %d %u", i, cpu);
        break;
      }
      case 10: {  // ACK
        if (!s.live) continue;
        callout_ack(&e.c[i]);
        s.invoking = false;
        std::snprintf(what, sizeof what, "ack %d", i);
        break;
      }
      case 11: {  // PROG: what the handler does from now on
        Prog p;
        p.act = static_cast<Act>(in.byte() % kActs);
        p.ticks = in.ticks();
        p.other = in.byte() % kSlots;
        p.budget = in.byte() % 16;
        if (!s.live) continue;
        s.prog = p;
        std::snprintf(what, sizeof what, "prog %d %s ticks %d other %d budget %d", i, kActName[p.act],
                      p.ticks, p.other, p.budget);
        break;
      }
      default: {  // DESTROY (only when not pending: anything else is misuse)
        if (!s.live || s.pending) continue;
        callout_destroy(&e.c[i]);
        s = MSlot{};
        std::snprintf(what, sizeof what, "destroy %d", i);
        break;
      }
    }
    f.log("%s", what);
    check_predicates(e, m, f, what);
  }

  for (int i = 0; i < kSlots; ++i) {
    if (!m.s[i].live) continue;
    if (callout_halt(&e.c[i], nullptr)) f.fail("final halt of slot %d waited", i);
    callout_destroy(&e.c[i]);
  }
  if (callout_domain_check(e.d, stderr) != 0) f.fail("callout_domain_check failed at the end");
  struct callout_stats st;
  std::memset(&st, 0, sizeof st);
  st.size = sizeof st;
  if (callout_domain_stats(e.d, -1, &st) != 0 || st.pending != 0) f.fail("callouts left pending at the end");
  if (fresh_domains() || ++g_uses[m.ncpu] % kRecycle == 0) {
    const int rc = callout_domain_destroy(e.d);
    if (rc != 0) f.fail("callout_domain_destroy: %d (a callout is still counted as initialised)", rc);
    if (!fresh_domains()) g_pool[m.ncpu] = nullptr;
  }
  g_engine = nullptr;
  for (auto &x : e.mtx) pthread_mutex_destroy(&x);
  return 0;
}
