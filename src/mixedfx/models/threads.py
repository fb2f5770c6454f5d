"""BLAS thread caps while fitting.

OpenBLAS threads even tiny triangular solves; on the small blocks of most models two
threads made fits twice as slow (verbagg: 6.1 s vs 3.1 s), while a large dense block
(>= 400 columns) gains ~1.6x from two cores.  The controller is created once, so a cap
costs microseconds rather than threadpoolctl's ~2 ms library discovery per call.
"""
from __future__ import annotations

import contextlib
import os
from functools import lru_cache

__all__ = ["blas_limit", "auto_threads"]


@lru_cache(maxsize=1)
def _controller():
    try:
        from threadpoolctl import ThreadpoolController
        return ThreadpoolController()
    except Exception:  # pragma: no cover - threadpoolctl missing or unsupported BLAS
        return None


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def auto_threads(dense_block: int, requested="auto"):
    """Threads for a fit whose largest dense block has ``dense_block`` columns."""
    if requested != "auto":
        return requested
    return 1 if dense_block < 400 else max(1, min(available_cores(), 8))


def blas_limit(limit):
    """Context manager capping BLAS threads (None: no cap)."""
    ctl = _controller()
    if limit is None or ctl is None:
        return contextlib.nullcontext()
    return ctl.limit(limits=limit, user_api="blas")
