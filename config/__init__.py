"""Seed-compatible per-method defaults (`config/<method>_config.py`).

The typed source of truth is each method's dataclass in ``talas/methods/<method>.py``; these
modules expose its defaults under the seed's names so they never drift apart.
"""
