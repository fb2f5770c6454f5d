"""Case-deletion influence for GLMMs (lme4's ``influence.merMod`` for ``glmer`` fits).

For each case (an observation, or all rows of a level of a grouping factor) the model is refitted
without it, as lme4's ``influence(model, groups = ...)``: the same family, ``nagq`` and
optimizer, started from the full-data estimates (``method="exact"``).  The deleted rows are
removed from the design, and so is a level left without rows (lme4's refit on the subset drops
it too).  A negative binomial's estimated shape is re-estimated.

With ``beta``, ``V`` the full-data fixed effects and their covariance (the GLMM's, from the
Hessian of the deviance), ``beta_(i)``, ``V_(i)`` those without the case and ``p`` fixed effects:

* ``cooksd   = (beta_(i) - beta)' V^{-1} (beta_(i) - beta) / p`` (HLMdiag's definition, as for
  LMMs; lme4's ``cooks.distance(influence(...))`` is this times ``(m - p) / m`` for ``m``
  deleted cases)
* ``mdffits``, ``covtrace``, ``covratio`` as for LMMs (:mod:`mixedfx.diagnostics.influence`)
* ``dfbetas.<coef> = (beta_(i) - beta) / se_(i)`` (lme4's ``dfbetas``: the SEs of the reduced fit)
* ``dtheta.<theta> = theta_(i) - theta`` (lme4's ``getME(, "theta")`` names)
* ``rvc.<component> = var_(i) / var - 1`` for each random-effect variance (and ``sigma2 = phi``
  for families with a dispersion)
* ``leverage``: the hat value (lme4's GLMM ``hatvalues``) of the row, or the sum over the group
* ``converged``: False for a refit that failed or did not converge (its measures are NaN; a
  warning gives the count).

``method="approx"``: one-step approximation with the variance parameters (theta, and phi or the
shape) at their full-data values: ``beta`` and the modes by penalized IRLS on the reduced data
(lme4's ``nAGQ = 0`` estimate of ``beta``), compared with the same estimate on all data, and
covariances from the PIRLS factor, ``phi (R_X R_X')^{-1}``.  No optimization: one PIRLS
solve per case.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from ..inference.bootstrap_glmm import failure_reason, refit_glmm, warn_failures
from ..inference.parallel import STATE, replicate_map
from ..inference.progress import progress_bar
from ..models.glmm import make_glmm_workspace

__all__ = ["glmm_influence"]


def _subset(design, keep: np.ndarray):
    """The design without the deleted rows and without the levels left with no rows (lme4's refit
    on the subset; the estimates are those of a fit that keeps them with no data, but a level with
    no rows, e.g. a nested factor's when its parent level is deleted, breaks the sparse
    cross-product plan of a crossed model)."""
    def cut(a):
        return None if a is None else a[keep]

    def block(b):
        codes = b.codes[keep]
        used = np.unique(codes)
        if len(used) == b.nlevels:
            return replace(b, codes=codes, X=b.X[keep])
        return replace(b, codes=np.searchsorted(used, codes).astype(b.codes.dtype), X=b.X[keep],
                       levels=tuple(b.levels[i] for i in used))
    return replace(design, y=design.y[keep], X=design.X[keep], weights=cut(design.weights),
                   offset=cut(design.offset), row_index=design.row_index[keep],
                   blocks=tuple(block(b) for b in design.blocks))


def _variances(fit) -> np.ndarray:
    """``sigma2`` (= phi, dispersion families only) then each random-effect variance."""
    out = [fit.phi] if fit.family.has_dispersion else []
    for lam in fit.layout.lambdas(fit.theta):
        out.extend(np.diag(fit.phi * lam @ lam.T))
    return np.asarray(out, float)


def _variance_names(result) -> list[str]:
    names = ["rvc.sigma2"] if result.family.has_dispersion else []
    for b in result.fit.design.blocks:
        names.extend(f"rvc.{b.group_label}.{cn}" for cn in b.cnames)
    return names


def _pirls_estimate(fit, design, theta, beta0):
    """(beta, vcov) by joint PIRLS at fixed ``theta`` (and the fit's phi / shape)."""
    gw = make_glmm_workspace(design, fit.family)
    gw.tol = 1e-10
    gw.pirls(theta, beta=beta0, joint=True, u0=np.zeros(gw.zmap.q))
    return gw.beta.copy(), gw.ws.vcov_beta(scale=fit.phi)


def _deletion_worker(k: int):
    """Case ``k`` deleted: ``(beta, V, theta, variances, None)`` of the reduced fit, or a failure
    ``(None, None, None, None, reason)`` (inputs in :data:`mixedfx.inference.parallel.STATE`)."""
    st = STATE
    fit, d, p, method = st["fit"], st["design"], st["p"], st["method"]
    keep = np.ones(d.n, bool)
    keep[st["units"][k]] = False
    sub = _subset(d, keep)
    try:
        if np.linalg.matrix_rank(sub.X) < p:
            zero = [x for x, c in zip(d.xnames, sub.X.T) if not np.any(c)]
            raise ValueError("the fixed-effects matrix is rank deficient without this case"
                             + (f" (column(s) {', '.join(zero)} all zero)" if zero else ""))
        if method == "exact":
            f = refit_glmm(fit, sub, compute_vcov=True)
            reason = failure_reason(f)
            out = (f.beta, np.asarray(f.vcov, float), f.theta, _variances(f))
        else:
            beta_i, V_i = _pirls_estimate(fit, sub, st["theta0"], st["beta0"])
            reason = None if np.all(np.isfinite(beta_i)) else "non-finite estimates"
            out = (beta_i, V_i, st["theta0"], st["base"])
    except (ArithmeticError, ValueError, np.linalg.LinAlgError, RuntimeError) as exc:
        return None, None, None, None, f"{type(exc).__name__}: {exc}"[:160]
    return (*out, reason) if reason is None else (None, None, None, None, reason)


def glmm_influence(result, units, labels, leverage, method: str = "exact", progress=None,
                   n_jobs: int = 1) -> pd.DataFrame:
    """The influence table (see module docstring) for the cases ``units`` (arrays of row numbers);
    ``n_jobs`` forked processes share the refits (the table does not depend on it)."""
    fit = result.fit
    d = fit.design
    p = d.X.shape[1]
    theta0 = np.asarray(fit.theta, float)
    if method == "exact":
        beta0, V = np.asarray(fit.beta, float), np.asarray(fit.vcov, float)
    else:
        beta0, V = _pirls_estimate(fit, d, theta0, fit.beta)
    Vinv = np.linalg.inv(V)
    logdetV = np.linalg.slogdet(V)[1]
    base = _variances(fit)
    xnames, tnames = list(d.xnames), list(result.theta.index)
    state = {"fit": fit, "design": d, "p": p, "method": method, "units": list(units), "theta0": theta0,
             "beta0": beta0, "base": base}
    with progress_bar(len(units), "influence", progress) as bar:
        reduced = replicate_map(_deletion_worker, state, len(units), n_jobs, bar)
    rows, failed = [], {}
    for label, rows_i, (beta_i, V_i, theta_i, var_i, reason) in zip(labels, units, reduced):
        row = {"leverage": float(leverage[rows_i].sum())}
        if reason is not None:
            failed[label] = reason
            rows.append({**row, "converged": False})
            continue
        diff = beta_i - beta0
        se_i = np.sqrt(np.diag(V_i))
        row.update(cooksd=float(diff @ Vinv @ diff / p), mdffits=float(diff @ np.linalg.solve(V_i, diff) / p),
                   covtrace=float(abs(np.trace(Vinv @ V_i) - p)),
                   covratio=float(np.exp(np.linalg.slogdet(V_i)[1] - logdetV)))
        row.update({f"dfbetas.{x}": v for x, v in zip(xnames, diff / se_i)})
        row.update({f"dtheta.{t}": v for t, v in zip(tnames, np.asarray(theta_i) - theta0)})
        with np.errstate(divide="ignore", invalid="ignore"):
            rvc = np.where(base > 0, var_i / base - 1.0, np.nan)
        row.update(dict(zip(_variance_names(result), rvc)))
        row["converged"] = True
        rows.append(row)
    warn_failures(failed, len(units), "case-deletion refits", unit="cases", fate="have NaN measures")
    columns = (["leverage", "cooksd", "mdffits", "covtrace", "covratio"] + [f"dfbetas.{x}" for x in xnames]
               + [f"dtheta.{t}" for t in tnames] + _variance_names(result) + ["converged"])
    out = pd.DataFrame(rows, index=labels, columns=columns)
    out["converged"] = out["converged"].astype(bool)
    out.attrs["method"] = method
    return out
