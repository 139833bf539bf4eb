#!/usr/bin/env bash
# CDM (entropy-weighted DTW token alignment) with its published loss weights (config/seed_cdm.yaml).
# Override through TRAIN_DATA, STUDENT, TEACHER, SAVE_DIR or append flags:
#   TRAIN_DATA=data/AllNLI.csv ./scripts/train_cdm.sh --epochs 1 --token_weights teacher
# The teacher runs on every batch (token states), so it must fit in memory beside the student.
exec "$(dirname "$0")/train_method.sh" cdm "$@"
