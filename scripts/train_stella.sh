#!/usr/bin/env bash
# Stella (Jasper & Stella, arXiv 2412.19048) with the published settings: three stages from the
# teacher cache (the same cache TALAS builds). Override through TRAIN_DATA, STUDENT, TEACHER, SAVE_DIR, DIMS or append flags:
#   TEACHER=path/to/teacher DIMS=384,192,96 ./scripts/train_stella.sh --stage1_steps 500
# DIMS (Matryoshka widths) must not exceed the teacher's width (1024 for Qwen3-Embedding-0.6B).
exec "$(dirname "$0")/train_method.sh" stella ${DIMS:+--matryoshka_dims "$DIMS"} "$@"
