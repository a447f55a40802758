#!/usr/bin/env bash
# The full results table: one benchmark run of every loss and backend, one PyTorch side-by-side
# run, and benchmarks/RESULTS.md generated from both (benchmarks/README.md).
#   benchmarks/results.sh [--quick] [--out FILE.md] [--threads N]
# Environment: LOSSBENCH (the lossbench program, default build/release/lossbench), TORCH_PYTHON
# (a python with torch 2.2.2, default .venv-torch/bin/python, then /work/torchvenv/bin/python).
# The raw JSON files are kept next to the table's build: build/release/results-{bench,torch}.json.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
lossbench="${LOSSBENCH:-$root/build/release/lossbench}"
quick=() out="$here/RESULTS.md" threads=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) quick=(--quick) ;;
    --out) out="$2"; shift ;;
    --threads) threads="$2"; shift ;;
    -h|--help) sed -n '2,7p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "results.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done
[[ -x "$lossbench" ]] || { echo "results.sh: $lossbench is not built" >&2; exit 2; }
py="${TORCH_PYTHON:-}"
if [[ -z "$py" ]]; then
  for c in "$root/.venv-torch/bin/python" /work/torchvenv/bin/python; do
    [[ -x "$c" ]] && { py="$c"; break; }
  done
fi
[[ -n "$py" ]] || { echo "results.sh: no python with torch (scripts/torch-venv.sh, or TORCH_PYTHON)" >&2; exit 2; }
threads="${threads:-${LOSSBENCH_CPU_THREADS:-$(nproc)}}"
dir="$root/build/release"
"$lossbench" bench "${quick[@]}" --threads "$threads" --json "$dir/results-bench.json" >/dev/null
"$py" "$here/torch_side_by_side.py" "${quick[@]}" --threads "$threads" \
  --plugin "$dir/benchmarks/liblossbench_cpu.so" --json "$dir/results-torch.json" >/dev/null
python3 "$here/results_table.py" "$dir/results-bench.json" --torch "$dir/results-torch.json" \
  --out "$out"
