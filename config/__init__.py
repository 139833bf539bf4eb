"""Seed-compatible per-method defaults (`config/<method>_config.py`), generated from the option schema.

Each module exports every option of its method's config dataclass (``talas/methods/<method>.py``)
as a module attribute under its own name (``talas_config.w_kd``), so nothing is listed twice.
"""

from dataclasses import asdict
from typing import Any


def export_defaults(config_class: type, namespace: dict[str, Any]) -> dict[str, Any]:
    """Put every option's default into ``namespace`` (a module's globals()); returns them as a dict."""
    defaults = asdict(config_class())
    namespace.update(defaults)
    return defaults
