"""CDM defaults under seed-style names; the source of truth is talas.methods.cdm.CdmConfig.

Change a default for one run with a flag (`--w_kd 0.5`) or a YAML/JSON file (`--config`).
"""

from dataclasses import asdict

from talas.methods.cdm import CdmConfig

DEFAULTS = asdict(CdmConfig())

student_pooling = DEFAULTS["student_pooling"]  # Student pooling (mean)
pooling_method = DEFAULTS["pooling_method"]  # Teacher pooling (only its token states are used)
teacher_layer = DEFAULTS["teacher_layer"]  # Teacher hidden-state layer distilled (-1 = last)

w_task = DEFAULTS["w_task"]  # InfoNCE task loss weight (CDM: 0.9)
w_kd = DEFAULTS["w_kd"]  # Aligned-group state loss weight (CDM: 0.1)
projection_lr = DEFAULTS["projection_lr"]  # Peak lr of the fresh teacher → student projection
group_loss = DEFAULTS["group_loss"]  # Per-group squared distance (mse) or its mean over dims (mse_elementwise)
token_weights = DEFAULTS["token_weights"]  # Entropy weights of the DTW cost: both, teacher, none
