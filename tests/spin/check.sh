#!/usr/bin/env bash
# check.sh -- model-check tests/spin/callout.pml with spin.
#
#   tests/spin/check.sh            exhaustive check of both configurations
#                                  (lock-associated and MPSAFE callout), then
#                                  every injected bug must give a counterexample
#   tests/spin/check.sh --no-bugs  only the exhaustive checks
#
# Exits non-zero if a configuration has an error (assertion violated or an
# invalid end state, i.e. a halt that waits forever), if a search could not
# finish (memory bound), or if an injected bug goes unnoticed.  Needs spin
# and a C compiler (scripts/reliability.sh installs spin).
# SPIN_MEMLIM_MB (default 6144) bounds the memory of one search.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$here/callout.pml" "$work/"
cd "$work"
memlim="${SPIN_MEMLIM_MB:-6144}"

# run_pan NAME DEFINES...: builds and runs the verifier; sets errors, states,
# complete (1 if the search was exhaustive).
run_pan() {
  local name=$1
  shift
  spin -a "$@" callout.pml >/dev/null
  # -DSAFETY: assertions and invalid end states; -DCOLLAPSE: exact state
  # compression (the search stays exhaustive).
  cc -O2 -w -DSAFETY -DCOLLAPSE -DMEMLIM="$memlim" -o pan pan.c
  local t0=$SECONDS
  ./pan -m1000000 -w26 >"pan-$name.out" 2>&1 || true
  errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "pan-$name.out" | head -n1)
  states=$(sed -n 's/^ *\([0-9e+.]*\) states, stored.*/\1/p' "pan-$name.out" | head -n1)
  complete=1
  grep -q "reached -DMEMLIM bound\|out of memory" "pan-$name.out" && complete=0
  elapsed=$((SECONDS - t0))
  : "${errors:=?}" "${states:=?}"
}

status=0
for assoc in 1 0; do
  name="assoc$assoc"
  run_pan "$name" -DASSOC=$assoc
  kind=$([[ $assoc == 1 ]] && echo "callout_init_mtx callout" || echo "MPSAFE callout")
  if [[ "$errors" == 0 && $complete == 1 ]]; then
    printf 'spin: %-24s exhaustive: %s states, 0 errors (%ds)\n' "$kind" "$states" "$elapsed"
  else
    printf 'spin: %-24s FAILED: errors %s, complete %s (%ds)\n' "$kind" "$errors" "$complete" "$elapsed"
    grep -E "pan:|assertion|invalid end" "pan-$name.out" | head -n5
    status=1
  fi
done

if [[ "${1:-}" != "--no-bugs" ]]; then
  # Each bug must be caught (a counterexample: errors >= 1).
  for bug in BUG_HALT_NOWAIT BUG_HALT_FIRED BUG_HALT_NORESTOP BUG_LOST_WAKEUP BUG_MIGRATE_RUNNING \
             BUG_STOP_NO_CANCEL; do
    run_pan "$bug" -DASSOC=1 -D"$bug"
    what=$(grep -m1 -E "assertion violated|invalid end state" "pan-$bug.out" | sed 's/^pan:[0-9]*: *//' || true)
    if [[ "$errors" != "?" && "$errors" -ge 1 ]]; then
      printf 'spin: %-20s caught: %s\n' "$bug" "${what:-error}"
    else
      printf 'spin: %-20s NOT CAUGHT (errors %s)\n' "$bug" "$errors"
      status=1
    fi
  done
fi
exit $status
