#!/usr/bin/env bash
# Shared body of scripts/train_<method>.sh: main.py with the method's seed recipe config/seed_<method>.yaml
# (only what differs from the schema's defaults), then these variables when set, then the caller's flags
# (last, so they win; a --config of the caller's replaces the recipe):
#   TRAIN_DATA -> --train_data_path, STUDENT -> --student_model_name, TEACHER -> --teacher_model_name,
#   SAVE_DIR -> --save_dir; PY: the Python to run (default: .venv's, else python).
#   scripts/train_method.sh dskd --epochs 2
set -euo pipefail
method=$1
shift
cd "$(dirname "$0")/.."
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
exec "$PY" main.py --config "config/seed_${method}.yaml" \
  ${TRAIN_DATA:+--train_data_path "$TRAIN_DATA"} \
  ${STUDENT:+--student_model_name "$STUDENT"} \
  ${TEACHER:+--teacher_model_name "$TEACHER"} \
  ${SAVE_DIR:+--save_dir "$SAVE_DIR"} \
  "$@"
