"""Case-deletion influence for LMMs (definitions of HLMdiag, Loy and Hofmann 2014).

For each case (an observation, or all rows of a group) deleted in turn, with ``beta``, ``V`` the
full-data fixed effects and their covariance and ``beta_(i)``, ``V_(i)`` those without the case
(``p`` fixed effects):

* ``cooksd   = (beta - beta_(i))' V^{-1} (beta - beta_(i)) / p``
* ``mdffits  = (beta - beta_(i))' V_(i)^{-1} (beta - beta_(i)) / p``
* ``covtrace = |tr(V^{-1} V_(i)) - p|``
* ``covratio = det(V_(i)) / det(V)``
* ``rvc.<component> = var_(i) / var - 1`` for sigma^2 and each random-effect variance
* ``leverage``: the hat value of the observation, or the sum over the group's rows.

``method="exact"`` refits without the case: the deleted rows get weight zero in the model's
cross-products (an O(n) re-weight of one workspace; a group left without rows contributes
nothing, as if its level were absent) and BOBYQA restarts from the full-data estimate.
``method="approx"`` keeps the variance parameters at their full-data values (one
factorization per case), the usual one-step approximation.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.optimize import bobyqa, newton_polish
from ..inference.progress import progress_bar
from ..models import make_workspace
from .leverage import hatvalues

__all__ = ["influence"]


def _components(ws, theta, sigma2):
    out = {"sigma2": sigma2}
    for k, lam in enumerate(ws.layout.lambdas(theta)):
        for c, v in enumerate(np.diag(sigma2 * lam @ lam.T)):
            out[f"G{k}_{c}"] = v
    return out


def influence(result, level: str = "obs", method: str = "exact", progress=None, n_jobs: int = 1) -> pd.DataFrame:
    """Influence of each observation (``level="obs"``) or each level of a grouping factor.

    ``progress``: ``None`` (a bar after ~2 s in a terminal or notebook), ``True`` or ``False``;
    see :mod:`mixedfx.inference.progress`.  The bar counts deleted cases.  For GLMMs (``glmer``
    fits) see :mod:`mixedfx.diagnostics.influence_glmm`: refits of the GLMM without each case,
    with lme4's ``dfbetas`` and the changes in theta as further columns; ``n_jobs`` forked
    processes share those refits (``-1``: one per CPU; the table does not depend on it)."""
    if method not in ("exact", "approx"):
        raise ValueError(f"influence(): method must be 'exact' or 'approx', got {method!r}")
    fit = result.fit
    d = fit.design
    n, p = d.X.shape
    if level == "obs":
        units = [np.array([i]) for i in range(n)]
        labels = list(d.row_index)
    else:
        blocks = [b for b in d.blocks if b.group_label == level]
        if not blocks:
            groups = [b.group_label for b in d.blocks]
            raise KeyError(f"influence(): level={level!r} is neither 'obs' nor a grouping factor of the model; "
                           f"use one of {groups}")
        codes = blocks[0].codes
        units = [np.flatnonzero(codes == j) for j in range(blocks[0].nlevels)]
        labels = list(blocks[0].levels)
    h = hatvalues(result)
    if getattr(result, "family", None) is not None:     # glmer fits: refits without each case
        from .influence_glmm import glmm_influence
        return glmm_influence(result, units, labels, h, method=method, progress=progress, n_jobs=n_jobs)
    ws = make_workspace(d, fit.reml, scaling=fit.scaling)
    w = np.ones(n) if d.weights is None else d.weights.copy()
    y = d.y - (0.0 if d.offset is None else d.offset)
    # beta and V on the standardized scale: the measures are invariant quadratic forms there, and
    # beta - beta_(i) is not a difference of huge numbers (an intercept of 1e9 in user units)
    V = fit.internal.vcov
    beta_hat = fit.internal.beta
    Vinv = np.linalg.inv(V)
    logdetV = np.linalg.slogdet(V)[1]
    base = _components(ws, fit.theta, fit.sigma ** 2)
    lower = ws.layout.lower_bounds()
    iws, theta0 = ws.internal, fit.internal.theta     # refits run on the standardized problem
    rows = []
    bar = progress_bar(len(units), "influence", progress)
    for rows_i in units:
        wi = w.copy()
        wi[rows_i] = 0.0
        ws.reweight(wi, y)
        ws.n = n - len(rows_i)
        if method == "exact":   # converged tightly: Cook's distance is a small difference of estimates
            theta_i = bobyqa(iws.objective, theta0, lower, step=0.05, ftol_rel=0.0, ftol_abs=0.0,
                             xtol_abs=1e-12).x
            theta_i = newton_polish(iws.objective, theta_i, lower)   # BOBYQA alone: theta to ~1e-6
        else:
            theta_i = theta0
        ws.update_internal(theta_i)
        beta_i, V_i = iws.beta(), iws.vcov_beta()
        diff = beta_hat - beta_i
        comps = _components(ws, ws.theta, ws.sigma2)
        row = {"leverage": float(h[rows_i].sum()), "cooksd": float(diff @ Vinv @ diff / p),
               "mdffits": float(diff @ np.linalg.solve(V_i, diff) / p),
               "covtrace": float(abs(np.trace(Vinv @ V_i) - p)),
               "covratio": float(np.exp(np.linalg.slogdet(V_i)[1] - logdetV))}
        for key, val in comps.items():
            row[f"rvc.{key}"] = val / base[key] - 1 if base[key] > 0 else np.nan
        rows.append(row)
        bar.update(1)
    bar.close()
    out = pd.DataFrame(rows, index=labels)
    names = {f"rvc.G{k}_{c}": f"rvc.{b.group_label}.{cn}"
             for k, b in enumerate(d.blocks) for c, cn in enumerate(b.cnames)}
    return out.rename(columns=names)
