"""Crash points for the fault-injection tests: a process reaching ``fault_point(name)`` dies by SIGKILL.

    TALAS_FAULT=cache_chunk_done:1 talas cache ...    # killed right after chunk 1 of the cache is recorded

Only the tests set TALAS_FAULT; it is read here and nowhere else. SIGKILL, not an exception, so
nothing (no finally, no atexit, no flush) runs: the same as a power cut or the OOM killer.
"""

import os
import signal


def fault_point(name: str) -> None:
    if os.environ.get("TALAS_FAULT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
