#!/usr/bin/env bash
# deb.sh -- build the Debian packages, check them with lintian, install them,
# build C and C++ programs against the installed files only and run the
# installed callout-demo briefly (a CI job of .ci/run).
#
#   ./scripts/deb.sh            build, lintian, install, consumers, remove
#   KEEP=1 ./scripts/deb.sh     ... and leave the packages installed
#
# The source tree is copied to a scratch directory (dpkg-buildpackage writes
# the .debs next to the tree it builds); the .debs end up in build-deb/.
# Installing needs root (or sudo); the packages are removed again at the end
# unless KEEP=1, or unless they were installed before.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
./scripts/setup.sh -q dpkg-dev debhelper lintian cmake ninja-build g++ pkg-config systemtap-sdt-dev

sudo=()
if ((EUID != 0)); then sudo=(sudo -n); fi
out="$root/build-deb"
rm -rf "$out"
mkdir -p "$out"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/callout-deb.XXXXXX")
cleanup() {
  local rc=$?
  rm -rf "$tmp"
  if [[ -n ${installed_here:-} && -z ${KEEP:-} ]]; then
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq callout-tools libcallout-dev libcallout1 >/dev/null || rc=1
  fi
  exit $rc
}
trap cleanup EXIT

version=$(dpkg-parsechangelog -l debian/changelog -S Version)
# The package version is the library's: a release bumps both (a new
# debian/changelog entry, e.g. with dch -v X.Y.Z from devscripts).
header=$(awk '/#define CALLOUT_VERSION_(MAJOR|MINOR|PATCH) /{v = v (v == "" ? "" : ".") $3} END{print v}' \
  include/callout/callout.h)
if [[ ${version%%-*} != "$header" ]]; then
  echo "deb: debian/changelog is at $version but include/callout/callout.h says $header" >&2
  exit 1
fi
src="$tmp/libcallout-$version"
mkdir -p "$src"
tar --exclude=./.git --exclude='./build*' -cf - . | tar -C "$src" -xf -

echo "--- dpkg-buildpackage -us -uc -b"
(cd "$src" && dpkg-buildpackage -us -uc -b -j"${JOBS:-2}") >"$out/build.log" 2>&1 || {
  tail -n 60 "$out/build.log" >&2
  echo "deb: dpkg-buildpackage failed (log: $out/build.log)" >&2
  exit 1
}
grep -E '^dpkg-gensymbols|^dpkg-buildpackage: info: binary-only' "$out/build.log" || true
cp "$tmp"/*.deb "$tmp"/*.changes "$tmp"/*.buildinfo "$out"/
ls -l "$out"/*.deb

echo "--- lintian"
# No error and no warning; informational tags are printed, not fatal.
lintian --fail-on error,warning --info "$out"/*.changes

echo "--- contents"
for d in "$out"/*.deb; do
  echo "$(basename "$d"):"
  dpkg-deb -c "$d" | awk '{print "  " $6}' | grep -v '/$'
done

echo "--- install"
if dpkg -s libcallout1 >/dev/null 2>&1; then
  echo "deb: libcallout1 was already installed; it is upgraded and left installed"
else
  installed_here=1
fi
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  "$out"/libcallout1_*.deb "$out"/libcallout-dev_*.deb "$out"/callout-tools_*.deb </dev/null >/dev/null

echo "--- consumers against the installed packages"
here="$root/tests/install"
ok() { [[ "$("$@" | tail -n1)" == ok ]] || { echo "deb: $* did not print ok" >&2; exit 1; }; echo "$*: ok"; }
# Only the system's files: no -I or -L into the source tree.
read -ra flags <<<"$(pkg-config --cflags --libs callout)"
cc -std=c11 -Wall -Wextra -Werror -o "$tmp/c_shared" "$here/consumer.c" "${flags[@]}"
ok "$tmp/c_shared"
c++ -std=c++17 -Wall -Wextra -Werror -o "$tmp/cpp_shared" "$here/consumer.cpp" "${flags[@]}"
ok "$tmp/cpp_shared"
grep -q 'NEEDED.*\[libcallout\.so\.1\]' <<<"$(readelf -d "$tmp/cpp_shared")"
read -ra sflags <<<"$(pkg-config --static --cflags --libs callout)"
cc -static -std=c11 -o "$tmp/c_static" "$here/consumer.c" "${sflags[@]}"
ok "$tmp/c_static"
cmake -S "$here/cmake_consumer" -B "$tmp/cmake" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$tmp/cmake" >/dev/null
ok "$tmp/cmake/consumer_shared"
ok "$tmp/cmake/consumer_static"
# The man pages: one per function name, as the README says.
for p in callout callout_domain callout_halt callout_domain_create; do
  grep -q "/man3/$p\.3" <<<"$(dpkg -L libcallout-dev)" || { echo "deb: no man page $p(3)" >&2; exit 1; }
done
echo "man pages: ok"

echo "--- callout-tools: the installed demo"
[[ "$(command -v callout-demo)" == /usr/bin/callout-demo ]] || { echo "deb: callout-demo is not /usr/bin/callout-demo" >&2; exit 1; }
grep -q '/man1/callout-demo\.1' <<<"$(dpkg -L callout-tools)" || { echo "deb: no man page callout-demo(1)" >&2; exit 1; }
# A one-second run: exit status 0 and the summary printed.
/usr/bin/callout-demo --duration 1 --connections 1000 >"$tmp/demo.out" 2>&1 || {
  cat "$tmp/demo.out" >&2
  echo "deb: callout-demo --duration 1 --connections 1000 failed" >&2
  exit 1
}
grep -q '^Summary: ' "$tmp/demo.out" || { cat "$tmp/demo.out" >&2; echo "deb: callout-demo printed no summary" >&2; exit 1; }
echo "callout-demo --duration 1 --connections 1000: ok"
echo "deb: all checks passed"
