"""DSKD defaults under seed-style names; the source of truth is talas.methods.dskd.DskdConfig.

Change a default for one run with a flag (`--kd_rate 0.7`) or a YAML/JSON file (`--config`).
"""

from dataclasses import asdict

from talas.methods.dskd import DskdConfig

DEFAULTS = asdict(DskdConfig())

pooling_method = DEFAULTS["pooling_method"]  # Teacher pooling (its sentence vector z_T and the pooled s→t states)
student_pooling = DEFAULTS["student_pooling"]  # Student pooling (z_S and the pooled t→s states)
temperature = DEFAULTS["temperature"]  # InfoNCE temperature τ; the KD similarity logits are cos/τ too

kd_rate = DEFAULTS["kd_rate"]  # L = (1 - kd_rate)·L_task + kd_rate·L_dskd (DSKD: 0.5)
kd_temperature = DEFAULTS["kd_temperature"]  # KD temperature on the in-batch similarity logits (DSKD: 2.0)
projector_lr = DEFAULTS["projector_lr"]  # Learning rate of the query, t2s and s2t projectors (DSKD: 1e-3)
align_loss = DEFAULTS["align_loss"]  # Distance of a carried sentence vector to its target: cosine or mse
teacher_layer = DEFAULTS["teacher_layer"]  # Teacher layer whose token states are carried (-1 = last)
projector_init = DEFAULTS["projector_init"]  # P_s2t / P_t2s start: random (as published) or ridge (fit on sample texts)
projector_init_texts = DEFAULTS["projector_init_texts"]  # Texts of the ridge fit (one teacher forward each)
