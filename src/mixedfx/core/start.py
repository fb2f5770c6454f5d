"""Starting values for theta from cheap moment estimates.

lme4 starts every fit at ``theta = 1`` on the diagonal.  A start nearer the optimum
saves BOBYQA evaluations on large problems: for every term whose first column is an
intercept, the one-way ANOVA estimator on the OLS residuals ``e`` gives

    tau^2 = max((MSB - MSW) / n0, 0),   n0 = (n - sum_g n_g^2 / n) / (l - 1),

and the start is ``theta = sqrt(tau^2 / sigma^2)`` clipped to ``[0.1, 5]`` (so the
start is never on the boundary), with ``sigma^2 = MSW`` of the term with most levels.  With two
or more scalar intercept terms (crossed or nested factors) their moments come from backfitting
all their group means together (:func:`_crossed_moments`): for balanced crossed designs such as
Penicillin that is the REML estimate itself.  A single vector-valued term (random slopes) starts
from per-group least-squares moments (:func:`_random_coefficient_start`).
Other entries keep lme4's start (1 on the diagonal, 0 off it).  The optimum does not
depend on the start for the unimodal profiled deviances of usual LMMs; only the
number of evaluations does.
"""
from __future__ import annotations

import numpy as np

from .covariance import ThetaLayout

__all__ = ["moment_start"]


def _is_intercept(col: np.ndarray) -> bool:
    return col.size > 0 and np.all(col == col[0]) and col[0] != 0


def _random_coefficient_start(e, codes, Xk, nlev) -> np.ndarray | None:
    """Relative factor ``lambda`` for one vector-valued term from per-group least squares (Swamy's
    random-coefficient moments): with ``b_g`` the OLS fit of the residuals on ``Xk`` within group
    ``g`` and ``s^2`` the pooled within-group residual variance,
    ``Sigma = cov_g(b_g) - s^2 mean_g (Xk_g' Xk_g)^{-1}`` and ``lambda = chol(Sigma / s^2)``.
    None when too few groups can be fitted or ``Sigma`` is not positive definite."""
    p = Xk.shape[1]
    XtX = np.empty((nlev, p, p))
    for a in range(p):
        for b in range(a, p):
            XtX[:, a, b] = XtX[:, b, a] = np.bincount(codes, Xk[:, a] * Xk[:, b], minlength=nlev)
    Xte = np.stack([np.bincount(codes, Xk[:, a] * e, minlength=nlev) for a in range(p)], axis=1)
    ete = np.bincount(codes, e * e, minlength=nlev)
    ng = np.bincount(codes, minlength=nlev)
    ok = ng > p
    if ok.sum() < p + 2:
        return None
    try:
        inv = np.linalg.inv(XtX[ok])
    except np.linalg.LinAlgError:
        return None
    b = (inv @ Xte[ok][..., None])[..., 0]
    rss = ete[ok] - np.einsum("gi,gi->g", b, Xte[ok])
    s2 = float(rss.sum() / (ng[ok] - p).sum())
    if not s2 > 0:
        return None
    sigma = np.cov(b, rowvar=False) - s2 * inv.mean(axis=0)
    try:
        lam = np.linalg.cholesky(sigma / s2)
    except np.linalg.LinAlgError:
        return None
    if not np.all(np.isfinite(lam)) or np.min(np.diag(lam)) < 0.1 or np.max(np.abs(lam)) > 10:
        return None
    return lam


def _crossed_moments(e, blocks, which, estimates, sigma2, sweeps: int = 4):
    """Moments for several scalar intercept terms together.

    One-way ANOVA per term counts the other terms' variances as noise (crossed Penicillin: the
    plate start is 5x too small).  Backfitting the group means of all the terms (fewest levels
    first, a few sweeps) separates them: ``sigma^2`` is the residual mean square with
    ``n - sum (l_k - 1) - 1`` degrees of freedom and ``tau_k^2`` the spread of term ``k``'s means
    less their sampling variance ``sigma^2 mean(1 / n_g)``.
    """
    n = len(e)
    order = sorted(range(len(blocks)), key=lambda i: blocks[i][2])
    counts = [np.bincount(b[0], minlength=b[2]).astype(float) for b in blocks]
    means = [np.zeros(b[2]) for b in blocks]
    fit = np.zeros(n)
    for _ in range(sweeps):
        for i in order:
            codes, _, nlev = blocks[i]
            fit -= means[i][codes]
            sums = np.bincount(codes, e - fit, minlength=nlev)
            means[i] = np.divide(sums, counts[i], out=np.zeros(nlev), where=counts[i] > 0)
            fit += means[i][codes]
    dof = n - sum(b[2] - 1 for b in blocks) - 1
    if dof <= 0:
        return estimates, sigma2
    s2 = float(np.sum((e - fit) ** 2) / dof)
    if not s2 > 0:
        return estimates, sigma2
    out = list(estimates)
    for i, k in enumerate(which):
        ok = counts[i] > 0
        m = means[i][ok]
        spread = float(np.sum((m - m.mean()) ** 2) / max(ok.sum() - 1, 1))
        out[k] = (max(spread - s2 * float(np.mean(1.0 / counts[i][ok])), 0.0), s2)
    return out, s2


def moment_start(X: np.ndarray, y: np.ndarray, blocks, layout: ThetaLayout, weights=None) -> np.ndarray:
    """Moment-based theta start (see module docstring); falls back to lme4's start per entry."""
    theta = layout.initial()
    n = len(y)
    sw = np.ones(n) if weights is None else np.sqrt(np.asarray(weights, float))
    if X.shape[1]:
        beta = np.linalg.lstsq(X * sw[:, None], y * sw, rcond=None)[0]
        e = y - X @ beta
    else:
        e = y - np.mean(y)
    estimates = []
    for k, (codes, Xk, nlev) in enumerate(blocks):
        if Xk.shape[1] == 0 or not _is_intercept(Xk[:, 0]) or nlev < 2 or nlev >= n:
            estimates.append(None)
            continue
        ng = np.bincount(codes, minlength=nlev).astype(float)
        sums = np.bincount(codes, e, minlength=nlev)
        means = np.divide(sums, ng, out=np.zeros(nlev), where=ng > 0)
        msw = np.sum((e - means[codes]) ** 2) / (n - nlev)
        msb = np.sum(ng * (means - e.mean()) ** 2) / (nlev - 1)
        n0 = (n - np.sum(ng ** 2) / n) / (nlev - 1)
        estimates.append((max((msb - msw) / n0, 0.0), msw))
    if len(blocks) == 1 and blocks[0][1].shape[1] >= 2:
        start = _random_coefficient_start(e, *blocks[0])
        if start is not None:
            sl, st = layout.slices()[0], layout.structures[0]
            theta[sl] = start[st.rows, st.cols] if st.name == "us" else st.from_cov(start @ start.T)
            return theta
    known = [est for est in estimates if est is not None]
    if not known:
        return theta
    sigma2 = min(msw for _, msw in known)
    scalar = [k for k, est in enumerate(estimates) if est is not None and blocks[k][1].shape[1] == 1]
    if len(scalar) >= 2:
        estimates, sigma2 = _crossed_moments(e, [blocks[k] for k in scalar], scalar, estimates, sigma2)
    for sl, est in zip(layout.slices(), estimates):
        if est is not None and sigma2 > 0:
            theta[sl.start] = float(np.clip(np.sqrt(est[0] / sigma2), 0.1, 5.0))
    return theta
