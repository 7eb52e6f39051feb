#!/bin/sh
# Runs the fuzz_request libFuzzer target (issue: fuzzing).
#
#   test/fuzz/run.sh SECONDS [PATH/TO/fuzz_request] [extra libFuzzer flags...]
#
# The binary defaults to $FUZZ_REQUEST, then build-asan/test/fuzz/fuzz_request;
# this script builds nothing (`make fuzz` does). It first replays every
# reproducer in test/fuzz/regressions/ (each must pass) and checks that the
# seeds still reach the write paths, then fuzzes for SECONDS on a copy of
# the seed corpus in a temporary directory, so the repository is never
# written to. Exit status 0 when nothing was found;
# otherwise non-zero, with the reproducer's path printed (it is kept).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
seconds=${1:?usage: run.sh SECONDS [fuzz_request binary] [libFuzzer flags...]}
shift
if [ $# -gt 0 ] && [ -x "$1" ] && [ ! -d "$1" ]; then
  bin=$1
  shift
else
  bin=${FUZZ_REQUEST:-$here/../../build-asan/test/fuzz/fuzz_request}
fi
[ -x "$bin" ] || { echo "run.sh: no fuzz_request binary at $bin (make fuzz builds it)" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/uvh-fuzz-run.XXXXXX")
# The served tree goes to tmpfs when there is one: the record store syncs.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
  tree=$(mktemp -d /dev/shm/uvh-fuzz-tree.XXXXXX)
else
  tree=$(mktemp -d "$work/tree.XXXXXX")
fi
export UVH_FUZZ_TMPDIR=$tree
cleanup() { rm -rf "$tree"; [ -n "${keep:-}" ] || rm -rf "$work"; }
trap cleanup EXIT INT TERM

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:symbolize=1}
# ubsan.supp lists known, reported findings until they are fixed; anything
# else stops the run (the libraries are built with recoverable UBSan).
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:suppressions=$here/ubsan.supp}

# 1. Known reproducers must stay fixed.
if [ -d "$here/regressions" ] && [ -n "$(ls -A "$here/regressions" 2>/dev/null)" ]; then
  echo "run.sh: replaying $(ls "$here/regressions" | wc -l) regression inputs"
  if ! "$bin" -runs=1 "$here"/regressions/* >"$work/regressions.log" 2>&1; then
    cat "$work/regressions.log" >&2
    keep=1
    echo "run.sh: a regression input fails again (log: $work/regressions.log)" >&2
    exit 1
  fi
fi

# 2. The seeds reach the write paths: for each write method, at least one
#    seed sends it with a loopback Host (writes with another Host are
#    refused, so seeds that only carried those would explore the refusal).
for m in PUT POST DELETE MKCOL; do
  n=0
  for f in "$here"/corpus/*; do
    if grep -a -q -E "^.?$m /" "$f" && grep -a -q -i '^host: localhost' "$f"; then n=$((n + 1)); fi
  done
  if [ "$n" -eq 0 ]; then
    echo "run.sh: no seed in corpus/ sends $m with Host: localhost" >&2
    exit 1
  fi
done

# 3. Fuzz on a copy of the seeds.
mkdir -p "$work/corpus" "$work/artifacts"
cp "$here"/corpus/* "$work/corpus/"
echo "run.sh: fuzzing for $seconds s ($bin, work dir $work)"
{
  rc=0
  "$bin" "$work/corpus" \
    -max_total_time="$seconds" -dict="$here/http.dict" -timeout=10 -rss_limit_mb=2048 \
    -max_len=20000 -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$@" 2>&1 || rc=$?
  echo "$rc" >"$work/status"
} | tee "$work/fuzz.log"
status=$(cat "$work/status" 2>/dev/null || echo 1)
found=$(ls "$work/artifacts" 2>/dev/null || true)
if [ -n "$found" ] || [ "$status" -ne 0 ]; then
  keep=1
  echo "run.sh: the fuzzer found a problem (log: $work/fuzz.log)" >&2
  for f in $found; do
    echo "run.sh: reproducer: $work/artifacts/$f  (replay: $bin $work/artifacts/$f)" >&2
  done
  exit 1
fi
echo "run.sh: no crash in $seconds s"
