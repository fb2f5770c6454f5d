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

__all__ = ["fitted_partition", "residual_partition", "predict_partition", "glmm_fitted_partition",
           "glmm_residual_partition", "glmm_predict_partition"]


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


def _scale(fit, eta, type: str) -> np.ndarray:
    return fit.family.link.inverse(eta) if type == "response" else eta


def glmm_fitted_partition(part: pd.DataFrame, fit, weights, type: str = "response", name: str = "predict") -> pd.Series:
    """A GLMM's conditional linear predictor (``type="link"``) or mean (``"response"``) for the complete rows."""
    a = evaluate_partition(fit.design.spec, part, weights=weights)
    if a is None:
        return pd.Series(np.zeros(0), index=part.index[:0], name=name, dtype=float)
    return pd.Series(_scale(fit, _eta(fit, a, range(len(a.blocks))), type), index=a.row_index, name=name)


def glmm_residual_partition(part: pd.DataFrame, fit, weights, type: str = "deviance", level: str = "conditional",
                            name: str = "residuals") -> pd.Series:
    """A GLMM's residuals for the complete rows, as the in-memory result's: ``"deviance"``, ``"pearson"``
    (``(y - mu) sqrt(w / V(mu))``), ``"response"`` or ``"working"``; ``level="marginal"``: random effects at 0."""
    a = evaluate_partition(fit.design.spec, part, weights=weights)
    if a is None:
        return pd.Series(np.zeros(0), index=part.index[:0], name=name, dtype=float)
    fam = fit.family
    eta = _eta(fit, a, range(len(a.blocks)) if level == "conditional" else ())
    mu = fam.link.inverse(eta)
    w = np.ones(len(a.y)) if a.weights is None else a.weights
    r = a.y - mu
    if type == "pearson":
        r = r * np.sqrt(w / fam.variance(mu))
    elif type == "deviance":
        r = np.sign(r) * np.sqrt(np.maximum(w * fam.unit_deviance(a.y, mu), 0.0))
    elif type == "working":
        r = r / fam.link.mu_eta(eta)
    return pd.Series(r, index=a.row_index, name=name)


def glmm_predict_partition(part: pd.DataFrame, fit, re_form, allow_new_levels: bool, type: str = "link",
                           name: str = "predict") -> pd.Series:
    """``predict(newdata=part, type=type)`` of a GLMM as a Series on the partition's index."""
    if len(part) == 0:
        return pd.Series(np.zeros(0), index=part.index, name=name, dtype=float)
    eta = predict_eta(fit, part, re_form, allow_new_levels)
    return pd.Series(_scale(fit, eta, type), index=part.index, name=name)
