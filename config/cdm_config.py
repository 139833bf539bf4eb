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
projection_lr = DEFAULTS["projection_lr"]  # Peak lr of the fresh projection P
projection = DEFAULTS["projection"]  # teacher_to_student (published) or student_to_teacher
projection_init = DEFAULTS["projection_init"]  # P starts random (published) or from a ridge fit of mean states
projection_init_texts = DEFAULTS["projection_init_texts"]  # Texts of the ridge fit (one teacher forward each)
group_loss = DEFAULTS["group_loss"]  # mse (normalised groups), mse_elementwise (its mean over dims) or relative (unnormalised)
token_weights = DEFAULTS["token_weights"]  # Entropy weights of the DTW cost: both, teacher, none
