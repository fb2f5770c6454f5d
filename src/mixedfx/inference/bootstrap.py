"""Parametric bootstrap of an LMM: simulate from the fit, refit, collect lme4-named parameters.

Each replicate draws ``y*`` with :func:`mixedfx.inference.simulate.simulate_array` and refits
on a separate workspace built once for the design: only the cross-products change
(``reweight``, O(n)), and BOBYQA starts at the original estimate with a small trust region,
so a sleepstudy refit costs a few milliseconds.  Parameters are reported on lme4's scale and
with its names (``sd_(Intercept)|Subject``, ``cor_Days.(Intercept)|Subject``, ``sigma`` and the
fixed effects); percentile intervals come from :func:`boot_confint`.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd

from ..core.optimize import bobyqa
from ..models import make_workspace
from ..results.extensions import register
from ..results.tables import group_names
from .simulate import simulate_array

__all__ = ["bootstrap", "parameter_vector", "boot_confint"]


def parameter_vector(blocks, layout, theta, sigma, beta, xnames, with_sigma=True) -> pd.Series:
    """lme4-named parameters (SDs, correlations, sigma, fixed effects) from theta and sigma."""
    names, values = [], []
    groups = group_names([b.group_label for b in blocks])
    for blk, grp, lam in zip(blocks, groups, layout.lambdas(theta)):
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


@register("bootstrap")
def bootstrap(result, nsim: int = 500, seed=None, use_u: bool = False, progress: bool = False) -> pd.DataFrame:
    """Parametric bootstrap replicates (one row each) of an LMM's parameters.

    The DataFrame has an attribute ``refits_per_second``.
    """
    fit = result.fit
    if getattr(result, "family", None) is not None:
        raise NotImplementedError("the parametric bootstrap is available for linear mixed models; GLMMs are next")
    d = fit.design
    ws = make_workspace(d, fit.reml)
    lower = ws.layout.lower_bounds()
    Y = simulate_array(result, nsim, seed, None, use_u)
    off = 0.0 if d.offset is None else d.offset
    it = range(nsim)
    if progress:
        try:
            from tqdm.auto import tqdm
            it = tqdm(it, total=nsim, desc="bootstrap")
        except ImportError:
            pass
    rows = []
    t0 = time.perf_counter()
    for s in it:
        ws.reweight(d.weights, Y[:, s] - off)
        opt = bobyqa(ws.objective, fit.theta, lower, step=0.05)
        ws.update(opt.x)
        rows.append(parameter_vector(d.blocks, ws.layout, opt.x, np.sqrt(ws.sigma2), ws.beta(), d.xnames))
    seconds = time.perf_counter() - t0
    out = pd.DataFrame(rows).reset_index(drop=True)
    out.attrs["refits_per_second"] = nsim / seconds if seconds > 0 else np.inf
    return out


def boot_confint(result, level=0.95, nsim=500, seed=None) -> pd.DataFrame:
    """Percentile intervals from :func:`bootstrap` replicates."""
    reps = bootstrap(result, nsim=nsim, seed=seed)
    a = (1 - level) / 2
    return pd.DataFrame({"lower": reps.quantile(a), "upper": reps.quantile(1 - a)})
