"""Timing helpers shared by the benchmark scripts: repeated warm calls and the provenance record."""
from __future__ import annotations

import os
import statistics
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

__all__ = ["repeat", "timing_stats", "provenance"]


def repeat(fn, min_reps: int, max_reps: int, budget: float) -> list[float]:
    times: list[float] = []
    while len(times) < max_reps and (len(times) < min_reps or sum(times) < budget):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def timing_stats(times: list[float], warm: float) -> dict:
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "reps": len(times),
            "warmup": warm, "times": times}


def provenance(mfx) -> dict:
    """Which mixedfx was timed: its file, and the repository's HEAD and uncommitted changes under src/."""
    def git(*a):
        r = subprocess.run(["git", "-C", ROOT, *a], capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else None
    path = os.path.abspath(mfx.__file__)
    return {"mixedfx_file": path, "from_this_repo": path.startswith(os.path.join(ROOT, "src") + os.sep),
            "repo_head": git("rev-parse", "HEAD"),
            "repo_src_modified": (git("status", "--porcelain", "--", "src") or "").splitlines()}
