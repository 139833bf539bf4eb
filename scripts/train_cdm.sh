#!/usr/bin/env bash
# CDM (entropy-weighted DTW token alignment) with its published loss weights. Override any value
# through the variables below or append flags:
#   TRAIN_DATA=data/AllNLI.csv ./scripts/train_cdm.sh --epochs 1 --token_weights teacher
# The teacher runs on every batch (token states), so it must fit in memory beside the student.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
"$PY" main.py \
  --method cdm \
  --train_data_path "${TRAIN_DATA:-data/train/distill_texts_clean.csv}" \
  --student_model_name "${STUDENT:-bert-base-uncased}" \
  --teacher_model_name "${TEACHER:-Qwen/Qwen3-Embedding-0.6B}" \
  --save_dir "${SAVE_DIR:-checkpoints/cdm}" \
  --batch_size 32 \
  --epochs 1 \
  --learning_rate 2e-4 \
  --max_length 128 \
  --temperature 0.05 \
  --w_task 0.9 \
  --w_kd 0.1 \
  "$@"
