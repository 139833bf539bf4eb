"""Seed-compatible per-method defaults (`config/<method>_config.py`), generated from the option schema.

Each module exports every option of its method's config dataclass (``talas/methods/<method>.py``)
as a module attribute under its own name (``talas_config.w_kd``), so nothing is listed twice.
Poolings whose default is now "auto" (resolved from the model folder) show the seed's value instead,
the one config/seed_<method>.yaml passes, so code reading ``talas_config.pooling_method`` sees what the seed ran.
"""

from dataclasses import asdict
from typing import Any

SEED_POOLINGS = {"pooling_method": "last_token", "student_pooling": "last_token"}


def export_defaults(config_class: type, namespace: dict[str, Any]) -> dict[str, Any]:
    """Put every option's default into ``namespace`` (a module's globals()); returns them as a dict."""
    defaults = asdict(config_class())
    for name, seed_value in SEED_POOLINGS.items():
        if defaults.get(name) == "auto":
            defaults[name] = seed_value
    namespace.update(defaults)
    return defaults
