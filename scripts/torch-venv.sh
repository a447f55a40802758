#!/usr/bin/env bash
# Makes .venv-torch with PyTorch 2.2.2 from PyPI (a large download, done once; not used by CI).
# Used by tools/torch_crosscheck.py to check the reference against real torch 2.2.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${LOSSBENCH_TORCH_VENV:-.venv-torch}
if [ ! -x "$venv/bin/python" ]; then python3 -m venv "$venv"; fi
if ! "$venv/bin/python" -c 'import torch, sys; sys.exit(0 if torch.__version__.startswith("2.2.2") else 1)' 2>/dev/null; then
  "$venv/bin/pip" install -q 'torch==2.2.2' 'numpy<2'
fi
"$venv/bin/python" -c 'import torch; print("torch", torch.__version__)'
