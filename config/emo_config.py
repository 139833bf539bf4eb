"""EMO defaults under the seed's names (`emo_config.w_task`, ...), generated from talas.methods.emo.EmoConfig.

Change a default for one run with a flag (`--alpha 0.7`) or a YAML/JSON file (`--config`).
"""

from config import export_defaults
from talas.methods.emo import EmoConfig

DEFAULTS = export_defaults(EmoConfig, globals())
