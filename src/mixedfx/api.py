"""User entry points: compose the stages formula -> design -> models -> results.

They live here rather than in ``models/`` because ``results`` is downstream of
``models`` (see the architecture section of the README).
"""
from __future__ import annotations

import pandas as pd

from .design import build_design
from .formula import parse_formula
from .models import fit_lmm
from .results import LinearMixedModelResult

__all__ = ["lmer"]


def lmer(formula: str, data: pd.DataFrame, reml: bool = True, weights=None, offset=None,
         start="moments", data_name: str | None = None, **control) -> LinearMixedModelResult:
    """Fit a linear mixed model from an lme4 formula.

    Parameters
    ----------
    formula : lme4 formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``.
    data : DataFrame with the variables.  String, categorical and boolean columns are
        factors (R's treatment contrasts); grouping variables are always factors.
    reml : REML (default) or maximum likelihood (``reml=False``).
    weights : prior weights (column name or array); residual variance ``sigma^2 / w_i``.
    offset : known offset (column name or array), added to ``offset(...)`` terms.
    start : initial theta: ``"moments"`` (default), ``"lme4"`` or an array.
    data_name : name shown in the summary.
    control : passed to :func:`mixedfx.models.fit_lmm` (``maxeval``, ``blas_threads``).

    Returns
    -------
    LinearMixedModelResult

    Examples
    --------
    >>> import mixedfx as mfx
    >>> m = mfx.lmer("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))
    >>> round(m.objective, 4)
    1743.6283
    """
    f = parse_formula(formula)
    design = build_design(f, data, weights=weights, offset=offset, lmm=True)
    fit = fit_lmm(design, reml=reml, start=start, **control)
    return LinearMixedModelResult(fit, formula, data_name)
