#!/usr/bin/env bash
# A thin wrapper around `lossbench bench` (cli/bench.cpp), kept for scripts and habits:
#
#   benchmarks/run.sh [--quick] [--filter GLOB] [--json OUT] [--repetitions N] [--threads N]
#                     [--min-time S] [--size BYTES (the large size)] [-- GOOGLE_BENCHMARK_FLAGS...]
#   benchmarks/run.sh compare BASE.json NEW.json [--threshold F] [--alpha A] [--quiet] ...
#
# GLOB is matched against benchmark names (loss/LOSS/IMPL/DTYPE/SIZE/fwd|fwdbwd, e.g.
# 'loss/*/cpu/float32/*'); the speed-of-light roofs (sol/...) always run first. Repetitions are
# randomly interleaved. The program: $LOSSBENCH_BIN, else build/release/lossbench; the benchmark
# binary: $LOSSBENCH_BENCH_BIN, else the one beside the program in its build tree.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
lossbench="${LOSSBENCH_BIN:-$root/build/release/lossbench}"
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then sed -n '2,11p' "${BASH_SOURCE[0]}"; exit 0; fi
[[ -x "$lossbench" ]] || { echo "run.sh: $lossbench not built (cmake --build build/release --target lossbench lossbench_bench)" >&2; exit 2; }
exec "$lossbench" bench "$@"
