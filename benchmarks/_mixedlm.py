"""The mixedlm side of the timing benchmarks (Python with a Rust core, ``pip install mixedlm``)."""
from __future__ import annotations

import statistics
import time
import tracemalloc
import warnings

__all__ = ["have_mixedlm", "time_mixedlm"]


def have_mixedlm() -> bool:
    try:
        import mixedlm  # noqa: F401
    except ImportError:
        return False
    return True


def time_mixedlm(formula: str, df, reml: bool, reps: int) -> dict:
    """Median of ``reps`` whole ``mixedlm.lmer`` calls after a warm-up, the criterion (REML
    criterion or ML deviance), evaluations, convergence and Python-side peak memory; an error
    is reported in the result, not raised."""
    import mixedlm
    out = {"version": getattr(mixedlm, "__version__", None)}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = mixedlm.lmer(formula, df, REML=reml)               # warm-up
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                r = mixedlm.lmer(formula, df, REML=reml)
                times.append(time.perf_counter() - t0)
            tracemalloc.start()
            mixedlm.lmer(formula, df, REML=reml)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    except Exception as err:   # report, do not stop the benchmark
        return out | {"error": f"{type(err).__name__}: {err}"}
    crit = getattr(r, "REMLcrit", None) if reml else None
    objective = float(crit() if callable(crit) else crit) if crit is not None else float(r.deviance)
    return out | {"median": statistics.median(times), "min": min(times), "max": max(times), "reps": reps,
                  "objective": objective, "evaluations": int(r.function_evals),
                  "iterations": int(r.n_iter), "ntheta": len(r.theta), "converged": bool(r.converged),
                  "at_boundary": bool(r.at_boundary), "optimizer": r.optimizer, "message": r.message,
                  "peak_mb_python": peak / 2**20}
