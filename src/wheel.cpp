// wheel.cpp -- begin_advance(), precascade() and the invariant checker of the
// timing wheel.
#include "wheel.h"

#include <cinttypes>

namespace libcallout::internal {

template <int DigitBits>
BasicWheel<DigitBits>::BasicWheel() {
  expired_.next = expired_.prev = &expired_;
  ahead_ = &expired_;
  cascading_.next = cascading_.prev = &cascading_;
  for (Link &b : buckets_) b.next = b.prev = &b;
}

template <int DigitBits>
void BasicWheel<DigitBits>::begin_advance(std::uint64_t t) {
  if (t <= now_) return;
  // Nodes still waiting from an earlier begin_advance() belong to ticks up
  // to now: place them before now moves.
  finish_cascade();
  // upto(d) is the mask of bits 0..d of a word; for d == 63 the unsigned
  // shift wraps 2 << 63 to 0 (defined: the exponent is below 64) and 0 - 1
  // is all ones, as wanted.
  auto upto = [](std::uint64_t d) { return (std::uint64_t{2} << d) - 1; };
  for (std::uint32_t pending = levels_; pending != 0; pending &= pending - 1) {
    const int level = __builtin_ctz(pending);
    // Splices the occupied buckets of this level with index in [first,
    // last], in index order.
    auto pass = [&](std::uint64_t first, std::uint64_t last) {
      for (int w = 0; w < kWords; ++w) {
        const std::uint64_t lo = static_cast<std::uint64_t>(w) * 64;  // this word's first slot
        if (last < lo || first > lo + 63) continue;
        const std::uint64_t from = first > lo ? first - lo : 0;
        const std::uint64_t to = last - lo < 63 ? last - lo : 63;
        std::uint64_t hit = bitmap_[level * kWords + w] & upto(to) & ~(upto(from) >> 1);
        for (; hit != 0; hit &= hit - 1) {
          const auto where = static_cast<std::uint32_t>(level * kLevelSlots + lo + __builtin_ctzll(hit));
          // Level 0: straight to the expired list, unvisited (see wheel.h).
          splice(level == 0 ? &expired_ : &cascading_, &buckets_[where]);
          clear_bit(where);
        }
      }
    };
    // Positions counted from the first bucket of now's lap (0 .. kSlots - 1
    // now's lap, kSlots .. 2 kSlots - 1 the next): the buckets whose time is
    // in (now, t] are those strictly after now's digit up to t's position,
    // or to the end of the next lap when t is two or more laps ahead.  By
    // W1 none of now's lap at or before now's digit is occupied, so that
    // range holds every occupied bucket passed.  Time order is position
    // order; the index of a position wraps at the end of the level.
    const std::uint64_t laps = hi(t, level) - hi(now_, level);
    const std::uint64_t first = digit(now_, level) + 1;
    const std::uint64_t last = laps >= 2 ? kLevelSlots - 1 : laps * kSlots + digit(t, level);
    if (first <= last) {
      const std::uint64_t base = static_cast<std::uint64_t>(lap(now_, level)) * kSlots;
      const std::uint64_t a = first + base, b = last + base;
      if (b < kLevelSlots) {
        pass(a, b);
      } else if (a >= kLevelSlots) {
        pass(a - kLevelSlots, b - kLevelSlots);
      } else {
        pass(a, kLevelSlots - 1);
        pass(0, b - kLevelSlots);
      }
    }
    // If now and t agree above this level they agree on every higher digit,
    // so no bucket of a higher level can have come due.
    if (laps == 0) break;
  }
  now_ = t;
}

template <int DigitBits>
bool BasicWheel<DigitBits>::precascade(std::size_t budget) {
  // Level 0 is never a source: its buckets are spliced whole, unvisited.
  for (std::uint32_t pending = levels_ & ~1u; pending != 0; pending &= pending - 1) {
    const int level = __builtin_ctz(pending);
    // The bucket whose time is the next multiple of kSlots^level after now:
    // the position after now's in the digits from `level` up (the index
    // wraps into the next lap after digit kSlots - 1).
    const std::uint64_t next = hi(now_, level - 1) + 1;  // that time >> (level * kDigitBits)
    const auto where = static_cast<std::uint32_t>(level * kLevelSlots + (next & (kLevelSlots - 1)));
    if (!bit(where)) continue;
    Link *head = &buckets_[where];
    while (head->next != head) {
      if (budget == 0) return true;
      --budget;
      WheelNode *n = node_of(head->next);
      unlink(&n->link);
      // Due in [next << shift, (next + 1) << shift): the next lap of the
      // level below, whose bucket for due is at or after this bucket's time
      // and not after due.  A node rescheduled later while in this bucket is
      // placed by the usual rule; it lands in a bucket of this level or a
      // higher one that is not this one (its due tick is past this one's
      // span), so the loop ends.
      if (hi(n->due, level - 1) == next)
        put(n, index_at(n->due, level - 1));
      else
        place(n);
    }
    clear_bit(where);
  }
  // A level's nodes due in the first bucket of the next lap below land in
  // that level's source bucket when now's digit there is the last one, and
  // that level was served earlier in this call: say so, or the owner stops
  // calling and they wait for the boundary's cascade.  O(levels).
  for (std::uint32_t pending = levels_ & ~1u; pending != 0; pending &= pending - 1) {
    const int level = __builtin_ctz(pending);
    const std::uint64_t next = hi(now_, level - 1) + 1;
    if (bit(static_cast<std::uint32_t>(level * kLevelSlots + (next & (kLevelSlots - 1))))) return true;
  }
  return false;
}

template <int DigitBits>
int BasicWheel<DigitBits>::check(std::FILE *out, const char *who) const {
  int bad = 0;
  auto report = [&](const char *what, const WheelNode *n, std::uint32_t where) {
    ++bad;
    if (out)
      std::fprintf(out, "%s: wheel now %" PRIu64 ": %s (node %p, due %" PRIu64 ", bucket %u)\n", who, now_,
                   what, static_cast<const void *>(n), n ? n->due : 0, where);
  };
  std::size_t count = 0;
  std::uint64_t earliest = kNever;  // brute-force next_due()
  for (std::uint32_t b = 0; b < kExpired; ++b) {
    const Link *head = &buckets_[b];
    const int level = level_of(b);
    if (bit(b) != (head->next != head)) report("bitmap bit disagrees with bucket contents", nullptr, b);
    for (const Link *l = head->next; l != head; l = l->next) {
      const WheelNode *n = node_of(l);
      ++count;
      if (l->next->prev != l) report("broken list link", n, b);
      if (n->where != b) report("node's bucket index is not the bucket it is in", n, b);
      const std::uint32_t slot = b % kLevelSlots;
      if (static_cast<int>(slot >> kDigitBits) == lap(now_, level)) {
        if (digit(now_, level) >= (slot & (kSlots - 1))) report("bucket is at or behind now (W1)", n, b);
      } else if (shift_hi(level) >= 64) {
        report("node in the second lap of the top level (W1)", n, b);
      }
      const std::uint64_t bt = bucket_time(b);
      if (bt > n->due) report("bucket comes due after the node's due tick (would fire late)", n, b);
      if (bt <= now_) report("bucket time is not in the future", n, b);
      if (bt < earliest) earliest = bt;
    }
  }
  for (int level = 0; level < kLevels; ++level)
    if (((levels_ >> level) & 1) != !level_empty(level))
      report("level summary bit disagrees with the level bitmap", nullptr, static_cast<std::uint32_t>(level));
  bool ahead_found = ahead_ == &expired_;  // parked, or a node of the expired list
  for (const Link *l = expired_.next; l != &expired_; l = l->next) {
    const WheelNode *n = node_of(l);
    ++count;
    if (l == ahead_) ahead_found = true;
    if (l->next->prev != l) report("broken list link", n, kExpired);
    // Placed there by place() (marked expired, due), or spliced from a
    // level-0 bucket (stale level-0 index; not yet due only after a lazy
    // reschedule, and pop_expired() re-places those).
    if (n->where == kExpired) {
      if (n->due > now_) report("node on the expired list is not due yet (would fire early)", n, kExpired);
    } else if (n->where >= static_cast<std::uint32_t>(kLevelSlots)) {
      report("node on the expired list has a bucket index above level 0", n, n->where);
    }
    earliest = now_;
  }
  // No node is passed: the lookahead's may have been freed.
  if (!ahead_found) report("the lookahead is on a node that is not on the expired list", nullptr, kExpired);
  for (const Link *l = cascading_.next; l != &cascading_; l = l->next) {
    const WheelNode *n = node_of(l);
    ++count;
    if (l->next->prev != l) report("broken list link", n, kExpired);
    // Spliced from a passed bucket above level 0, not re-placed yet: it
    // keeps that bucket's index.
    if (n->where < static_cast<std::uint32_t>(kLevelSlots) || n->where >= kExpired)
      report("node on the cascade list does not carry a bucket index above level 0", n, n->where);
    earliest = now_;
  }
  if (count != size_) report("size disagrees with the number of nodes", nullptr, 0);
  if (earliest != next_due()) report("next_due() disagrees with the brute-force minimum", nullptr, 0);
  return bad;
}

template class BasicWheel<6>;
template class BasicWheel<8>;

}  // namespace libcallout::internal
