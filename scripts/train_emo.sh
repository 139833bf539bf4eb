#!/usr/bin/env bash
# EMO (attention-relation CKA + optimal transport between token states; the teacher runs online on
# every batch with eager attention). Override through TRAIN_DATA, STUDENT, TEACHER, SAVE_DIR or append flags:
#   STUDENT=sentence-transformers/all-MiniLM-L6-v2 ./scripts/train_emo.sh --student_num_layers 2 --epochs 1
exec "$(dirname "$0")/train_method.sh" emo "$@"
