"""Stella defaults under seed-style names; the source of truth is talas.methods.stella.StellaConfig.

Change a default for one run with a flag (`--stage1_lr 5e-5`) or a YAML/JSON file (`--config`).
"""

from dataclasses import asdict

from talas.methods.stella import StellaConfig

DEFAULTS = asdict(StellaConfig())

cache_teacher = DEFAULTS["cache_teacher"]  # Stella trains from the cached teacher vectors
cache_path = DEFAULTS["cache_path"]  # The same cache TALAS builds and reads
pooling_method = DEFAULTS["pooling_method"]  # Pooling method for the teacher
normalize_cache = DEFAULTS["normalize_cache"]  # Whether to normalise cached embeddings
cache_dtype = DEFAULTS["cache_dtype"]  # Data type for the cache
strict_cache = DEFAULTS["strict_cache"]  # A cache of another teacher or other data is an error
student_pooling = DEFAULTS["student_pooling"]  # Mean pooling before the FC, as published

w_task = DEFAULTS["w_task"]  # InfoNCE task loss weight (0 as published)
w_cos = DEFAULTS["w_cos"]  # Cosine loss weight
w_sim = DEFAULTS["w_sim"]  # Similarity-matrix MSE weight
w_resim = DEFAULTS["w_resim"]  # Relative-similarity ranking loss weight
resim_margin = DEFAULTS["resim_margin"]  # Ranking margin
resim_max_pairs = DEFAULTS["resim_max_pairs"]  # Exact ranking loss up to this many text pairs per batch
matryoshka_dims = DEFAULTS["matryoshka_dims"]  # Stage-3 output widths (prefixes of the FC output)

full_finetune = DEFAULTS["full_finetune"]  # One stage over all parameters instead of three
unfreeze_layers = DEFAULTS["unfreeze_layers"]  # Encoder layers trained in stages 2 and 3
stage1_lr = DEFAULTS["stage1_lr"]  # Stage 1: FC only
stage2_lr = DEFAULTS["stage2_lr"]  # Stage 2: FC + last encoder layers
stage3_lr = DEFAULTS["stage3_lr"]  # Stage 3: Matryoshka widths
export_dim = DEFAULTS["export_dim"]  # Exported width (0 = the teacher's)
