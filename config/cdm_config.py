"""CDM defaults under the seed's names (`cdm_config.w_task`, ...), generated from talas.methods.cdm.CdmConfig.

Change a default for one run with a flag (`--w_kd 0.5`) or a YAML/JSON file (`--config`).
"""

from config import export_defaults
from talas.methods.cdm import CdmConfig

DEFAULTS = export_defaults(CdmConfig, globals())
