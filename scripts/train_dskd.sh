#!/usr/bin/env bash
# DSKD (dual-space KD through cross-model attention; the teacher runs online on every batch).
# Override any value through the variables below or append flags:
#   STUDENT=sentence-transformers/all-MiniLM-L6-v2 ./scripts/train_dskd.sh --student_num_layers 2 --epochs 1
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
"$PY" main.py \
  --method dskd \
  --train_data_path "${TRAIN_DATA:-data/train/distill_texts_clean.csv}" \
  --student_model_name "${STUDENT:-bert-base-uncased}" \
  --teacher_model_name "${TEACHER:-Qwen/Qwen3-Embedding-0.6B}" \
  --save_dir "${SAVE_DIR:-checkpoints/dskd}" \
  --batch_size 32 \
  --epochs 1 \
  --learning_rate 2e-4 \
  --max_length 128 \
  --student_pooling mean \
  --kd_rate 0.5 \
  --kd_temperature 2.0 \
  --projector_lr 1e-3 \
  "$@"
