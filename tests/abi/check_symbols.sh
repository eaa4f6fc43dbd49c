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
  # Read the notes once, then match without a pipe: "readelf | grep -q"
  # under pipefail fails whenever grep exits at its match before readelf has
  # written its last block (SIGPIPE), and CI once reported a probe missing
  # that was there.  A readelf that fails is named, with its exit status.
  notes=$(readelf -n "$lib") || { echo "readelf -n $lib failed (exit $?)"; exit 1; }
  missing=0
  for p in init destroy schedule migrate entry return stop halt halt_done; do
    grep -q "Name: $p\$" <<<"$notes" || { echo "USDT probe callout:$p missing"; missing=1; }
  done
  if [ "$missing" = 0 ]; then
    echo "USDT probes present"
  else
    printf 'readelf -n %s:\n%s\n' "$lib" "$notes"
    fail=1
  fi
fi
exit $fail
