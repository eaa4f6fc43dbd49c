// wheel.h -- the hierarchical timing wheel: a pure data structure.
//
// Varghese & Lauck, "Hashed and Hierarchical Timing Wheels", scheme 7, in the
// bit-digit form that timeout.c and NetBSD's kern_timeout.c use: a tick is a
// 64-bit number read as digits of D bits; level L holds two laps of 2^D
// buckets, the bucket of tick u being digit L of u plus, above it, the low
// bit of u's part above digit L (its lap): index (u >> L*D) mod 2^(D+1).
// The engine uses D = 8 (eight levels of 2 x 256 buckets; see `Wheel` at the
// end); the tests also run D = 6 (eleven levels of 2 x 64).  No locks, no
// threads, no clock: the owner (one CPU of a domain) holds its lock around
// every call and says what "now" is by calling advance() (or
// begin_advance()).
//
// Placement rule.  A node due at tick `due > now` goes to level
//   L = (index of the highest bit in which due and now differ) / D
// and the bucket of due at that level, which is in now's lap.  So due and
// now agree on every digit above L, and digit L of due is greater than digit
// L of now.  That bucket "comes due" at its bucket time: now's digits above
// L, then the digit, then zeros -- the first tick at which now's digits from
// L upward equal due's.  At that tick the node is re-placed (cascaded)
// against the new now, landing in a lower level or, when due == now, in the
// expired list.  A level-0 bucket time equals the due tick exactly, so a
// node fires exactly at its due tick: never early (advance only expires
// nodes with due <= now) and never late by design.
//
// Invariant W1 (what makes next_due() O(levels) and advance() correct):
// every node in a bucket of now's lap of level L was placed agreeing with
// now above digit L, and the bucket's digit is greater than digit_L(now);
// every node in a bucket of the other lap was placed due in the next lap of
// level L (its part above digit L now's plus one; the top level, with
// nothing above it, has no next lap).  The time of a bucket is now's part
// above L (plus one for the next lap), its digit, then zeros, and is <= the
// due tick of each of its nodes (a lazy reschedule, below, only moves a
// node's due tick later).
// advance() keeps W1 by cascading every bucket whose bucket time it passes;
// when now enters the next lap, that lap's buckets become now's lap's with
// no work.  W1 means the occupied buckets of a lap never wrap around now, so
// a lap's earliest bucket is its lowest set bit, and a bucket of now's lap
// comes due before any bucket of a higher level.
//
// Pre-cascading.  Only precascade() fills a next lap: while now is in
// [B - kSlots^L, B), the level-L bucket that comes due at B (B a multiple of
// kSlots^L) holds nodes due in [B, B + kSlots^L), which is exactly the next
// lap of level L - 1, so its nodes can move there ahead of time, a bounded
// number a call, and at B only what is left is cascaded.  The owner calls
// it in its idle time; a wheel whose owner never does behaves exactly as a
// one-lap wheel.
//
// Lazy reschedule.  A pending node moved later keeps its bucket when that
// bucket's time is still <= the new due tick: only `due` changes (O(1), no
// list operation).  When the bucket comes due the node is cascaded by its new
// due tick.  Because the bucket time is <= due, the node is never run early;
// the cost is that next_due() may report a tick at which nothing fires (early,
// never late), and the clock then wakes once for nothing.
//
// Level-0 buckets are spliced.  A level-0 bucket holds nodes due exactly at
// its bucket time, except lazily rescheduled ones.  When advance() passes
// it, the whole bucket moves to the expired list in O(1), without visiting
// its nodes: visiting them is a chain of cache misses (a linked list is
// walked one dependent load at a time), paid a second time when the nodes
// are popped.  Such a node keeps its old bucket index in `where` until it is
// popped ("stale").  pop_expired() re-places a node that is not due yet (it
// was rescheduled later while in the bucket, or while on the expired list),
// so nothing ever comes out early.  A stale `where` is harmless elsewhere:
// remove() only clears the bit of an empty bucket; reschedule()'s lazy test
// compares the stale bucket's time with the new due tick, and either way
// the node ends up where pop_expired() or place() puts it.
//
// Bounded cascades.  advance() re-places every node of every passed bucket
// above level 0 before it returns: its cost grows with those buckets, and a
// level-2 bucket can hold a large share of all pending nodes.  An owner that
// must bound the work done under its lock calls begin_advance() instead,
// which only splices the passed buckets (O(levels + buckets passed)) onto a
// cascade list, and then cascade(budget) as often as it likes, each call
// re-placing at most `budget` nodes, dropping its lock in between.  While the
// cascade list is not empty the wheel reports work due now (has_expired(),
// next_due() == now()), so no caller moves past this tick before every node
// that is due in it has reached the expired list: an owner that never calls
// cascade() still gets every node on time, because pop_expired() and
// advance() finish the cascade themselves when they need to.  A node on the
// cascade list keeps the index of the bucket it left, like a spliced
// level-0 node, and for the same reasons that is harmless.
//
// The lookahead.  Popping the expired list is a chain of dependent loads:
// the next node's address is in the node just popped, so when the nodes are
// not in the cache every pop waits for one memory access, and nothing else
// can be overlapped with it (bench/analysis.md §8: the bare walk of a bucket
// of 10^4 callouts took 160-200 ns a node here, while a std::multimap's
// erase-the-first loop, whose tree gives the processor independent loads,
// took 100-140).  A doubly-linked list has a second chain: the prev links.
// The owner's dispatch loop starts a second walk at the tail
// (start_lookahead()) and moves it one node towards the front per pop
// (lookahead_step()), prefetching each node it reaches; the two walks keep
// two misses in flight, and the pops of the back half find their nodes in
// the cache.  The walk only follows the prev link of a node that is still on
// the list, read under the owner's lock: remove() and pop_expired() move it
// off a node before they unlink it (unlink_expired()), so it never stands
// on a node that has left the list (and that the caller may have freed).
// It is a hint: where it stands changes no result, and check() verifies it
// is on the list.
//
// Tick arithmetic is unsigned 64-bit and never wraps in practice (2^64 ticks
// at 10^6 Hz is 584,000 years); the levels cover all 64 bits, so any due
// tick is placed correctly, and 2^31-tick jumps cost O(levels).
#ifndef CALLOUT_SRC_WHEEL_H
#define CALLOUT_SRC_WHEEL_H

#include <cstddef>
#include <cstdint>
#include <cstdio>

namespace libcallout::internal {

// A doubly-linked circular list link; a bucket head is a bare Link.
struct Link {
  Link *next;
  Link *prev;
};

// A due tick.  On 32-bit targets it is only 4-aligned: there, an 8-aligned
// uint64_t (armhf's ABI) would make WheelNode 8-aligned and pad it to 24
// bytes, and a callout, which embeds one, would neither fit in 12 pointers
// nor be aligned like the public callout_t (an array of pointers).  A
// 4-aligned 64-bit load is still one LDRD on ARMv7 and two moves on i386.
// 64-bit targets keep the natural type: the hot path is unchanged there.
#if UINTPTR_MAX == UINT32_MAX
typedef std::uint64_t DueTick __attribute__((aligned(4)));
#else
using DueTick = std::uint64_t;
#endif

// What a callout embeds to live in a wheel.  Standard layout (a Link* on a
// wheel list converts back to its WheelNode*), pointer-aligned: 28 bytes of
// fields, padded to 32 on 64-bit targets, 20 bytes on 32-bit ones.
struct WheelNode {
  Link link;
  DueTick due;          // the tick at which the node is due
  std::uint32_t where;  // bucket index, kExpired, or kNowhere
};
static_assert(alignof(WheelNode) == alignof(void *), "a WheelNode needs only pointer alignment");
static_assert(sizeof(WheelNode) == (sizeof(void *) == 8 ? 32 : 20));

// The wheel for digits of DigitBits bits (6: 11 levels of 2 x 64 buckets;
// 8: 8 levels of 2 x 256).  The engine uses one geometry, `Wheel` below; the tests
// run the brute-force model on both.
template <int DigitBits>
class BasicWheel {
 public:
  static constexpr int kDigitBits = DigitBits;
  static constexpr int kSlots = 1 << kDigitBits;                      // values of a digit: buckets a lap
  static constexpr int kLevelSlots = 2 * kSlots;                      // buckets a level: two laps
  static constexpr int kLevels = (64 + kDigitBits - 1) / kDigitBits;  // levels * digit bits >= 64
  // 64-bit words of a level's bitmap (two for 6-bit digits, eight for 8).
  // The bitmaps of all levels are one array of words, so that bucket
  // `where` has its bit in word where / 64, at where % 64.
  static constexpr int kWords = kLevelSlots / 64;
  static constexpr int kLapWords = kSlots / 64;  // words of one lap
  static_assert(kSlots % 64 == 0, "a lap's buckets fill whole bitmap words");
  static constexpr std::uint32_t kExpired = kLevels * kLevelSlots;
  static constexpr std::uint32_t kNowhere = kExpired + 1;
  static constexpr std::uint64_t kNever = ~std::uint64_t{0};

  BasicWheel();
  BasicWheel(const BasicWheel &) = delete;
  BasicWheel &operator=(const BasicWheel &) = delete;

  // The last tick the wheel was advanced to.  Starts at 0.
  std::uint64_t now() const { return now_; }
  // Number of nodes in the wheel (buckets and expired list).
  std::size_t size() const { return size_; }

  // Adds n, due at `due`.  A due tick <= now() puts n straight on the expired
  // list (it is late; it runs at the next drain, never early).  O(1).
  void insert(WheelNode *n, std::uint64_t due) {
    n->due = due;
    ++size_;
    place(n);
  }

  // Removes n, which must be in this wheel.  O(1).  (For a node on the
  // expired list with a stale level-0 index the bucket test below finds
  // that bucket empty and clears an already clear bit, or finds it in use
  // by other nodes and leaves it: either way right.)
  void remove(WheelNode *n) {
    unlink_expired(&n->link);
    if (n->where < kExpired) {
      Link *head = &buckets_[n->where];
      if (head->next == head) clear_bit(n->where);
    }
    n->where = kNowhere;
    --size_;
  }

  // Moves n (in this wheel) to `due`.  Later than its bucket time: only the
  // due tick changes (the lazy path).  Otherwise it is re-placed.  O(1).
  void reschedule(WheelNode *n, std::uint64_t due) {
    if (n->where < kExpired && bucket_time(n->where) <= due) {
      n->due = due;
      return;
    }
    remove(n);
    insert(n, due);
  }

  // The earliest tick at which advance() has work: now() if the expired list
  // or the cascade list is not empty, else the earliest bucket time, else
  // kNever.  It may be earlier than any node's due tick -- a cascade point
  // of a node above level 0, or a lazily rescheduled node's old bucket --
  // never later.  O(levels), usually one: a count-trailing-zeros on the
  // level summary, then a scan of the lowest level's lap words, now's lap
  // first; only when that level's buckets are all in its next lap (filled
  // by precascade()) does the scan go on to the next level.
  std::uint64_t next_due() const {
    if (has_expired()) return now_;
    std::uint64_t best = kNever;
    for (std::uint32_t pending = levels_; pending != 0; pending &= pending - 1) {
      const int level = __builtin_ctz(pending);
      // levels_ has bit `level` set only while some word of the level is not
      // zero, so one of the two laps has a set bit.  Now's lap first: by W1
      // its buckets all come due before the next lap's.
      const std::uint64_t *bits = &bitmap_[level * kWords];
      const int cur = lap(now_, level);
      int slot = first_bit(bits + cur * kLapWords);
      const bool in_current_lap = slot >= 0;
      slot =
          in_current_lap ? cur * kSlots + slot : (1 - cur) * kSlots + first_bit(bits + (1 - cur) * kLapWords);
      const std::uint64_t t = bucket_time(static_cast<std::uint32_t>(level * kLevelSlots + slot));
      if (t < best) best = t;
      // A bucket of now's lap comes due before the end of that lap, and
      // every bucket of a higher level at or after it: done.  A next-lap
      // bucket (filled by precascade()) may come due after a higher level's.
      if (in_current_lap) break;
    }
    return best;
  }

  // Moves now() forward to t (t >= now()).  Every bucket whose bucket time
  // lies in (now, t] is cascaded: its nodes due <= t go to the expired list,
  // the rest are re-placed.  O(levels + nodes touched).  A cascade left
  // pending by begin_advance() is finished first.
  void advance(std::uint64_t t) {
    begin_advance(t);
    finish_cascade();
  }

  // advance(t) without the re-placing: the passed level-0 buckets go to the
  // expired list and the passed buckets above level 0 to the cascade list,
  // each whole, in O(1).  O(levels + buckets passed).  A cascade left
  // pending by an earlier call is finished first (its nodes are placed
  // against the old now, before any tick after it is passed).
  void begin_advance(std::uint64_t t);

  // Re-places at most `budget` nodes of the cascade list against now(); each
  // lands on the expired list (due) or in a bucket.  Returns whether nodes
  // remain on the cascade list.  O(budget).
  bool cascade(std::size_t budget) {
    for (; budget != 0 && cascading_.next != &cascading_; --budget) {
      WheelNode *n = node_of(cascading_.next);
      unlink(&n->link);
      place(n);
    }
    return cascading_.next != &cascading_;
  }
  bool cascading() const { return cascading_.next != &cascading_; }

  // Takes the first due node (due <= now) off the expired list, or returns
  // nullptr.  A node on the list that is not due yet (spliced from a level-0
  // bucket after a lazy reschedule) is re-placed on the way.  When the
  // expired list is empty and a cascade is pending, cascades until a node
  // comes due or the cascade list is empty (an owner that bounds its work
  // calls cascade() first, so that this never happens to it).
  WheelNode *pop_expired() {
    for (;;) {
      if (expired_.next == &expired_) {
        if (cascading_.next == &cascading_) return nullptr;
        WheelNode *c = node_of(cascading_.next);
        unlink(&c->link);
        place(c);
        continue;
      }
      WheelNode *n = node_of(expired_.next);
      unlink_expired(&n->link);
      if (n->due > now_) {
        place(n);
        continue;
      }
      n->where = kNowhere;
      --size_;
      return n;
    }
  }
  // Whether there is work at now(): nodes on the expired list, or a pending
  // cascade (which may hold nodes due now).
  bool has_expired() const { return expired_.next != &expired_ || cascading_.next != &cascading_; }

  // Starts the lookahead (see the top of this file) at the tail of the
  // expired list, unless it is walking already, the list is empty, or the
  // wheel holds fewer than lookahead_min() nodes.  O(1).
  void start_lookahead() {
    if (ahead_ == &expired_ && size_ >= lookahead_min_) ahead_ = expired_.prev;  // &expired_ if empty
  }
  // Below this many nodes in the wheel the lookahead does not start: their
  // callouts fit in a processor's L2 (4096 x 96 bytes = 384 KiB), the pops
  // hit the cache anyway, and the steps only cost (wheel/fire in
  // callout-bench: 25 % slower at 10^3 nodes, even at 4 x 10^3, 10 % faster
  // at 1.6 x 10^4, 40 % at 10^5 and 10^6).  Tests lower it to walk small
  // lists.
  static constexpr std::size_t kLookaheadMin = 4096;
  std::size_t lookahead_min() const { return lookahead_min_; }
  void set_lookahead_min(std::size_t n) { lookahead_min_ = n; }
  // Moves the lookahead one node towards the front and prefetches the two
  // cache lines from that node's start (a callout's dispatch reads its first
  // 76 bytes: two lines when the callout is 16-byte aligned, as malloc and
  // new return it); parks it when the next node is the front, which the
  // pops load themselves.  O(1); one load, of the node the previous step
  // prefetched.
  void lookahead_step() {
    if (ahead_ == &expired_) return;
    Link *const p = ahead_->prev;  // ahead_ was prefetched by the previous step
    if (p == &expired_ || p == expired_.next) {
      ahead_ = &expired_;  // met the front: the pops load those themselves
      return;
    }
    __builtin_prefetch(p);
    __builtin_prefetch(reinterpret_cast<char *>(p) + 64);
    ahead_ = p;
  }
  // Where the lookahead stands: a node of the expired list, or nullptr when
  // it is parked.  For tests and check().
  const WheelNode *lookahead() const { return ahead_ == &expired_ ? nullptr : node_of(ahead_); }

  // The tick at which bucket `where` comes due, given the current now(): at
  // its level, the first position from now's on (now's digit and the part
  // above it, counted in units of the level) whose low bits are the bucket's
  // index.  For a bucket that satisfies W1 that is now's lap with the
  // bucket's digit when the lap bits agree, else the next lap with it; for
  // the stale index of a node on the expired or cascade list it is some
  // tick, either way harmless (see "Level-0 buckets are spliced").  No
  // branch: the lazy path of reschedule() reads it on every call.
  std::uint64_t bucket_time(std::uint32_t where) const {
    const int shift = level_of(where) * kDigitBits;
    const std::uint64_t at = now_ >> shift;
    return (at + ((where - at) & (kLevelSlots - 1))) << shift;
  }

  // Moves ahead of time, at most `budget` nodes, the buckets that come due
  // at the end of the current lap of the level below them: the bucket of
  // level L >= 1 whose bucket time is the next multiple of kSlots^L after
  // now.  Its nodes are due in [that time, that time + kSlots^L), which is
  // exactly the next lap of level L - 1, so each goes to its next-lap bucket
  // there (a node rescheduled later while in the bucket is re-placed).  At
  // the boundary only what is left is cascaded.  Levels are served lowest
  // first: theirs is the nearest boundary.  Never needed for correctness.
  // Returns true when it stopped for the budget with such nodes left; false
  // when it got through every level, even if a higher level's bucket has
  // just refilled a lower one's (when both boundaries are the same tick:
  // the next call moves those).  O(levels + budget).
  bool precascade(std::size_t budget);

  // Calls f(node, list) for every node, where list is the bucket index the
  // node is in or kExpired (a node's own `where` may be stale there): buckets
  // level by level, then expired, then the cascade list (reported as
  // kExpired too: those nodes wait for the owner at now()).
  template <class F>
  void for_each(F &&f) const {
    for (std::uint32_t b = 0; b <= kExpired; ++b) {
      const Link *head = b < kExpired ? &buckets_[b] : &expired_;
      for (const Link *l = head->next; l != head; l = l->next) f(node_of(l), b);
    }
    for (const Link *l = cascading_.next; l != &cascading_; l = l->next) f(node_of(l), kExpired);
  }

  // Checks invariant W1, the bitmaps, the size and next_due() against brute
  // force.  Prints each violation to out (if not null) prefixed by `who`;
  // returns the number of violations.
  int check(std::FILE *out, const char *who) const;

  static int level_of(std::uint32_t where) { return static_cast<int>(where) / kLevelSlots; }
  static WheelNode *node_of(Link *l) { return reinterpret_cast<WheelNode *>(l); }
  static const WheelNode *node_of(const Link *l) { return reinterpret_cast<const WheelNode *>(l); }

 private:
  static std::uint64_t digit(std::uint64_t t, int level) {
    return (t >> (level * kDigitBits)) & (kSlots - 1);
  }
  // The bits above digit `level`; zero for the top level (shifting a 64-bit
  // value by 66 would be undefined).
  static int shift_hi(int level) { return (level + 1) * kDigitBits; }
  static std::uint64_t hi(std::uint64_t t, int level) {
    return shift_hi(level) >= 64 ? 0 : t >> shift_hi(level);
  }
  // The lap of t at `level`: the low bit of the part above digit `level`
  // (always 0 at the top level, which has one lap).
  static int lap(std::uint64_t t, int level) { return static_cast<int>(hi(t, level) & 1); }
  // The bucket of `level` for tick t: digit `level` of t and its lap bit.
  static std::uint32_t index_at(std::uint64_t t, int level) {
    return static_cast<std::uint32_t>(level * kLevelSlots +
                                      ((t >> (level * kDigitBits)) & (kLevelSlots - 1)));
  }
  // Index of the first set bit of a lap's kLapWords words, or -1.
  static int first_bit(const std::uint64_t *words) {
    for (int w = 0; w < kLapWords; ++w)
      if (words[w] != 0) return w * 64 + __builtin_ctzll(words[w]);
    return -1;
  }
  void put(WheelNode *n, std::uint32_t where) {
    append(&buckets_[where], &n->link);
    n->where = where;
    bitmap_[where / 64] |= std::uint64_t{1} << (where % 64);
    levels_ |= 1u << level_of(where);
  }

  void place(WheelNode *n) {
    if (n->due <= now_) {
      append(&expired_, &n->link);
      n->where = kExpired;
      return;
    }
    // due > now, so the XOR is non-zero and clzll is defined.
    const int high_bit = 63 - __builtin_clzll(n->due ^ now_);
    // due and now agree above this level, so the index is in now's lap.
    put(n, index_at(n->due, high_bit / kDigitBits));
  }
  void finish_cascade() {
    while (cascading_.next != &cascading_) {
      WheelNode *n = node_of(cascading_.next);
      unlink(&n->link);
      place(n);
    }
  }
  bool level_empty(int level) const {
    std::uint64_t any = 0;
    for (int w = 0; w < kWords; ++w) any |= bitmap_[level * kWords + w];
    return any == 0;
  }
  bool bit(std::uint32_t where) const { return (bitmap_[where / 64] >> (where % 64)) & 1; }
  void clear_bit(std::uint32_t where) {
    const int level = level_of(where);
    bitmap_[where / 64] &= ~(std::uint64_t{1} << (where % 64));
    if (bitmap_[where / 64] == 0 && level_empty(level)) levels_ &= ~(1u << level);
  }
  static void append(Link *head, Link *n) {
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
  }
  static void unlink(Link *n) {
    n->prev->next = n->next;
    n->next->prev = n->prev;
  }
  // unlink() for a node that may be on the expired list: the lookahead steps
  // off it first (to its predecessor there, or to rest at the head).
  void unlink_expired(Link *n) {
    if (n == ahead_) ahead_ = n->prev;
    unlink(n);
  }
  // Moves every node of `from` to the tail of `to`; `from` becomes empty.
  static void splice(Link *to, Link *from) {
    if (from->next == from) return;
    from->next->prev = to->prev;
    to->prev->next = from->next;
    from->prev->next = to;
    to->prev = from->prev;
    from->next = from->prev = from;
  }

  std::uint64_t now_ = 0;
  std::size_t size_ = 0;
  std::uint32_t levels_ = 0;  // bit L: level L's words not all zero
  // The lookahead: a node of the expired list, or &expired_ (parked).  Beside
  // size_, which remove() and pop_expired() write anyway: their test of it
  // touches no other cache line.
  Link *ahead_;
  std::size_t lookahead_min_ = kLookaheadMin;
  std::uint64_t bitmap_[kLevels * kWords] = {};  // bit where % 64 of word where / 64: bucket not empty
  Link expired_;
  Link cascading_;  // nodes of passed buckets above level 0, not re-placed yet
  Link buckets_[kLevels * kLevelSlots];
};

extern template class BasicWheel<6>;
extern template class BasicWheel<8>;

// 8-bit digits.  At hz 1000 level 0 covers 256 ms and level 1 65 s, so the
// timeouts of a protocol stack (100 ms to a few seconds) are placed in level
// 0 or 1 and cascaded at most once, and a cascade moves the callouts of one
// 256-tick slice.  With 6-bit digits a level-2 bucket covers 4096 ticks, so
// one cascade could move most of the pending callouts at once, and the
// callouts of 64 ms to 4 s were visited twice.  Cost: 64 KiB of bucket
// heads per CPU (two laps; 32 KiB on 32-bit targets).
using Wheel = BasicWheel<8>;

}  // namespace libcallout::internal

#endif  // CALLOUT_SRC_WHEEL_H
