"""Configs on disk and on screen: YAML/JSON option files in, ``config.json`` out, the resolved-config summary."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from talas.config.options import differences
from talas.errors import ConfigError


def load_config_file(path: str) -> dict[str, Any]:
    """The option values of a YAML or JSON file (a mapping), unchecked: the config class checks them."""
    if not os.path.isfile(path):
        raise ConfigError(f"Config file {path!r} does not exist.")
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    try:
        if path.endswith((".yaml", ".yml")):
            import yaml

            values = yaml.safe_load(text) or {}
        else:
            values = json.loads(text)
    except Exception as exc:  # yaml and json raise different types; both mean "not parseable"
        raise ConfigError(f"Config file {path!r} is not valid {'YAML' if path.endswith(('.yaml', '.yml')) else 'JSON'}: {exc}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"Config file {path!r} must hold a mapping of option names to values.")
    return values


def config_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def save_config(cfg: Any, folder: str) -> str:
    """Write ``folder/config.json`` (every option) through a temporary file: readers never see a half-written one."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "config.json")
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(config_dict(cfg), handle, indent=2)
    os.replace(path + ".tmp", path)
    return path


def format_config(cfg: Any) -> str:
    """The options that differ from their defaults, one per line (the full set is in config.json)."""
    changed = differences(cfg)
    if not changed:
        return "  (all defaults)"
    return "\n".join(f"  {k} = {v!r}" for k, v in changed.items())
