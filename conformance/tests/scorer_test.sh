#!/usr/bin/env bash
# The scorer end to end: the reference passes at 0.5 ULP; a wrong plugin is caught with the
# right cases and reproducers; crashing and hanging plugins fail their cases and the run goes on;
# xfail, budgets, results files, JSON and JUnit reports.
# Environment: CHECK (lossbench-check), MKCORPUS (lossbench-mkcorpus), PLUGINS (their dir).
# Argument: the directory of test case documents (one subdirectory per group).
set -u
CASES=$1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
expect_rc() {  # expected actual what
  [ "$1" = "$2" ] || fail "$3: exit code $2, expected $1"
}
has() {  # file pattern what
  grep -q -- "$2" "$1" || { fail "$3: no '$2' in output"; sed 's/^/    /' "$1"; }
}
hasnt() {
  if grep -q -- "$2" "$1"; then fail "$3: unexpected '$2'"; sed 's/^/    /' "$1"; fi
}

"$MKCORPUS" "$T/corpus" "$CASES"/*/*.json || { echo "FAIL: mkcorpus"; exit 1; }
C="--golden $T/corpus"

# 1. The reference, in process and isolated: every case passes at 0.5 ULP (the default for it).
"$CHECK" check --impl reference $C --json "$T/ref.json" >"$T/out" 2>&1; expect_rc 0 $? reference
has "$T/out" "11 cases: 11 pass, 0 fail, 0 error" reference
has "$T/ref.json" '"budget": 0.5' "reference budget"
echo '* * * * * 0.5' >"$T/strict"
"$CHECK" check --impl reference $C --isolate --budgets "$T/strict" >"$T/out" 2>&1; expect_rc 0 $? "reference isolated"
has "$T/out" "11 pass" "reference isolated"

# 2. A correct plugin passes; losses it does not implement are unsupported.
"$CHECK" check --impl "$PLUGINS/toy_good.so" $C >"$T/out" 2>&1; expect_rc 0 $? good
has "$T/out" "8 pass, 0 fail, 0 error, 3 unsupported" good

# 3. The wrong plugin (l1_loss output times 1 + 1e-3): caught on those cases, with reproducers.
"$CHECK" check --impl "$PLUGINS/toy_wrong.so" $C --repro-dir "$T/repro" --json "$T/wrong.json" \
  --junit "$T/wrong.xml" --write-results "$T/wrong.results" >"$T/out" 2>&1
expect_rc 1 $? wrong
has "$T/out" "FAIL l1_loss/smoke/0001 .*output: .* ULP > 1" wrong
has "$T/out" "FAIL l1_loss/smoke/0002" wrong
hasnt "$T/out" "FAIL mse_loss" wrong
has "$T/out" "2 fail" wrong
[ -f "$T/repro/l1_loss_smoke_0001.json" ] || fail "wrong: no reproducer"
"$CHECK" eval "$T/repro/l1_loss_smoke_0001.json" --impl reference >/dev/null 2>&1 ||
  fail "the reproducer is not a valid case"
"$CHECK" eval "$T/repro/l1_loss_smoke_0001.json" --impl "$PLUGINS/toy_wrong.so" --json >"$T/eval" 2>&1
has "$T/eval" '"max_ulp": 13316' "eval of the reproducer"
has "$T/wrong.xml" '<failure message="output: ' junit
has "$T/wrong.json" '"verdict": "fail"' json

# 3b. The same outputs scored from a results file give the same verdicts.
"$CHECK" check --impl toy-wrong --results "$T/wrong.results" $C >"$T/out" 2>&1; expect_rc 1 $? results
has "$T/out" "6 pass, 2 fail, 0 error, 3 unsupported" results

# 3c. Expected failures and budgets.
printf 'toy-wrong l1_loss/smoke/0001 scaled output\ntoy-wrong l1_loss/smoke/0002 # scaled output\n' >"$T/xfail"
"$CHECK" check --impl "$PLUGINS/toy_wrong.so" $C --xfail "$T/xfail" >"$T/out" 2>&1; expect_rc 0 $? xfail
has "$T/out" "2 xfail, 0 unexpected pass" xfail
echo 'toy-* mse_loss/smoke/0001 not really failing' >"$T/xpass"
"$CHECK" check --impl "$PLUGINS/toy_wrong.so" $C --xfail "$T/xpass" --filter 'mse_loss/*' >"$T/out" 2>&1
expect_rc 1 $? xpass
has "$T/out" "XPASS mse_loss/smoke/0001" xpass
printf '# wide budget for l1 forward\ntoy-wrong l1_loss * * forward 1e13\n' >"$T/budgets"
"$CHECK" check --impl "$PLUGINS/toy_wrong.so" $C --budgets "$T/budgets" >"$T/out" 2>&1; expect_rc 0 $? budgets

# 4. The crashing plugin (SIGSEGV on l1_loss): those cases are errors, the run completes.
"$CHECK" check --impl "$PLUGINS/toy_crash.so" $C --repro-dir "$T/repro" >"$T/out" 2>&1; expect_rc 1 $? crash
has "$T/out" "ERROR l1_loss/smoke/0000 .*SIGSEGV" crash
has "$T/out" "5 pass, 0 fail, 3 error" crash
has "$T/out" "worker restarted 3x" crash

# 5. The hanging plugin (mse_loss sum sleeps forever): a timeout error, the run completes.
"$CHECK" check --impl "$PLUGINS/toy_hang.so" $C --timeout 2 >"$T/out" 2>&1; expect_rc 1 $? hang
has "$T/out" "ERROR mse_loss/smoke/0002 .*no answer within 2 s" hang
has "$T/out" "7 pass, 0 fail, 1 error" hang

# 6. Sharding covers every case once.
n=0
for i in 0 1 2; do
  "$CHECK" check --impl reference $C --shard $i/3 >"$T/out" 2>&1
  k=$(sed -n 's/.*: \([0-9]*\) cases:.*/\1/p' "$T/out")
  n=$((n + k))
done
[ "$n" = 11 ] || fail "shards cover $n cases, not 11"

# 7. Usage errors: unknown implementation, missing plugin.
"$CHECK" check --impl nosuch $C >"$T/out" 2>&1; expect_rc 2 $? "unknown impl"
"$CHECK" check --impl "$T/missing.so" $C >"$T/out" 2>&1; expect_rc 2 $? "missing plugin"

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "scorer end to end: all checks pass"
