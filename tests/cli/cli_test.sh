#!/usr/bin/env bash
# End-to-end checks of the lossbench command: exit codes and stdout discipline.
# Usage: LOSSBENCH=path/to/lossbench cli_test.sh SOURCE_DIR
set -u
src=$1
lb=${LOSSBENCH:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0
check() {  # name expected_rc expect_stdout(empty|nonempty) -- command...
  local name=$1 want=$2 out_kind=$3
  shift 4
  "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  local ok=1
  [ "$rc" -eq "$want" ] || ok=0
  if [ "$out_kind" = empty ] && [ -s "$tmp/out" ]; then ok=0; fi
  if [ "$out_kind" = nonempty ] && [ ! -s "$tmp/out" ]; then ok=0; fi
  if [ $ok -eq 1 ]; then pass=$((pass + 1)); else
    fail=$((fail + 1))
    echo "FAIL $name: rc=$rc (want $want), stdout:"; head -5 "$tmp/out"; echo "stderr:"; head -5 "$tmp/err"
  fi
}
check list 0 nonempty -- "$lb" list
check list-json 0 any -- bash -c "'$lb' list --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert len(d)==21, len(d)'"
check eval 0 nonempty -- "$lb" eval "$src/examples/cases/mse_float32.json"
check eval-json 0 any -- bash -c "'$lb' eval --json '$src/examples/cases/mse_float32.json' | python3 -c '
import json,sys
d=json.load(sys.stdin)
o=d[\"output\"]
assert o[\"dtype\"]==\"float32\" and o[\"shape\"]==[] and len(o[\"exact\"])==1, o
assert len(o[\"exact\"][0].split(\"e\")[0].replace(\"-\",\"\").replace(\".\",\"\"))>=40, o
'"
check eval-stdin 0 nonempty -- bash -c "'$lb' eval - < '$src/examples/cases/mse_float32.json'"
echo '{"loss": "mse_loss", "inputs": ' > "$tmp/bad.json"
check malformed-json 2 empty -- "$lb" eval --json "$tmp/bad.json"
echo '{"loss": "l2_loss", "inputs": {}}' > "$tmp/unknown.json"
check unknown-loss 2 empty -- "$lb" eval --json "$tmp/unknown.json"
echo '{"loss": "mse_loss", "inputs": {"input": {"dtype": "float32", "shape": [2], "data": [1]}, "target": {"dtype": "float32", "shape": [2], "data": [1, 2]}}}' > "$tmp/count.json"
check count-mismatch 2 empty -- "$lb" eval --json "$tmp/count.json"
check count-mismatch-message 0 empty -- bash -c "'$lb' eval '$tmp/count.json' 2>&1 >/dev/null | grep -q 'inputs.input.data: has 1 elements but shape \[2\] needs 2'"
echo '{"loss": "mse_loss", "reduction": "avg", "inputs": {"input": {"dtype": "float32", "shape": [1], "data": [1]}, "target": {"dtype": "float32", "shape": [1], "data": [1]}}}' > "$tmp/red.json"
check bad-reduction 2 empty -- "$lb" eval "$tmp/red.json"
check missing-file 2 empty -- "$lb" eval "$tmp/nope.json"
check no-subcommand 2 empty -- "$lb"
echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
