"""DSKD defaults under the seed's names (`dskd_config.w_task`, ...), generated from talas.methods.dskd.DskdConfig.

Change a default for one run with a flag (`--kd_rate 0.7`) or a YAML/JSON file (`--config`).
"""

from config import export_defaults
from talas.methods.dskd import DskdConfig

DEFAULTS = export_defaults(DskdConfig, globals())
