"""User entry points: compose the stages formula -> design -> models -> results.

They live here rather than in ``models/`` because ``results`` is downstream of
``models`` (see the architecture section of the README).
"""
from __future__ import annotations

import os

import numpy as np
import pandas as pd

from .api_extended import EXTENDED_FAMILIES, glmer_extended, is_extended
from .design import build_design
from .design.columns import finite_vector
from .formula import parse_formula
from .families import get_family
from .models import fit_glmm, fit_lmm
from .results import GeneralizedLinearMixedModelResult, LinearMixedModelResult

__all__ = ["lmer", "glmer"]


def _check_reml(reml) -> bool:
    if not isinstance(reml, (bool, np.bool_)):
        raise TypeError(f"reml must be True (REML) or False (maximum likelihood), got {reml!r} "
                        f"({type(reml).__name__})")
    return bool(reml)


def _n_theta(design) -> int:
    return sum(b.p * (b.p + 1) // 2 for b in design.blocks)


def _lmm_start(start, design):
    """Check lmer's ``start=``: "moments", "lme4", None, a previous fit or theta values."""
    if start is None or (isinstance(start, str) and start in ("moments", "lme4")):
        return start
    if isinstance(start, str):
        raise ValueError(f"start={start!r} is not a known start; use 'moments' (the default), 'lme4', a previous "
                         "result or an array of theta values")
    start = getattr(start, "fit", start)
    if isinstance(start, dict):
        extra = set(start) - {"theta"}
        if extra:
            raise ValueError(f"start= for lmer takes only 'theta' (got {', '.join(sorted(map(str, extra)))})")
        start = start.get("theta")
    elif hasattr(start, "theta") and not isinstance(start, np.ndarray):
        start = np.asarray(start.theta, dtype=float)
    return finite_vector(start, "start=", _n_theta(design), "theta parameters")


def _glmm_start(start, design):
    """Check glmer's ``start=``: None, a previous result/fit or a dict with 'theta' and/or 'beta'."""
    if start is None:
        return None
    start = getattr(start, "fit", start)
    if hasattr(start, "theta") and hasattr(start, "beta"):
        start = {"theta": start.theta, "beta": start.beta}
    if not isinstance(start, dict):
        raise ValueError(f"start= for glmer must be a previous result or a dict with 'theta' and/or 'beta', "
                         f"got {type(start).__name__}")
    extra = set(start) - {"theta", "beta"}
    if extra:
        raise ValueError(f"start= may hold 'theta' and 'beta' only (got {', '.join(sorted(map(str, extra)))})")
    out = {}
    if start.get("theta") is not None:
        out["theta"] = finite_vector(start["theta"], "start['theta']", _n_theta(design), "theta parameters")
    if start.get("beta") is not None:
        out["beta"] = finite_vector(start["beta"], "start['beta']", design.X.shape[1],
                                     f"fixed effects ({', '.join(design.xnames)})")
    return out


def _check_nagq(nagq) -> int:
    ok = isinstance(nagq, (int, np.integer, float, np.floating)) and not isinstance(nagq, (bool, np.bool_)) \
        and np.isfinite(nagq) and nagq >= 0 and float(nagq).is_integer()
    if not ok:
        raise ValueError(f"nagq must be a whole number >= 0 (0, 1 = Laplace, or quadrature nodes), got {nagq!r}")
    return int(nagq)


def _is_dask_input(data) -> bool:
    """A dask DataFrame (checked without importing dask) or a .parquet/.csv path or glob (issue 13)."""
    if type(data).__module__.split(".")[0] in ("dask", "dask_expr"):
        return True
    return isinstance(data, (str, os.PathLike)) and os.fspath(data).lower().endswith((".parquet", ".csv"))


def _dask_lmer():
    try:
        from .cluster import lmer_dask
    except ImportError as exc:
        raise ImportError(f"fitting on Dask data or a file path needs dask and distributed ({exc}); install them "
                          'with pip install "mixedfx[dask]"') from None
    return lmer_dask


def _dask_glmer():
    try:
        from .cluster import glmer_dask
    except ImportError as exc:
        raise ImportError(f"fitting on Dask data or a file path needs dask and distributed ({exc}); install them "
                          'with pip install "mixedfx[dask]"') from None
    return glmer_dask


def lmer(formula: str, data: pd.DataFrame, reml: bool = True, weights=None, offset=None,
         start="moments", data_name: str | None = None, correlation: str | None = None, disp: str | None = None,
         **control) -> LinearMixedModelResult:
    """Fit a linear mixed model from an lme4 formula.

    The model is ``y = X beta + Z b + e`` with ``b ~ N(0, sigma^2 Lambda Lambda')`` and
    ``e ~ N(0, sigma^2 W^{-1})``; theta (the entries of Lambda) maximizes the REML or ML
    likelihood profiled over beta and sigma.  The fit runs on a standardized copy of the data
    and is reported in the data's units (see the algorithms page).

    Parameters
    ----------
    formula : str
        lme4 formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``.
    data : data frame
        pandas, polars (DataFrame or LazyFrame), pyarrow Table, or a dict of equal-length
        columns; results are identical whichever kind is given.  String, categorical and
        boolean columns are factors (R's treatment contrasts; polars ``Enum`` and Arrow
        dictionary columns keep their level order); grouping variables are always factors.
        A dask DataFrame, or a path or glob ending in ``.parquet`` / ``.csv``, is fitted from
        sums over its partitions without bringing it into memory (``pip install
        "mixedfx[dask]"``; see the Dask page of the docs): the same estimates, lazy per-row outputs.
    reml : bool
        REML (default) or maximum likelihood (``reml=False``).
    weights : str, array or Series, optional
        Prior weights: residual variance ``sigma^2 / w_i``.  A pandas Series is matched to the
        rows by index label; a polars Series or pyarrow array is taken in row order.
    offset : str, array or Series, optional
        Known offset, added to any ``offset(...)`` terms.
    start : str, array or result
        Initial theta: ``"moments"`` (default), ``"lme4"``, a previous result or an array of
        finite theta values, one per theta parameter.
    data_name : str, optional
        Name shown in the summary.
    correlation : str, optional
        Residual correlation within groups: ``"ar1(time | id)"`` (nlme's ``corAR1``, integer
        times), ``"car1(t | id)"`` (``corCAR1``, continuous times), ``"cs(1 | id)"``
        (``corCompSymm``); ``name(1 | id)`` orders rows as in the data.  Every random-effects
        grouping factor must be constant within the residual groups.
    disp : str, optional
        One-sided formula for the residual log-SD, e.g. ``"~ group"`` (nlme's ``varIdent``,
        glmmTMB's Gaussian ``dispformula``); its intercept is ``log sigma``.
    **control
        Passed to :func:`mixedfx.models.fit_lmm`: ``optimizer`` (``"auto"``, ``"lbfgs"``,
        ``"bobyqa"``, ``"newuoa"``, ``"nelder_mead"``, ``"sbplx"``; see :func:`mixedfx.allfit`),
        ``maxeval``, ``blas_threads``.

    Returns
    -------
    LinearMixedModelResult

    Raises
    ------
    FormulaSyntaxError
        The formula does not parse (the message points at the problem).
    DesignError
        The data do not fit the formula; the message names the column, argument or term.
    TypeError
        ``reml`` is not a bool, or ``data`` is not a supported data frame.
    ValueError
        ``start`` is not a known start or has the wrong length or non-finite values.

    Examples
    --------
    >>> import mixedfx as mfx
    >>> m = mfx.lmer("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))
    >>> round(m.objective, 4)
    1743.6283
    """
    reml = _check_reml(reml)
    if _is_dask_input(data):
        return _dask_lmer()(formula, data, reml=reml, weights=weights, offset=offset, start=start,
                            data_name=data_name, correlation=correlation, disp=disp, **control)
    f = parse_formula(formula)
    design = build_design(f, data, weights=weights, offset=offset, lmm=True, correlation=correlation, disp=disp)
    start = _lmm_start(start, design)
    fit = fit_lmm(design, reml=reml, start=start, **control)
    # a reference to the caller's data (not a copy) for result.update(); pickles drop it
    call = dict(reml=reml, weights=weights, offset=offset, data_name=data_name, **control)
    if correlation is not None or disp is not None:
        call.update(correlation=correlation, disp=disp)
    return LinearMixedModelResult(fit, formula, data_name, (lmer, data, call))


def glmer(formula: str, data: pd.DataFrame, family="binomial", link=None, nagq: int = 1, weights=None,
          offset=None, start=None, data_name: str | None = None, zi: str | None = None, disp: str | None = None,
          df: float | None = None, **control) -> GeneralizedLinearMixedModelResult:
    """Fit a generalized linear mixed model by Laplace (``nagq=1``) or adaptive quadrature.

    Parameters
    ----------
    formula : str
        lme4 formula; binomial responses may be 0/1, boolean, a two-level factor (first level
        = failure), ``cbind(successes, failures)`` or a proportion with ``weights=`` trials.
    data : data frame
        As for :func:`lmer` (any supported data-frame kind).
    family : str or Family
        ``"binomial"``, ``"poisson"``, ``"gamma"``, ``"inverse_gaussian"``, ``"gaussian"``,
        ``"negbin"`` (shape estimated, as ``glmer.nb``), or a :class:`mixedfx.families.Family`.
        glmmTMB's families (fitted by its Laplace approximation, every parameter in one
        search): ``"nbinom1"`` (``Var = mu (1 + phi)``), ``"nbinom2"`` (``mu + mu^2 / phi``),
        ``"genpois"``, ``"beta"``, ``"betabinomial"``, ``"t"`` (df estimated, or fixed with
        ``df=``), ``"tweedie"`` (power estimated), ``"lognormal"``, ``"truncated_poisson"``,
        ``"truncated_nbinom1"``, ``"truncated_nbinom2"`` (hurdle models with ``zi=``), or a
        :mod:`mixedfx.families.distributions` object; see the families page.
    link : str, optional
        Link name; the default is the family's canonical link, as in R (e.g. ``link="log"``
        for a log-link Gamma model).
    nagq : int
        0 (the fast first stage only), 1 (Laplace) or the number of adaptive Gauss-Hermite
        nodes (> 1: one scalar random-effect term).
    weights, offset : optional
        As for :func:`lmer`.
    start : result or dict, optional
        A previous result or ``{"theta": ..., "beta": ...}`` to warm-start.
    data_name : str, optional
        Name shown in the summary.
    zi : str, optional
        Zero-inflation formula (``"~ mined"``; ``"~ 1"`` a constant probability): the
        probability of a structural zero on the logit scale; with a ``truncated_*`` family the
        probability of a zero (hurdle).
    disp : str, optional
        Log-dispersion formula (``"~ x"``), for families with a dispersion.
    df : float, optional
        Fixes the Student-t degrees of freedom (``family="t"``; estimated without it).
    **control
        Passed to :func:`mixedfx.models.fit_glmm`: ``optimizer`` (``"auto"``: L-BFGS with the
        analytic gradient of the Laplace or quadrature deviance where the family has one,
        BOBYQA otherwise; ``"lbfgs"``; ``"bobyqa"``, lme4's derivative-free search),
        ``maxeval``, ``blas_threads``.

    Returns
    -------
    GeneralizedLinearMixedModelResult

    Examples
    --------
    >>> import mixedfx as mfx
    >>> m = mfx.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...               mfx.datasets.load("cbpp"), family="binomial")
    """
    nagq = _check_nagq(nagq)
    if _is_dask_input(data):
        if zi is not None or disp is not None or df is not None:
            raise NotImplementedError("zi=, disp= and df= are not supported on Dask data yet; fit in memory")
        return _dask_glmer()(formula, data, family=family, link=link, nagq=nagq, weights=weights, offset=offset,
                             start=start, data_name=data_name, **control)
    if is_extended(family, zi, disp):
        call = dict(family=family, link=link, nagq=nagq, weights=weights, offset=offset, data_name=data_name, zi=zi,
                    disp=disp, df=df, **control)
        return glmer_extended(formula, data, family, link=link, nagq=nagq, weights=weights, offset=offset,
                              start=start, data_name=data_name, zi=zi, disp=disp, df=df,
                              origin=(glmer, data, call), **control)
    if df is not None:
        raise ValueError("df= fixes the degrees of freedom of family='t'; it is not used with the "
                         f"{family!r} family")
    if isinstance(family, str) and family.lower() in ("negbin", "negative_binomial", "negative.binomial"):
        from .models.negbin import fit_negbin
        if start is not None:
            raise ValueError("start= is not used with family='negbin' (the shape search starts from a Poisson "
                             "fit); leave it out")
        fit = fit_negbin(parse_formula(formula), data, link, nagq, weights, offset, **control)
        call = dict(family=family, link=link, nagq=nagq, weights=weights, offset=offset, data_name=data_name,
                    **control)
        return GeneralizedLinearMixedModelResult(fit, formula, data_name, (glmer, data, call))
    try:
        fam = get_family(family, link)
    except ValueError as exc:
        if isinstance(family, str) and str(exc).startswith("unknown family"):
            raise ValueError(f"unknown family {family!r}; choose one of binomial, poisson, gamma, inverse_gaussian, "
                             f"gaussian, negbin (lme4's) or {', '.join(EXTENDED_FAMILIES)} (glmmTMB's)") from None
        raise
    f = parse_formula(formula)
    design = build_design(f, data, weights=weights, offset=offset, family=fam)
    start = _glmm_start(start, design)
    fit = fit_glmm(design, fam, nagq=nagq, start=start, **control)
    # a reference to the caller's data (not a copy) for result.update(); pickles drop it
    call = dict(family=family, link=link, nagq=nagq, weights=weights, offset=offset, data_name=data_name,
                **control)
    return GeneralizedLinearMixedModelResult(fit, formula, data_name, (glmer, data, call))
