#!/usr/bin/env bash
# CI benchmark gate (< 5 minutes on 2 cores): --quick on the `cpu` backend, 5 interleaved
# repetitions, compared with the committed benchmarks/baseline.json on percent of speed of light
# (a median drop of 25% or more that is also significant, p < 0.05, fails).
#   benchmarks/ci.sh [OUT.json]          (refresh the baseline: benchmarks/ci.sh benchmarks/baseline.json)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/../build/release/bench-ci.json}"
# One thread by default: a 2-thread OpenMP barrier on a 2-vCPU VM with neighbours measures the
# neighbours (LOSSBENCH_CPU_THREADS=2 benchmarks/ci.sh for the 2-thread gate, with a 2-thread
# baseline).
export LOSSBENCH_CPU_THREADS="${LOSSBENCH_CPU_THREADS:-1}"
"$here/run.sh" --quick --filter 'loss/*/cpu/*' --repetitions 5 --min-time 0.02 --json "$out" >/dev/null
if [[ "$(realpath "$out")" == "$(realpath "$here/baseline.json")" ]]; then
  # Keep only what the gate and a reader need (the raw file is ~700 KB).
  python3 - "$out" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
keep = ("name", "run_name", "run_type", "repetition_index", "iterations", "real_time", "time_unit",
        "error_occurred", "error_message", "pct_sol", "roof_GBps", "max_ulp", "bytes_per_second",
        "sol_us", "threads", "label")
d["benchmarks"] = [{k: b[k] for k in keep if k in b} for b in d["benchmarks"]
                   if b.get("run_type") == "iteration"]
with open(sys.argv[1], "w") as f:
    json.dump(d, f, indent=0)
    f.write("\n")
PY
  echo "ci.sh: baseline written to $out"
  exit 0
fi
# Noise handling, beyond the median and the significance test: a benchmark that regressed is
# run again on its own (9 repetitions) and fails the gate only if it regresses again.
suspects="$(mktemp)"
trap 'rm -f "$suspects"' EXIT
rc=0
python3 "$here/compare.py" "$here/baseline.json" "$out" --quiet --regressions-out "$suspects" || rc=$?
[[ $rc -ne 1 ]] && exit $rc
regex="^($(paste -sd'|' "$suspects"))\$"
echo "ci.sh: confirming $(wc -l <"$suspects") suspected regressions"
"$here/run.sh" --quick --repetitions 9 --min-time 0.05 --json "$out.confirm.json" \
  -- "--benchmark_filter=$regex" >/dev/null
python3 "$here/compare.py" "$here/baseline.json" "$out.confirm.json" --quiet
