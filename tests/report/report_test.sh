#!/usr/bin/env bash
# lossbench report end to end: a report of the cpu backend and PyTorch's stored outputs on the
# mse_loss cases, plus the committed bench fixtures, rendered in headless Chromium: every image
# must load and the tables must be there; bad input must fail cleanly and leave no folder.
#   LOSSBENCH=build/release/lossbench tests/report/report_test.sh SOURCE_DIR WORK_DIR
set -uo pipefail
src=$1
work=$2
lb=${LOSSBENCH:?set LOSSBENCH to the lossbench program}
fixtures=$src/tests/report
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || { echo "FAIL: chromium not installed (scripts/setup.sh installs it)"; exit 1; }
[ -x "$src/.venv-report/bin/python" ] || [ -n "${LOSSBENCH_REPORT_PYTHON:-}" ] ||
  { echo "FAIL: no .venv-report (run scripts/report-venv.sh)"; exit 1; }

rm -rf "$work" && mkdir -p "$work"
cd "$src"
"$lb" check --impl cpu --golden golden/corpus --budgets optimized/budgets.txt \
  --filter 'mse_loss/*' --json "$work/cpu.json" --repro-dir "$work/repro" >"$work/check.log"
"$lb" check --impl torch --results golden/corpus/torch-2.2.2.jsonl --golden golden/corpus \
  --filter 'mse_loss/*' --json "$work/torch.json" --repro-dir "$work/repro" >>"$work/check.log"
[ -s "$work/cpu.json" ] && [ -s "$work/torch.json" ] || { cat "$work/check.log"; exit 1; }

# Renders FILE in headless Chromium; prints the DOM after the load event.
render() {
  timeout 120 "$browser" --headless --no-sandbox --disable-gpu --user-data-dir="$work/chromium" \
    --dump-dom "file://$1" 2>"$work/chromium.log"
}
# "LOADED TOTAL" from the page's own image count (see HTML_HEAD in reports/report.py).
images() {
  sed -n 's/.*id="image-check" data-loaded="\([0-9]*\)" data-total="\([0-9]*\)".*/\1 \2/p' "$1"
}

out=$work/report
"$lb" report --check "$work/cpu.json" --check "$work/torch.json" \
  --bench "$fixtures/bench-fixture.json" --torch-bench "$fixtures/torch-bench-fixture.json" \
  --out "$out" --title "report test" --summary >"$work/report.log" 2>&1 ||
  { cat "$work/report.log"; fail "lossbench report exited with $?"; }
for f in README.md index.html max-ulp-cpu.png max-ulp-torch.png ulp-histogram-cpu.png \
  ulp-histogram-torch.png speedup-vs-torch.png throughput-64KiB-fwd.png \
  cases/cpu/mse_loss-float32.json cases/torch/mse_loss-float32.json; do
  [ -s "$out/$f" ] || fail "$f not written"
done
[ ! -e "$out.tmp" ] || fail "$out.tmp left behind"
grep -q '^| loss | dtype | reduction | lossbench cpu \[A\] | PyTorch 2.2 CPU \[B\] |' "$out/README.md" ||
  fail "README.md: no accuracy table with both implementations"
grep -q '](cases/cpu/mse_loss-float32' "$out/README.md" || fail "README.md: no link to a worst case"
grep -q 'PyTorch 2.2 CPU *[0-9]* pass' "$work/report.log" || fail "no summary line for PyTorch"
# The worst case replays with the command written into it.
replay=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["meta"]["replay"])' \
  "$out/cases/cpu/mse_loss-float32.json")
[ "$replay" = "lossbench eval cases/cpu/mse_loss-float32.json --impl cpu --grad" ] ||
  fail "unexpected replay command: $replay"
(cd "$out" && "$lb" eval cases/cpu/mse_loss-float32.json --impl cpu --grad >/dev/null) ||
  fail "the worst case does not replay"

# The page in a browser: every image loads, the tables are there.
render "$out/index.html" >"$work/dom.html" || fail "chromium exited with $? (see $work/chromium.log)"
read -r loaded total <<<"$(images "$work/dom.html")"
echo "images loaded: ${loaded:-?}/${total:-?}"
[ -n "${total:-}" ] && [ "$total" -ge 8 ] && [ "$loaded" = "$total" ] ||
  fail "images: ${loaded:-none}/${total:-none} loaded"
for t in accuracy verdicts throughput speedup context; do
  grep -q "<table id=\"$t\">" "$work/dom.html" || fail "no table $t in the rendered page"
done
grep -q '<a href="cases/cpu/mse_loss-float32' "$work/dom.html" || fail "no worst-case link"
# The check itself can fail: a page with a broken image is caught.
sed '0,/base64,iVBOR/s//base64,AAAAA/' "$out/index.html" >"$work/broken.html"
render "$work/broken.html" >"$work/broken-dom.html"
read -r bl bt <<<"$(images "$work/broken-dom.html")"
[ -n "${bt:-}" ] && [ "$bl" -lt "$bt" ] || fail "a broken image went unnoticed (${bl:-?}/${bt:-?})"

# Only what was measured: without bench input the sections say so.
"$lb" report --check "$work/cpu.json" --out "$work/only-check" >/dev/null 2>&1 || fail "check-only"
grep -q 'Throughput of lossbench: not measured' "$work/only-check/README.md" ||
  fail "check-only report: throughput not marked 'not measured'"
grep -q 'PyTorch side by side: not measured' "$work/only-check/README.md" ||
  fail "check-only report: speed-up not marked 'not measured'"

# Bad input: exit 2, a message naming the file, the previous folder untouched, nothing half-written.
before=$(sha256sum "$out/index.html")
expect_bad() {
  local what=$1 pattern=$2
  shift 2
  "$lb" report "$@" --out "$out" >"$work/bad.log" 2>&1
  local rc=$?
  [ $rc -eq 2 ] || fail "$what: exit $rc, expected 2"
  grep -q -- "$pattern" "$work/bad.log" || fail "$what: message does not name '$pattern': $(cat "$work/bad.log")"
}
expect_bad "missing file" "$work/missing.json" --check "$work/missing.json"
expect_bad "check file as bench" "cpu.json: expected Google Benchmark JSON" --bench "$work/cpu.json"
echo '{"impl": "cpu", "summary": {}, "cases": [{"id": "x", "loss": "mse_loss", "dtype": "float32", "verdict": "pass", "scores": {"output": {"max_ulp": "many"}}}]}' >"$work/bad.json"
expect_bad "bad max_ulp" "bad.json: case x: score \"output\": max_ulp 'many'" --check "$work/bad.json"
[ "$(sha256sum "$out/index.html")" = "$before" ] || fail "a failed report changed the previous one"
[ ! -e "$out.tmp" ] || fail "a failed report left $out.tmp"

if [ $failures -gt 0 ]; then
  echo "report_test: $failures failures"
  exit 1
fi
echo "report_test: OK"
