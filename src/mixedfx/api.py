"""User entry points: compose the stages formula -> design -> models -> results.

They live here rather than in ``models/`` because ``results`` is downstream of
``models`` (see the architecture section of the README).
"""
from __future__ import annotations

import pandas as pd

from .design import build_design
from .formula import parse_formula
from .families import get_family
from .models import fit_glmm, fit_lmm
from .results import GeneralizedLinearMixedModelResult, LinearMixedModelResult

__all__ = ["lmer", "glmer"]


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


def glmer(formula: str, data: pd.DataFrame, family="binomial", link=None, nagq: int = 1, weights=None,
          offset=None, start=None, data_name: str | None = None, **control) -> GeneralizedLinearMixedModelResult:
    """Fit a generalized linear mixed model by Laplace (``nagq=1``) or adaptive quadrature.

    Parameters
    ----------
    formula : lme4 formula; binomial responses may be 0/1, boolean, a two-level factor
        (first level = failure), ``cbind(successes, failures)`` or a proportion with
        ``weights=`` trials.
    family : ``"binomial"``, ``"poisson"``, ``"gamma"``, ``"inverse_gaussian"``, ``"gaussian"``,
        ``"negbin"`` (shape estimated), or a :class:`mixedfx.families.Family`.
    link : link name (default: the family's canonical link as in R, log for gamma is
        ``link="log"``).
    nagq : 0 (fast first stage only), 1 (Laplace) or > 1 quadrature nodes (one scalar term).
    start : a previous result or ``{"theta": ..., "beta": ...}`` to warm-start.

    Examples
    --------
    >>> import mixedfx as mfx
    >>> m = mfx.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...               mfx.datasets.load("cbpp"), family="binomial")
    """
    if isinstance(family, str) and family.lower() in ("negbin", "negative_binomial", "negative.binomial"):
        from .models.negbin import fit_negbin
        fit = fit_negbin(parse_formula(formula), data, link, nagq, weights, offset, **control)
        return GeneralizedLinearMixedModelResult(fit, formula, data_name)
    fam = get_family(family, link)
    f = parse_formula(formula)
    design = build_design(f, data, weights=weights, offset=offset, family=fam)
    if start is not None and hasattr(start, "fit"):
        start = start.fit
    fit = fit_glmm(design, fam, nagq=nagq, start=start, **control)
    return GeneralizedLinearMixedModelResult(fit, formula, data_name)
