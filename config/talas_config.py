"""TALAS defaults under the seed's names; the source of truth is talas.methods.talas.TalasConfig.

Change a default for one run with a flag (`--w_kd 0.8`) or a YAML/JSON file (`--config`).
"""

from dataclasses import asdict

from talas.methods.talas import TalasConfig

DEFAULTS = asdict(TalasConfig())

cache_teacher = DEFAULTS["cache_teacher"]  # Enable teacher caching
cache_path = DEFAULTS["cache_path"]  # Where to save/load the cache (a seed-format .pt is still read)
pooling_method = DEFAULTS["pooling_method"]  # Pooling method for the teacher
normalize_cache = DEFAULTS["normalize_cache"]  # Whether to normalise cached embeddings
cache_dtype = DEFAULTS["cache_dtype"]  # Data type for the cache

w_task = DEFAULTS["w_task"]  # Task loss weight
w_kd = DEFAULTS["w_kd"]  # Knowledge-distillation loss weight
kd_loss = DEFAULTS["kd_loss"]  # mse (per vector), mse_elementwise (the seed's), cosine
kd_both_sides = DEFAULTS["kd_both_sides"]  # Distil both texts of a pair
w_contrast = DEFAULTS["w_contrast"]  # In-batch contrastive term to the teacher's vectors (0 = off)
contrast_temperature = DEFAULTS["contrast_temperature"]  # Its temperature
projection_lr = DEFAULTS["projection_lr"]  # The projection's own peak learning rate (0 = the student's)
export_projection = DEFAULTS["export_projection"]  # Export the projection as a Dense module
projection_init = DEFAULTS["projection_init"]  # ridge (fit from the untrained student and the cache) or random
projection_init_texts = DEFAULTS["projection_init_texts"]  # Texts the ridge fit uses
