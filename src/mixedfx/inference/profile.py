"""Likelihood profiles and profile confidence intervals (lme4's ``profile`` / ``confint``).

The profilers live in :mod:`mixedfx.inference.profile_lmm` (LMMs: the ML deviance in
``(theta, sigma)``) and :mod:`mixedfx.inference.profile_glmm` (the Laplace or quadrature
deviance in ``(theta, beta)``); this module dispatches to them and builds the intervals and
zeta curves.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .profile_glmm import GlmmProfiler
from .profile_lmm import _Profiler
from .profile_structured import ResidualProfiler, StructuredGlmmProfiler, StructuredProfiler
from .progress import progress_bar

__all__ = ["profile", "profile_confint"]


def _profiler(result):
    if getattr(result.fit, "residual", None) is not None:
        return ResidualProfiler(result)
    if result.fit.layout.structured:
        if getattr(result, "family", None) is not None:
            return StructuredGlmmProfiler(result)
        return StructuredProfiler(result)
    if getattr(result, "family", None) is None:
        return _Profiler(result)
    return GlmmProfiler(result)


def profile_confint(result, level: float = 0.95, parm=None, progress=None) -> pd.DataFrame:
    """Profile-likelihood intervals indexed by lme4's names (``progress``: see
    :mod:`mixedfx.inference.progress`; the bar counts interval ends)."""
    pr = _profiler(result)
    z = stats.norm.ppf(0.5 + level / 2)
    names = pr.names if parm is None else list(np.atleast_1d(parm))
    rows = {}
    for name in names:
        if name not in pr.names:
            raise KeyError(f"unknown parameter {name!r}; available: {pr.names}")
    with progress_bar(2 * len(names), "profile", progress) as bar:
        for name in names:
            j = pr.names.index(name)
            lower = pr.limit(j, -z)
            bar.update(1)
            rows[name] = {"lower": lower, "upper": pr.limit(j, z)}
            bar.update(1)
    return pd.DataFrame.from_dict(rows, orient="index", columns=["lower", "upper"])


def profile(result, parm=None, width: float = 3.0, points: int = 9, progress=None) -> pd.DataFrame:
    """Zeta curves: for each parameter, ``points`` values on each side of the estimate out to
    ``|zeta| = width`` (or a bound), with their signed root deviances.  Columns
    ``param, value, zeta``.  ``progress``: see :mod:`mixedfx.inference.progress` (the bar
    counts half-curves)."""
    pr = _profiler(result)
    names = pr.names if parm is None else list(np.atleast_1d(parm))
    rows = []
    with progress_bar(2 * len(names), "profile", progress) as bar:
        for name in names:
            j = pr.names.index(name)
            c, _ = pr.center_and_scale(j)
            rows.append((name, c, 0.0))
            for side in (-1, 1):
                end = pr.limit(j, side * width)
                if np.isfinite(end):
                    for x in np.linspace(c, end, points + 1)[1:]:
                        rows.append((name, float(x), pr.zeta(j, float(x))))
                bar.update(1)
    return pd.DataFrame(rows, columns=["param", "value", "zeta"]).sort_values(["param", "value"],
                                                                               kind="stable").reset_index(drop=True)
