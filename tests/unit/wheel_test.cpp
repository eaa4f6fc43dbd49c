// wheel_test.cpp -- tests of the timing wheel (src/wheel.h, src/wheel.cpp).
//
// What is tested:
//  * Randomised lockstep runs (fixed seeds, one small Scenario struct each)
//    against a shadow model: a brute-force list of (due, state) per node plus
//    an independent computation of the placement rule.  After every step the
//    wheel must agree with the model on now(), size(), every node's bucket and
//    bucket time, next_due(), the set of expired nodes, and check() == 0.
//    Drains must return exactly the nodes due <= now, never one early.
//  * Stepping with advance(next_due()): every node not inserted late fires at
//    exactly its due tick, and the ticks visited are exactly the cascade
//    points the placement rule predicts (the cost of far timers is
//    O(levels) wake-ups, counted structurally, never timed).
//  * Bounded cascades (begin_advance() + cascade(budget)): the budget per
//    call, and randomised runs with other calls landing between cascade
//    steps, against a brute-force model: exact tick, never early.
//  * The lookahead (a second walk of the expired list, from its tail): the
//    randomised runs start and step it between their operations and after
//    every pop, and check() verifies it stands on a node of the expired list
//    after every step, whatever was removed, rescheduled or popped; the
//    steps it takes, and that it steps off nodes taken off the list (freed
//    ones included: run under ASan).
//  * next_due() semantics, the lazy reschedule, digit-boundary placement with
//    hand-computed bucket indices, the expired list, size(), for_each(),
//    bucket_time(), no-op advances, and that check() detects corruption.
#include "wheel.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace libcallout::internal {
namespace {

using u64 = std::uint64_t;
using u32 = std::uint32_t;

constexpr u64 kNever = Wheel::kNever;
constexpr u64 kMax = ~u64{0};
constexpr u64 kIntMax = static_cast<u64>(INT_MAX);
constexpr u64 k2Pow31 = u64{1} << 31;
constexpr u64 k2Pow32 = u64{1} << 32;
constexpr u64 k2Pow40 = u64{1} << 40;

// The hand-computed examples below are in 6-bit digits: they use this
// geometry.  The randomised runs against the model run on both geometries.
using Wheel = BasicWheel<6>;
using Wheel8 = BasicWheel<8>;
static_assert(Wheel::kDigitBits == 6 && Wheel::kSlots == 64 && Wheel::kLevels == 11);
static_assert(Wheel::kLevelSlots == 128 && Wheel::kExpired == 1408 && Wheel::kNowhere == 1409);
static_assert(Wheel8::kSlots == 256 && Wheel8::kLevelSlots == 512 && Wheel8::kLevels == 8 &&
              Wheel8::kExpired == 4096);

u64 add_sat(u64 a, u64 b) { return a > kMax - b ? kMax : a + b; }
u64 sub_sat(u64 a, u64 b) { return a < b ? 0 : a - b; }

// ---- the placement rule, computed independently of the wheel -------------

struct Placement {
  u32 where;  // bucket index, or Wheel::kExpired
  u64 time;   // the bucket's time (0 for kExpired)
};

// Where a node due at `due` goes when the wheel (of `bits`-bit digits) is at
// `now`: level = index of the highest differing bit / bits; the bucket is
// that digit of due and, above it, the low bit of due's part above the digit
// (its lap; each level has two laps of buckets); bucket time = due with the
// digits below the level cleared.
Placement expected_placement(u64 due, u64 now, int bits = 6) {
  const u32 level_slots = u32{2} << bits;
  if (due <= now) return {static_cast<u32>((64 + bits - 1) / bits) * level_slots, 0};  // kExpired
  const int high_bit = static_cast<int>(std::bit_width(due ^ now)) - 1;
  const int level = high_bit / bits;
  const int low_bits = level * bits;  // at most 60
  const u64 slot = (due >> low_bits) & (level_slots - 1);
  const u64 time = due & ~((u64{1} << low_bits) - 1);
  return {static_cast<u32>(level * level_slots + slot), time};
}

// The time of bucket `where` at `now`, by search: the first multiple u of
// the level's unit, from now rounded down to one on, whose bucket at that
// level is `where` (digit and lap bit); for a bucket in use that is now's
// lap when the lap bits agree, else the next lap.
u64 model_bucket_time(u32 where, u64 now, int bits = 6) {
  const u32 level_slots = u32{2} << bits;
  const u32 level = where / level_slots;
  const u32 shift = level * static_cast<u32>(bits);
  const u64 unit = u64{1} << shift;
  for (u64 u = now - now % unit;; u += unit)
    if (((u >> shift) & (level_slots - 1)) == where % level_slots) return u;
}

// The ticks at which a node due at `due`, inserted at `from`, is cascaded when
// the owner always advances to the node's bucket time: one per re-placement.
std::vector<u64> cascade_chain(u64 due, u64 from, int bits = 6) {
  std::vector<u64> chain;
  u64 now = from;
  while (due > now) {
    const Placement p = expected_placement(due, now, bits);
    chain.push_back(p.time);
    now = p.time;
  }
  return chain;
}

// ---- random helpers ------------------------------------------------------

using Rng = std::mt19937_64;

u64 below_eq(Rng &rng, u64 hi) {  // uniform in [0, hi]
  return std::uniform_int_distribution<u64>(0, hi)(rng);
}
int percent(Rng &rng) { return static_cast<int>(below_eq(rng, 99)); }

// Pops the expired list, at most `limit` nodes (so a looping list fails
// instead of hanging).
template <class W>
std::vector<WheelNode *> pop_all(W &w, std::size_t limit) {
  std::vector<WheelNode *> out;
  while (WheelNode *n = w.pop_expired()) {
    out.push_back(n);
    if (out.size() > limit) break;
  }
  return out;
}

// ---- the lockstep harness ------------------------------------------------

// kSpliced: on the expired list with a stale level-0 bucket index (its
// bucket was passed by advance() and spliced whole; wheel.h); popped if due,
// re-placed by pop_expired() if rescheduled later meanwhile.
enum class State { kOut, kPending, kExpired, kSpliced };

struct Shadow {
  State state = State::kOut;
  u64 due = 0;
  u32 where = Wheel::kNowhere;
  u64 time = 0;       // bucket time while pending
  bool late = false;  // put on the wheel at a tick <= now: may come out after its due
};

struct Popped {
  std::size_t id;
  u64 due;
  bool late;
};

// A wheel driven in lockstep with a brute-force shadow of every node.
template <class W>
class LockstepT {
 public:
  static constexpr int kBits = W::kDigitBits;
  LockstepT(std::size_t n, u64 start) : nodes_(n), shadow_(n), now_(start) {
    for (WheelNode &node : nodes_) {
      node.link.next = node.link.prev = nullptr;
      node.due = 0;
      node.where = W::kNowhere;
    }
    wheel_.advance(start);        // an empty wheel: just sets now
    wheel_.set_lookahead_min(0);  // walk every list, however short
  }

  W &wheel() { return wheel_; }
  u64 now() const { return now_; }
  std::size_t capacity() const { return nodes_.size(); }
  const Shadow &shadow(std::size_t id) const { return shadow_[id]; }
  const WheelNode &node(std::size_t id) const { return nodes_[id]; }

  void insert(std::size_t id, u64 due) {
    wheel_.insert(&nodes_[id], due);
    Shadow &s = shadow_[id];
    s.due = due;
    s.late = due <= now_;
    place(s);
  }

  void remove(std::size_t id) {
    if (wheel_.lookahead() == &nodes_[id]) ++lookahead_hits_;
    wheel_.remove(&nodes_[id]);
    shadow_[id] = Shadow{};
  }

  // Returns whether the lazy path was taken (per the model), and checks the
  // wheel agrees: the lazy path leaves the node in its bucket.
  bool reschedule(std::size_t id, u64 due) {
    const u32 before = nodes_[id].where;
    if (wheel_.lookahead() == &nodes_[id]) ++lookahead_hits_;
    wheel_.reschedule(&nodes_[id], due);
    Shadow &s = shadow_[id];
    // A spliced node's stale level-0 index names a bucket whose time, read
    // against the current now, is now's revolution with that slot.
    const bool lazy = (s.state == State::kPending && s.time <= due) ||
                      (s.state == State::kSpliced && model_bucket_time(s.where, now_, kBits) <= due);
    s.due = due;
    if (lazy) {
      EXPECT_EQ(nodes_[id].where, before) << "lazy reschedule moved the node";
    } else {
      s.late = due <= now_;
      place(s);
    }
    return lazy;
  }

  void advance(u64 t) {
    wheel_.advance(t);
    wheel_.start_lookahead();  // as the engine's dispatch loop does
    if (t <= now_) return;     // a no-op for the wheel too
    now_ = t;
    for (Shadow &s : shadow_)
      if (s.state == State::kPending && s.time <= t) {
        if (s.where < static_cast<u32>(W::kLevelSlots))
          s.state = State::kSpliced;  // the whole bucket onto the expired list
        else
          place(s);
      }
  }

  // Pops the whole expired list.  Every node must be one the model expects
  // expired (so due <= now: never early); afterwards no node due <= now may
  // be left in the wheel (so none is held back).
  void drain(std::vector<Popped> *out) {
    std::size_t expected = 0;
    for (const Shadow &s : shadow_)
      if (s.state == State::kExpired || (s.state == State::kSpliced && s.due <= now_)) ++expected;
    std::size_t popped = 0;
    while (WheelNode *n = wheel_.pop_expired()) {
      wheel_.lookahead_step();
      ASSERT_GE(n, nodes_.data());
      ASSERT_LT(n, nodes_.data() + nodes_.size());
      const auto id = static_cast<std::size_t>(n - nodes_.data());
      EXPECT_LE(n->due, now_) << "node " << id << " came out early";
      EXPECT_TRUE(shadow_[id].state == State::kExpired || shadow_[id].state == State::kSpliced)
          << "node " << id << " was not expected to be expired";
      EXPECT_EQ(n->where, W::kNowhere);
      if (out) out->push_back({id, shadow_[id].due, shadow_[id].late});
      shadow_[id] = Shadow{};
      ASSERT_LE(++popped, nodes_.size()) << "expired list loops";
    }
    EXPECT_EQ(popped, expected);
    EXPECT_FALSE(wheel_.has_expired());
    // Spliced nodes not due yet were re-placed by pop_expired().
    for (Shadow &s : shadow_)
      if (s.state == State::kSpliced) {
        EXPECT_GT(s.due, now_);
        place(s);
      }
    // Brute force: whatever is still in the wheel is not due yet.
    for (std::size_t id = 0; id < shadow_.size(); ++id)
      if (shadow_[id].state != State::kOut) {
        EXPECT_GT(shadow_[id].due, now_) << "node " << id << " held back";
      }
  }

  // Moves the lookahead 0-2 nodes (it starts at every advance()).
  void step_lookahead(Rng &rng) {
    for (u64 k = below_eq(rng, 2); k != 0; --k) wheel_.lookahead_step();
  }
  // How often remove() or reschedule() took the node the lookahead stood on.
  std::size_t lookahead_hits() const { return lookahead_hits_; }

  // Full comparison of the wheel with the model.
  void verify() {
    EXPECT_EQ(wheel_.check(stderr, "test"), 0);
    EXPECT_EQ(wheel_.now(), now_);
    std::size_t live = 0;
    bool any_expired = false;
    bool any_displaced = false;  // a lazily rescheduled node not yet re-placed
    u64 min_time = kNever;
    u64 min_due = kNever;
    u64 min_exact = kNever;  // earliest bucket time if every node were placed by its due
    std::size_t min_due_id = 0;
    for (std::size_t id = 0; id < shadow_.size(); ++id) {
      const Shadow &s = shadow_[id];
      const WheelNode &n = nodes_[id];
      if (s.state == State::kOut) {
        EXPECT_EQ(n.where, W::kNowhere) << "node " << id;
        continue;
      }
      ++live;
      EXPECT_EQ(n.due, s.due) << "node " << id;
      EXPECT_EQ(n.where, s.where) << "node " << id << " due " << s.due;
      if (s.state == State::kExpired || s.state == State::kSpliced) {
        any_expired = true;
        continue;
      }
      ASSERT_LT(n.where, W::kExpired) << "node " << id;
      const u64 bt = wheel_.bucket_time(n.where);
      EXPECT_EQ(bt, s.time) << "node " << id;
      EXPECT_LE(bt, n.due) << "node " << id << " would fire late";
      EXPECT_GT(bt, now_) << "node " << id;
      const Placement exact = expected_placement(s.due, now_, kBits);
      if (exact.where != s.where) any_displaced = true;
      min_time = std::min(min_time, s.time);
      min_exact = std::min(min_exact, exact.time);
      if (s.due < min_due) {
        min_due = s.due;
        min_due_id = id;
      }
    }
    EXPECT_EQ(wheel_.size(), live);
    EXPECT_EQ(wheel_.has_expired(), any_expired);
    const u64 nd = wheel_.next_due();
    if (any_expired) {
      EXPECT_EQ(nd, now_);
    } else if (live == 0) {
      EXPECT_EQ(nd, kNever);
    } else {
      EXPECT_EQ(nd, min_time);
      EXPECT_LE(nd, min_due) << "next_due() later than the earliest due tick";
      EXPECT_GT(nd, now_);
      if (!any_displaced) {
        // Exact placement: next_due() is the earliest bucket time of the
        // nodes' due ticks, and it is the due tick itself when the earliest
        // node sits on level 0.
        EXPECT_EQ(nd, min_exact);
        if (W::level_of(shadow_[min_due_id].where) == 0) {
          EXPECT_EQ(nd, min_due);
        }
      }
    }
    // for_each visits every node exactly once.
    std::vector<int> seen(nodes_.size(), 0);
    std::size_t visits = 0;
    wheel_.for_each([&](const WheelNode *n, u32) {
      ++visits;
      if (n >= nodes_.data() && n < nodes_.data() + nodes_.size())
        ++seen[static_cast<std::size_t>(n - nodes_.data())];
    });
    EXPECT_EQ(visits, live);
    for (std::size_t id = 0; id < shadow_.size(); ++id)
      EXPECT_EQ(seen[id], shadow_[id].state == State::kOut ? 0 : 1) << "node " << id;
  }

 private:
  void place(Shadow &s) {
    const Placement p = expected_placement(s.due, now_, kBits);
    s.where = p.where;
    s.time = p.time;
    s.state = p.where == W::kExpired ? State::kExpired : State::kPending;
  }

  W wheel_;
  std::vector<WheelNode> nodes_;  // never resized: the wheel holds pointers
  std::vector<Shadow> shadow_;
  u64 now_;
  std::size_t lookahead_hits_ = 0;
};

using Lockstep = LockstepT<Wheel>;

// ---- the top level -----------------------------------------------------------

// Level 10 holds the top four bits (60..63).  Its bucket time has nothing
// above the digit; computing it must not shift a 64-bit value by 66 (run
// under -fsanitize=undefined to catch that).
TEST(WheelTopLevel, BucketTimeAndFiring) {
  Wheel w;
  WheelNode a, b;
  w.insert(&a, u64{1} << 60);  // level 10, slot 1
  w.insert(&b, kMax);          // level 10, slot 15
  EXPECT_EQ(a.where, 10u * 128 + 1);
  EXPECT_EQ(b.where, 10u * 128 + 15);
  EXPECT_EQ(w.bucket_time(a.where), u64{1} << 60);
  EXPECT_EQ(w.bucket_time(b.where), u64{15} << 60);
  EXPECT_EQ(w.next_due(), u64{1} << 60);
  EXPECT_EQ(w.check(stderr, "test"), 0);
  w.advance((u64{1} << 60) - 1);
  EXPECT_FALSE(w.has_expired());
  w.advance(u64{1} << 60);
  EXPECT_EQ(w.pop_expired(), &a);
  EXPECT_EQ(w.bucket_time(b.where), u64{15} << 60);
  w.reschedule(&b, kMax - 1);  // lazy: still >= the bucket time
  EXPECT_EQ(b.where, 10u * 128 + 15);
  w.advance(kMax - 1);
  EXPECT_EQ(w.pop_expired(), &b);
  EXPECT_EQ(w.check(stderr, "test"), 0);
}

// ---- randomised scenarios ------------------------------------------------

struct Scenario {
  const char *name;
  u64 seed;
  u64 start;          // the initial now()
  std::size_t nodes;  // node pool size
  int steps;
  u64 near;            // near due offsets and small advances: [0, near]
  int far_pct;         // of new due ticks, % far (2^31, 2^40, digit boundaries, top of range)
  int advance_pct;     // of steps, % that advance
  int remove_pct;      // of steps, % that remove a live node
  int reschedule_pct;  // of steps, % that reschedule a live node
  int jump_pct;        // of advances, % that jump 2^31 ticks
  int next_due_pct;    // of advances, % that go exactly to next_due()
  int drain_pct;       // of advances, % followed by a drain
};

std::ostream &operator<<(std::ostream &os, const Scenario &sc) { return os << sc.name; }

u64 random_due(Rng &rng, u64 now, const Scenario &sc, int bits = 6) {
  if (percent(rng) < sc.far_pct) {
    switch (below_eq(rng, 7)) {
      case 0:
        return add_sat(now, below_eq(rng, kIntMax));
      case 1:
        return add_sat(now, kIntMax);
      case 2:
        return add_sat(now, kIntMax + 1 + below_eq(rng, 64));
      case 3:
        return add_sat(now, below_eq(rng, k2Pow40));
      case 4:
        return kMax - below_eq(rng, u64{1} << 20);
      case 5:
        return now + below_eq(rng, kMax - now);  // anywhere ahead
      default: {
        // Around the next multiple of 2^(bits*k): crosses digit k.
        const int k = 1 + static_cast<int>(below_eq(rng, bits == 6 ? 9 : static_cast<u64>(63 / bits - 1)));
        const u64 last = now | ((u64{1} << (bits * k)) - 1);
        return add_sat(sub_sat(last, 1), below_eq(rng, 3));
      }
    }
  }
  switch (below_eq(rng, 7)) {
    case 0:
      return sub_sat(now, below_eq(rng, sc.near));  // due <= now: late
    case 1:
      return add_sat(now, 1);
    case 2:
      return add_sat(now | ((u64{1} << bits) - 1), below_eq(rng, 2));  // around the next level-0 wrap
    default:
      return add_sat(now, below_eq(rng, sc.near));
  }
}

class WheelScenario : public ::testing::TestWithParam<Scenario> {};

// Returns how often a remove() or reschedule() took the node the lookahead
// stood on (0 when it stopped at a failure).
template <class W>
std::size_t run_scenario(const Scenario &sc) {
  constexpr int kBits = W::kDigitBits;
  Rng rng(sc.seed);
  LockstepT<W> h(sc.nodes, sc.start);
  h.verify();
  std::size_t lazy = 0, pops = 0, advances = 0, jumps = 0, late_inserts = 0;
  std::vector<Popped> popped;
  for (int step = 0; step < sc.steps; ++step) {
    const int r = percent(rng);
    const std::size_t id = below_eq(rng, h.capacity() - 1);
    const bool live = h.shadow(id).state != State::kOut;
    const char *op = "insert";
    if (r < sc.advance_pct) {
      op = "advance";
      ++advances;
      const int a = percent(rng);
      u64 t;
      if (a < sc.jump_pct) {
        t = add_sat(h.now(), k2Pow31);
        ++jumps;
      } else if (a < sc.jump_pct + sc.next_due_pct) {
        const u64 nd = h.wheel().next_due();
        t = nd == kNever ? add_sat(h.now(), 1) : nd;
      } else if (a < sc.jump_pct + sc.next_due_pct + 3) {
        t = sub_sat(h.now(), below_eq(rng, 1));  // backwards or same: a no-op
      } else if (a % 2 == 0) {
        t = add_sat(h.now(), 1);
      } else {
        t = add_sat(h.now(), 1 + below_eq(rng, sc.near));
      }
      h.advance(t);
      if (percent(rng) < sc.drain_pct) {
        popped.clear();
        h.drain(&popped);
        pops += popped.size();
      }
    } else if (live && r < sc.advance_pct + sc.remove_pct) {
      op = "remove";
      h.remove(id);
    } else if (live && r < sc.advance_pct + sc.remove_pct + sc.reschedule_pct) {
      op = "reschedule";
      u64 due;
      if (percent(rng) < 50) {
        // Later than now: often the lazy path.
        due = percent(rng) < sc.far_pct ? random_due(rng, h.shadow(id).due, sc, kBits)
                                        : add_sat(h.shadow(id).due, 1 + below_eq(rng, sc.near));
      } else {
        due = random_due(rng, h.now(), sc, kBits);  // anything, often earlier
      }
      if (h.reschedule(id, due)) ++lazy;
    } else if (!live) {
      const u64 due = random_due(rng, h.now(), sc, kBits);
      if (due <= h.now()) ++late_inserts;
      h.insert(id, due);
    } else {
      op = "none";
    }
    h.step_lookahead(rng);
    h.verify();
    if (::testing::Test::HasFailure()) {
      ADD_FAILURE() << "scenario " << sc.name << ": stopped at step " << step << " (" << op << ", node " << id
                    << ", now " << h.now() << ")";
      return 0;
    }
  }
  h.drain(nullptr);
  h.verify();
  // The scenario must have exercised what it is about.
  EXPECT_GT(advances, 0u);
  EXPECT_GT(pops, 0u);
  if (sc.reschedule_pct > 0) {
    EXPECT_GT(lazy, 0u);
  }
  if (sc.jump_pct > 0) {
    EXPECT_GT(jumps, 0u);
  }
  EXPECT_GT(late_inserts, 0u);
  return h.lookahead_hits();
}

TEST_P(WheelScenario, LockstepWithModel) {
  run_scenario<Wheel>(GetParam());
  run_scenario<Wheel8>(GetParam());
}

constexpr Scenario kScenarios[] = {
    // Fields: name, seed, start, nodes, steps, near, far%, advance%, remove%,
    // reschedule%, jump% (of advances), next_due% (of advances), drain% (of advances).
    {"NearFromZero", 1, 0, 128, 40000, 200, 5, 35, 10, 15, 0, 30, 80},
    {"Across2Pow31", 2, k2Pow31 - 100, 128, 40000, 300, 25, 35, 10, 15, 2, 30, 80},
    {"Across2Pow32", 3, k2Pow32 - 100, 128, 40000, 5000, 25, 35, 10, 15, 3, 30, 80},
    {"FarHeavy", 4, k2Pow31 - 100, 256, 30000, 100, 70, 40, 10, 10, 5, 50, 90},
    {"DigitBoundaries", 5, 4096 - 3, 128, 40000, 70, 30, 40, 10, 15, 0, 20, 80},
    {"LateChurn", 6, 1000, 64, 40000, 16, 5, 30, 25, 30, 0, 20, 30},
    {"AcrossBit63", 7, (u64{1} << 63) - 100, 128, 30000, 1000, 30, 35, 10, 15, 2, 30, 80},
    {"NearTop", 8, kMax - k2Pow40, 128, 20000, 1000, 30, 35, 10, 15, 1, 30, 80},
    {"BigPopulation", 9, k2Pow32 - 100, 1024, 20000, 100000, 20, 30, 5, 15, 1, 40, 90},
};

INSTANTIATE_TEST_SUITE_P(Scenarios, WheelScenario, ::testing::ValuesIn(kScenarios),
                         [](const ::testing::TestParamInfo<Scenario> &p) {
                           return std::string(p.param.name);
                         });

// The lockstep runs check the lookahead after every step; this makes sure
// they do take the node it stands on, on both geometries (LateChurn keeps
// long expired lists: most advances are not drained at once).
TEST(WheelLookahead, RandomisedRunsRemoveAndRescheduleTheNodeItStandsOn) {
  const Scenario *churn = nullptr;
  for (const Scenario &sc : kScenarios)
    if (std::string(sc.name) == "LateChurn") churn = &sc;
  ASSERT_NE(churn, nullptr);
  EXPECT_GT(run_scenario<Wheel>(*churn), 10u);
  EXPECT_GT(run_scenario<Wheel8>(*churn), 10u);
}

// ---- stepping to next_due(): exact firing and cascade counts --------------

// With advance(next_due()) every time, a node fires at exactly its due tick,
// never late, unless it was put on the wheel with due <= now.
template <class W>
void run_stepping() {
  constexpr int kBits = W::kDigitBits;
  const u64 starts[] = {0, k2Pow31 - 100, k2Pow32 - 100, k2Pow40 - 7, (u64{1} << 63) - 100};
  Scenario sc{"stepping", 0, 0, 0, 0, 500, 20, 0, 0, 0, 0, 0, 0};
  u64 seed = 100;
  for (const u64 start : starts) {
    Rng rng(++seed);
    LockstepT<W> h(192, start);
    std::size_t exact = 0, late = 0;
    std::vector<Popped> popped;
    for (int step = 0; step < 12000; ++step) {
      for (int k = 0; k < 2; ++k) {
        const std::size_t id = below_eq(rng, h.capacity() - 1);
        const int r = percent(rng);
        if (h.shadow(id).state == State::kOut) {
          if (r < 60) h.insert(id, random_due(rng, h.now(), sc, kBits));
        } else if (r < 10) {
          h.remove(id);
        } else if (r < 25) {
          h.reschedule(id, percent(rng) < 50 ? add_sat(h.shadow(id).due, 1 + below_eq(rng, 700))
                                             : random_due(rng, h.now(), sc, kBits));
        }
      }
      const u64 nd = h.wheel().next_due();
      if (nd != kNever) h.advance(nd);
      popped.clear();
      h.drain(&popped);
      for (const Popped &p : popped) {
        if (p.late) {
          ++late;
          EXPECT_LE(p.due, h.now());
        } else {
          ++exact;
          EXPECT_EQ(p.due, h.now()) << "node " << p.id << " fired at the wrong tick";
        }
      }
      h.verify();
      if (::testing::Test::HasFailure()) {
        ADD_FAILURE() << "start " << start << ": stopped at step " << step;
        return;
      }
    }
    EXPECT_GT(exact, 1000u) << "start " << start;
    EXPECT_GT(late, 0u) << "start " << start;
  }
}

TEST(WheelStepping, EveryNodeFiresExactlyAtItsDueTick) {
  run_stepping<Wheel>();
  run_stepping<Wheel8>();
}

// One node far away: the number of advance(next_due()) steps is exactly one
// per cascade the placement rule predicts, at most kLevels.
TEST(WheelCost, SingleFarNodeTakesOneStepPerCascade) {
  Rng rng(7);
  const u64 starts[] = {0, k2Pow31 - 100, k2Pow32 - 100, (u64{1} << 63) - 100};
  for (const u64 start : starts) {
    for (int i = 0; i < 400; ++i) {
      u64 due;
      switch (i % 4) {
        case 0:
          due = add_sat(start, 1 + below_eq(rng, k2Pow31));
          break;
        case 1:
          due = add_sat(start, k2Pow31);
          break;
        case 2:
          due = add_sat(start, 1 + below_eq(rng, k2Pow40));
          break;
        default:
          due = start + 1 + below_eq(rng, kMax - start - 1);
          break;
      }
      Wheel w;
      w.advance(start);
      WheelNode n;
      w.insert(&n, due);
      const std::vector<u64> chain = cascade_chain(due, start);
      std::vector<u64> visited;
      while (!w.has_expired() && visited.size() <= 2 * Wheel::kLevels) {
        const u64 nd = w.next_due();
        ASSERT_NE(nd, kNever);
        ASSERT_LE(nd, due);
        w.advance(nd);
        visited.push_back(nd);
        ASSERT_EQ(w.check(stderr, "test"), 0);
      }
      ASSERT_EQ(w.pop_expired(), &n);
      EXPECT_EQ(w.now(), due);
      EXPECT_EQ(visited, chain) << "start " << start << " due " << due;
      EXPECT_LE(visited.size(), static_cast<std::size_t>(Wheel::kLevels));
      if (due - start <= k2Pow31 && start < k2Pow32) {
        EXPECT_LE(visited.size(), 6u) << "due " << due;
      }
    }
  }
}

TEST(WheelCost, NodeAtTopOfRangeTakesElevenSteps) {
  // Every digit of UINT64_MAX is non-zero, so from now 0 it cascades through
  // all eleven levels: one wake-up per level, no more.
  Wheel w;
  WheelNode n;
  w.insert(&n, kMax);
  EXPECT_EQ(n.where, 10u * 128 + 15);
  int steps = 0;
  while (!w.has_expired() && steps < 100) {
    w.advance(w.next_due());
    ++steps;
    EXPECT_EQ(w.check(stderr, "test"), 0);
  }
  EXPECT_EQ(steps, 11);
  EXPECT_EQ(w.now(), kMax);
  EXPECT_EQ(w.pop_expired(), &n);
}

// A 2^31-tick span with many nodes: stepping visits exactly the union of the
// nodes' cascade points (so each node costs at most its few cascades), and a
// single advance over the whole span expires every node at once.
TEST(WheelCost, Span2Pow31ManyNodes) {
  const u64 starts[] = {0, k2Pow31 - 100, k2Pow32 - 100};
  for (const u64 start : starts) {
    Rng rng(start + 11);
    constexpr std::size_t kN = 500;
    std::vector<WheelNode> nodes(kN);
    std::vector<u64> dues(kN);
    std::set<u64> predicted;
    std::size_t chain_total = 0;
    Wheel stepped, jumped;
    stepped.advance(start);
    jumped.advance(start);
    for (std::size_t i = 0; i < kN; ++i) dues[i] = start + 1 + below_eq(rng, k2Pow31 - 1);
    std::vector<WheelNode> nodes2(kN);
    for (std::size_t i = 0; i < kN; ++i) {
      stepped.insert(&nodes[i], dues[i]);
      jumped.insert(&nodes2[i], dues[i]);
      const std::vector<u64> chain = cascade_chain(dues[i], start);
      EXPECT_LE(chain.size(), 6u);
      chain_total += chain.size();
      predicted.insert(chain.begin(), chain.end());
    }
    std::set<u64> visited;
    std::size_t fired = 0;
    while (stepped.size() > 0 && visited.size() <= chain_total) {
      const u64 nd = stepped.next_due();
      ASSERT_NE(nd, kNever);
      stepped.advance(nd);
      ASSERT_TRUE(visited.insert(nd).second) << "tick " << nd << " visited twice";
      for (const WheelNode *n : pop_all(stepped, kN)) {
        EXPECT_EQ(n->due, nd);
        ++fired;
      }
    }
    EXPECT_EQ(stepped.check(stderr, "test"), 0);
    EXPECT_EQ(fired, kN);
    EXPECT_EQ(visited, predicted);
    EXPECT_LE(visited.size(), chain_total);

    jumped.advance(start + k2Pow31);
    EXPECT_EQ(jumped.check(stderr, "test"), 0);
    EXPECT_EQ(pop_all(jumped, kN).size(), kN);
    EXPECT_EQ(jumped.size(), 0u);
    EXPECT_EQ(jumped.next_due(), kNever);
  }
}

// ---- next_due() ----------------------------------------------------------

TEST(WheelNextDue, EmptyIsNeverAndExpiredIsNow) {
  Wheel w;
  EXPECT_EQ(w.next_due(), kNever);
  w.advance(1000);
  EXPECT_EQ(w.next_due(), kNever);
  WheelNode a, b;
  w.insert(&a, 1500);
  w.insert(&b, 999);  // late
  EXPECT_EQ(w.next_due(), 1000u);
  EXPECT_TRUE(w.has_expired());
  EXPECT_EQ(w.pop_expired(), &b);
  EXPECT_EQ(w.next_due(), 1472u);  // bucket time of 1500 seen from 1000: level 1, slot 23
  w.remove(&a);
  EXPECT_EQ(w.next_due(), kNever);
  EXPECT_EQ(w.check(stderr, "test"), 0);
}

TEST(WheelNextDue, LevelZeroIsTheMinimumDue) {
  Wheel w;
  w.advance(6400);  // digit 0 is 0
  WheelNode n[5];
  const u64 dues[5] = {6440, 6410, 6463, 6401, 6420};
  for (int i = 0; i < 5; ++i) w.insert(&n[i], dues[i]);
  // Removing the earliest each time: next_due() follows the exact minimum.
  const int order[5] = {3, 1, 4, 0, 2};
  for (const int i : order) {
    EXPECT_EQ(w.next_due(), dues[i]);
    EXPECT_EQ(w.check(stderr, "test"), 0);
    w.remove(&n[i]);
  }
  EXPECT_EQ(w.next_due(), kNever);
  EXPECT_EQ(w.size(), 0u);
}

TEST(WheelNextDue, HigherLevelReportsBucketTimeNeverLater) {
  // A node beyond level 0 is reported at its bucket time (a cascade point),
  // which is before its due tick, and lower levels come first.
  Wheel w;
  WheelNode far, mid;
  w.insert(&far, 5000);  // level 2 slot 1: bucket time 4096
  EXPECT_EQ(w.next_due(), 4096u);
  w.insert(&mid, 200);  // level 1 slot 3: bucket time 192
  EXPECT_EQ(w.next_due(), 192u);
  w.advance(192);
  EXPECT_FALSE(w.has_expired());
  EXPECT_EQ(mid.where, 200u % 128);  // re-placed on level 0: digit 8, lap 1
  EXPECT_EQ(w.next_due(), 200u);
  w.advance(200);
  EXPECT_EQ(w.pop_expired(), &mid);
  EXPECT_EQ(w.next_due(), 4096u);
  w.advance(4096);
  EXPECT_EQ(far.where, 128u + 64 + 14);  // 5000 = 4096 + 14*64 + 8: level 1, lap 1, digit 14
  EXPECT_EQ(w.next_due(), 4096u + 14 * 64);
  w.advance(w.next_due());
  EXPECT_EQ(far.where, 8u);
  EXPECT_EQ(w.next_due(), 5000u);
  w.advance(4999);
  EXPECT_FALSE(w.has_expired());
  w.advance(5000);
  EXPECT_EQ(w.pop_expired(), &far);
  EXPECT_EQ(w.check(stderr, "test"), 0);
}

// ---- lazy reschedule -----------------------------------------------------

TEST(WheelLazy, LaterKeepsBucketAndNeverFiresEarly) {
  Wheel w;
  w.advance(100);
  WheelNode n;
  w.insert(&n, 110);  // level 0, lap 1, digit 46
  ASSERT_EQ(n.where, 110u);
  w.reschedule(&n, 100000);
  EXPECT_EQ(n.where, 110u) << "the lazy path must not move the node";
  EXPECT_EQ(n.due, 100000u);
  EXPECT_EQ(w.size(), 1u);
  EXPECT_EQ(w.next_due(), 110u) << "the stale bucket still reports (early, never late)";
  EXPECT_EQ(w.check(stderr, "test"), 0);
  // Step to next_due() and drain, as an owner does, until it fires: never
  // before 100000, exactly at it.  At 110 its bucket is spliced onto the
  // expired list and pop_expired() re-places it instead of returning it.
  int steps = 0;
  WheelNode *got = nullptr;
  while (got == nullptr && steps < 50) {
    const u64 nd = w.next_due();
    ASSERT_LE(nd, 100000u);
    w.advance(nd);
    ++steps;
    EXPECT_EQ(w.check(stderr, "test"), 0);
    got = w.pop_expired();
    EXPECT_EQ(w.check(stderr, "test"), 0);
  }
  EXPECT_EQ(w.now(), 100000u);
  EXPECT_EQ(got, &n);
  // 110 (wasted wake-up), then 100000 = 24*4096 + 26*64 + 32: 98304, 99968, 100000.
  EXPECT_EQ(steps, 4);
}

// A level-0 bucket is spliced whole onto the expired list: its nodes keep a
// stale index until popped, and one rescheduled later meanwhile (lazily, or
// by remove + insert) is never popped early.
TEST(WheelSplice, SplicedNodesPopWhenDueAndNotBefore) {
  Wheel w;
  w.advance(1000);
  WheelNode a, b, c, d;
  w.insert(&a, 1010);  // level 0, bucket 1010 % 128 = 114 (lap 1, digit 50)
  w.insert(&b, 1010);
  w.insert(&c, 1010);
  w.insert(&d, 1011);
  ASSERT_EQ(a.where, 114u);
  w.advance(1010);
  EXPECT_TRUE(w.has_expired());
  EXPECT_EQ(a.where, 114u) << "spliced, not visited";
  EXPECT_EQ(w.check(stderr, "test"), 0);
  w.reschedule(&b, 1020);  // lazy: the stale bucket's time (1010) <= 1020
  EXPECT_EQ(b.where, 114u);
  w.remove(&c);  // off the expired list; bucket 114 is empty, its bit stays clear
  EXPECT_EQ(w.check(stderr, "test"), 0);
  EXPECT_EQ(w.pop_expired(), &a);
  EXPECT_EQ(w.pop_expired(), nullptr) << "b is due at 1020: re-placed, not popped";
  EXPECT_EQ(b.where, 1020u % 128);
  EXPECT_EQ(w.size(), 2u);
  EXPECT_EQ(w.next_due(), 1011u);
  EXPECT_EQ(w.check(stderr, "test"), 0);
  w.advance(1020);
  std::vector<WheelNode *> out = pop_all(w, 4);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], &d);
  EXPECT_EQ(out[1], &b);
  EXPECT_EQ(w.size(), 0u);
  EXPECT_EQ(w.check(stderr, "test"), 0);
}

TEST(WheelLazy, EarlierButNotBeforeBucketTimeStaysToo) {
  Wheel w;
  WheelNode n;
  w.insert(&n, 200);  // level 1, lap 0, digit 3, bucket time 192
  ASSERT_EQ(n.where, 128u + 3);
  w.reschedule(&n, 195);  // earlier, but still >= 192: lazy
  EXPECT_EQ(n.where, 128u + 3);
  EXPECT_EQ(n.due, 195u);
  w.reschedule(&n, 192);  // == bucket time: still lazy
  EXPECT_EQ(n.where, 128u + 3);
  w.reschedule(&n, 191);  // before the bucket time: re-placed
  EXPECT_EQ(n.where, 128u + 2);
  EXPECT_EQ(w.next_due(), 128u);
  w.reschedule(&n, 5);  // level 0
  EXPECT_EQ(n.where, 5u);
  EXPECT_EQ(w.next_due(), 5u);
  EXPECT_EQ(w.check(stderr, "test"), 0);
  w.advance(4);
  EXPECT_FALSE(w.has_expired());
  w.advance(5);
  EXPECT_EQ(w.pop_expired(), &n);
}

TEST(WheelLazy, ToNowOrPastExpiresAndExpiredNodeGoesBack) {
  Wheel w;
  w.advance(1000);
  WheelNode n;
  w.insert(&n, 1010);
  w.reschedule(&n, 1000);  // due == now: late, onto the expired list
  EXPECT_EQ(n.where, Wheel::kExpired);
  EXPECT_TRUE(w.has_expired());
  EXPECT_EQ(w.next_due(), 1000u);
  EXPECT_EQ(w.check(stderr, "test"), 0);
  w.reschedule(&n, 1001);  // from the expired list back into a bucket
  EXPECT_EQ(n.where, 1001u % 128);
  EXPECT_FALSE(w.has_expired());
  EXPECT_EQ(w.next_due(), 1001u);
  EXPECT_EQ(w.size(), 1u);
  w.reschedule(&n, 3);  // in the past
  EXPECT_EQ(n.where, Wheel::kExpired);
  EXPECT_EQ(w.check(stderr, "test"), 0);
  EXPECT_EQ(w.pop_expired(), &n);
  EXPECT_EQ(w.size(), 0u);
}

// ---- edge cases ------------------------------------------------------------

TEST(WheelEdges, DigitBoundaryPlacementFromZero) {
  struct Case {
    u64 due;
    u32 where;
    u64 bucket_time;
  };
  // From now 0 every lap bit is 0: bucket = level * 128 + digit.
  const Case cases[] = {
      {1, 1, 1},
      {63, 63, 63},
      {64, 128 + 1, 64},
      {65, 128 + 1, 64},
      {4095, 128 + 63, 4032},
      {4096, 256 + 1, 4096},
      {262144, 384 + 1, 262144},             // 64^3
      {kIntMax, 5 * 128 + 1, u64{1} << 30},  // bit 30 is the top of digit 5
      {k2Pow31, 5 * 128 + 2, k2Pow31},
      {k2Pow32 - 1, 5 * 128 + 3, 3 * (u64{1} << 30)},
      {k2Pow40, 6 * 128 + 16, k2Pow40},
      {u64{1} << 60, 10 * 128 + 1, u64{1} << 60},  // top level
      {kMax, 10 * 128 + 15, u64{15} << 60},
  };
  Wheel w;
  std::vector<WheelNode> n(std::size(cases));
  for (std::size_t i = 0; i < std::size(cases); ++i) {
    w.insert(&n[i], cases[i].due);
    EXPECT_EQ(n[i].where, cases[i].where) << "due " << cases[i].due;
    EXPECT_EQ(w.bucket_time(n[i].where), cases[i].bucket_time) << "due " << cases[i].due;
    EXPECT_LE(w.bucket_time(n[i].where), cases[i].due);
  }
  EXPECT_EQ(w.size(), std::size(cases));
  EXPECT_EQ(w.next_due(), 1u);
  EXPECT_EQ(w.check(stderr, "test"), 0);
}

TEST(WheelEdges, BoundariesRelativeToLargeNow) {
  const u64 starts[] = {k2Pow31 - 100, k2Pow32 - 100, 12345678901ull};
  const u64 offsets[] = {1, 2, 63, 64, 65, 4095, 4096, 4097, kIntMax, kIntMax + 1, k2Pow32, k2Pow40};
  for (const u64 start : starts) {
    Wheel w;
    w.advance(start);
    std::vector<WheelNode> n(std::size(offsets));
    for (std::size_t i = 0; i < std::size(offsets); ++i) {
      const u64 due = start + offsets[i];
      w.insert(&n[i], due);
      const Placement p = expected_placement(due, start);
      EXPECT_EQ(n[i].where, p.where) << "start " << start << " +" << offsets[i];
      EXPECT_EQ(w.bucket_time(n[i].where), p.time);
      EXPECT_LE(p.time, due);
      EXPECT_GT(p.time, start);
    }
    EXPECT_EQ(n[0].where, (start + 1) % 128);  // now+1 is always level 0
    EXPECT_EQ(w.next_due(), start + 1);
    EXPECT_EQ(w.check(stderr, "test"), 0);
    // Step through: each node fires at exactly its due tick.
    std::size_t fired = 0;
    int steps = 0;
    while (w.size() > 0 && steps < 1000) {
      w.advance(w.next_due());
      ++steps;
      for (const WheelNode *x : pop_all(w, std::size(offsets))) {
        EXPECT_EQ(x->due, w.now());
        ++fired;
      }
      ASSERT_EQ(w.check(stderr, "test"), 0);
    }
    EXPECT_EQ(fired, std::size(offsets));
    EXPECT_EQ(w.now(), start + k2Pow40);
  }
}

TEST(WheelEdges, AdvanceToJustBeforeAndExactlyDue) {
  Wheel w;
  WheelNode a, b;
  w.insert(&a, 64);
  w.insert(&b, 4096);
  w.advance(63);
  EXPECT_FALSE(w.has_expired());
  EXPECT_EQ(w.check(stderr, "test"), 0);
  w.advance(64);
  EXPECT_EQ(w.pop_expired(), &a);
  EXPECT_EQ(w.pop_expired(), nullptr);
  w.advance(4095);
  EXPECT_FALSE(w.has_expired());
  EXPECT_EQ(b.where, 256u + 1);  // still level 2, digit 1: its bucket time is 4096
  EXPECT_EQ(w.next_due(), 4096u);
  EXPECT_EQ(w.check(stderr, "test"), 0);
  w.advance(4096);
  EXPECT_EQ(w.pop_expired(), &b);
  EXPECT_EQ(w.size(), 0u);
}

TEST(WheelEdges, AdvanceBackwardsOrToNowIsANoOp) {
  Wheel w;
  w.advance(500);
  WheelNode n;
  w.insert(&n, 510);
  w.advance(500);
  w.advance(499);
  w.advance(0);
  EXPECT_EQ(w.now(), 500u);
  EXPECT_EQ(n.where, 510u % 128);
  EXPECT_FALSE(w.has_expired());
  EXPECT_EQ(w.check(stderr, "test"), 0);
}

TEST(WheelEdges, RemoveFromExpiredListAndSizeBookkeeping) {
  Wheel w;
  w.advance(100);
  WheelNode late1, late2, pending;
  w.insert(&late1, 100);
  EXPECT_EQ(w.size(), 1u);
  w.insert(&late2, 50);
  w.insert(&pending, 101);
  EXPECT_EQ(w.size(), 3u);
  EXPECT_EQ(late1.where, Wheel::kExpired);
  EXPECT_EQ(late2.where, Wheel::kExpired);
  w.remove(&late1);
  EXPECT_EQ(late1.where, Wheel::kNowhere);
  EXPECT_EQ(w.size(), 2u);
  EXPECT_TRUE(w.has_expired());
  EXPECT_EQ(w.check(stderr, "test"), 0);
  w.remove(&late2);
  EXPECT_FALSE(w.has_expired());
  EXPECT_EQ(w.size(), 1u);
  EXPECT_EQ(w.next_due(), 101u);
  EXPECT_EQ(w.pop_expired(), nullptr);
  EXPECT_EQ(w.size(), 1u);
  w.remove(&pending);
  EXPECT_EQ(w.size(), 0u);
  EXPECT_EQ(w.next_due(), kNever);
  EXPECT_EQ(w.check(stderr, "test"), 0);
  // Removing the last node of a bucket clears its bitmap bit (check() compares),
  // and the bucket can be reused.
  w.insert(&pending, 101);
  w.insert(&late1, 101);
  w.remove(&pending);
  EXPECT_EQ(w.next_due(), 101u);
  EXPECT_EQ(w.check(stderr, "test"), 0);
  w.remove(&late1);
  EXPECT_EQ(w.check(stderr, "test"), 0);
  EXPECT_EQ(w.next_due(), kNever);
}

TEST(WheelEdges, ExpiredNodesPopOnceAndPopClearsWhere) {
  Wheel w;
  WheelNode n[4];
  w.insert(&n[0], 3);
  w.insert(&n[1], 3);
  w.insert(&n[2], 2);
  w.insert(&n[3], 70);
  w.advance(3);
  std::set<const WheelNode *> popped;
  for (const WheelNode *x : pop_all(w, 4)) {
    EXPECT_EQ(x->where, Wheel::kNowhere);
    EXPECT_TRUE(popped.insert(x).second) << "popped twice";
  }
  EXPECT_EQ(popped, (std::set<const WheelNode *>{&n[0], &n[1], &n[2]}));
  EXPECT_EQ(w.size(), 1u);
  EXPECT_EQ(n[3].where, 128u + 1);
  EXPECT_EQ(w.check(stderr, "test"), 0);
}

// ---- the lookahead --------------------------------------------------------

TEST(WheelLookahead, StartsOnlyInAWheelOfAtLeastLookaheadMinNodes) {
  Wheel w;
  EXPECT_EQ(w.lookahead_min(), Wheel::kLookaheadMin);
  w.set_lookahead_min(3);
  WheelNode n[3];
  w.insert(&n[0], 1);
  w.insert(&n[1], 1);
  w.advance(1);
  w.start_lookahead();  // 2 nodes < 3
  EXPECT_EQ(w.lookahead(), nullptr);
  w.insert(&n[2], 1);  // late: appended to the expired list
  w.start_lookahead();
  EXPECT_EQ(w.lookahead(), &n[2]);
  EXPECT_EQ(pop_all(w, 3).size(), 3u);
  EXPECT_EQ(w.lookahead(), nullptr);
  EXPECT_EQ(w.check(stderr, "test"), 0);
}

TEST(WheelLookahead, WalksFromTheTailAndParksBeforeTheFront) {
  Wheel w;
  w.set_lookahead_min(6);
  WheelNode n[6];
  for (WheelNode &x : n) w.insert(&x, 5);
  w.start_lookahead();  // nothing expired: stays parked
  EXPECT_EQ(w.lookahead(), nullptr);
  w.advance(5);  // the bucket is spliced onto the expired list, n[0] first
  w.start_lookahead();
  EXPECT_EQ(w.lookahead(), &n[5]);
  w.start_lookahead();  // walking already: unchanged
  EXPECT_EQ(w.lookahead(), &n[5]);
  w.lookahead_step();
  EXPECT_EQ(w.lookahead(), &n[4]);
  w.lookahead_step();
  EXPECT_EQ(w.lookahead(), &n[3]);
  EXPECT_EQ(w.pop_expired(), &n[0]);
  w.lookahead_step();
  EXPECT_EQ(w.lookahead(), &n[2]);
  EXPECT_EQ(w.check(stderr, "test"), 0);
  w.lookahead_step();  // n[1] is the front, which the pops load themselves
  EXPECT_EQ(w.lookahead(), nullptr);
  w.lookahead_step();  // parked: a no-op
  EXPECT_EQ(w.lookahead(), nullptr);
  // The order of the pops does not depend on it.
  for (int i = 1; i < 6; ++i) EXPECT_EQ(w.pop_expired(), &n[i]);
  EXPECT_EQ(w.pop_expired(), nullptr);
  EXPECT_EQ(w.check(stderr, "test"), 0);
}

// remove(), a reschedule that takes a node off the list and pop_expired()
// move the lookahead off the node first, so that it never reads a node that
// has left the list: the nodes here are freed as soon as they leave it (ASan
// reports a step that reads one); check() reports a lookahead that is not on
// the list.
TEST(WheelLookahead, StepsOffNodesTakenOffTheList) {
  Wheel w;
  w.set_lookahead_min(0);
  std::vector<std::unique_ptr<WheelNode>> n;
  w.advance(7);
  for (int i = 0; i < 6; ++i) {
    n.push_back(std::make_unique<WheelNode>());
    w.insert(n.back().get(), 7);  // due now: straight onto the expired list
  }
  w.start_lookahead();
  ASSERT_EQ(w.lookahead(), n[5].get());
  w.remove(n[5].get());
  n[5].reset();
  EXPECT_EQ(w.lookahead(), n[4].get());
  EXPECT_EQ(w.check(stderr, "test"), 0);
  w.lookahead_step();
  EXPECT_EQ(w.lookahead(), n[3].get());
  w.reschedule(n[3].get(), 100);  // off the expired list, into a bucket
  EXPECT_LT(n[3]->where, Wheel::kExpired);
  EXPECT_EQ(w.lookahead(), n[2].get());
  EXPECT_EQ(w.check(stderr, "test"), 0);
  WheelNode late;
  w.insert(&late, 3);  // appended at the tail, behind the lookahead
  EXPECT_EQ(w.lookahead(), n[2].get());
  EXPECT_EQ(w.pop_expired(), n[0].get());
  n[0].reset();
  EXPECT_EQ(w.pop_expired(), n[1].get());
  n[1].reset();
  EXPECT_EQ(w.lookahead(), n[2].get());
  EXPECT_EQ(w.pop_expired(), n[2].get());  // the node it stands on: parked
  n[2].reset();
  EXPECT_EQ(w.lookahead(), nullptr);
  EXPECT_EQ(w.check(stderr, "test"), 0);
  w.start_lookahead();  // again, from the tail
  EXPECT_EQ(w.lookahead(), &late);
  w.lookahead_step();  // n[4] is the front
  EXPECT_EQ(w.lookahead(), nullptr);
  EXPECT_EQ(w.pop_expired(), n[4].get());
  EXPECT_EQ(w.pop_expired(), &late);
  EXPECT_EQ(w.pop_expired(), nullptr);
  // A node rescheduled later while on the expired list is re-placed when it
  // reaches the front; the lookahead standing on it steps off first.
  w.remove(n[3].get());
  auto lazy = std::make_unique<WheelNode>();
  w.insert(lazy.get(), 10);
  w.advance(10);
  w.reschedule(lazy.get(), 50);  // the lazy path: stays on the expired list
  w.start_lookahead();
  ASSERT_EQ(w.lookahead(), lazy.get());
  EXPECT_EQ(w.pop_expired(), nullptr);  // not due: re-placed
  EXPECT_EQ(w.lookahead(), nullptr);
  EXPECT_LT(lazy->where, Wheel::kExpired);
  EXPECT_EQ(w.check(stderr, "test"), 0);
  w.remove(lazy.get());
  EXPECT_EQ(w.size(), 0u);
}

TEST(WheelEdges, ForEachVisitsEveryNodeOnceWithBucketTimeBeforeDue) {
  Wheel w;
  w.advance(k2Pow31 - 100);
  Rng rng(3);
  constexpr std::size_t kN = 300;
  std::vector<WheelNode> n(kN);
  for (std::size_t i = 0; i < kN; ++i) {
    if (i % 5 == 0) {
      w.insert(&n[i], w.now() - below_eq(rng, 50));  // late: the expired list
    } else {
      w.insert(&n[i], w.now() + 1 + below_eq(rng, i % 3 == 0 ? k2Pow40 : 100000));
    }
  }
  std::vector<int> seen(kN, 0);
  std::size_t expired = 0;
  w.for_each([&](const WheelNode *x, u32) {
    ASSERT_GE(x, n.data());
    ASSERT_LT(x, n.data() + kN);
    ++seen[static_cast<std::size_t>(x - n.data())];
    if (x->where == Wheel::kExpired) {
      ++expired;
      EXPECT_LE(x->due, w.now());
    } else {
      EXPECT_LT(x->where, Wheel::kExpired);
      EXPECT_LE(w.bucket_time(x->where), x->due);
      EXPECT_GT(w.bucket_time(x->where), w.now());
    }
  });
  for (std::size_t i = 0; i < kN; ++i) EXPECT_EQ(seen[i], 1) << "node " << i;
  EXPECT_EQ(expired, kN / 5);
  EXPECT_EQ(w.size(), kN);
  EXPECT_EQ(w.check(stderr, "test"), 0);
}

// The callout's own fields follow its node: the wheel writes nothing else.
TEST(WheelEdges, BytesAfterTheNodeAreLeftAlone) {
  Wheel w;
  struct {
    WheelNode n;
    std::uint32_t after;
  } s;
  s.after = 0xdeadbeef;
  w.insert(&s.n, 1000);
  w.reschedule(&s.n, 2000);
  w.reschedule(&s.n, 10);
  w.advance(10);
  EXPECT_EQ(w.pop_expired(), &s.n);
  EXPECT_EQ(s.after, 0xdeadbeefu);
}

// ---- check() detects corruption -------------------------------------------

TEST(WheelCheck, DetectsDueBeforeBucketTime) {
  Wheel w;
  WheelNode a, b;
  w.insert(&a, 200);  // level 1 slot 3, bucket time 192
  w.insert(&b, 7);
  ASSERT_EQ(w.check(nullptr, "test"), 0);
  a.due = 150;  // the bucket would fire it late
  EXPECT_GT(w.check(nullptr, "test"), 0);
  a.due = 200;
  EXPECT_EQ(w.check(nullptr, "test"), 0);
}

TEST(WheelCheck, DetectsWrongWhere) {
  Wheel w;
  WheelNode a;
  w.insert(&a, 200);
  const u32 where = a.where;
  a.where = where + 1;
  EXPECT_GT(w.check(nullptr, "test"), 0);
  a.where = Wheel::kExpired;
  EXPECT_GT(w.check(nullptr, "test"), 0);
  a.where = where;
  EXPECT_EQ(w.check(nullptr, "test"), 0);
  w.remove(&a);
}

TEST(WheelCheck, DetectsExpiredNodeNotYetDue) {
  Wheel w;
  w.advance(1000);
  WheelNode a;
  w.insert(&a, 900);
  ASSERT_EQ(w.check(nullptr, "test"), 0);
  a.due = 1001;  // on the expired list but not due: would fire early
  EXPECT_GT(w.check(nullptr, "test"), 0);
  a.due = 900;
  EXPECT_EQ(w.check(nullptr, "test"), 0);
}

TEST(WheelCheck, DetectsBrokenLink) {
  Wheel w;
  WheelNode a, b;
  w.insert(&a, 5);
  w.insert(&b, 5);
  ASSERT_EQ(w.check(nullptr, "test"), 0);
  Link *saved = b.link.prev;
  b.link.prev = &b.link;  // a.next == &b.link but b.prev != &a.link
  EXPECT_GT(w.check(nullptr, "test"), 0);
  b.link.prev = saved;
  EXPECT_EQ(w.check(nullptr, "test"), 0);
}

// ---- bounded cascades: begin_advance() + cascade(budget) ------------------

// A passed level-1 bucket of 1000 nodes is re-placed exactly `budget` nodes a
// call: ceil(1000 / 7) calls, the last reporting nothing left.  Meanwhile the
// wheel reports work at now and stays consistent, and afterwards exactly the
// nodes due at the boundary tick pop.
TEST(WheelBoundedCascade, EachCallMovesAtMostItsBudget) {
  constexpr std::size_t kN = 1000, kBudget = 7;
  Wheel w;
  std::vector<WheelNode> nodes(kN);
  for (std::size_t i = 0; i < kN; ++i) w.insert(&nodes[i], 64 + i % 64);  // level 1, slot 1
  ASSERT_EQ(w.next_due(), 64u);
  w.begin_advance(64);
  EXPECT_EQ(w.now(), 64u);
  EXPECT_TRUE(w.cascading());
  EXPECT_TRUE(w.has_expired());
  EXPECT_EQ(w.next_due(), 64u);
  EXPECT_EQ(w.size(), kN);
  EXPECT_EQ(w.check(stderr, "test"), 0);
  std::size_t calls = 1;
  while (w.cascade(kBudget)) {
    ++calls;
    EXPECT_EQ(w.next_due(), 64u);
    ASSERT_EQ(w.check(stderr, "test"), 0);
    ASSERT_LE(calls, kN);
  }
  EXPECT_EQ(calls, (kN + kBudget - 1) / kBudget);
  EXPECT_FALSE(w.cascading());
  const auto popped = pop_all(w, kN);
  EXPECT_EQ(popped.size(), (kN + 63) / 64);  // i % 64 == 0
  for (WheelNode *n : popped) EXPECT_EQ(n->due, 64u);
  EXPECT_EQ(w.next_due(), 65u);
  EXPECT_EQ(w.check(stderr, "test"), 0);
}

// An owner that never calls cascade(): pop_expired() and advance() finish a
// pending cascade themselves, so nothing is late or lost.
TEST(WheelBoundedCascade, UnawareCallersStillSeeEveryNodeOnTime) {
  Wheel w;
  WheelNode a, b, c;
  w.insert(&a, 64);   // level 1 slot 1: due at the boundary
  w.insert(&b, 70);   // the same bucket, due later
  w.insert(&c, 300);  // level 1 slot 4
  w.begin_advance(64);
  EXPECT_EQ(w.pop_expired(), &a);  // cascades until a due node appears
  EXPECT_EQ(w.pop_expired(), nullptr);
  EXPECT_FALSE(w.has_expired());
  EXPECT_EQ(w.next_due(), 70u);
  EXPECT_EQ(w.check(stderr, "test"), 0);
  w.remove(&b);
  w.insert(&b, 320);     // level 1 slot 5 from now 64
  w.begin_advance(256);  // passes slot 4: c goes to the cascade list
  EXPECT_TRUE(w.cascading());
  w.begin_advance(300);  // places c against 256 first, then passes it
  EXPECT_FALSE(w.cascading());
  EXPECT_EQ(w.pop_expired(), &c);
  EXPECT_EQ(w.pop_expired(), nullptr);
  w.begin_advance(320);
  w.advance(320);  // no move, but the pending cascade is finished
  EXPECT_FALSE(w.cascading());
  EXPECT_EQ(w.pop_expired(), &b);
  EXPECT_EQ(w.size(), 0u);
  EXPECT_EQ(w.check(stderr, "test"), 0);
}

// Randomised, against a brute-force model (each node's due tick and whether
// it was put on the wheel late): the owner steps to next_due() with
// begin_advance() and then cascades in random small budgets, and between
// any two calls other threads' inserts, removes and reschedules land (on
// the cascade list's nodes too).  Sometimes the owner uses the unbounded
// calls instead.  Every node not put on late pops at exactly its due tick,
// none early, and check() holds after every call.
template <class W>
void run_bounded_cascade() {
  const u64 starts[] = {0, 4095 - 50, 65535 - 50, k2Pow31 - 100, k2Pow40 - 7};
  u64 seed = 500;
  for (const u64 start : starts) {
    Rng rng(++seed);
    constexpr std::size_t kN = 256;
    std::vector<WheelNode> nodes(kN);
    for (WheelNode &n : nodes) n.where = W::kNowhere;
    struct Model {
      bool in = false;
      u64 due = 0;
      bool late = false;
    };
    std::vector<Model> m(kN);
    W w;
    w.advance(start);
    std::size_t exact = 0, cascade_calls = 0, lazy_on_cascade_list = 0;
    auto random_op = [&] {
      const std::size_t id = below_eq(rng, kN - 1);
      const u64 now = w.now();
      // Mostly within a few level-2 buckets, sometimes far, sometimes late.
      auto due = [&]() -> u64 {
        const int r = percent(rng);
        if (r < 3) return sub_sat(now, below_eq(rng, 3));
        if (r < 10) return add_sat(now, 1 + below_eq(rng, k2Pow31));
        return add_sat(now, 1 + below_eq(rng, 20000));
      };
      const int r = percent(rng);
      if (!m[id].in) {
        if (r < 70) {
          const u64 d = due();
          w.insert(&nodes[id], d);
          m[id] = {true, d, d <= now};
        }
      } else if (r < 15) {
        w.remove(&nodes[id]);
        m[id] = Model{};
      } else if (r < 40) {
        const bool on_cascade_list = w.cascading() && nodes[id].where >= static_cast<u32>(W::kLevelSlots) &&
                                     nodes[id].where < W::kExpired && w.bucket_time(nodes[id].where) <= now;
        const u64 d = percent(rng) < 50 ? add_sat(m[id].due, 1 + below_eq(rng, 300)) : due();
        w.reschedule(&nodes[id], d);
        if (on_cascade_list && nodes[id].where >= static_cast<u32>(W::kLevelSlots)) ++lazy_on_cascade_list;
        m[id].due = d;
        m[id].late = m[id].late || d <= now;
      }
    };
    for (int step = 0; step < 6000; ++step) {
      for (int k = 0; k < 3; ++k) random_op();
      const u64 nd = w.next_due();
      if (nd == kNever) continue;
      ASSERT_GE(nd, w.now());
      const int mode = percent(rng);
      if (mode < 10) {
        w.advance(nd);
      } else {
        w.begin_advance(nd);
        ASSERT_EQ(w.check(stderr, "test"), 0);
        // Cascade in small steps with other calls in between, unless this
        // owner leaves it all to pop_expired() (mode < 20).
        while (mode >= 20 && w.cascading()) {
          ASSERT_EQ(w.next_due(), w.now());
          ASSERT_TRUE(w.has_expired());
          if (percent(rng) < 30) random_op();
          w.cascade(1 + below_eq(rng, 4));
          ++cascade_calls;
          ASSERT_EQ(w.check(stderr, "test"), 0);
        }
      }
      std::size_t popped = 0;
      while (WheelNode *n = w.pop_expired()) {
        const auto id = static_cast<std::size_t>(n - nodes.data());
        ASSERT_LT(id, kN);
        ASSERT_TRUE(m[id].in);
        ASSERT_LE(n->due, w.now()) << "node " << id << " came out early";
        if (!m[id].late) {
          ASSERT_EQ(n->due, w.now()) << "node " << id << " fired at the wrong tick";
          ++exact;
        }
        m[id] = Model{};
        ASSERT_LE(++popped, kN);
      }
      ASSERT_FALSE(w.cascading());
      std::size_t live = 0;
      for (std::size_t id = 0; id < kN; ++id)
        if (m[id].in) {
          ++live;
          ASSERT_GT(m[id].due, w.now()) << "node " << id << " held back";
          ASSERT_GE(m[id].due, w.next_due()) << "next_due() later than node " << id;
        }
      ASSERT_EQ(w.size(), live);
      ASSERT_EQ(w.check(stderr, "test"), 0);
    }
    EXPECT_GT(exact, 2000u) << "start " << start;
    EXPECT_GT(cascade_calls, 500u) << "start " << start;
    EXPECT_GT(lazy_on_cascade_list, 0u) << "start " << start;
  }
}

TEST(WheelBoundedCascade, RandomNeverEarlyExactTickWithInterleavedCalls) {
  run_bounded_cascade<Wheel>();
  run_bounded_cascade<Wheel8>();
}

// check() sees a node on the cascade list that carries a level-0 index.
TEST(WheelCheck, DetectsBadIndexOnTheCascadeList) {
  Wheel w;
  WheelNode a;
  w.insert(&a, 100);  // level 1
  w.begin_advance(64);
  ASSERT_TRUE(w.cascading());
  ASSERT_EQ(w.check(nullptr, "test"), 0);
  const u32 where = a.where;
  a.where = 3;
  EXPECT_GT(w.check(nullptr, "test"), 0);
  a.where = where;
  EXPECT_EQ(w.check(nullptr, "test"), 0);
}

// ---- pre-cascading ---------------------------------------------------------

// From now 0 the level-1 bucket that comes due at level 0's next boundary
// (tick 64) holds the nodes due in [64, 128): precascade() moves them, in
// list order and at most `budget` a call, into level 0's second lap, each to
// the bucket of its own due tick, and the boundary has nothing left to
// cascade.
TEST(WheelPrecascade, MovesTheNextBoundaryBucketIntoTheNextLapBelow) {
  Wheel w;
  WheelNode a, b, c, far;
  w.insert(&a, 64);     // level 1, digit 1: bucket time 64
  w.insert(&b, 100);    // the same bucket
  w.insert(&c, 127);    // the same bucket
  w.insert(&far, 130);  // level 1, digit 2: the boundary after
  ASSERT_EQ(a.where, 128u + 1);
  ASSERT_EQ(c.where, 128u + 1);
  ASSERT_EQ(far.where, 128u + 2);
  ASSERT_EQ(w.next_due(), 64u);
  EXPECT_TRUE(w.precascade(2)) << "c is left";
  EXPECT_EQ(a.where, 64u);  // level 0, lap 1, digit 0
  EXPECT_EQ(b.where, 100u);
  EXPECT_EQ(c.where, 128u + 1);
  EXPECT_EQ(w.bucket_time(b.where), 100u);
  EXPECT_EQ(w.next_due(), 64u);
  EXPECT_EQ(w.check(stderr, "test"), 0);
  EXPECT_FALSE(w.precascade(10));
  EXPECT_EQ(c.where, 127u);
  EXPECT_EQ(far.where, 128u + 2) << "not the next boundary's bucket";
  EXPECT_EQ(w.check(stderr, "test"), 0);
  EXPECT_FALSE(w.precascade(10)) << "nothing left to move";
  w.begin_advance(64);
  EXPECT_FALSE(w.cascading()) << "the boundary's bucket was empty";
  EXPECT_EQ(w.pop_expired(), &a);
  EXPECT_EQ(w.pop_expired(), nullptr);
  EXPECT_EQ(w.next_due(), 100u);
  // At 64 the next boundary is 128: far (130) moves to level 0, lap 0.
  EXPECT_FALSE(w.precascade(10));
  EXPECT_EQ(far.where, 130u % 128);
  EXPECT_EQ(w.check(stderr, "test"), 0);
  for (WheelNode *n : {&b, &c, &far}) {
    w.advance(w.next_due());
    EXPECT_EQ(w.pop_expired(), n);
    EXPECT_EQ(w.now(), n->due);
  }
  EXPECT_EQ(w.size(), 0u);
  EXPECT_EQ(w.check(stderr, "test"), 0);
}

// A level-2 bucket moves into level 1's second lap (its nodes are due past
// the end of level 1's current lap), from where the usual cascade takes them
// to level 0.  A node rescheduled later while in a moved bucket is placed
// by its new due tick instead.
TEST(WheelPrecascade, HigherLevelsAndLazilyRescheduledNodes) {
  Wheel w;
  w.advance(100);
  WheelNode x, y;
  w.insert(&x, 4166);  // level 2, digit 1: bucket time 4096
  w.insert(&y, 4100);  // the same bucket
  ASSERT_EQ(x.where, 256u + 1);
  w.reschedule(&y, 70000);  // lazy: 4096 <= 70000
  ASSERT_EQ(y.where, 256u + 1);
  EXPECT_FALSE(w.precascade(8));
  EXPECT_EQ(x.where, 128u + 65);  // level 1, lap 1, digit 1
  EXPECT_EQ(w.bucket_time(x.where), 4160u);
  EXPECT_EQ(y.where, 256u + 17) << "placed by its due tick 70000 = 17 * 4096 + 368";
  EXPECT_EQ(w.next_due(), 4160u);
  EXPECT_EQ(w.check(stderr, "test"), 0);
  for (WheelNode *n : {&x, &y}) {
    WheelNode *got = nullptr;
    for (int steps = 0; got == nullptr && steps < 20; ++steps) {
      w.advance(w.next_due());
      ASSERT_EQ(w.check(stderr, "test"), 0);
      got = w.pop_expired();
    }
    EXPECT_EQ(got, n);
    EXPECT_EQ(w.now(), n->due);
  }
}

// A level's move can refill the bucket that a lower level, served earlier in
// the same call, moves from: at now 4056 (level 1's digit is 63) level 1
// moves from the first bucket of its second lap (time 4096), which is where
// level 2's bucket (time 4096) sends a node due at 4100.  precascade() must
// not say that nothing is left then: the owner stops calling it, and the
// node waits for the boundary's cascade.
TEST(WheelPrecascade, ReturnsFalseOnlyWhenNothingIsLeftToMove) {
  Wheel w;
  w.advance(4056);
  WheelNode n;
  w.insert(&n, 4100);
  ASSERT_EQ(n.where, 256u + 1);  // level 2, digit 1: bucket time 4096
  for (int calls = 0; calls < 10 && w.precascade(10); ++calls) {
  }
  const u32 after = n.where;
  EXPECT_FALSE(w.precascade(10));
  EXPECT_EQ(n.where, after) << "precascade() said nothing was left, then moved the node";
  EXPECT_EQ(n.where, 4100u % 128) << "level 0, second lap";
  EXPECT_EQ(w.next_due(), 4100u);
  EXPECT_EQ(w.check(stderr, "test"), 0);
}

// Randomised, against a brute-force model (each node's due tick and whether
// it was put on the wheel late), over many boundaries of levels 1 and 2:
// between random inserts, removes and reschedules (lazy ones too) the owner
// pre-cascades in random budgets, and steps to next_due() with advance() or
// begin_advance() and a bounded cascade.  Every node not put on late pops
// at exactly its due tick, none early, none held back, check() holds after
// every call, and pre-cascading must actually have emptied boundaries.
template <class W>
void run_precascade(u64 start, u64 seed) {
  constexpr int kBits = W::kDigitBits;
  constexpr u64 kLap0 = u64{1} << kBits;        // a lap of level 0
  constexpr u64 kLap1 = u64{1} << (2 * kBits);  // a lap of level 1
  constexpr u64 kLap2 = u64{1} << (3 * kBits);  // a lap of level 2
  constexpr std::size_t kN = 400;
  struct Model {
    bool in = false;
    u64 due = 0;
    bool late = false;
  };
  Rng rng(seed);
  auto w = std::make_unique<W>();
  w->advance(start);
  std::vector<WheelNode> nodes(kN);
  std::vector<Model> m(kN);
  for (WheelNode &n : nodes) n.where = W::kNowhere;
  std::size_t exact = 0, moved = 0, clean_boundaries = 0, boundaries1 = 0, boundaries2 = 0;
  // Every other 500 steps no node is due within two laps of level 0, so that
  // the clock runs across many boundaries of level 2 as well.
  bool sparse = false;
  auto due = [&] {
    const int r = sparse ? 45 + percent(rng) * 55 / 100 : percent(rng);
    const u64 now = w->now();
    if (r < 5) return sub_sat(now, below_eq(rng, 3));  // late
    if (r < 45) return now + 1 + below_eq(rng, 2 * kLap0);
    if (r < 75) return now + 1 + below_eq(rng, 2 * kLap1);
    return now + 1 + below_eq(rng, 2 * kLap2);
  };
  auto random_op = [&] {
    const auto id = static_cast<std::size_t>(below_eq(rng, kN - 1));
    const int r = percent(rng);
    const u64 now = w->now();
    if (!m[id].in) {
      if (r < 80) {
        const u64 d = due();
        w->insert(&nodes[id], d);
        m[id] = {true, d, d <= now};
      }
    } else if (r < 10) {
      w->remove(&nodes[id]);
      m[id] = Model{};
    } else if (r < 40) {
      // Later by a little (often lazy) or anywhere.
      const u64 d = percent(rng) < 50 ? add_sat(m[id].due, 1 + below_eq(rng, kLap0)) : due();
      w->reschedule(&nodes[id], d);
      m[id].due = d;
      m[id].late = m[id].late || d <= now;
    }
  };
  // Pre-cascades in a random budget; counts the nodes that went down a level.
  auto precascade = [&] {
    std::vector<int> before(kN, -1);
    for (std::size_t id = 0; id < kN; ++id)
      if (nodes[id].where < W::kExpired) before[id] = W::level_of(nodes[id].where);
    w->precascade(below_eq(rng, 40));
    for (std::size_t id = 0; id < kN; ++id)
      if (before[id] >= 0 && nodes[id].where < W::kExpired && W::level_of(nodes[id].where) < before[id])
        ++moved;
  };
  for (int step = 0; step < 5000; ++step) {
    sparse = (step / 500) % 2 == 1;
    for (int k = 0; k < 4; ++k) {
      random_op();
      if (percent(rng) < 50) precascade();
      ASSERT_EQ(w->check(stderr, "test"), 0) << "step " << step;
    }
    const u64 nd = w->next_due();
    if (nd == kNever) continue;
    ASSERT_GE(nd, w->now());
    const u64 before = w->now();
    // Sometimes only part of the way: the wheel then has nothing due.
    const u64 t = percent(rng) < 20 ? before + below_eq(rng, nd - before) : nd;
    if (percent(rng) < 30) {
      w->advance(t);
    } else {
      w->begin_advance(t);
      if (t / kLap0 != before / kLap0) {
        ++boundaries1;
        if (!w->cascading()) ++clean_boundaries;
      }
      if (t / kLap1 != before / kLap1) ++boundaries2;
      while (w->cascade(1 + below_eq(rng, 8))) ASSERT_EQ(w->check(stderr, "test"), 0);
    }
    ASSERT_EQ(w->check(stderr, "test"), 0);
    std::size_t popped = 0;
    while (WheelNode *n = w->pop_expired()) {
      const auto id = static_cast<std::size_t>(n - nodes.data());
      ASSERT_LT(id, kN);
      ASSERT_TRUE(m[id].in);
      ASSERT_LE(n->due, w->now()) << "node " << id << " came out early";
      if (!m[id].late) {
        ASSERT_EQ(n->due, w->now()) << "node " << id << " fired at the wrong tick";
        ++exact;
      }
      m[id] = Model{};
      ASSERT_LE(++popped, kN);
    }
    std::size_t live = 0;
    for (std::size_t id = 0; id < kN; ++id)
      if (m[id].in) {
        ++live;
        ASSERT_GT(m[id].due, w->now()) << "node " << id << " held back";
        ASSERT_GE(m[id].due, w->next_due()) << "next_due() later than node " << id;
      }
    ASSERT_EQ(w->size(), live);
    ASSERT_EQ(w->check(stderr, "test"), 0);
  }
  EXPECT_GT(exact, 2000u) << "start " << start;
  EXPECT_GT(moved, 2000u) << "start " << start;
  EXPECT_GT(boundaries1, 500u) << "start " << start;
  EXPECT_GT(clean_boundaries, 200u) << "start " << start;
  EXPECT_GT(boundaries2, 5u) << "start " << start;
}

TEST(WheelPrecascade, RandomAgainstModelOverManyBoundaries) {
  u64 seed = 900;
  for (const u64 start : {u64{0}, u64{4095 - 50}, u64{65535 - 50}, k2Pow31 - 100, k2Pow40 - 7}) {
    run_precascade<Wheel>(start, ++seed);
    run_precascade<Wheel8>(start, ++seed);
  }
}

}  // namespace
}  // namespace libcallout::internal
