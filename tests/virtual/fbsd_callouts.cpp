// fbsd_callouts.cpp -- FreeBSD-style callouts for virtual_test.cpp: kernel
// idioms (init, reset, stop, drain, free) through <callout/compat/freebsd.h>.
#include "fbsd_callouts.h"

#include <callout/compat/freebsd.h>

#include <cstring>
#include <utility>
#include <vector>

struct fbsd_callouts {
  std::vector<struct callout *> cs;
};

namespace {
void fbsd_nothing(void *) {}
}  // namespace

fbsd_callouts *fbsd_callouts_new(callout_domain_t *d, int n) {
  auto *set = new fbsd_callouts;
  for (int i = 0; i < n; ++i) {
    auto *c = new struct callout;
    callout_init_on(c, 1, d);
    // A minute ahead on the test's monotonic domain: still pending when the
    // test stops the first one and asks the domain to go, however loaded
    // the machine.
    callout_reset(c, 60000 + i, fbsd_nothing, nullptr);
    set->cs.push_back(c);
  }
  return set;
}

int fbsd_callouts_stop_first(fbsd_callouts *set) { return callout_stop(set->cs.front()); }

void fbsd_callouts_drain_and_free(fbsd_callouts *set) {
  for (struct callout *c : set->cs) {
    callout_drain(c);
    std::memset(c, 0x5a, sizeof *c);
    delete c;
  }
  delete set;
}

namespace {
void record_cpu(void *arg) {
  auto *where = static_cast<std::pair<callout_domain_t *, int> *>(arg);
  where->second = callout_domain_curcpu(where->first);
}
}  // namespace

int fbsd_curcpu_lands_on(callout_domain_t *d) {
  std::pair<callout_domain_t *, int> where{d, -1};
  struct callout c;
  callout_init_on(&c, 1, d);
  callout_reset_curcpu(&c, 1, record_cpu, &where);
  callout_domain_advance(d, 1);
  callout_drain(&c);
  return where.second;
}
