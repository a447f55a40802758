#!/usr/bin/env bash
# lossbench bench: runs the benchmark binary with the right flags, or compares two result files.
#
#   benchmarks/run.sh [--quick] [--filter GLOB] [--json OUT] [--repetitions N] [--min-time S]
#                     [--size BYTES (the large size, per input tensor)] [-- GOOGLE_BENCHMARK_FLAGS...]
#   benchmarks/run.sh compare BASE.json NEW.json [compare.py flags]
#
# GLOB is matched against benchmark names (loss/LOSS/IMPL/DTYPE/SIZE/fwd|fwdbwd, e.g.
# 'loss/*/cpu/float32/*'); the speed-of-light roofs (sol/...) always run first. Repetitions are
# randomly interleaved. The binary: $LOSSBENCH_BENCH_BIN, else build/release/benchmarks/lossbench_bench.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"

if [[ "${1:-}" == "compare" ]]; then
  shift
  exec python3 "$here/compare.py" "$@"
fi

bin="${LOSSBENCH_BENCH_BIN:-$root/build/release/benchmarks/lossbench_bench}"
quick=0 filter="" json="" reps="" min_time="" size="" extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) quick=1 ;;
    --filter) filter="$2"; shift ;;
    --filter=*) filter="${1#*=}" ;;
    --json) json="$2"; shift ;;
    --json=*) json="${1#*=}" ;;
    --repetitions) reps="$2"; shift ;;
    --min-time) min_time="$2"; shift ;;
    --size) size="$2"; shift ;;
    --size=*) size="${1#*=}" ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,11p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "run.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done
[[ -x "$bin" ]] || { echo "run.sh: $bin not built (cmake --build build/release --target lossbench_bench)" >&2; exit 2; }

# A glob to an anchored regular expression (Google Benchmark filters are regexes).
glob_to_regex() {
  local g="$1" out="" c i
  for ((i = 0; i < ${#g}; i++)); do
    c="${g:i:1}"
    case "$c" in
      '*') out+='.*' ;;
      '?') out+='.' ;;
      [.+\(\)\[\]\{\}\^\$\|\\]) out+="\\$c" ;;
      *) out+="$c" ;;
    esac
  done
  printf '%s' "$out"
}

flags=()
[[ -n "$size" ]] && flags+=("--size=$size")
if [[ $quick == 1 ]]; then
  flags+=(--quick)
  reps="${reps:-5}" min_time="${min_time:-0.02}"
else
  reps="${reps:-5}" min_time="${min_time:-0.2}"
fi
flags+=("--benchmark_repetitions=$reps" "--benchmark_min_time=$min_time"
        --benchmark_enable_random_interleaving=true --benchmark_counters_tabular=true)
[[ $reps -gt 1 ]] && flags+=(--benchmark_display_aggregates_only=true)
if [[ -n "$filter" ]]; then
  flags+=("--benchmark_filter=^(sol/.*|$(glob_to_regex "$filter")(/real_time)?)\$")
fi
if [[ -n "$json" ]]; then
  flags+=("--benchmark_out=$json" --benchmark_out_format=json)
fi
LOSSBENCH_GIT_COMMIT="$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
  LOSSBENCH_GIT_COMMIT+="-dirty"
fi
export LOSSBENCH_GIT_COMMIT
exec "$bin" "${flags[@]}" "${extra[@]}"
