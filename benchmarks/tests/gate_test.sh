#!/usr/bin/env bash
# The regression gate: quiet on an unchanged run, fires on a deliberately slowed one
# (LOSSBENCH_BENCH_SLOWDOWN=3 makes every timed iteration take three times as long: -67% of speed of
# light). $BENCH is the lossbench_bench binary.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
export LOSSBENCH_BENCH_BIN="$BENCH"
# One thread: no OpenMP barrier for a busy machine to stretch (both runs alike).
export LOSSBENCH_CPU_THREADS=1
filter='loss/mse_loss/cpu/float32/64KiB/fwd'
run() {
  "$here/run.sh" --quick --filter "$filter" --repetitions 7 --min-time 0.05 --json "$1" >/dev/null
}
run "$tmp/base.json" || { echo "FAIL: base run"; exit 1; }
run "$tmp/same.json" || { echo "FAIL: unchanged run"; exit 1; }
LOSSBENCH_BENCH_SLOWDOWN=3 run "$tmp/slow.json" || { echo "FAIL: slowed run"; exit 1; }

status=0
"$here/run.sh" compare "$tmp/base.json" "$tmp/same.json"
rc=$?
if [[ $rc -ne 0 ]]; then echo "FAIL: the gate fired on an unchanged run (exit $rc)"; status=1; fi
"$here/run.sh" compare "$tmp/base.json" "$tmp/slow.json"
rc=$?
if [[ $rc -ne 1 ]]; then echo "FAIL: the gate did not fire on a 3x slower run (exit $rc)"; status=1; fi
[[ $status -eq 0 ]] && echo "PASS: gate quiet on unchanged, fires on slowed"
exit $status
