"""Stella defaults under the seed's names (`stella_config.w_task`, ...), generated from talas.methods.stella.StellaConfig.

Change a default for one run with a flag (`--stage1_lr 5e-5`) or a YAML/JSON file (`--config`).
"""

from config import export_defaults
from talas.methods.stella import StellaConfig

DEFAULTS = export_defaults(StellaConfig, globals())
