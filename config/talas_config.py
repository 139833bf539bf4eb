"""TALAS defaults under the seed's names (`talas_config.w_task`, ...), generated from talas.methods.talas.TalasConfig.

Change a default for one run with a flag (`--w_kd 0.8`) or a YAML/JSON file (`--config`).
"""

from config import export_defaults
from talas.methods.talas import TalasConfig

DEFAULTS = export_defaults(TalasConfig, globals())
