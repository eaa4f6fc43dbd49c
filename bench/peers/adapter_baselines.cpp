// adapter_baselines.cpp -- the two baselines written for the bench: what a
// competent single-threaded event loop would use without a library.
//
// heap: an indexed binary min-heap.  The heap array holds (due, timer*)
//   pairs, so comparisons never dereference a timer; each timer records its
//   slot, so removal and re-arm are O(log n) sift operations.
// multimap: std::multimap<due, timer*>; each timer keeps its iterator, so
//   cancel is an O(1)-amortised erase; re-arm moves the node with
//   extract()/insert() (no allocation); arm allocates one node.
// Both use a cached "now" (like libuv's loop time), refreshed when they
// dispatch; times are CLOCK_MONOTONIC nanoseconds.
#include <map>
#include <memory>

#include "workloads.h"

namespace peers {
namespace {

using Handler = void (*)(void *);

class HeapAdapter {
 public:
  static constexpr std::uint32_t kIdle = ~0u;
  struct Timer {
    std::uint64_t due;
    std::uint32_t slot;  // index in heap_, or kIdle
    Handler fn;
    void *arg;
  };

  bool init(std::string *) {
    now_ = bench::mono_ns();
    return true;
  }
  void create(std::size_t n) {
    t_.reset(new Timer[n]);
    for (std::size_t i = 0; i < n; ++i) t_[i] = {0, kIdle, &fire, this};
  }
  void arm(std::uint32_t i, std::uint32_t ms) {
    Timer *t = &t_[i];
    t->due = now_ + ms * 1'000'000ull;
    heap_.push_back({t->due, t});
    t->slot = static_cast<std::uint32_t>(heap_.size() - 1);
    sift_up(t->slot);
  }
  void cancel(std::uint32_t i) { remove(&t_[i]); }
  void rearm(std::uint32_t i, std::uint32_t ms) {
    Timer *t = &t_[i];
    const std::uint64_t due = now_ + ms * 1'000'000ull;
    const std::uint64_t old = t->due;
    t->due = due;
    heap_[t->slot].due = due;
    if (due < old)
      sift_up(t->slot);
    else
      sift_down(t->slot);
  }
  void flush() {}
  std::uint64_t fired() const { return fired_; }

  std::uint64_t w3(const std::vector<std::uint32_t> &ms) {
    now_ = bench::mono_ns();
    for (std::size_t i = 0; i < ms.size(); ++i) arm(static_cast<std::uint32_t>(i), ms[i]);
    return batch_w3(bench::mono_ns(), kW3MaxMs, [&] { run_due(); });
  }
  // The event loop a program would write: run what is due, sleep until the
  // next deadline.
  std::uint64_t w3rt(const std::vector<std::uint32_t> &ms) {
    now_ = bench::mono_ns();
    for (std::size_t i = 0; i < ms.size(); ++i) arm(static_cast<std::uint32_t>(i), ms[i]);
    const std::uint64_t t0 = bench::process_cpu_ns();
    for (;;) {
      run_due();
      if (heap_.empty()) break;
      bench::sleep_until_ns(heap_[0].due);
    }
    return bench::process_cpu_ns() - t0;
  }

 private:
  struct Entry {
    std::uint64_t due;
    Timer *t;
  };
  static void fire(void *arg) { ++static_cast<HeapAdapter *>(arg)->fired_; }
  void run_due() {
    now_ = bench::mono_ns();
    while (!heap_.empty() && heap_[0].due <= now_) {
      Timer *t = heap_[0].t;
      remove(t);
      t->fn(t->arg);
    }
  }

  void place(std::uint32_t slot, const Entry &e) {
    heap_[slot] = e;
    e.t->slot = slot;
  }
  void sift_up(std::uint32_t slot) {
    const Entry e = heap_[slot];
    while (slot > 0) {
      const std::uint32_t parent = (slot - 1) / 2;
      if (heap_[parent].due <= e.due) break;
      place(slot, heap_[parent]);
      slot = parent;
    }
    place(slot, e);
  }
  void sift_down(std::uint32_t slot) {
    const Entry e = heap_[slot];
    const std::uint32_t n = static_cast<std::uint32_t>(heap_.size());
    for (;;) {
      std::uint32_t child = 2 * slot + 1;
      if (child >= n) break;
      if (child + 1 < n && heap_[child + 1].due < heap_[child].due) ++child;
      if (e.due <= heap_[child].due) break;
      place(slot, heap_[child]);
      slot = child;
    }
    place(slot, e);
  }
  void remove(Timer *t) {
    const std::uint32_t slot = t->slot;
    t->slot = kIdle;
    const Entry last = heap_.back();
    heap_.pop_back();
    if (slot == heap_.size()) return;  // it was the last one
    heap_[slot] = last;
    last.t->slot = slot;
    if (slot > 0 && heap_[(slot - 1) / 2].due > last.due)
      sift_up(slot);
    else
      sift_down(slot);
  }

  std::uint64_t now_ = 0;
  std::unique_ptr<Timer[]> t_;
  std::vector<Entry> heap_;
  std::uint64_t fired_ = 0;
};

class MultimapAdapter {
 public:
  struct Timer;
  using Map = std::multimap<std::uint64_t, Timer *>;
  struct Timer {
    Map::iterator it;
    bool pending;
    Handler fn;
    void *arg;
  };

  bool init(std::string *) {
    now_ = bench::mono_ns();
    return true;
  }
  void create(std::size_t n) {
    t_.reset(new Timer[n]);
    for (std::size_t i = 0; i < n; ++i) t_[i] = {map_.end(), false, &fire, this};
  }
  void arm(std::uint32_t i, std::uint32_t ms) {
    Timer *t = &t_[i];
    t->it = map_.emplace(now_ + ms * 1'000'000ull, t);
    t->pending = true;
  }
  void cancel(std::uint32_t i) {
    Timer *t = &t_[i];
    map_.erase(t->it);
    t->pending = false;
  }
  void rearm(std::uint32_t i, std::uint32_t ms) {
    Timer *t = &t_[i];
    auto node = map_.extract(t->it);
    node.key() = now_ + ms * 1'000'000ull;
    t->it = map_.insert(std::move(node));
  }
  void flush() {}
  std::uint64_t fired() const { return fired_; }

  std::uint64_t w3(const std::vector<std::uint32_t> &ms) {
    now_ = bench::mono_ns();
    for (std::size_t i = 0; i < ms.size(); ++i) arm(static_cast<std::uint32_t>(i), ms[i]);
    return batch_w3(bench::mono_ns(), kW3MaxMs, [&] { run_due(); });
  }
  std::uint64_t w3rt(const std::vector<std::uint32_t> &ms) {
    now_ = bench::mono_ns();
    for (std::size_t i = 0; i < ms.size(); ++i) arm(static_cast<std::uint32_t>(i), ms[i]);
    const std::uint64_t t0 = bench::process_cpu_ns();
    for (;;) {
      run_due();
      if (map_.empty()) break;
      bench::sleep_until_ns(map_.begin()->first);
    }
    return bench::process_cpu_ns() - t0;
  }

 private:
  static void fire(void *arg) { ++static_cast<MultimapAdapter *>(arg)->fired_; }
  void run_due() {
    now_ = bench::mono_ns();
    while (!map_.empty() && map_.begin()->first <= now_) {
      Timer *t = map_.begin()->second;
      map_.erase(map_.begin());
      t->pending = false;
      t->fn(t->arg);
    }
  }

  std::uint64_t now_ = 0;
  std::unique_ptr<Timer[]> t_;
  Map map_;
  std::uint64_t fired_ = 0;
};

}  // namespace

void register_baselines(std::vector<Lib> &libs) {
  libs.push_back({"heap", "binary heap (bench baseline)", false, false, 1'000'000, &run<HeapAdapter>});
  libs.push_back(
      {"multimap", "std::multimap (bench baseline)", false, false, 1'000'000, &run<MultimapAdapter>});
}

}  // namespace peers
