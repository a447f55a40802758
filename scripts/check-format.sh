#!/usr/bin/env bash
# Fails when a C++ file is not formatted as .clang-format says.
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files '*.cpp' '*.hpp' '*.h' '*.cu' '*.cuh' 2>/dev/null || find . -name '*.cpp' -o -name '*.hpp')
[ -n "$files" ] || exit 0
clang-format --dry-run --Werror $files
echo "format: ok"
