"""The pooling explorer's payload for a fitted model: per group its size, raw estimate, BLUP,
conditional SD and shrinkage factor, plus the estimated random-effects covariance.

Coefficients are reported on the scale of the group's own coefficient: the fixed effect of the
same column (zero when the fixed part has no such column) plus the random effect, so a random
intercept's BLUP is ``beta_0 + b_j`` and its raw estimate ``beta_0 + raw_j``, where ``raw_j`` is
the group's no-pooling estimate of :func:`mixedfx.diagnostics.shrinkage` (the group's least-squares
fit of the partial residual, other terms at their BLUPs).  The conditional SDs are the square roots
of the diagonal of the fit's conditional covariances (lme4's ``condVar``), and the shrinkage factor
of a coefficient is ``1 - Var(b_jc | y) / G_cc``; for one random intercept with unit weights it is
``tau^2 / (tau^2 + sigma^2 / n_j)``.
"""
from __future__ import annotations

import math

import numpy as np

from ..diagnostics.shrinkage import shrinkage as _shrinkage

__all__ = ["fit_payload"]


def _num(v) -> float | None:
    """A float for JSON, None for NaN / infinity."""
    v = float(v)
    return v if math.isfinite(v) else None


def _block_index(result, group: str | None) -> int:
    blocks = result.fit.design.blocks
    labels = [b.group_label for b in blocks]
    if group is None:
        return 0
    if group not in labels:
        raise KeyError(f"explore(group={group!r}): the model has no random-effects term with that grouping factor; "
                       f"its grouping factors are {sorted(set(labels))}")
    return labels.index(group)


def fit_payload(result, group: str | None = None) -> dict:
    """The JSON-ready description of one random-effects term of ``result`` for the explorer page.

    Parameters
    ----------
    result : fitted mixed model (``mixedfx.lmer`` result; ``glmer`` results work on the link scale)
    group : str, optional
        Grouping factor to show (default: the first random-effects term's).  A random intercept
        is shown as estimates per group against the fixed effect; a term with two or more columns
        as the 2-D view of its first two columns (raw vs BLUP coefficients and the covariance ellipse).

    Returns
    -------
    dict
        ``mode="fit"``, ``formula``, ``group``, ``terms``, ``dim`` (1 or 2), ``center`` (fixed effects
        of the shown columns), ``G`` (their random-effects covariance), ``tau`` (SDs), ``sigma``
        (residual SD or None), ``note`` and ``groups``: per level ``label, n, raw, blup, ranef,
        condsd, lambda`` (lists over the shown columns) and, for a random intercept, ``y`` (the
        observations' partial residuals on the intercept's scale).
    """
    fit = getattr(result, "fit", None)
    if fit is None or not hasattr(fit, "design") or not hasattr(fit, "cond_var"):
        raise TypeError("explore() needs a fitted mixed model (mixedfx.lmer or glmer result), "
                        f"got {type(result).__name__}")
    d = fit.design
    if getattr(d, "y", None) is None:       # a loaded result, or a fit on Dask data: no rows in memory
        raise ValueError("explore() needs the fitted rows (group sizes and raw estimates come from them), and this "
                         "result has none (loaded from a file, or fitted on Dask data); refit in memory with "
                         "mfx.lmer/mfx.glmer on a pandas frame and call explore() on that result")
    k = _block_index(result, group)
    blk = d.blocks[k]
    label = blk.group_label
    cols = list(blk.cnames)
    notes = []
    if len(cols) > 2:
        notes.append(f"The term has {len(cols)} columns; the explorer shows the first two ({cols[0]}, {cols[1]}).")
    shown = cols[:2]
    dim = len(shown)
    same_label = [i for i, b in enumerate(d.blocks) if b.group_label == label]
    if len(d.blocks) > 1:
        notes.append("Other random-effects terms are held at their BLUPs in the raw estimates.")
    if len(same_label) > 1:
        notes.append(f"{label} has {len(same_label)} random-effects terms; the explorer shows the first.")
    table = _shrinkage(result, group=label)
    xnames = list(d.xnames)
    beta = np.asarray(fit.beta, float)
    center = np.array([beta[xnames.index(c)] if c in xnames else 0.0 for c in shown])
    lam = fit.layout.lambdas(fit.theta)[k]
    G = (result._scale ** 2) * (lam @ lam.T)
    G = G[:dim, :dim]
    n_j = np.bincount(blk.codes, minlength=blk.nlevels)
    levels = [str(v) for v in blk.levels]
    raw = np.full((blk.nlevels, dim), np.nan)
    shr = np.zeros((blk.nlevels, dim))
    for c, cname in enumerate(shown):
        rows = table[table["term"] == cname].iloc[: blk.nlevels]     # the first term of this group's block
        raw[:, c] = rows["raw"].to_numpy(float)
        shr[:, c] = rows["shrinkage"].to_numpy(float)
    b = np.asarray(fit.b[k], float)[:, :dim]
    cv = np.asarray(fit.cond_var[k], float)[:, :dim, :dim]
    obs = None
    if dim == 1 and getattr(result, "family", None) is None:
        partial = d.y - d.X @ beta - (0.0 if d.offset is None else d.offset)
        for k2, b2 in enumerate(d.blocks):
            if k2 != k:
                partial = partial - np.einsum("ij,ij->i", b2.X, fit.b[k2][b2.codes])
        if cols == ["(Intercept)"]:
            obs = [[] for _ in range(blk.nlevels)]
            for code, v in zip(blk.codes, partial + center[0]):
                obs[code].append(_num(v))
    groups = []
    for j in range(blk.nlevels):
        groups.append({"label": levels[j], "n": int(n_j[j]),
                       "raw": [_num(center[c] + raw[j, c]) for c in range(dim)],
                       "blup": [_num(center[c] + b[j, c]) for c in range(dim)],
                       "ranef": [_num(b[j, c]) for c in range(dim)],
                       "condsd": [_num(math.sqrt(max(cv[j, c, c], 0.0))) for c in range(dim)],
                       "lambda": [_num(shr[j, c]) for c in range(dim)],
                       **({"y": obs[j]} if obs is not None else {})})
    sigma = getattr(result, "_residual_sd", None)
    family = getattr(result, "family", None)
    if family is not None:
        notes.append("A generalized model: estimates are on the link scale.")
    return {"mode": "fit", "formula": str(getattr(result, "formula", "")), "group": label, "terms": shown,
            "dim": dim, "center": [float(v) for v in center], "G": [[float(v) for v in row] for row in G],
            "tau": [float(math.sqrt(max(G[c, c], 0.0))) for c in range(dim)],
            "sigma": None if sigma is None else _num(sigma), "note": " ".join(notes), "groups": groups}
