#!/usr/bin/env bash
# EMO (attention-relation CKA + optimal transport between token states; the teacher runs online on
# every batch with eager attention). Override any value through the variables below or append flags:
#   STUDENT=sentence-transformers/all-MiniLM-L6-v2 ./scripts/train_emo.sh --student_num_layers 2 --epochs 1
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
"$PY" main.py \
  --method emo \
  --train_data_path "${TRAIN_DATA:-data/train/distill_texts_clean.csv}" \
  --student_model_name "${STUDENT:-bert-base-uncased}" \
  --teacher_model_name "${TEACHER:-Qwen/Qwen3-Embedding-0.6B}" \
  --save_dir "${SAVE_DIR:-checkpoints/emo}" \
  --batch_size 32 \
  --epochs 1 \
  --learning_rate 2e-4 \
  --max_length 128 \
  --student_pooling mean \
  --alpha 0.5 \
  --w_ira 0.1 \
  --w_ot 1.0 \
  --ot_epsilon 0.1 \
  --ot_max_iter 100 \
  --projection_lr 1e-3 \
  "$@"
