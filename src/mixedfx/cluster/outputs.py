"""Per-row outputs of a fit on Dask: per-partition functions for ``map_partitions``.

Each function evaluates one pandas partition with the fit's frozen spec (complete rows only, as the
in-memory fit keeps them: rows dropped for missing values are absent from fitted values and
residuals) and returns a float Series on the partition's index.  The fit shipped to the workers is
the light :class:`~mixedfx.results.io.LoadedFit` (estimates, spec, standardization; no blocks).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..design.learn import evaluate_partition
from ..results.predict import _combine, predict_eta

__all__ = ["fitted_partition", "residual_partition", "predict_partition"]


def _eta(fit, a, terms) -> np.ndarray:
    parts = [(k, a.blocks[k]) for k in terms]
    return _combine(fit, a.X, parts, a.offset)


def fitted_partition(part: pd.DataFrame, fit, weights, name: str = "fitted") -> pd.Series:
    """``X beta + Z b (+ offset)`` for the partition's complete rows."""
    a = evaluate_partition(fit.design.spec, part, weights=weights)
    if a is None:
        return pd.Series(np.zeros(0), index=part.index[:0], name=name, dtype=float)
    return pd.Series(_eta(fit, a, range(len(a.blocks))), index=a.row_index, name=name)


def residual_partition(part: pd.DataFrame, fit, weights, type: str, level: str,
                       name: str = "residuals") -> pd.Series:
    """Response or Pearson residuals (``sqrt(w)`` times raw) at the conditional or marginal level."""
    a = evaluate_partition(fit.design.spec, part, weights=weights)
    if a is None:
        return pd.Series(np.zeros(0), index=part.index[:0], name=name, dtype=float)
    r = a.y - _eta(fit, a, range(len(a.blocks)) if level == "conditional" else ())
    if type in ("pearson", "deviance") and a.weights is not None:
        r = r * np.sqrt(a.weights)
    return pd.Series(r, index=a.row_index, name=name)


def predict_partition(part: pd.DataFrame, fit, re_form, allow_new_levels: bool, name: str = "predict") -> pd.Series:
    """The in-memory ``predict(newdata=part)`` as a Series on the partition's index (NaN for rows with a
    missing predictor)."""
    if len(part) == 0:
        return pd.Series(np.zeros(0), index=part.index, name=name, dtype=float)
    return pd.Series(predict_eta(fit, part, re_form, allow_new_levels), index=part.index, name=name)
