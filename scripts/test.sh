#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite, real-model tests included.
# Extra arguments go to pytest, e.g. `scripts/test.sh tests/unit` for the fast unit tests only.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Offline by design: tests load models by path and must never reach a model hub.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/python -m pytest -q "$@"
