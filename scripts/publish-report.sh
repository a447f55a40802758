#!/usr/bin/env bash
# Regenerates the published report end to end: lossbench `cpu` against PyTorch 2.2 CPU on this
# machine, into reports/published/<date>-cpu/ (reports/README.md). Run it on a quiet machine.
#
#   scripts/publish-report.sh [--quick] [--out DIR]
#
# --quick: quick benchmark sizes and repetitions (a trial, minutes instead of an hour).
# Phases: accuracy of cpu over the golden corpus; PyTorch 2.2.2 from its stored outputs; the
# benchmarks (loss/*/cpu/*); PyTorch side by side (.venv-torch, or $LOSSBENCH_TORCH_VENV);
# lossbench report. The intermediate JSON stays in build/release/publish/.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0 out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --out) out=$2; shift ;;
    *) echo "publish-report.sh: unknown argument '$1' (usage: [--quick] [--out DIR])" >&2; exit 2 ;;
  esac
  shift
done
date=$(date -u +%Y-%m-%d)
out=${out:-reports/published/$date-cpu}
work=build/release/publish
lb=build/release/lossbench
phase() { echo "== [$1/6 $(date -u +%H:%M:%S)] $2"; }

phase 1 "dependencies and build"
scripts/setup.sh
scripts/report-venv.sh
scripts/torch-venv.sh
torch_python=${LOSSBENCH_TORCH_VENV:-.venv-torch}/bin/python
cmake --preset release >/dev/null
cmake --build --preset release --target lossbench lossbench_bench lossbench_cpu_plugin
rm -rf "$work" && mkdir -p "$work"
LOSSBENCH_GIT_COMMIT="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
[ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] || LOSSBENCH_GIT_COMMIT+="-dirty"
export LOSSBENCH_GIT_COMMIT

# lossbench check exits 1 when a case fails: that is a result to report, not an error.
check() { "$lb" check "$@" >"$work/check.log" || [ $? -eq 1 ]; tail -1 "$work/check.log"; }
phase 2 "accuracy of lossbench cpu over the golden corpus"
check --impl cpu --golden golden/corpus --budgets optimized/budgets.txt \
  --json "$work/check-cpu.json" --repro-dir "$work/repro-cpu"
phase 3 "PyTorch 2.2.2 CPU, scored from its stored outputs"
check --impl torch --results golden/corpus/torch-2.2.2.jsonl --golden golden/corpus \
  --json "$work/check-torch.json" --repro-dir "$work/repro-torch"
quick_flag=()
[ $quick -eq 1 ] && quick_flag=(--quick)
# The full selection (about 25 minutes on the project's 2-core machine): cpu at 256 MiB per
# tensor, float32 and float64; the opt-in cpu-fast at 256 MiB, float32 (the losses it evaluates
# in float; the others are cpu-avx512's); every ISA path at 64 KiB (cache-resident), float32; the
# reference at its small size; 3 interleaved repetitions. PyTorch: float32 at 64 KiB and 256 MiB.
fast='binary_cross_entropy|binary_cross_entropy_with_logits|soft_margin_loss|poisson_nll_loss|gaussian_nll_loss|kl_div|multilabel_soft_margin_loss|cross_entropy'
select="^(sol/.*|loss/[^/]+/cpu/float(32|64)/256MiB/.*|loss/($fast)/cpu-fast/float32/256MiB/.*|loss/[^/]+/cpu-(scalar|avx2|avx512)/float32/64KiB/.*|loss/[^/]+/reference/.*)$"
phase 4 "benchmarks of lossbench cpu"
if [ $quick -eq 1 ]; then
  "$lb" bench --quick --filter 'loss/*/cpu/*' --json "$work/bench.json" >"$work/bench.log"
else
  "$lb" bench --repetitions 3 --json "$work/bench.json" -- "--benchmark_filter=$select" \
    >"$work/bench.log"
fi
tail -3 "$work/bench.log"
phase 5 "PyTorch side by side (benchmarks/torch_side_by_side.py)"
torch_args=(--sizes 64KiB,256MiB --dtypes float32 --directions fwd,fwdbwd --reps 3)
[ $quick -eq 1 ] && torch_args=(--quick)
"$torch_python" benchmarks/torch_side_by_side.py "${torch_args[@]}" \
  --plugin build/release/benchmarks/liblossbench_cpu.so \
  --json "$work/torch-bench.json" >"$work/torch-bench.log"
tail -3 "$work/torch-bench.log"
phase 6 "the report"
"$lb" report --check "$work/check-cpu.json" --check "$work/check-torch.json" \
  --bench "$work/bench.json" --torch-bench "$work/torch-bench.json" \
  --golden golden/corpus --out "$out" --summary \
  --title "lossbench cpu against PyTorch 2.2 CPU, $date$([ $quick -eq 1 ] && echo ' (quick)')"
