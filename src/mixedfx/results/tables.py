"""Tables in R's layout: ``as.data.frame(VarCorr(fit))`` and ``as.data.frame(ranef(fit, condVar=TRUE))``."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..models.names import group_names

__all__ = ["varcorr_frame", "ranef_frame", "group_names", "residual_lines", "structure_lines", "structure_params"]


def varcorr_frame(groups: list[str], cnames: list[tuple[str, ...]], covs: list[np.ndarray],
                  sigma: float | None) -> pd.DataFrame:
    """Rows ``grp, var1, var2, vcov, sdcor``: per term the variances, then covariances
    (lower triangle, column by column, with correlations in ``sdcor``), then ``Residual``.
    ``var2`` (and ``var1`` for the residual) is ``""`` where absent, as in the reference JSON.
    """
    rows = []
    for grp, cn, S in zip(group_names(groups), cnames, covs):
        sd = np.sqrt(np.diag(S))
        for i, name in enumerate(cn):
            rows.append((grp, name, "", S[i, i], sd[i]))
        p = len(cn)
        for j in range(p):
            for i in range(j + 1, p):
                corr = S[i, j] / (sd[i] * sd[j]) if sd[i] > 0 and sd[j] > 0 else np.nan
                rows.append((grp, cn[j], cn[i], S[i, j], corr))
    if sigma is not None:
        rows.append(("Residual", "", "", sigma ** 2, sigma))
    return pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])


def ranef_frame(groups: list[str], cnames: list[tuple[str, ...]], levels: list[tuple[str, ...]],
                b: list[np.ndarray], cond_var: list[np.ndarray] | None) -> pd.DataFrame:
    """Long table ``grpvar, term, grp, condval[, condsd]``.

    Terms sharing a grouping factor are listed under it together (as R's ranef
    merges them); rows are ordered by grouping factor (first appearance in term
    order), then term column, then level.
    """
    order: dict[str, list[int]] = {}
    for k, g in enumerate(groups):
        order.setdefault(g, []).append(k)
    parts = []
    for g, ks in order.items():
        for k in ks:
            nl = len(levels[k])
            for c, term in enumerate(cnames[k]):
                d = {"grpvar": np.repeat(g, nl), "term": np.repeat(term, nl),
                     "grp": np.asarray(levels[k], dtype=object), "condval": b[k][:, c]}
                if cond_var is not None:
                    d["condsd"] = np.sqrt(np.maximum(cond_var[k][:, c, c], 0.0))
                parts.append(pd.DataFrame(d))
    return pd.concat(parts, ignore_index=True)


def residual_lines(residual) -> list[str]:
    """Summary lines for a residual model (``correlation=`` / ``disp=``)."""
    out = []
    nat = residual.natural
    if residual.correlation is not None:
        key = "phi" if "phi" in nat else "rho"
        out.append(f"residual correlation {residual.correlation.text}: {key} = {nat[key]:.4g}")
    delta = np.asarray(nat.get("delta", ()), float)
    if delta.size:
        coefs = ", ".join(f"{n} {v:.4g}" for n, v in zip(residual.disp_names, delta))
        ratios = ", ".join(f"{n} {np.exp(v):.4g}" for n, v in zip(residual.disp_names, delta))
        out.append(f"residual log-SD coefficients (disp=): {coefs} (SD ratios {ratios}; the residual SD above is "
                   "the baseline's)")
    return out


def structure_lines(blocks, layout, theta) -> list[str]:
    """One line per structured random-effects term: its correlation parameter(s) (glmmTMB's report)."""
    out = []
    theta = np.asarray(theta, float)
    for b, sl, st in zip(blocks, layout.slices(), layout.structures):
        nat = st.natural(theta[sl])
        if not nat:
            continue
        parts = []
        for k, v in nat.items():
            v = np.atleast_1d(np.asarray(v, float))
            parts.append(f"{k} = " + ", ".join(f"{x:.4g}" for x in v))
        out.append(f"{b.term.text}: " + "; ".join(parts))
    return out


def structure_params(blocks, layout, theta, sigma: float) -> dict:
    """``{term text: {"sd": ..., **natural}}`` for the terms with a structure other than ``us``."""
    out = {}
    theta = np.asarray(theta, float)
    for b, sl, st in zip(blocks, layout.slices(), layout.structures):
        if st.name == "us":
            continue
        sd = sigma * np.sqrt(np.diag(st.cov(theta[sl])))
        entry = {"sd": float(sd[0]) if st.scaling == "common" else sd}
        entry.update(st.natural(theta[sl]))
        out[b.term.text] = entry
    return out
