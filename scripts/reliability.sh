#!/usr/bin/env bash
# reliability.sh -- the reliability checks of libcallout that are not ctests
# (docs/RELIABILITY.md).  CI runs it after the main test run:
#
#   1. spin: exhaustive model check of tests/spin/callout.pml (the cancel
#      protocol), then every bug injected into the model must be caught;
#   2. fuzz: clang + libFuzzer + ASan/UBSan build of tests/fuzz (build-fuzz/),
#      the committed corpus, then a bounded coverage-guided run
#      (FUZZ_SECONDS, default 90);
#   3. valgrind memcheck on build/examples/callout-example, if it was built.
#
# The torture and edge tests are ctests (scripts/test.sh and the sanitizer
# jobs of .ci/run run them).  Installs the Debian packages it needs (spin,
# clang, libFuzzer's runtime, valgrind) if they are missing.  Works from any
# directory.  Exits non-zero if any check fails.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
fuzz_seconds="${FUZZ_SECONDS:-90}"
jobs="${JOBS:-2}"
t_start=$SECONDS
passed=0
failed=0
results=()

section() { printf '\n==================== reliability: %s ====================\n' "$*"; }
record() {  # record NAME STATUS SECONDS
  if [[ $2 == 0 ]]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
  results+=("$(printf '%-10s %s in %ds' "$1" "$([[ $2 == 0 ]] && echo passed || echo FAILED)" "$3")")
}

# ---- packages -----------------------------------------------------------------
section "packages"
packages=(spin clang libclang-rt-14-dev valgrind)
missing=()
for p in "${packages[@]}"; do
  grep -q '^Status: install ok installed' <<<"$(dpkg -s "$p" 2>/dev/null)" || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
  echo "installing ${missing[*]}"
  sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 || { echo "reliability: need root to install ${missing[*]}" >&2; exit 1; }
    sudo=(sudo -n)
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
else
  echo "all of ${packages[*]} present"
fi

# ---- 1. spin --------------------------------------------------------------------
section "spin model check"
t0=$SECONDS
rc=0
tests/spin/check.sh || rc=$?
record spin $rc $((SECONDS - t0))

# ---- 2. fuzz --------------------------------------------------------------------
section "fuzz (libFuzzer, ASan+UBSan)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Every step checked explicitly: `set -e` does not apply inside a function
# called on the left of `||`.
run_fuzz() {
  local dir=build-fuzz generator=()
  [[ -f "$dir/CMakeCache.txt" ]] || generator=(-G Ninja)
  # -fsanitize=fuzzer-no-link instruments the library for coverage too.
  CC=clang CXX=clang++ cmake -S . -B "$dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCALLOUT_FUZZ=ON -DCALLOUT_SANITIZE=address,undefined -DCALLOUT_BUILD_EXAMPLES=OFF \
    -DCMAKE_CXX_FLAGS=-fsanitize=fuzzer-no-link >"$work/configure.log" 2>&1 ||
    { cat "$work/configure.log"; return 1; }
  cmake --build "$dir" -j "$jobs" --target callout_fuzz || return 1
  local fuzzer="$dir/tests/fuzz/callout_fuzz"
  # The committed corpus, each input once.
  "$fuzzer" -runs=0 tests/fuzz/corpus >"$work/corpus.log" 2>&1 || { tail -n 60 "$work/corpus.log"; return 1; }
  grep -E "INITED|DONE" "$work/corpus.log" | tail -n 2
  # A bounded coverage-guided run; new inputs go to a scratch corpus.
  mkdir -p "$work/corpus"
  "$fuzzer" -max_total_time="$fuzz_seconds" -print_final_stats=1 -artifact_prefix="$work/" \
    "$work/corpus" tests/fuzz/corpus >"$work/fuzz.log" 2>&1 ||
    { tail -n 60 "$work/fuzz.log"; ls "$work"/crash-* 2>/dev/null; return 1; }
  grep -E "^#[0-9]+ +DONE|stat::number_of_executed_units|stat::average_exec_per_sec" "$work/fuzz.log"
}
t0=$SECONDS
rc=0
run_fuzz || rc=$?
record fuzz $rc $((SECONDS - t0))

# ---- 3. valgrind ------------------------------------------------------------------
section "valgrind memcheck (examples)"
t0=$SECONDS
rc=0
example=build/examples/callout-example
# The default domain's softclock threads live until exit and are never
# joined (SPEC §3): their thread-local blocks show as "possibly lost".
cat >"$work/valgrind.supp" <<'SUPP'
{
   libcallout-default-domain-threads-live-until-exit
   Memcheck:Leak
   match-leak-kinds: possible
   ...
   fun:_dl_allocate_tls
   ...
   fun:pthread_create*
   ...
   fun:callout_domain_default
}
SUPP
if [[ -x "$example" ]]; then
  valgrind --error-exitcode=1 --leak-check=full --suppressions="$work/valgrind.supp" -q "$example" \
    >"$work/valgrind.out" 2>&1 ||
    { rc=$?; cat "$work/valgrind.out"; }
  ((rc == 0)) && tail -n 3 "$work/valgrind.out"
  record valgrind $rc $((SECONDS - t0))
else
  echo "$example not built: skipped"
fi

section "summary"
printf '%s\n' "${results[@]}"
echo "total      $((SECONDS - t_start))s"
echo "reliability: $passed passed, $failed failed"
((failed == 0))
