"""Where library messages meet the terminal: the CLI shows the ``talas`` loggers' records as bare lines.

Library modules log through ``logging.getLogger(__name__)`` and never print; a command installs this
handler for its duration, so a caller using TALAS as a library keeps control of its own logging.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

LEVELS = {"quiet": logging.WARNING, "normal": logging.INFO, "verbose": logging.DEBUG}


class CurrentStdout(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is at emit time (pytest's capture, a redirected stream)."""

    def __init__(self):
        super().__init__(sys.stdout)

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, _value) -> None:
        pass


@contextlib.contextmanager
def console_logging(verbosity: str = "normal") -> Iterator[None]:
    """Show ``talas.*`` log records on stdout as plain lines while the block runs."""
    logger = logging.getLogger("talas")
    handler = CurrentStdout()
    handler.setFormatter(logging.Formatter("%(message)s"))
    old_level, old_propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(LEVELS[verbosity])
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate
