#!/usr/bin/env bash
# Create .venv (once) and install TALAS with the pinned CPU/GPU torch, test tools and the demo model.
# Used by scripts/demo.sh and scripts/test.sh; safe to rerun (pip skips what is installed).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# torch first and pinned: an unpinned resolve pulls a multi-GB CUDA build.
.venv/bin/python -m pip install -q --disable-pip-version-check torch==2.13.0
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test,demo]"
