#!/usr/bin/env bash
# abi.sh [--update] [BUILD_DIR]
# Compares the ABI of BUILD_DIR/libcallout.so (default: build) with the
# released one in abi/libcallout.abi, using libabigail.  Fails on an
# incompatible change; a compatible one (an addition) passes with a note.
# --update rewrites abi/libcallout.abi: do it only for an intended,
# compatible change (new symbols go into a new version node in
# src/callout.map), and commit it with the change.
set -euo pipefail
cd "$(dirname "$0")/.."
update=0
if [ "${1:-}" = --update ]; then update=1; shift; fi
build=${1:-build}
lib=$build/libcallout.so
if ! command -v abidw > /dev/null; then
  if ! dpkg -s abigail-tools > /dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq abigail-tools > /dev/null
  fi
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
abidw --headers-dir include/callout --no-corpus-path --out-file "$tmp/current.abi" "$lib"
if [ $update = 1 ]; then
  cp "$tmp/current.abi" abi/libcallout.abi
  echo "abi: abi/libcallout.abi updated from $lib"
  exit 0
fi
set +e
abidiff --suppressions abi/suppressions.ini --headers-dir2 include/callout abi/libcallout.abi "$tmp/current.abi" > "$tmp/diff.txt"
rc=$?
set -e
# abidiff's status is a bit set: 1 error, 2 usage error, 4 ABI change,
# 8 incompatible ABI change.
if [ $((rc & 11)) -ne 0 ]; then
  cat "$tmp/diff.txt"
  echo "abi: INCOMPATIBLE change against abi/libcallout.abi (abidiff status $rc)"
  exit 1
fi
# abidiff flags only some breaks as "incompatible" (bit 8): a changed struct
# layout is merely "a change".  So anything but pure additions fails here:
# a removed or changed function or variable (directly or through the types
# it uses) needs a deliberate --update.
if [ $((rc & 4)) -ne 0 ]; then
  cat "$tmp/diff.txt"
  if grep -Eq '(Functions|Variables) changes summary: ([1-9][0-9]* Removed|0 Removed, [1-9][0-9]* Changed)' "$tmp/diff.txt"; then
    echo "abi: functions or types of the released ABI changed (see above); if this is intended and"
    echo "abi: compatible, run scripts/abi.sh --update and commit abi/libcallout.abi with the change"
    exit 1
  fi
  echo "abi: additions only (compatible); refresh the baseline with scripts/abi.sh --update"
fi
echo "abi: no incompatible change against abi/libcallout.abi"
