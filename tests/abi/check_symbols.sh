#!/usr/bin/env bash
# check_symbols.sh LIB [sdt] -- the exported interface of the shared library:
# every dynamic symbol it defines starts with callout_ and carries a version
# node (CALLOUT_1.0, ...); with "sdt", the USDT probes are in its notes.
set -euo pipefail
lib=$1
fail=0
count=0
while read -r _ _ sym; do
  name=${sym%%@*}
  ver=${sym#*@}
  ver=${ver#@}
  case $name in
    callout_*) count=$((count + 1)) ;;
    CALLOUT_*) continue ;;  # the version node's own symbol
    *) echo "exported symbol outside the callout_ namespace: $sym"; fail=1; continue ;;
  esac
  case $ver in
    CALLOUT_*) ;;
    *) echo "symbol without a CALLOUT_ version node: $sym"; fail=1 ;;
  esac
done < <(nm -D --defined-only --with-symbol-versions "$lib")
echo "exported callout_ symbols: $count"
[ "$count" -ge 30 ] || { echo "too few exported symbols"; fail=1; }
if [ "${2:-}" = sdt ]; then
  for p in init destroy schedule migrate entry return stop halt halt_done; do
    readelf -n "$lib" | grep -q "Name: $p\$" || { echo "USDT probe callout:$p missing"; fail=1; }
  done
  echo "USDT probes present"
fi
exit $fail
