#!/usr/bin/env bash
# Makes .venv-report with the pinned matplotlib that reports/report.py plots with (from PyPI,
# a few MB, done once). Idempotent: does nothing when the venv already has that version.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${LOSSBENCH_REPORT_VENV:-.venv-report}
version=3.10.3
if [ ! -x "$venv/bin/python" ]; then /usr/bin/python3 -m venv "$venv"; fi
if ! "$venv/bin/python" -c "import matplotlib, sys; sys.exit(matplotlib.__version__ != '$version')" 2>/dev/null; then
  "$venv/bin/pip" install -q --disable-pip-version-check "matplotlib==$version"
fi
