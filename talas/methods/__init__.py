"""Method registry: name → class. Adding a method is one file in this folder plus one line here."""

from __future__ import annotations

from talas.errors import ConfigError
from talas.methods.base import Method
from talas.methods.cdm import CdmMethod
from talas.methods.dskd import DskdMethod
from talas.methods.emo import EmoMethod
from talas.methods.stella import StellaMethod
from talas.methods.talas import TalasMethod

METHODS: dict[str, type[Method]] = {"talas": TalasMethod, "stella": StellaMethod, "dskd": DskdMethod, "emo": EmoMethod, "cdm": CdmMethod}


def get_method(name: str) -> type[Method]:
    if name in METHODS:
        return METHODS[name]
    raise ConfigError(f"Unknown method {name!r}; choose one of {', '.join(METHODS)}.")
