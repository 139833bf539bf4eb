#!/usr/bin/env bash
# Create .venv (once) and install TALAS with the pinned torch, test tools and the demo model.
# Used by scripts/demo.sh and scripts/test.sh; safe to rerun (pip skips what is installed).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "Creating .venv and installing TALAS (first run: about a minute)..."
  "$PYTHON" -m venv .venv
fi
log=.venv/setup.log
install() {
  if ! .venv/bin/python -m pip install --disable-pip-version-check "$@" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "error: installing $* failed (full log: $log)" >&2
    exit 1
  fi
}
# torch first and pinned: an unpinned resolve pulls a multi-GB CUDA build.
install torch==2.13.0
install -e ".[test,demo]"
