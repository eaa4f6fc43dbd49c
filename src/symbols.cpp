// symbols.cpp -- handler names for the dump (symbols.h).
#include "symbols.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "misuse.h"

#ifdef CALLOUT_HAVE_LIBDW
#include <cxxabi.h>
#include <elfutils/libdwfl.h>
#endif

namespace libcallout::internal {

#ifdef CALLOUT_HAVE_LIBDW
namespace {

// No separate debug files: the symbol table of the mapped file is enough to
// name a function, and the standard callback may ask a debuginfod server.
int no_debuginfo(Dwfl_Module *, void **, const char *, Dwarf_Addr, const char *, const char *, GElf_Word,
                 char **) {
  return -1;
}

char *no_debuginfo_path = nullptr;
const Dwfl_Callbacks kCallbacks = {
    .find_elf = dwfl_linux_proc_find_elf,
    .find_debuginfo = no_debuginfo,
    .section_address = nullptr,
    .debuginfo_path = &no_debuginfo_path,
};

// A session over the modules mapped into this process now, or null.
Dwfl *begin_session() {
  Dwfl *dwfl = dwfl_begin(&kCallbacks);
  if (dwfl == nullptr) return nullptr;
  if (dwfl_linux_proc_report(dwfl, getpid()) != 0 || dwfl_report_end(dwfl, nullptr, nullptr) != 0) {
    dwfl_end(dwfl);
    return nullptr;
  }
  return dwfl;
}

}  // namespace
#endif

SymbolNames::~SymbolNames() {
#ifdef CALLOUT_HAVE_LIBDW
  if (session_ != nullptr) dwfl_end(static_cast<Dwfl *>(session_));
#endif
}

void SymbolNames::describe(callout_func_t handler, char *buf, unsigned size) {
#ifdef CALLOUT_HAVE_LIBDW
  if (handler != nullptr) {
    if (!tried_) {
      tried_ = true;
      session_ = begin_session();
    }
    if (session_ != nullptr) {
      const auto addr = reinterpret_cast<Dwarf_Addr>(handler);
      Dwfl_Module *module = dwfl_addrmodule(static_cast<Dwfl *>(session_), addr);
      const char *name = module != nullptr ? dwfl_module_addrname(module, addr) : nullptr;
      if (name != nullptr) {
        // A C++ handler's name is mangled in the symbol table; a C name is
        // not, and then demangling fails and the name is printed as is.
        int status = 0;
        char *demangled = abi::__cxa_demangle(name, nullptr, nullptr, &status);
        std::snprintf(buf, size, "%s (%p)", demangled != nullptr ? demangled : name,
                      reinterpret_cast<const void *>(handler));
        std::free(demangled);
        return;
      }
    }
  }
#else
  (void)session_, (void)tried_;
#endif
  describe_handler(handler, buf, size);
}

}  // namespace libcallout::internal
