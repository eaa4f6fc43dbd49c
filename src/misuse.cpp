// misuse.cpp -- the abort path for caller bugs.
#include "misuse.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>

namespace libcallout::internal {

void describe_handler(callout_func_t handler, char *buf, unsigned size) {
  Dl_info info{};
  const void *addr = reinterpret_cast<const void *>(handler);
  if (handler != nullptr && dladdr(addr, &info) != 0 && info.dli_sname != nullptr)
    std::snprintf(buf, size, "%s (%p)", info.dli_sname, addr);
  else
    std::snprintf(buf, size, "%p", addr);
}

void misuse(const char *function, const void *callout, callout_func_t handler, const char *what) {
  char h[256];
  describe_handler(handler, h, sizeof h);
  std::fprintf(stderr, "libcallout: %s: callout %p (handler %s): %s\n", function, callout, h, what);
  std::fflush(stderr);
  std::abort();
}

void misuse_domain(const char *function, const void *domain, const char *what) {
  std::fprintf(stderr, "libcallout: %s: domain %p: %s\n", function, domain, what);
  std::fflush(stderr);
  std::abort();
}

}  // namespace libcallout::internal
