// symbols.h -- handler names for the "show callout" dump.
//
// dladdr() sees only the dynamic symbol table, so a handler that is a static
// function of the program (the usual case) would print as a bare address.
// When the library is built with elfutils' libdw, SymbolNames reads the full
// symbol tables (.symtab) of the program and of every library it has loaded,
// as they are mapped now; a stripped file has none, and then the answer falls
// back to dladdr()'s dynamic symbols, and then to the address alone.  It
// never looks for separate debug files (nor asks a debuginfod server): a
// dump must not wait on the network.
#ifndef CALLOUT_SRC_SYMBOLS_H
#define CALLOUT_SRC_SYMBOLS_H

#include "callout/callout.h"

namespace libcallout::internal {

// One lookup session: it reads the process's mappings once, when the first
// name is asked for.  Not thread-safe; allocates and opens files, so never
// use it under a CPU lock.
class SymbolNames {
 public:
  SymbolNames() = default;
  ~SymbolNames();
  SymbolNames(const SymbolNames &) = delete;
  SymbolNames &operator=(const SymbolNames &) = delete;

  // Writes "symbol (0xaddr)" or "0xaddr" for handler into buf.
  void describe(callout_func_t handler, char *buf, unsigned size);

 private:
  void *session_ = nullptr;  // the libdwfl session (Dwfl *), when there is one
  bool tried_ = false;
};

}  // namespace libcallout::internal

#endif  // CALLOUT_SRC_SYMBOLS_H
