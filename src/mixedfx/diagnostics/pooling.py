"""Complete, no and partial pooling side by side (the seeds' "pooling spectrum").

``compare_pooling(formula, data)`` fits the same fixed-effects formula three ways:

* complete pooling: one regression ignoring the groups (OLS, or a GLM by IRLS), with its
  naive standard errors and cluster-robust (CR1 sandwich, clustered by the first grouping
  factor) standard errors;
* no pooling: one regression per group, using the columns that vary within the group
  (group-level predictors and columns constant in a group are dropped there, with a note);
  groups with too few rows for their columns are reported, not fitted;
* partial pooling: the mixed model (``lmer``, or ``glmer`` with ``family=``).

``se_inflation`` is the mixed model's SE over the naive complete-pooling SE: for a
group-level predictor the naive SE is typically several times too small.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["PoolingComparison", "compare_pooling"]


@dataclass(frozen=True)
class PoolingComparison:
    coefficients: pd.DataFrame     # per fixed effect: estimates and SEs of each approach
    groups: pd.DataFrame           # per group (and coefficient): n, no-pooling and partial-pooling estimates
    notes: tuple = field(default=())
    model: object = None           # the mixed model

    def __repr__(self) -> str:
        return "PoolingComparison\n" + self.coefficients.to_string() + (
            "\n" + "\n".join(self.notes) if self.notes else "")


def _irls(X, y, w, family, maxit=50):
    """Plain GLM by IRLS (complete pooling for GLMM families): beta and (X'WX)^{-1}."""
    link = family.link
    eta = link.link(family.initial_mu(y, w))
    beta = np.zeros(X.shape[1])
    for _ in range(maxit):
        mu = link.inverse(eta)
        W, me = family.irls_weights(eta, mu, w)
        z = eta + (y - mu) / me
        new = np.linalg.lstsq(X * np.sqrt(W)[:, None], z * np.sqrt(W), rcond=None)[0]
        if np.max(np.abs(new - beta)) < 1e-10:
            beta = new
            break
        beta, eta = new, X @ new
    mu = link.inverse(X @ beta)
    W, me = family.irls_weights(X @ beta, mu, w)
    bread = np.linalg.inv(X.T @ (X * W[:, None]))
    return beta, bread, W, (y - mu) / me


def compare_pooling(formula: str, data: pd.DataFrame, family=None, **kwargs) -> PoolingComparison:
    """Fit complete, no and partial pooling; see the module docstring."""
    from ..api import glmer, lmer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = lmer(formula, data, **kwargs) if family is None else glmer(formula, data, family=family, **kwargs)
    d = m.fit.design
    X, y, n = d.X, d.y, d.n
    w = np.ones(n) if d.weights is None else d.weights
    names = list(d.xnames)
    notes = []
    # complete pooling
    if family is None:
        beta = np.linalg.lstsq(X * np.sqrt(w)[:, None], y * np.sqrt(w), rcond=None)[0]
        resid = y - X @ beta
        dfree = n - X.shape[1]
        s2 = float(np.sum(w * resid ** 2) / dfree)
        bread = np.linalg.inv(X.T @ (X * w[:, None]))
        naive = np.sqrt(np.diag(s2 * bread))
        score_w, work_resid = w, resid
    else:
        beta, bread, score_w, work_resid = _irls(X, y, w, m.family)
        naive = np.sqrt(np.diag(bread))
    clusters = d.blocks[0].codes
    G = d.blocks[0].nlevels
    scores = X * (score_w * work_resid)[:, None]
    meat = np.zeros((X.shape[1], X.shape[1]))
    for g in range(G):
        sg = scores[clusters == g].sum(axis=0)
        meat += np.outer(sg, sg)
    cr1 = G / (G - 1) * (n - 1) / (n - X.shape[1])
    robust = np.sqrt(np.diag(cr1 * bread @ meat @ bread))
    coefficients = pd.DataFrame({"complete_estimate": beta, "complete_se_naive": naive,
                                 "complete_se_cluster": robust, "mixed_estimate": m.fit.beta,
                                 "mixed_se": np.sqrt(np.diag(m.fit.vcov))}, index=names)
    coefficients["se_inflation"] = coefficients["mixed_se"] / coefficients["complete_se_naive"]
    # no pooling, per group of the first grouping factor
    blk = d.blocks[0]
    partial = m.coef()[blk.group_label]
    rows = []
    for j, level in enumerate(blk.levels):
        idx = clusters == j
        Xj, yj, wj = X[idx], y[idx], w[idx]
        varying = [c for c in range(X.shape[1]) if names[c] == "(Intercept)" or np.ptp(Xj[:, c]) > 0]
        est = np.full(X.shape[1], np.nan)
        if idx.sum() <= len(varying) or np.linalg.matrix_rank(Xj[:, varying]) < len(varying):
            notes.append(f"group {level!r} ({int(idx.sum())} rows) cannot be fitted alone: too few rows for "
                         f"{len(varying)} coefficients")
        elif family is None:
            est[varying] = np.linalg.lstsq(Xj[:, varying] * np.sqrt(wj)[:, None], yj * np.sqrt(wj), rcond=None)[0]
        else:
            try:
                est[varying] = _irls(Xj[:, varying], yj, wj, m.family)[0]
            except np.linalg.LinAlgError:
                notes.append(f"group {level!r}: the per-group GLM did not converge")
        dropped = [names[c] for c in range(X.shape[1]) if c not in varying]
        for c, name in enumerate(names):
            rows.append({"group": level, "coefficient": name, "n": int(idx.sum()), "no_pooling": est[c],
                         "partial_pooling": partial.loc[level, name] if name in partial.columns else np.nan,
                         "complete_pooling": beta[c]})
        if dropped and j == 0:
            notes.append(f"no pooling: {', '.join(dropped)} do not vary within groups and cannot be estimated "
                         "per group")
    return PoolingComparison(coefficients, pd.DataFrame(rows), tuple(notes), m)
