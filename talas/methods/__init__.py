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
#: Published methods the CLI accepts by name but that are not implemented yet.
PLANNED: tuple[str, ...] = ()


def get_method(name: str) -> type[Method]:
    if name in METHODS:
        return METHODS[name]
    if name in PLANNED:
        raise ConfigError(f"Method {name!r} is planned but not implemented yet; available now: {', '.join(METHODS)}.")
    raise ConfigError(f"Unknown method {name!r}; choose one of {', '.join(METHODS)}.")
