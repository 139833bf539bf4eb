"""The one option schema: every option's type, default, range, help and group; files and validation.

    options.py     option(), Range, value conversion and checks, config_from_values
    files.py       YAML/JSON option files, config.json, the resolved-config summary
    training.py    TrainConfig (every method) and CacheConfig (methods that read the teacher cache)

The options of other commands are declared the same way beside their code: talas/eval/options.py
(EvalConfig), talas/models/router.py (RouterConfig), a method's in talas/methods/<name>.py.
"""

from talas.config.files import config_dict, format_config, load_config_file, save_config
from talas.config.options import (
    GROUPS,
    Alias,
    Range,
    aliases_of,
    coerce,
    config_from_values,
    differences,
    option,
    option_fields,
    parse_bool,
    unalias,
)
from talas.config.training import CacheConfig, TrainConfig, check_options

__all__ = [
    "GROUPS", "Alias", "CacheConfig", "Range", "aliases_of", "TrainConfig", "check_options", "coerce", "config_dict", "config_from_values",
    "differences", "format_config", "load_config_file", "option", "option_fields", "parse_bool", "save_config", "unalias",
]
