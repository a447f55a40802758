#!/usr/bin/env bash
# lossbench bench: bad arguments fail with exit 2 and name the offending value; every loss of the
# catalog is registered (cpu and reference) and passes its correctness check before timing.
# $LOSSBENCH is the lossbench program, $BENCH the lossbench_bench binary.
set -uo pipefail
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
export LOSSBENCH_BENCH_BIN="$BENCH" LOSSBENCH_CPU_THREADS=1
status=0
fail() { echo "FAIL: $*"; status=1; }

# expect_error EXPECTED_TEXT COMMAND...: exit 2 and EXPECTED_TEXT on stderr.
expect_error() {
  local want="$1" rc
  shift
  "$@" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  [[ $rc -eq 2 ]] || fail "$* exited $rc, not 2"
  grep -qF -- "$want" "$tmp/err" || fail "$*: stderr does not name '$want': $(cat "$tmp/err")"
}
echo '{"benchmarks": [' >"$tmp/broken.json"
echo '{"context": {}}' >"$tmp/nobench.json"
expect_error "$tmp/missing.json" "$LOSSBENCH" bench compare "$tmp/missing.json" "$tmp/broken.json"
expect_error "$tmp/broken.json" "$LOSSBENCH" bench compare "$tmp/broken.json" "$tmp/nobench.json"
expect_error "$tmp/nobench.json" "$LOSSBENCH" bench compare "$tmp/nobench.json" "$tmp/nobench.json"
expect_error "--repetitions" "$LOSSBENCH" bench --repetitions 0
expect_error "--threads" "$LOSSBENCH" bench --threads -1
expect_error "12x" "$LOSSBENCH" bench --size 12x
expect_error "--threshold" "$LOSSBENCH" bench compare "$tmp/nobench.json" "$tmp/nobench.json" --threshold 7
expect_error "--frobnicate" "$LOSSBENCH" bench -- --frobnicate
expect_error "$tmp/nodir" "$LOSSBENCH" bench --json "$tmp/nodir/out.json"
# Google Benchmark writes NaN (the cv of a constant counter): such a file is a valid input.
echo '{"context": {}, "benchmarks": [{"name": "loss/x", "run_name": "loss/x", "run_type": "iteration",
  "pct_sol": 10, "max_ulp": NaN}]}' >"$tmp/nan.json"
"$LOSSBENCH" bench compare "$tmp/nan.json" "$tmp/nan.json" >"$tmp/out" 2>&1 ||
  fail "compare of a file with NaN counters: $(cat "$tmp/out")"
LOSSBENCH_BENCH_BIN="$tmp/nothing" expect_error "$tmp/nothing" "$LOSSBENCH" bench --quick

# Every catalog loss is registered for cpu (both directions, both dtypes) and the reference.
"$LOSSBENCH" list --json >"$tmp/catalog.json" || fail "lossbench list --json"
"$LOSSBENCH" bench --quick -- --benchmark_list_tests=true >"$tmp/list.txt" ||
  fail "lossbench bench --benchmark_list_tests"
python3 - "$tmp/catalog.json" "$tmp/list.txt" <<'PY' || status=1
import json, sys
cat = json.load(open(sys.argv[1]))
losses = [l["id"] for l in cat]
names = {n.removesuffix("/real_time") for n in open(sys.argv[2]).read().split()}
missing = [f"loss/{l}/{i}/{d}/{s}/{x}" for l in losses for i, s in (("cpu", "64KiB"), ("reference", "64el"))
           for d in ("float32", "float64") for x in ("fwd", "fwdbwd")
           if f"loss/{l}/{i}/{d}/{s}/{x}" not in names]
if len(losses) != 21 or missing:
    print(f"FAIL: {len(losses)} catalog losses; not registered: {missing[:8]}")
    sys.exit(1)
print(f"registered: all {len(losses)} losses")
PY

# A real run: every loss's cpu fwdbwd at 64 KiB passes its check (fwd and bwd, reductions none and
# mean, against the reference) and reports pct_sol; the JSON holds the roofs and the context.
"$LOSSBENCH" bench --quick --filter 'loss/*/cpu/float*/64KiB/fwdbwd' --repetitions 1 \
  --min-time 0.001 --json "$tmp/run.json" >/dev/null || fail "the one-repetition run"
python3 - "$tmp/run.json" <<'PY' || status=1
import json, sys
d = json.load(open(sys.argv[1]))
b = d["benchmarks"]
loss = [x for x in b if x["name"].startswith("loss/")]
bad = [f"{x['name']}: {x.get('error_message')}" for x in loss if x.get("error_occurred")]
nosol = [x["name"] for x in loss if not x.get("error_occurred") and not x.get("pct_sol", 0) > 0]
ok = (len(loss) == 42 and not bad and not nosol and any(x["name"].startswith("sol/") for x in b)
      and d["context"].get("git_commit") not in (None, ""))
if not ok:
    print(f"FAIL: {len(loss)} loss benchmarks (want 42); errors {bad}; no pct_sol {nosol}")
    sys.exit(1)
# The transcendental floor's costs are measured in the run (the context names them) and enter
# the speed of light: binary_cross_entropy's SoL is at least its two logs per element.
import re
m = re.fullmatch(r"exp ([0-9.]+), log ([0-9.]+), log1p ([0-9.]+) ns per element on one core "
                 r"\(Highway float32, (avx512|avx2|baseline)\)",
                 d["context"].get("transcendental_cost", ""))
if not m or not all(0 < float(v) < 100 for v in m.groups()[:3]):
    print(f"FAIL: transcendental_cost context: {d['context'].get('transcendental_cost')!r}")
    sys.exit(1)
bce = next(x for x in loss if x["name"].startswith("loss/binary_cross_entropy/cpu/float32/"))
n = int(re.fullmatch(r"n=(\d+)", bce["label"]).group(1))
floor_us = n * 2 * float(m.group(2)) / bce["threads"] * 1e-3
# 1e-3: the context prints each cost to 4 decimals (0.00005 of about 0.17 ns, 3e-4 relative).
if not bce["sol_us"] >= floor_us * (1 - 1e-3):
    print(f"FAIL: binary_cross_entropy sol_us {bce['sol_us']} below its log floor {floor_us}")
    sys.exit(1)
print(f"run: {len(loss)} benchmarks checked against the reference and timed")
PY
[[ $status -eq 0 ]] && echo "PASS: lossbench bench"
exit $status
