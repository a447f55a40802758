#!/usr/bin/env bash
# `lossbench fuzz` end to end: the wrong toy plugin (l1_loss output times 1 + 1e-3) is caught,
# with kept reproducers that replay; the reference passes on two losses for a few seconds, in
# process and isolated; runs are deterministic for a seed and a case count; usage errors.
# Environment: LOSSBENCH (the lossbench program), PLUGINS (the toy plugins' directory).
set -u
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
expect_rc() {  # expected actual what
  [ "$1" = "$2" ] || { fail "$3: exit code $2, expected $1"; sed 's/^/    /' "$T/out"; }
}
has() {  # file pattern what
  grep -q -- "$2" "$1" || { fail "$3: no '$2' in output"; sed 's/^/    /' "$1"; }
}
summary() { grep '^lossbench fuzz:' "$1" | sed 's/, [0-9.]* s: /: /'; }  # without the time

# 1. The wrong plugin on l1_loss: some cases fail, the worst are kept and replay.
"$LOSSBENCH" fuzz --impl "$PLUGINS/toy_wrong.so" --loss l1_loss --seed 3 --cases 30 \
  --seconds 120 --keep "$T/keep" --keep-worst 3 >"$T/out" 2>&1
expect_rc 1 $? "wrong plugin"
has "$T/out" "^FAIL l1_loss/fuzz/[0-9a-f]* .*output: .* ULP > 1" "wrong plugin"
has "$T/out" "30 cases" "wrong plugin"
has "$T/out" "FAILED" "wrong plugin"
n=$(ls "$T/keep"/l1_loss_fuzz_*.json 2>/dev/null | wc -l)
[ "$n" = 3 ] || fail "wrong plugin: $n reproducers kept, expected 3"
[ "$(wc -l <"$T/keep/worst.jsonl")" = 3 ] || fail "wrong plugin: worst.jsonl"
first=$(sed -n 's/^kept #1: \([^ ]*\) .*/\1/p' "$T/out")
[ -f "$first" ] || fail "wrong plugin: no kept #1 in the output"
has "$first" '"note": "lossbench fuzz --impl .*toy_wrong.so --seed 3: case [0-9]*: fail' reproducer
has "$first" '"case_seed": "0x' reproducer
"$LOSSBENCH" eval "$first" --impl reference >/dev/null 2>&1 || fail "the reproducer is not a case"
"$LOSSBENCH" eval "$first" --impl "$PLUGINS/toy_wrong.so" --grad --json >"$T/eval" 2>&1
grep -Eq '"max_ulp": ("inf"|[1-9][0-9])' "$T/eval" || { fail "replay shows no error"; cat "$T/eval"; }
# The kept lines are a corpus (exact values included): check replays them.
"$LOSSBENCH" check --impl "$PLUGINS/toy_wrong.so" --golden "$T/keep" --repro-dir "$T/r" \
  >"$T/out2" 2>&1
[ $? = 1 ] || fail "check on the kept cases should fail"
has "$T/out2" "3 cases: 0 pass, 3 fail" "check on the kept cases"
"$LOSSBENCH" check --impl reference --golden "$T/keep" --repro-dir "$T/r" >"$T/out2" 2>&1 ||
  fail "the reference fails the kept cases"

# 2. The same seed and case count give the same run; another seed gives another.
"$LOSSBENCH" fuzz --impl "$PLUGINS/toy_wrong.so" --loss l1_loss --seed 3 --cases 30 \
  --seconds 120 --keep "$T/keep2" --keep-worst 3 >"$T/again" 2>&1
[ "$(summary "$T/out")" = "$(summary "$T/again")" ] || fail "not deterministic"
diff <(grep '^FAIL' "$T/out") <(grep '^FAIL' "$T/again") >/dev/null || fail "not deterministic"
diff "$T/keep/worst.jsonl" "$T/keep2/worst.jsonl" >/dev/null || fail "kept cases differ"
"$LOSSBENCH" fuzz --impl "$PLUGINS/toy_wrong.so" --loss l1_loss --seed 4 --cases 30 \
  --keep "" >"$T/other" 2>&1
diff <(grep '^FAIL' "$T/out") <(grep '^FAIL' "$T/other") >/dev/null && fail "seed ignored"
# Two shards draw the cases of the whole run.
cat "$T/out" | grep -o '(case [0-9]*)' | sort >"$T/all"
for i in 0 1; do
  "$LOSSBENCH" fuzz --impl "$PLUGINS/toy_wrong.so" --loss l1_loss --seed 3 --cases 15 \
    --shard $i/2 --keep "" >"$T/s$i" 2>&1
done
cat "$T/s0" "$T/s1" | grep -o '(case [0-9]*)' | sort >"$T/shards"
diff "$T/all" "$T/shards" >/dev/null || fail "shards 0/2 + 1/2 differ from the whole run"

# 3. The correct plugin passes these cases. (Not every case: from about 50 cases on, fuzz finds
# NaN gradients where the reference's l1_loss gradient is 0, on inputs holding NaN.)
"$LOSSBENCH" fuzz --impl "$PLUGINS/toy_good.so" --loss l1_loss,mse_loss --seed 3 --cases 20 \
  --keep "" >"$T/out" 2>&1
expect_rc 0 $? "good plugin"

# 4. The reference on two losses for a few seconds: every case passes at 0.5 ULP.
"$LOSSBENCH" fuzz --impl reference --loss 'cross_entropy,smooth_l1_loss' --seed 11 --seconds 4 \
  --keep "$T/ref" >"$T/out" 2>&1
expect_rc 0 $? reference
has "$T/out" " 0 fail, 0 error, 0 unsupported" reference
has "$T/out" "  OK$" reference
grep -q 'lossbench fuzz: reference.*: [1-9][0-9]* cases' "$T/out" || fail "reference: no case ran"
"$LOSSBENCH" fuzz --impl reference --loss 'huber_loss' --seed 5 --cases 5 --isolate \
  --keep "" >"$T/out" 2>&1
expect_rc 0 $? "reference isolated"

# 5. Usage errors.
"$LOSSBENCH" fuzz --impl reference --loss nosuch_loss --cases 1 >"$T/out" 2>&1
expect_rc 2 $? "unknown loss"
"$LOSSBENCH" fuzz --impl nosuch --loss l1_loss --cases 1 >"$T/out" 2>&1
expect_rc 2 $? "unknown impl"
"$LOSSBENCH" fuzz --impl reference --loss l1_loss --shard 2/2 >"$T/out" 2>&1
expect_rc 2 $? "bad shard"

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "fuzz end to end: all checks pass"
