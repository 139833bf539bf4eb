"""How every command reads its flags: whole names only, and a mistake is one line with the closest flags.

argparse by default expands a prefix to the one flag it starts (``--lr 1e-3`` silently set
``--lr_scheduler``) and answers an unknown flag with the full usage; here a flag is its whole name,
and an unknown one is named with what was probably meant ("did you mean --learning_rate?").
"""

from __future__ import annotations

import argparse
import difflib

from talas.errors import ConfigError

#: Short or foreign names users type for our options; difflib alone cannot tell that lr is learning_rate.
SHORT_FORMS = {
    "lr": "learning_rate", "bs": "batch_size", "batch": "batch_size", "train_batch_size": "batch_size",
    "wd": "weight_decay", "num_epochs": "epochs", "n_epochs": "epochs", "warmup": "warmup_ratio",
    "warmup_steps": "warmup_ratio", "grad_accum": "grad_accum_steps", "accumulation_steps": "grad_accum_steps",
    "max_seq_length": "max_length", "max_len": "max_length", "seq_len": "max_length", "output": "save_dir",
    "out": "save_dir", "output_path": "save_dir", "data": "train_data_path", "train_file": "train_data_path",
    "dataset": "train_data_path", "model_name_or_path": "student_model_name", "student": "student_model_name",
    "teacher": "teacher_model_name", "scheduler": "lr_scheduler", "workers": "num_workers",
}
#: At most this many suggestions: more would bury the likely one.
MOST = 3


def suggestions(name: str, known: dict[str, str]) -> list[str]:
    """The flags of ``known`` (flag -> the option it sets) closest to ``name``, best first, one per option.

    A short form from SHORT_FORMS first, then the flags ``name`` abbreviates (what argparse used to
    pick silently), then difflib's close matches, then flags that contain ``name`` (pooling ->
    student_pooling).
    """
    short = [SHORT_FORMS[name]] if name in SHORT_FORMS else []
    started = sorted(flag for flag in known if flag.startswith(name))
    close = difflib.get_close_matches(name, list(known), n=MOST, cutoff=0.6)
    within = sorted(flag for flag in known if len(name) >= 3 and name in flag)
    chosen: dict[str, str] = {}
    for flag in [*short, *started, *close, *within]:
        if flag in known and known[flag] not in chosen:
            chosen[known[flag]] = flag
    return list(chosen.values())[:MOST]


def either(flags: list[str], dashes: str = "--") -> str:
    """``--a``, ``--a or --b``, ``--a, --b or --c`` (config file keys: without dashes)."""
    named = [f"{dashes}{flag}" for flag in flags]
    return " or ".join(named) if len(named) < 3 else f"{', '.join(named[:-1])} or {named[-1]}"


def is_number(token: str) -> bool:
    """``-1`` after an unknown flag is its value, not another flag."""
    try:
        float(token)
    except ValueError:
        return False
    return True


def unknown_flags_message(extra: list[str], known: dict[str, str], prog: str) -> str:
    """One line naming every unknown flag in ``extra`` (argparse's leftovers) with its suggestions."""
    named, loose = [], []
    for index, token in enumerate(extra):
        if token.startswith("-") and token != "-" and not is_number(token):
            name = token.lstrip("-").split("=", 1)[0]
            close = suggestions(name, known)
            hint = f" (did you mean {either(close)}?)" if close else ""
            named.append(f"{token.split('=', 1)[0]}{hint}")
        elif index == 0 or not extra[index - 1].startswith("-") or is_number(extra[index - 1]):
            loose.append(repr(token))  # not the value of an unknown flag: a stray word
    parts = []
    if named:
        parts.append(f"unknown flag{'s' if len(named) > 1 else ''} {', '.join(named)}")
    if loose:
        parts.append(f"unexpected argument{'s' if len(loose) > 1 else ''} {', '.join(loose)} (options are given as --name value)")
    return f"{'; '.join(parts)}. `{prog} --help` lists every flag."


class FlagParser(argparse.ArgumentParser):
    """An ArgumentParser that never abbreviates and reports mistakes as a ConfigError (one line, exit status 2)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)
        #: alias flag -> the flag it stands for (suggestions show one flag per option)
        self.alias_of: dict[str, str] = {}

    def known_flags(self) -> dict[str, str]:
        """Every ``--flag`` of this parser (aliases too) -> the option it sets."""
        flags = {s[2:]: s[2:] for action in self._actions for s in action.option_strings if s.startswith("--")}
        return {flag: self.alias_of.get(flag, flag) for flag in flags}

    def parse_flags(self, argv: list[str]) -> argparse.Namespace:
        args, extra = self.parse_known_args(argv)
        if extra:
            raise ConfigError(unknown_flags_message(extra, self.known_flags(), self.prog))
        return args

    def error(self, message: str):  # argparse's own mistakes: a missing value, a wrong choice
        raise ConfigError(f"{self.prog}: {message}.")
