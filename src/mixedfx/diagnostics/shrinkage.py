"""What partial pooling did to each group: raw estimate, BLUP and shrinkage factor.

For a term with prior covariance ``G`` and a level ``j`` with conditional covariance
``C_j = Var(b_j | y)`` (lme4's condVar), the shrinkage factor of coefficient ``c`` is

    lambda_jc = 1 - C_j[c, c] / G[c, c],

the share of the prior variance that the group's own data explain.  For a single random
intercept in an LMM it is exactly ``tau^2 / (tau^2 + sigma^2 / n_j)`` (unit weights), and the
BLUP is exactly ``lambda_j`` times the group's mean residual from the fixed part.  For
random slopes and crossed terms the same definition applies coefficient by coefficient;
the raw (no-pooling) estimate is then the group's least-squares fit of the partial residual
``y - X beta - (other terms' Z b)`` on the term's columns (NaN where the group has too few
rows).  For GLMMs the conditional variances are the Laplace ones, and the raw estimate is the
group's own maximum-likelihood fit of ``b_j`` (family and prior weights as the model's) with the
fixed part and the other terms as an offset, by Fisher scoring from the BLUP.  It is NaN where
that estimate does not exist (no events, or all events, in a binomial group: separation).
"""
from __future__ import annotations

import numpy as np
import pandas as pd


__all__ = ["shrinkage"]


def shrinkage(result, group: str | None = None) -> pd.DataFrame:
    """Per level (and term column): ``n, raw, blup, shrinkage`` plus ``closed_form`` for a random intercept."""
    fit = result.fit
    d = fit.design
    labels = [b.group_label for b in d.blocks]
    if group is None:
        group = labels[0]
    if group not in labels:
        raise KeyError(f"no random-effects term with grouping factor {group!r}; the model has {sorted(set(labels))}")
    lams = fit.layout.lambdas(fit.theta)
    scale2 = result._scale ** 2
    is_lmm = getattr(result, "family", None) is None
    frames = []
    for k, (blk, lam) in enumerate(zip(d.blocks, lams)):
        if blk.group_label != group:
            continue
        G = scale2 * lam @ lam.T
        n_j = np.bincount(blk.codes, minlength=blk.nlevels)
        raw = np.full((blk.nlevels, blk.p), np.nan)
        if not is_lmm:
            raw = _glmm_raw(fit, k, blk)
        if is_lmm:
            partial = d.y - d.X @ fit.beta - (0.0 if d.offset is None else d.offset)
            for k2, b2 in enumerate(d.blocks):
                if k2 != k:
                    partial = partial - np.einsum("ij,ij->i", b2.X, fit.b[k2][b2.codes])
            for j in range(blk.nlevels):
                rows = blk.codes == j
                Xj = blk.X[rows]
                if rows.sum() >= blk.p and np.linalg.matrix_rank(Xj) == blk.p:
                    raw[j] = np.linalg.lstsq(Xj, partial[rows], rcond=None)[0]
        for c, cname in enumerate(blk.cnames):
            tau2 = G[c, c]
            lam_jc = 1.0 - fit.cond_var[k][:, c, c] / tau2 if tau2 > 0 else np.zeros(blk.nlevels)
            frame = pd.DataFrame({"group": list(blk.levels), "term": cname, "n": n_j, "raw": raw[:, c],
                                  "blup": fit.b[k][:, c], "shrinkage": lam_jc})
            if is_lmm and blk.p == 1 and cname == "(Intercept)" and d.weights is None:
                frame["closed_form"] = tau2 / (tau2 + result.sigma ** 2 / n_j)
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _glmm_raw(fit, k: int, blk, maxit: int = 50) -> np.ndarray:
    """Per-level no-pooling MLE of term ``k``'s coefficients, other effects held as an offset."""
    gw = fit.fresh_workspace()
    family, y, w = gw.family, gw.y, gw.w
    eta_other = fit.eta - np.einsum("ij,ij->i", blk.X, fit.b[k][blk.codes])
    raw = np.full((blk.nlevels, blk.p), np.nan)
    order = np.argsort(blk.codes, kind="stable")
    bounds = np.searchsorted(blk.codes[order], np.arange(blk.nlevels + 1))
    for j in range(blk.nlevels):
        rows = order[bounds[j]:bounds[j + 1]]
        Xj = blk.X[rows]
        if len(rows) < blk.p or np.linalg.matrix_rank(Xj) < blk.p:
            continue
        b = fit.b[k][j].copy()
        for _ in range(maxit):
            eta = eta_other[rows] + Xj @ b
            mu = family.link.inverse(eta)
            me = family.link.mu_eta(eta)
            wv = w[rows] * me / family.variance(mu)
            W = wv * me
            if not np.all(np.isfinite(W)) or W.max() <= 0:
                b[:] = np.nan
                break
            score = Xj.T @ (wv * (y[rows] - mu))
            info = Xj.T @ (W[:, None] * Xj)
            try:
                step = np.linalg.solve(info, score)
            except np.linalg.LinAlgError:
                b[:] = np.nan
                break
            b = b + step
            if np.max(np.abs(b)) > 30:           # diverging: the MLE does not exist (separation)
                b[:] = np.nan
                break
            if np.max(np.abs(step)) < 1e-10 * (1 + np.max(np.abs(b))):
                break
        else:
            b[:] = np.nan
        raw[j] = b
    return raw
