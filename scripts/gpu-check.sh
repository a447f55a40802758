#!/usr/bin/env bash
# The CUDA backend's checks on a machine with a GPU, in one command:
#   timeout 480 scripts/gpu-check.sh [JOBS=16]
# Configures (release preset; the cuda backend is built whenever nvcc is found), builds only the
# targets it needs, runs the CUDA tests over the committed corpus (test_cuda: scorer within
# optimized/budgets.txt, 16-bit rounding, reproducible reductions, nvcc formulas), then the
# bandwidth benchmark (copy kernel; each loss forward, 256 MiB float32 inputs), and prints a
# short table last. Exit status: non-zero when a step fails.
set -uo pipefail
cd "$(dirname "$0")/.."
JOBS="${1:-16}"
export PATH="/usr/local/cuda/bin:$PATH"
LOG="$(mktemp -d)"
status() { printf '%-28s %s\n' "$1" "$2" >>"$LOG/table"; }
t0=$(date +%s)

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

if cmake --preset release -DLOSSBENCH_CUDA=ON >"$LOG/configure" 2>&1 &&
   grep -q "lossbench: CUDA backend" "$LOG/configure"; then
  status configure "ok"
else
  tail -30 "$LOG/configure"; status configure "FAILED (no CUDA compiler?)"; cat "$LOG/table"; exit 1
fi
tb=$(date +%s)
if cmake --build build/release -j"$JOBS" --target test_cuda lossbench-cuda-bench lossbench \
     >"$LOG/build" 2>&1; then
  status build "ok ($(( $(date +%s) - tb )) s)"
else
  tail -40 "$LOG/build"; status build "FAILED"; cat "$LOG/table"; exit 1
fi

rc=0
build/release/optimized/cuda/test_cuda --gtest_brief=0 2>&1 | tee "$LOG/test"
if [ "${PIPESTATUS[0]}" -eq 0 ] && ! grep -q "SKIPPED" "$LOG/test"; then
  status "test_cuda" "ok ($(grep -c '^\[       OK \]' "$LOG/test") tests)"
else
  status "test_cuda" "FAILED or skipped (see above)"; rc=1
fi
build/release/lossbench check --impl cuda --golden golden/corpus --budgets optimized/budgets.txt \
  --json "$LOG/check.json" 2>&1 | tail -15 | tee "$LOG/check"
if [ "${PIPESTATUS[0]}" -eq 0 ]; then
  status "lossbench check --impl cuda" "ok: $(grep -o '[0-9]* pass.*' "$LOG/check" | tail -1)"
else
  status "lossbench check --impl cuda" "FAILED: $(grep -o '[0-9]* pass.*' "$LOG/check" | tail -1)"; rc=1
fi

build/release/optimized/cuda/lossbench-cuda-bench 256 float32 10 2>&1 | tee "$LOG/bench"
[ "${PIPESTATUS[0]}" -eq 0 ] && status bench ok || { status bench FAILED; rc=1; }

echo
echo "================ gpu-check summary ($(( $(date +%s) - t0 )) s) ================"
cat "$LOG/table"
grep '^\[cuda\] 16-bit\|^\[cuda\] verdicts\|^\[nvcc\]' "$LOG/test" || true
echo "--- bandwidth (GB/s of inputs + output; % of the copy kernel) ---"
sed -n '/^loss /,$p' "$LOG/bench"
exit $rc
