#!/usr/bin/env bash
# The cpu backend's float64 outputs on the corpus' well-conditioned cases (condition number
# below 2^10, tools/condition.py): at most ALLOWED of them may be more than 2 ULP from the exact
# value. The cases over today are listed in optimized/README.md; the bound only goes down.
# Usage: conditioning_test.sh LOSSBENCH SOURCE_DIR WORK_DIR ALLOWED
set -euo pipefail
lb=$1 src=$2 work=$3 allowed=$4
mkdir -p "$work"
"$lb" check --impl cpu --golden "$src/golden/corpus" --budgets "$src/optimized/budgets.txt" \
  --json "$work/check.json" >/dev/null
python3 "$src/tools/condition.py" --golden "$src/golden/corpus" --check "$work/check.json" \
  --below 1024 --ulp 2 --allow "$allowed"
