#!/usr/bin/env bash
# Stella (Jasper & Stella, arXiv 2412.19048) with the published settings: three stages from the
# teacher cache (the same cache TALAS builds). Override through the variables below or append flags:
#   TEACHER=path/to/teacher DIMS=384,192,96 ./scripts/train_stella.sh --stage1_steps 500
# DIMS (Matryoshka widths) must not exceed the teacher's width (1024 for Qwen3-Embedding-0.6B).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
"$PY" main.py \
  --method stella \
  --train_data_path "${TRAIN_DATA:-data/train/distill_texts_clean.csv}" \
  --student_model_name "${STUDENT:-bert-base-uncased}" \
  --teacher_model_name "${TEACHER:-Qwen/Qwen3-Embedding-0.6B}" \
  --save_dir "${SAVE_DIR:-checkpoints/stella}" \
  --matryoshka_dims "${DIMS:-1024,512,256,128}" \
  --batch_size 128 \
  --epochs 1 \
  --stage1_lr 1e-4 \
  --stage2_lr 8e-5 \
  --stage3_lr 8e-5 \
  --max_length 256 \
  "$@"
