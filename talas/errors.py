"""Errors a user can cause. The CLI prints them as one line (``--debug`` shows the traceback)."""


class TalasError(Exception):
    """A problem with the user's input, named together with its fix."""


class ConfigError(TalasError):
    """Unknown option, wrong type, or an inconsistent combination of options."""


class DataError(TalasError):
    """A training or evaluation file that cannot be read as asked."""


class CacheError(TalasError):
    """A teacher cache that is missing, corrupted, or built for other data or another teacher."""


class ModelError(TalasError):
    """A model or tokenizer that cannot be loaded or does not fit the requested use."""


class TrainingError(TalasError):
    """Training that cannot go on: a non-finite loss or gradient, or a checkpoint that cannot be written."""
