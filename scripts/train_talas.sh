#!/usr/bin/env bash
# TALAS with the seed's settings. Override through TRAIN_DATA, STUDENT, TEACHER, SAVE_DIR or append flags:
#   TRAIN_DATA=data/AllNLI.csv ./scripts/train_talas.sh --epochs 1
exec "$(dirname "$0")/train_method.sh" talas "$@"
