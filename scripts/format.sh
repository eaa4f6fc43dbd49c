#!/usr/bin/env bash
# format.sh [--check] -- clang-format every C and C++ source of the repository
# with the checked-in .clang-format.
#
#   ./scripts/format.sh           rewrite the files in place
#   ./scripts/format.sh --check   change nothing; list the files that differ
#                                 and exit 1 if any does (CI runs this)
#
# Files listed in .clang-format-ignore (one path per line, # comments) are
# left alone: frozen copies such as the released 1.0 header of the ABI test.
set -euo pipefail
cd "$(dirname "$0")/.."
check=0
[[ ${1:-} == --check ]] && check=1
command -v clang-format >/dev/null || { echo "format: clang-format is not installed (apt-get install clang-format)" >&2; exit 2; }
mapfile -t ignore < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' .clang-format-ignore 2>/dev/null || true)
files=()
while IFS= read -r f; do
  skip=0
  for i in "${ignore[@]}"; do [[ $f == "$i" ]] && skip=1; done
  ((skip)) || files+=("$f")
done < <(git ls-files '*.c' '*.cpp' '*.h' '*.hpp')
if ((check == 0)); then
  clang-format -i "${files[@]}"
  echo "format: ${#files[@]} files formatted"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if ((${#bad[@]} != 0)); then
  printf 'format: not clang-format clean: %s\n' "${bad[@]}" >&2
  echo "format: run ./scripts/format.sh and commit the result" >&2
  exit 1
fi
echo "format: ${#files[@]} files clean ($(clang-format --version | head -n1))"
