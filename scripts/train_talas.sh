#!/usr/bin/env bash
# TALAS with the seed's settings. Override any value through the variables below or append flags:
#   TRAIN_DATA=data/AllNLI.csv ./scripts/train_talas.sh --epochs 1
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
"$PY" main.py \
  --method talas \
  --train_data_path "${TRAIN_DATA:-data/train/distill_texts_clean.csv}" \
  --student_model_name "${STUDENT:-bert-base-uncased}" \
  --teacher_model_name "${TEACHER:-Qwen/Qwen3-Embedding-0.6B}" \
  --save_dir "${SAVE_DIR:-checkpoints/talas}" \
  --batch_size 128 \
  --epochs 5 \
  --learning_rate 2e-5 \
  --max_length 256 \
  --temperature 0.05 \
  "$@"
