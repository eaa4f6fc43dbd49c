#!/usr/bin/env bash
# run.sh SOURCE_DIR BUILD_DIR -- the install_package test (see CMakeLists.txt).
#
# Installs BUILD_DIR into a scratch prefix, then:
#   (a) builds consumer.c with `pkg-config --cflags --libs callout`, runs it,
#       and consumer.cpp (C++17, callout.hpp) the same way;
#   (b) links it statically with `pkg-config --static` (libcallout.a only,
#       then fully static with cc -static), runs it without LD_LIBRARY_PATH
#       and checks it does not need libcallout.so;
#   (c) builds cmake_consumer/ with find_package(callout) and runs it;
#   (d) checks the soname and that only callout_* symbols are exported;
#   (e) checks that the installed header compiles as C11 and as C++17 (and
#       callout.hpp, the C++ layer, as C++17);
#   (g) the kernel-KPI headers (callout/compat/{freebsd,linux,netbsd}.h):
#       each alone in a translation unit as C11 and C++17, and
#       compat_consumer.c per KPI, built, linked and run, via pkg-config and
#       via find_package (compat_consumer/).
# Environment: CC, CXX, CMAKE (set by ctest); CALLOUT_SANITIZE non-empty
# means a sanitizer build, where the test skips itself.
set -euo pipefail

if (($# != 2)); then
  echo "usage: $0 SOURCE_DIR BUILD_DIR" >&2
  exit 2
fi
src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
here="$src/tests/install"
cc=${CC:-cc}
cxx=${CXX:-c++}
cmake=${CMAKE:-cmake}

if [[ -n "${CALLOUT_SANITIZE:-}" ]]; then
  echo "install_package: skipped (sanitizer build: $CALLOUT_SANITIZE)"
  exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/callout-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/prefix"
failures=0

step() { printf '\n--- %s\n' "$*"; }
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}
# run_ok NAME CMD...: CMD must exit 0 and print "ok" as its last line.
run_ok() {
  local name=$1 out
  shift
  if out=$("$@" 2>&1) && [[ "$(tail -n1 <<<"$out")" == ok ]]; then
    echo "$name: ok"
  else
    printf '%s\n' "$out" >&2
    fail "$name did not print ok and exit 0"
  fi
}

step "install into $prefix"
"$cmake" --install "$build" --prefix "$prefix" >"$tmp/install.log" || {
  cat "$tmp/install.log" >&2
  echo "FAIL: cmake --install" >&2
  exit 1
}
for f in include/callout/callout.h lib/pkgconfig/callout.pc lib/libcallout.a \
  lib/cmake/callout/calloutConfig.cmake; do
  [[ -e "$prefix/$f" ]] || fail "not installed: $f"
done
so=$(find "$prefix/lib" -maxdepth 1 -name 'libcallout.so.*.*' -type f | head -n1)
[[ -n "$so" ]] || fail "no libcallout.so.X.Y installed in $prefix/lib"

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
unset PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR

step "(a) pkg-config, shared"
read -ra cflags <<<"$(pkg-config --cflags callout)"
read -ra libs <<<"$(pkg-config --libs callout)"
echo "cflags: ${cflags[*]}"
echo "libs:   ${libs[*]}"
if "$cc" -std=c11 -Wall -Wextra -Werror "${cflags[@]}" -o "$tmp/consumer_shared" \
  "$here/consumer.c" "${libs[@]}"; then
  if grep -q 'NEEDED.*\[libcallout\.so\.1\]' <<<"$(readelf -d "$tmp/consumer_shared")"; then
    echo "consumer_shared needs libcallout.so.1"
  else
    fail "consumer_shared does not need libcallout.so.1"
  fi
  run_ok consumer_shared env LD_LIBRARY_PATH="$prefix/lib" "$tmp/consumer_shared"
else
  fail "(a) compiling consumer.c with pkg-config flags"
fi

step "(a) pkg-config, shared, from C++17 through callout.hpp"
if "$cxx" -std=c++17 -Wall -Wextra -Werror "${cflags[@]}" -o "$tmp/consumer_cpp" \
  "$here/consumer.cpp" "${libs[@]}"; then
  run_ok consumer_cpp env LD_LIBRARY_PATH="$prefix/lib" "$tmp/consumer_cpp"
else
  fail "(a) compiling consumer.cpp with pkg-config flags"
fi

step "(b) pkg-config --static"
read -ra slibs <<<"$(pkg-config --static --libs callout)"
# Both libcallout.so and libcallout.a are in libdir; make -lcallout pick the .a.
static_libs=()
for l in "${slibs[@]}"; do
  if [[ $l == -lcallout ]]; then
    static_libs+=("-Wl,-Bstatic" -lcallout "-Wl,-Bdynamic")
  else
    static_libs+=("$l")
  fi
done
echo "libs:   ${static_libs[*]}"
if "$cc" -std=c11 -Wall -Wextra -Werror "${cflags[@]}" -o "$tmp/consumer_static" \
  "$here/consumer.c" "${static_libs[@]}"; then
  if grep -q 'NEEDED.*libcallout' <<<"$(readelf -d "$tmp/consumer_static")"; then
    fail "consumer_static still needs libcallout.so"
  fi
  run_ok consumer_static env -u LD_LIBRARY_PATH "$tmp/consumer_static"
else
  fail "(b) linking consumer.c statically with pkg-config --static flags"
fi

step "(b) cc -static with pkg-config --static: a fully static program"
read -ra sflags <<<"$(pkg-config --static --cflags --libs callout)"
if "$cc" -static -std=c11 -Wall -Wextra -Werror -o "$tmp/consumer_allstatic" "$here/consumer.c" \
  "${sflags[@]}" 2>"$tmp/allstatic.log"; then
  if grep -q NEEDED <<<"$(readelf -d "$tmp/consumer_allstatic")"; then
    fail "consumer_allstatic has dynamic dependencies"
  fi
  run_ok consumer_allstatic env -u LD_LIBRARY_PATH "$tmp/consumer_allstatic"
else
  cat "$tmp/allstatic.log" >&2
  fail "(b) linking consumer.c with cc -static and pkg-config --static flags"
fi

step "(c) CMake find_package(callout)"
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
if "$cmake" -S "$here/cmake_consumer" -B "$tmp/cmake_consumer" "${generator[@]}" \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_BUILD_TYPE=Release >"$tmp/cmake_consumer.log" 2>&1 &&
  "$cmake" --build "$tmp/cmake_consumer" >>"$tmp/cmake_consumer.log" 2>&1; then
  run_ok "cmake consumer_shared" env -u LD_LIBRARY_PATH "$tmp/cmake_consumer/consumer_shared"
  if [[ -x "$tmp/cmake_consumer/consumer_static" ]]; then
    run_ok "cmake consumer_static" env -u LD_LIBRARY_PATH "$tmp/cmake_consumer/consumer_static"
  fi
else
  cat "$tmp/cmake_consumer.log" >&2
  fail "(c) configuring or building the CMake consumer"
fi

step "(d) soname and exported symbols"
if [[ -n "$so" ]]; then
  soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
  echo "SONAME: $soname"
  [[ $soname == libcallout.so.1 ]] || fail "SONAME is '$soname', want libcallout.so.1"
  [[ -L "$prefix/lib/libcallout.so.1" ]] || fail "no libcallout.so.1 symlink"
  [[ -L "$prefix/lib/libcallout.so" ]] || fail "no libcallout.so development symlink"
  # nm prints versioned names as name@@VERSION; the version node itself is an
  # absolute symbol named CALLOUT_1.0, CALLOUT_1.1, ...
  mapfile -t syms < <(nm -D --defined-only "$so" | awk '{print $3}' | sed 's/@.*//' |
    grep -vEx 'CALLOUT_1\.[0-9]+' | sort -u)
  echo "exported: ${#syms[@]} symbols"
  ((${#syms[@]} > 0)) || fail "no symbols exported"
  bad=()
  for s in "${syms[@]}"; do
    [[ $s == callout_* ]] || bad+=("$s")
  done
  ((${#bad[@]} == 0)) || fail "exported symbols not named callout_*: ${bad[*]}"
  for s in callout_init callout_reset callout_stop callout_halt callout_domain_create \
    callout_domain_advance; do
    grep -qx "$s" <<<"$(printf '%s\n' "${syms[@]}")" || fail "$s is not exported"
  done
  unversioned=$(nm -D --defined-only --with-symbol-versions "$so" | awk '{print $3}' |
    grep '^callout_' | grep -Ev '@@?CALLOUT_1\.[0-9]+$' || true)
  [[ -z $unversioned ]] || fail "symbols without a CALLOUT_1.x version: $unversioned"
  # The 1.1 additions carry CALLOUT_1.1; the 1.0 functions keep CALLOUT_1.0.
  for s in callout_domain_drain callout_fbsd_stop callout_linux_mod; do
    grep -q " $s@@CALLOUT_1\.1$" <<<"$(nm -D --defined-only --with-symbol-versions "$so")" ||
      fail "$s is not in the CALLOUT_1.1 node"
  done
  grep -q " callout_reset@@CALLOUT_1\.0$" <<<"$(nm -D --defined-only --with-symbol-versions "$so")" ||
    fail "callout_reset left the CALLOUT_1.0 node"
fi

step "(e) the header as C11 and C++17"
hdr_c="$tmp/hdr.c"
printf '#include <callout/callout.h>\n#include <callout/callout.h>\nint main(void) { callout_t c; (void)c; return 0; }\n' >"$hdr_c"
cp "$hdr_c" "$tmp/hdr.cpp"
compilers_c=("$cc")
compilers_cxx=("$cxx")
# Both toolchains when available: users may build with either.
for c in gcc clang; do command -v "$c" >/dev/null 2>&1 && compilers_c+=("$c"); done
for c in g++ clang++; do command -v "$c" >/dev/null 2>&1 && compilers_cxx+=("$c"); done
for c in "${compilers_c[@]}"; do
  if "$c" -std=c11 -Wall -Wextra -Werror -pedantic -I"$prefix/include" -c -o /dev/null "$hdr_c"; then
    echo "C11 with $c: ok"
  else
    fail "header does not compile as C11 with $c"
  fi
done
for c in "${compilers_cxx[@]}"; do
  if "$c" -std=c++17 -Wall -Wextra -Werror -pedantic -I"$prefix/include" -c -o /dev/null "$tmp/hdr.cpp"; then
    echo "C++17 with $c: ok"
  else
    fail "header does not compile as C++17 with $c"
  fi
done

# The header-only C++ layer, when there is one, keeps to C++17 too.
if [[ -f "$prefix/include/callout/callout.hpp" ]]; then
  printf '#include <callout/callout.hpp>\n#include <callout/callout.hpp>\nint main() { return 0; }\n' \
    >"$tmp/hpp.cpp"
  for c in "${compilers_cxx[@]}"; do
    if "$c" -std=c++17 -Wall -Wextra -Werror -pedantic -I"$prefix/include" -c -o /dev/null "$tmp/hpp.cpp"; then
      echo "callout.hpp as C++17 with $c: ok"
    else
      fail "callout.hpp does not compile as C++17 with $c"
    fi
  done
fi

step "(f) USDT probes in the installed library"
if [[ "${CALLOUT_HAVE_SDT:-}" == 1 ]]; then
  if "$src/tests/abi/check_symbols.sh" "$so" sdt; then
    echo "probes and exported symbols of the installed $so: ok"
  else
    fail "installed library: missing probes or stray exported symbols"
  fi
else
  echo "skipped: built without <sys/sdt.h> (install systemtap-sdt-dev)"
fi

step "(g) the kernel-KPI headers, via pkg-config and via find_package"
kpis=(freebsd netbsd linux)
for kpi in "${kpis[@]}"; do
  [[ -e "$prefix/include/callout/compat/$kpi.h" ]] || fail "not installed: include/callout/compat/$kpi.h"
done
compat_flags=(-Wall -Wextra -Werror -pedantic)
for kpi in "${kpis[@]}"; do
  KPI=${kpi^^}
  # Alone in a translation unit (twice: the include guard), no other header.
  printf '#include <callout/compat/%s.h>\n#include <callout/compat/%s.h>\nint main(void) { return 0; }\n' \
    "$kpi" "$kpi" >"$tmp/alone_$kpi.c"
  cp "$tmp/alone_$kpi.c" "$tmp/alone_$kpi.cpp"
  for c in "${compilers_c[@]}"; do
    "$c" -std=c11 "${compat_flags[@]}" "${cflags[@]}" -c -o /dev/null "$tmp/alone_$kpi.c" ||
      fail "compat/$kpi.h alone does not compile as C11 with $c"
  done
  for c in "${compilers_cxx[@]}"; do
    "$c" -std=c++17 "${compat_flags[@]}" "${cflags[@]}" -c -o /dev/null "$tmp/alone_$kpi.cpp" ||
      fail "compat/$kpi.h alone does not compile as C++17 with $c"
  done
  # A program using it, linked with pkg-config's flags, as C11 and C++17.
  cp "$here/compat_consumer.c" "$tmp/compat_consumer.cpp"
  if "$cc" -std=c11 "${compat_flags[@]}" -DKPI_$KPI "${cflags[@]}" -o "$tmp/compat_${kpi}_c" \
    "$here/compat_consumer.c" "${libs[@]}"; then
    run_ok "compat_${kpi} (C11, pkg-config)" env LD_LIBRARY_PATH="$prefix/lib" "$tmp/compat_${kpi}_c"
  else
    fail "compat_consumer.c with KPI_$KPI does not build as C11 with pkg-config flags"
  fi
  if "$cxx" -std=c++17 "${compat_flags[@]}" -DKPI_$KPI "${cflags[@]}" -o "$tmp/compat_${kpi}_cxx" \
    "$tmp/compat_consumer.cpp" "${libs[@]}"; then
    run_ok "compat_${kpi} (C++17, pkg-config)" env LD_LIBRARY_PATH="$prefix/lib" "$tmp/compat_${kpi}_cxx"
  else
    fail "compat_consumer.c with KPI_$KPI does not build as C++17 with pkg-config flags"
  fi
done
if "$cmake" -S "$here/compat_consumer" -B "$tmp/compat_consumer" "${generator[@]}" \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_BUILD_TYPE=Release >"$tmp/compat_consumer.log" 2>&1 &&
  "$cmake" --build "$tmp/compat_consumer" >>"$tmp/compat_consumer.log" 2>&1; then
  echo "compat headers alone as C11 and C++17 (find_package): ok"
  for kpi in "${kpis[@]}"; do
    for lang in c cxx; do
      run_ok "cmake compat_${kpi}_$lang" env -u LD_LIBRARY_PATH "$tmp/compat_consumer/compat_${kpi}_$lang"
    done
  done
else
  cat "$tmp/compat_consumer.log" >&2
  fail "(g) configuring or building the CMake compat consumer"
fi

echo
if ((failures > 0)); then
  echo "install_package: $failures check(s) failed"
  exit 1
fi
echo "install_package: all checks passed"
