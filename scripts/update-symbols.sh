#!/usr/bin/env bash
# update-symbols.sh [LIBRARY] -- regenerate debian/libcallout1.symbols from
# the symbols the shared library exports.
#
# The Debian package build (dh_makeshlibs -- -c4) fails when the library's
# exported symbols differ from that file in any way, so after adding or
# removing a public function:
#   1. set CALLOUT_VERSION_* in include/callout/callout.h to the release that
#      brings the change (a new symbol is recorded with that version: a
#      program using it then depends on libcallout1 of at least that version);
#   2. run this script (it builds build-symbols/ unless LIBRARY, a built
#      libcallout.so.1, is given) and review and commit the diff.
# Symbols already in the file keep their version; new ones, including a new
# version node such as CALLOUT_1.1, get the header's version; symbols no
# longer exported are dropped, which is an ABI break: the soname must change.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out=debian/libcallout1.symbols

lib=${1:-}
if [[ -z $lib ]]; then
  cmake -S . -B build-symbols -G Ninja -DCMAKE_BUILD_TYPE=Release -DCALLOUT_BUILD_TESTS=OFF \
    -DCALLOUT_BUILD_EXAMPLES=OFF -DCALLOUT_BUILD_TOOLS=OFF >/dev/null
  cmake --build build-symbols -j "${JOBS:-2}" --target callout >/dev/null
  lib=build-symbols/libcallout.so.1
fi

version=$(awk '/#define CALLOUT_VERSION_(MAJOR|MINOR|PATCH) /{v = v (v == "" ? "" : ".") $3} END{print v}' \
  include/callout/callout.h)
soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
[[ $soname == libcallout.so.1 ]] || {
  echo "update-symbols: $lib has soname '$soname'; a new soname needs a new package name" >&2
  exit 1
}

# name@VERSION of every defined dynamic symbol (the version node itself is an
# absolute symbol named after it: CALLOUT_1.0@CALLOUT_1.0).
mapfile -t syms < <(nm -D --defined-only --with-symbol-versions "$lib" |
  awk '$2 == "A" && $3 !~ /@/ {print $3 "@" $3; next} {print $3}' | sed 's/@@/@/' | LC_ALL=C sort -u)
((${#syms[@]} > 0)) || { echo "update-symbols: no symbols in $lib" >&2; exit 1; }

declare -A known=()
if [[ -f $out ]]; then
  while read -r sym ver; do
    known[$sym]=$ver
  done < <(sed -n 's/^ \([^ ]*\) \([^ ]*\)$/\1 \2/p' "$out")
fi

tmp=$(mktemp)
{
  echo "libcallout.so.1 libcallout1 #MINVER#"
  echo "* Build-Depends-Package: libcallout-dev"
  added=0
  for s in "${syms[@]}"; do
    v=${known[$s]:-}
    if [[ -z $v ]]; then
      v=$version
      added=$((added + 1))
      echo "update-symbols: new $s ($v)" >&2
    fi
    printf ' %s %s\n' "$s" "$v"
  done
} >"$tmp"
for s in "${!known[@]}"; do
  grep -qxF "$s" <<<"$(printf '%s\n' "${syms[@]}")" || echo "update-symbols: GONE $s (an ABI break)" >&2
done
mv "$tmp" "$out"
echo "update-symbols: $out: ${#syms[@]} symbols"
