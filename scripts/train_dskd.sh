#!/usr/bin/env bash
# DSKD (dual-space KD through cross-model attention; the teacher runs online on every batch).
# Override through TRAIN_DATA, STUDENT, TEACHER, SAVE_DIR or append flags:
#   STUDENT=sentence-transformers/all-MiniLM-L6-v2 ./scripts/train_dskd.sh --student_num_layers 2 --epochs 1
exec "$(dirname "$0")/train_method.sh" dskd "$@"
