"""Replicates over forked worker processes: the one runner behind the bootstrap (LMM and GLMM),
the bootstrap LRT, calibrated simulated-residual tests and power by simulation.

The caller puts what the workers need into :data:`STATE` (the design, the simulated responses,
...), and ``worker(i)`` computes replicate ``i`` from it.  Forked processes inherit
:data:`STATE`, so only the indices and the results cross process boundaries.  The results come
back in index order, and a replicate depends only on its index, so the output does not depend on
``n_jobs``.
"""
from __future__ import annotations

import multiprocessing as mp
import numbers
import os

import numpy as np

__all__ = ["STATE", "worker_count", "replicate_map", "check_count"]

STATE: dict = {}        # state shared with forked worker processes (cleared after each run)


def check_count(value, name: str = "nsim") -> int:
    """``value`` as a positive whole number of replicates, else a ValueError naming ``name``
    (``2.5``, ``0``, ``"a"`` and ``True`` are refused rather than truncated or passed on to numpy)."""
    ok = isinstance(value, numbers.Integral) or (isinstance(value, numbers.Real) and float(value).is_integer())
    ok = ok and not isinstance(value, (bool, np.bool_))     # 100, np.int64(100), 100.0 yes; True no
    if not ok or int(value) < 1:
        raise ValueError(f"{name} must be a positive whole number of simulations, got {value!r}")
    return int(value)


def worker_count(n_jobs, count: int) -> int:
    """The number of processes to use: ``None``/0 -> 1, negative -> one per CPU, at most one per
    replicate, and 1 where the platform cannot fork."""
    if n_jobs is None:
        n_jobs = 1
    whole = isinstance(n_jobs, numbers.Real) and float(n_jobs).is_integer()
    if isinstance(n_jobs, (bool, np.bool_)) or not whole:
        raise ValueError(f"n_jobs must be a whole number of worker processes (1: none, -1: one per CPU), "
                         f"got {n_jobs!r}")
    n_jobs = int(n_jobs) or 1
    if n_jobs < 0:
        n_jobs = os.cpu_count() or 1
    n_jobs = min(int(n_jobs), max(int(count), 1))
    if n_jobs > 1 and "fork" not in mp.get_all_start_methods():
        n_jobs = 1
    return n_jobs


def replicate_map(worker, state: dict, count: int, n_jobs, bar) -> list:
    """``[worker(0), ..., worker(count - 1)]`` with ``state`` in :data:`STATE`, serially or over
    ``n_jobs`` forked processes in small ordered chunks (about 20 progress updates per worker).
    ``bar`` (a progress bar) advances by one per finished replicate."""
    n_jobs = worker_count(n_jobs, count)
    STATE.clear()
    STATE.update(state, worker=worker)
    try:
        if n_jobs == 1:
            out = []
            for i in range(count):
                out.append(worker(i))
                bar.update(1)
            return out
        size = max(1, count // (20 * n_jobs))
        chunks = [list(range(i, min(i + size, count))) for i in range(0, count, size)]
        out = []
        with mp.get_context("fork").Pool(n_jobs) as pool:
            for part in pool.imap(_run_chunk, chunks):
                out.extend(part)
                bar.update(len(part))
        return out
    finally:
        STATE.clear()


def _run_chunk(indices) -> list:
    worker = STATE["worker"]
    return [worker(i) for i in indices]
