// wheel.cpp -- begin_advance() and the invariant checker of the timing wheel.
#include "wheel.h"

#include <cinttypes>

namespace libcallout::internal {

template <int DigitBits>
BasicWheel<DigitBits>::BasicWheel() {
  expired_.next = expired_.prev = &expired_;
  cascading_.next = cascading_.prev = &cascading_;
  for (Link &b : buckets_) b.next = b.prev = &b;
}

template <int DigitBits>
void BasicWheel<DigitBits>::begin_advance(std::uint64_t t) {
  if (t <= now_) return;
  // Nodes still waiting from an earlier begin_advance() belong to ticks up
  // to now: place them before now moves.
  finish_cascade();
  for (std::uint32_t pending = levels_; pending != 0; pending &= pending - 1) {
    const int level = __builtin_ctz(pending);
    // The slots of this level whose bucket time is in (now, t]: if t is in
    // a later revolution of this level, by W1 every occupied slot; else the
    // slots strictly after now's digit, up to and including t's digit
    // (dt >= dn because t > now and the digits above agree).
    const bool all = hi(now_, level) != hi(t, level);
    const std::uint64_t first = all ? 0 : digit(now_, level) + 1;  // may be kSlots: none
    const std::uint64_t last = all ? kSlots - 1 : digit(t, level);
    // upto(d) is the mask of bits 0..d of a word; for d == 63 the unsigned
    // shift wraps 2 << 63 to 0 (defined: the exponent is below 64) and
    // 0 - 1 is all ones, as wanted.
    auto upto = [](std::uint64_t d) { return (std::uint64_t{2} << d) - 1; };
    for (int w = 0; w < kWords; ++w) {
      const std::uint64_t lo = static_cast<std::uint64_t>(w) * 64;  // this word's first slot
      if (last < lo || first > lo + 63) continue;
      const std::uint64_t from = first > lo ? first - lo : 0;
      const std::uint64_t to = last - lo < 63 ? last - lo : 63;
      std::uint64_t hit = bitmap_[level * kWords + w] & upto(to) & ~(upto(from) >> 1);
      for (; hit != 0; hit &= hit - 1) {
        const auto where = static_cast<std::uint32_t>(level * kSlots + lo + __builtin_ctzll(hit));
        // Level 0: straight to the expired list, unvisited (see wheel.h).
        splice(level == 0 ? &expired_ : &cascading_, &buckets_[where]);
        clear_bit(where);
      }
    }
    // If now and t agree above this level they agree on every higher digit,
    // so no bucket of a higher level can have come due.
    if (hi(now_, level) == hi(t, level)) break;
  }
  now_ = t;
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
      if (digit(now_, level) >= b % kSlots) report("bucket is at or behind now (W1)", n, b);
      const std::uint64_t bt = bucket_time(b);
      if (bt > n->due) report("bucket comes due after the node's due tick (would fire late)", n, b);
      if (bt <= now_) report("bucket time is not in the future", n, b);
      if (bt < earliest) earliest = bt;
    }
  }
  for (int level = 0; level < kLevels; ++level)
    if (((levels_ >> level) & 1) != !level_empty(level))
      report("level summary bit disagrees with the level bitmap", nullptr, static_cast<std::uint32_t>(level));
  for (const Link *l = expired_.next; l != &expired_; l = l->next) {
    const WheelNode *n = node_of(l);
    ++count;
    if (l->next->prev != l) report("broken list link", n, kExpired);
    // Placed there by place() (marked expired, due), or spliced from a
    // level-0 bucket (stale level-0 index; not yet due only after a lazy
    // reschedule, and pop_expired() re-places those).
    if (n->where == kExpired) {
      if (n->due > now_) report("node on the expired list is not due yet (would fire early)", n, kExpired);
    } else if (n->where >= static_cast<std::uint32_t>(kSlots)) {
      report("node on the expired list has a bucket index above level 0", n, n->where);
    }
    earliest = now_;
  }
  for (const Link *l = cascading_.next; l != &cascading_; l = l->next) {
    const WheelNode *n = node_of(l);
    ++count;
    if (l->next->prev != l) report("broken list link", n, kExpired);
    // Spliced from a passed bucket above level 0, not re-placed yet: it
    // keeps that bucket's index.
    if (n->where < static_cast<std::uint32_t>(kSlots) || n->where >= kExpired)
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
