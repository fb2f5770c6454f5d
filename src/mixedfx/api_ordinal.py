"""``clmm``: cumulative link mixed models for ordered categories (ordinal's ``clmm``).

The response (an ordered pandas Categorical, any categorical or string column, or numbers) is
coded ``1..K`` in its level order (sorted values for numbers and unordered strings, as R's
``factor``); the thresholds replace the intercept.  The stages are glmer's (formula -> design
-> Laplace workspace -> optimizer -> frozen result) with :class:`mixedfx.families.ordinal.CumulativeLink`
as the response distribution.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from .design import DesignError, build_design
from .design.frames import as_pandas
from .families import get_link
from .families.ordinal import ORDINAL_LINKS, CumulativeLink
from .formula import parse_formula
from .models.extended import fit_extended
from .results.ordinal_result import OrdinalMixedModelResult

__all__ = ["clmm"]

_CODE = "mixedfx_ordinal_response_code"


def _response_codes(col: pd.Series, name: str):
    """``(codes 1..K as floats with NaN for missing, levels)``."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        levels = [str(v) for v in col.cat.categories]
        codes = col.cat.codes.to_numpy().astype(float) + 1.0
        codes[col.isna().to_numpy()] = np.nan
        used = np.unique(codes[np.isfinite(codes)]).astype(int)
        empty = [levels[j - 1] for j in range(1, len(levels) + 1) if j not in used]
        if empty:
            raise DesignError(f"the ordinal response {name!r} has empty categor{'y' if len(empty) == 1 else 'ies'} "
                              f"{', '.join(map(repr, empty))} (no observation, or only rows dropped for missing "
                              "values): its thresholds cannot be estimated. Remove unused levels "
                              "(col.cat.remove_unused_categories()) or merge categories")
        return codes, levels
    values = col.to_numpy()
    mask = pd.isna(col).to_numpy()
    uniq = sorted({v for v, m in zip(values, mask) if not m})
    index = {v: i + 1 for i, v in enumerate(uniq)}
    codes = np.array([np.nan if m else index[v] for v, m in zip(values, mask)], float)
    return codes, [str(v) for v in uniq]


def _without_intercept(design):
    """The design with the intercept column removed from X and from the spec that rebuilds X for
    new data (the thresholds replace it; factors keep R's treatment coding, as ordinal's clmm)."""
    fspec = design.spec.fixed
    idx = [j for j, nm in enumerate(fspec.names) if nm != "(Intercept)"]
    new = replace(fspec, names=tuple(fspec.names[j] for j in idx), keep=tuple(fspec.keep[j] for j in idx))
    if not idx and not fspec.termlist.terms:    # only the intercept: no columns
        new = replace(new, termlist=replace(fspec.termlist, intercept=False))
    return replace(design, X=design.X[:, idx], xnames=new.names, spec=replace(design.spec, fixed=new))


def clmm(formula: str, data, link: str = "logit", nagq: int = 1, weights=None, start=None,
         data_name: str | None = None, **control) -> OrdinalMixedModelResult:
    """Fit a cumulative link mixed model: ``P(Y <= j) = F(theta_j - x'beta - z'b)``.

    Parameters
    ----------
    formula : str
        ``"rating ~ temp + contact + (1 | judge)"``: an ordered response (its level order;
        numbers and strings sorted), fixed effects without intercept (the thresholds
        replace it) and lme4 random-effect terms.
    data : data frame
        Any supported data-frame kind; never modified.
    link : str
        ``"logit"`` (proportional odds), ``"probit"`` or ``"cloglog"``.
    nagq : int
        1 (Laplace) or the number of adaptive Gauss-Hermite nodes (> 1: one scalar
        random-effect term, as ordinal's ``nAGQ``).
    weights : optional
        Case weights multiplying each row's log-likelihood.
    start : optional
        A previous result to warm-start from.
    data_name : str, optional
        Name shown in the summary.

    Returns
    -------
    OrdinalMixedModelResult
        ``thresholds``, ``fixef``, ``varcorr``, ``predict(type="prob")``...

    Examples
    --------
    >>> import mixedfx as mfx
    >>> m = mfx.clmm("rating ~ temp + contact + (1 | judge)", mfx.datasets.load("wine"))
    """
    if link not in ORDINAL_LINKS:
        raise ValueError(f"link must be one of {', '.join(map(repr, ORDINAL_LINKS))}, got {link!r}")
    if not isinstance(nagq, (int, np.integer)) or isinstance(nagq, bool) or nagq < 1:
        raise ValueError(f"nagq must be 1 (Laplace) or a number of quadrature nodes > 1, got {nagq!r}")
    if not isinstance(formula, str) or "~" not in formula:
        raise ValueError("formula must be a string such as 'rating ~ temp + (1 | judge)'")
    f = parse_formula(formula)
    resp = f.response_label
    frame = as_pandas(data, "data")
    if resp not in frame.columns:
        raise DesignError(f"the ordinal response must be a column of the data; {resp!r} is not one "
                          f"(columns: {', '.join(map(str, list(frame.columns)[:10]))})")
    codes, levels = _response_codes(frame[resp], resp)
    if len(levels) < 2:
        raise DesignError(f"the ordinal response {resp!r} has {len(levels)} category; it needs at least two")
    rhs = formula.split("~", 1)[1]
    work = frame.assign(**{_CODE: codes})           # a new frame: the caller's data are not modified
    design = build_design(parse_formula(f"{_CODE} ~ {rhs}"), work, weights=weights)
    design = _without_intercept(design)
    present = np.unique(design.y).astype(int)
    if len(present) < len(levels):
        missing = [levels[j - 1] for j in range(1, len(levels) + 1) if j not in present]
        raise DesignError(f"the ordinal response {resp!r} has empty categor{'y' if len(missing) == 1 else 'ies'} "
                          f"{', '.join(map(repr, missing))} among the rows used: its thresholds cannot be "
                          "estimated; merge categories or drop the unused level(s)")
    dist = CumulativeLink(len(levels), link, levels)
    dist.set_start(design.y)
    st = None
    if start is not None:
        prev = getattr(start, "fit", start)
        st = {"theta": prev.theta, "beta": prev.beta, "psi": prev.psi}
    fit = fit_extended(design, dist, get_link("identity"), nagq=int(nagq), start=st, **control)
    call = dict(link=link, nagq=nagq, weights=weights, data_name=data_name, **control)
    return OrdinalMixedModelResult(fit, formula, data_name, (clmm, data, call))
