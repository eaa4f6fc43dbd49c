// consumer.cpp -- a C++17 program outside libcallout, built only against the
// installed <callout/callout.hpp> and library (the Debian package test,
// scripts/deb.sh, and the subproject test, tests/subproject/).
//
// Manual-clock domain; a timer reset for 3 ms at hz 1000 waits 4 ticks
// (rounded up, plus the tick in progress): advancing 3 runs nothing, one
// more runs its handler exactly once.  Prints "ok" and returns 0 on success.
#include <atomic>
#include <callout/callout.hpp>
#include <chrono>
#include <cstdio>

using namespace std::chrono_literals;

#define CHECK(cond)                                                                 \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "consumer.cpp:%d: check failed: %s\n", __LINE__, #cond); \
      return 1;                                                                     \
    }                                                                               \
  } while (0)

int main() {
  libcallout::domain_config cfg;
  cfg.clock = libcallout::clock_kind::manual;
  libcallout::domain d{cfg};
  std::atomic<int> calls{0};
  {
    libcallout::timer t{d, "consumer"};
    t.reset(3ms, [&calls] { calls.fetch_add(1); });
    CHECK(t.pending());
    d.advance(3);
    CHECK(calls.load() == 0);
    d.advance(1);
    CHECK(calls.load() == 1);
    CHECK(!t.pending());
    d.advance(10);
    CHECK(calls.load() == 1);
  }
  std::puts("ok");
  return 0;
}
