"""EMO defaults under seed-style names; the source of truth is talas.methods.emo.EmoConfig.

Change a default for one run with a flag (`--alpha 0.7`) or a YAML/JSON file (`--config`).
"""

from dataclasses import asdict

from talas.methods.emo import EmoConfig

DEFAULTS = asdict(EmoConfig())

pooling_method = DEFAULTS["pooling_method"]  # Pooling method for the teacher (runs online: no cache)
student_pooling = DEFAULTS["student_pooling"]  # Pooling method for the student

alpha = DEFAULTS["alpha"]  # L = (1 - alpha)·task + alpha·(w_ira·IRA + w_ot·OT)
w_ira = DEFAULTS["w_ira"]  # Attention-relation (1 - linear CKA) weight, 0.1 as published
w_ot = DEFAULTS["w_ot"]  # Optimal-transport weight
ira_layers = DEFAULTS["ira_layers"]  # Last student layers matched to teacher layers (2 as published)
top_m_divisor = DEFAULTS["top_m_divisor"]  # IRA uses the top n_map // 3 mapped tokens
ot_epsilon = DEFAULTS["ot_epsilon"]  # Sinkhorn entropic regularisation (0.1 as published)
ot_max_iter = DEFAULTS["ot_max_iter"]  # Most Sinkhorn iterations (100 as published)
ot_tol = DEFAULTS["ot_tol"]  # Sinkhorn stop: row-marginal L1 error (published 1e-9 is below fp32)
skip_punctuation = DEFAULTS["skip_punctuation"]  # Punctuation carries no importance, like stop words
projection_lr = DEFAULTS["projection_lr"]  # Peak lr of the projection P
projection = DEFAULTS["projection"]  # teacher_to_student (published) or student_to_teacher
projection_init = DEFAULTS["projection_init"]  # P starts random (published) or from a ridge fit of mean states
projection_init_texts = DEFAULTS["projection_init_texts"]  # Texts of the ridge fit (one teacher forward each)
ot_cost = DEFAULTS["ot_cost"]  # softmax (published; blind to a text's mean teacher state) or cosine
