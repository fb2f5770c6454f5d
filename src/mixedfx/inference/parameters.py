"""lme4's parameter vector of a fitted model and its bounds, in one place.

Per random term its SDs and correlations (``sd_(Intercept)|Subject``,
``cor_Days.(Intercept)|Subject``; for a structured term its own parameters, ``sd_ar1|Subject``,
``rho_ar1|Subject``), then ``sigma`` and the fixed effects: the names and order of
lme4's ``confint``, ``profile`` and ``bootMer`` output, used by the bootstrap and the profiles.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..models.names import group_names

__all__ = ["parameter_vector", "variance_bounds"]


def parameter_vector(blocks, layout, theta, sigma, beta, xnames, with_sigma=True) -> pd.Series:
    """lme4-named parameters (SDs, correlations, sigma, fixed effects) from theta and sigma."""
    names, values = [], []
    groups = group_names([b.group_label for b in blocks])
    theta = np.asarray(theta, float)
    for blk, grp, lam, sl, st in zip(blocks, groups, layout.lambdas(theta), layout.slices(), layout.structures):
        if st.name != "us":       # a structure's own parameters (SDs, rho, kappa, ...)
            names.extend(st.natural_names(grp, blk.cnames))
            values.extend(st.natural_vector(theta[sl], sigma))
            continue
        cov = sigma ** 2 * lam @ lam.T
        sd = np.sqrt(np.diag(cov))
        rows, cols = layout.tril_indices(blk.p)
        for i, j in zip(rows, cols):
            if i == j:
                names.append(f"sd_{blk.cnames[i]}|{grp}")
                values.append(sd[i])
            else:
                names.append(f"cor_{blk.cnames[i]}.{blk.cnames[j]}|{grp}")
                values.append(cov[i, j] / (sd[i] * sd[j]) if sd[i] > 0 and sd[j] > 0 else np.nan)
    if with_sigma:
        names.append("sigma")
        values.append(sigma)
    names.extend(xnames)
    values.extend(beta)
    return pd.Series(values, index=names, dtype=float)


def variance_bounds(sizes) -> tuple[list[float], list[float]]:
    """Bounds of the SD (>= 0) and correlation ([-1, 1]) parameters, in lme4's order per term."""
    lo, hi = [], []
    for p in sizes:
        for b in range(p):
            for a in range(b, p):
                lo.append(0.0 if a == b else -1.0)
                hi.append(np.inf if a == b else 1.0)
    return lo, hi
