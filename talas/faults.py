"""Crash points for the fault-injection tests: a process reaching a named point dies by SIGKILL.

    TALAS_FAULT=cache_chunk_done:1 talas cache ...   # killed right after chunk 1 of the cache is recorded
    TALAS_FAULT=checkpoint:4 talas train ...         # killed inside the checkpoint write of step 4

Only the tests set TALAS_FAULT; it is read here and nowhere else. SIGKILL, not an exception, so
nothing (no finally, no atexit, no flush) runs: the same as a power cut or the OOM killer.
``fault_enospc`` raises a full disk's OSError at its point instead; ``faulted`` lets the caller
inject its own fault (TALAS_FAULT=nan_loss:3 makes the loss of optimiser step 3 NaN).
"""

import errno
import os
import signal


def fault(point: str, index: int | None = None) -> None:
    """Die if TALAS_FAULT is ``point`` (any index) or ``point:index``."""
    wanted = os.environ.get("TALAS_FAULT")
    if wanted and wanted in (point, f"{point}:{index}"):
        os.kill(os.getpid(), signal.SIGKILL)


def faulted(point: str, index: int | None = None) -> bool:
    """Whether TALAS_FAULT names this point, for faults the caller injects itself (a NaN loss: ``nan_loss:3``)."""
    wanted = os.environ.get("TALAS_FAULT")
    return bool(wanted) and wanted in (point, f"{point}:{index}")


def fault_enospc(point: str, index: int | None = None) -> None:
    """Raise the OSError a full disk gives when TALAS_FAULT names this point (``checkpoint_enospc:3``)."""
    if faulted(point, index):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
