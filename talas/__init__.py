"""TALAS: distil large sentence-embedding teachers into small, fast students.

Importing the package is cheap: torch, transformers and the teacher-loading path are imported
only by the modules that need them.
"""

from talas.errors import CacheError, ConfigError, DataError, ModelError, TalasError

__version__ = "0.1.0"
__all__ = ["CacheError", "ConfigError", "DataError", "ModelError", "TalasError", "__version__"]
