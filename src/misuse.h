// misuse.h -- how the library reports a caller's bug (SPEC §5).
//
// One line on stderr naming the function, the callout's address and its
// handler (address and, where dladdr finds one, symbol), then abort().  The
// library never corrupts a wheel to carry on.
#ifndef CALLOUT_SRC_MISUSE_H
#define CALLOUT_SRC_MISUSE_H

#include "callout/callout.h"

namespace libcallout::internal {

[[noreturn]] void misuse(const char *function, const void *callout, callout_func_t handler, const char *what);

// For misuse that involves no callout (giant_exit without giant_enter).
[[noreturn]] void misuse_domain(const char *function, const void *domain, const char *what);

// Writes "symbol" or "0xaddr" for a handler into buf.
void describe_handler(callout_func_t handler, char *buf, unsigned size);

}  // namespace libcallout::internal

#endif  // CALLOUT_SRC_MISUSE_H
