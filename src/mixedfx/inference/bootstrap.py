"""Parametric bootstrap of an LMM: simulate from the fit, refit, collect lme4-named parameters.

Each replicate draws ``y*`` on the standardized scale with
:func:`mixedfx.inference.simulate.simulate_internal` and refits on a separate workspace built
once for the design: only the cross-products change
(``reweight``, O(n)), and BOBYQA starts at the original estimate with a small trust region,
so a sleepstudy refit costs a few milliseconds.  Parameters are reported on lme4's scale and
with its names (``sd_(Intercept)|Subject``, ``cor_Days.(Intercept)|Subject``, ``sigma`` and the
fixed effects); percentile intervals come from :func:`boot_confint`.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd

from ..core.fused import compiled_criterion
from ..core.optimize import bobyqa
from ..models import make_workspace
from .parallel import STATE, check_count, replicate_map
from .parameters import parameter_vector
from .progress import progress_bar
from .simulate import simulate_internal

__all__ = ["bootstrap", "boot_confint"]


def _refit_one(s: int) -> pd.Series:
    """Replicate ``s``: the LMM refitted to the simulated response ``Y[:, s]`` (the design,
    simulated responses and start in :data:`mixedfx.inference.parallel.STATE`)."""
    d, reml, theta, Y = STATE["design"], STATE["reml"], STATE["theta"], STATE["Y"]
    ws = STATE.get("ws")
    if ws is None:      # one workspace per process, kept for the replicates that follow
        ws = STATE["ws"] = make_workspace(d, reml, scaling=STATE["scaling"])
    # refits run on the standardized problem; parameters are reported in user units
    ws.internal.reweight(ws.weights, Y[:, s])
    criterion = compiled_criterion(ws.internal) or ws.internal.objective     # small models with numba: compiled
    opt = bobyqa(criterion, theta, ws.layout.lower_bounds(), step=0.05)
    ws.update_internal(opt.x)
    return parameter_vector(d.blocks, ws.layout, ws.theta, np.sqrt(ws.sigma2), ws.beta(), d.xnames)


def bootstrap(result, nsim: int = 500, seed=None, use_u: bool = False, progress=None,
              n_jobs: int = 1) -> pd.DataFrame:
    """Parametric bootstrap replicates (one row each) of an LMM's or GLMM's parameters.

    GLMMs (``glmer`` fits): see :mod:`mixedfx.inference.bootstrap_glmm` (responses drawn from the
    family, refits that fail or do not converge dropped with a warning, ``attrs["failed"]``).
    All ``nsim`` responses are simulated first (so the replicates do not depend on ``n_jobs``),
    then refitted from the estimate on a re-weighted copy of the workspace.  ``n_jobs > 1`` splits
    the refits over forked worker processes (``-1``: one per CPU; platforms without ``fork``
    run serially).  ``progress``: ``None`` (a bar after ~2 s in a terminal or notebook), ``True``
    or ``False`` (see :mod:`mixedfx.inference.progress`); it counts finished replicates, also
    with ``n_jobs > 1``.  The DataFrame has an attribute ``refits_per_second``.
    """
    fit = result.fit
    nsim = check_count(nsim)
    if hasattr(fit, "dist"):
        raise NotImplementedError("the parametric bootstrap is available for lmer() and glmer() fits with lme4's "
                                  "families, not glmmTMB-style or ordinal models")
    if getattr(result, "family", None) is not None:
        from .bootstrap_glmm import glmm_bootstrap
        return glmm_bootstrap(result, nsim=nsim, seed=seed, use_u=use_u, progress=progress, n_jobs=n_jobs)
    if getattr(fit, "residual", None) is not None:
        return _bootstrap_residual(result, nsim, seed, use_u, progress, n_jobs)
    Y = simulate_internal(result, nsim, seed, use_u)      # standardized responses
    state = {"design": fit.design, "reml": fit.reml, "theta": np.asarray(fit.internal.theta, float), "Y": Y,
             "scaling": fit.scaling}
    t0 = time.perf_counter()
    with progress_bar(nsim, "bootstrap", progress) as bar:
        rows = replicate_map(_refit_one, state, nsim, n_jobs, bar)
    seconds = time.perf_counter() - t0
    out = pd.DataFrame(rows).reset_index(drop=True)
    out.attrs["refits_per_second"] = nsim / seconds if seconds > 0 else np.inf
    return out


def _refit_residual_one(s: int) -> pd.Series:
    """Replicate ``s`` of a model with ``correlation=`` / ``disp=``: refitted in full."""
    from dataclasses import replace

    from ..models.residual_fit import fit_lmm_residual
    d = STATE["design"]
    f = fit_lmm_residual(replace(d, y=STATE["Y"][:, s]), STATE["reml"], warn=False)
    pv = parameter_vector(d.blocks, f.layout, f.theta, f.sigma, f.beta, d.xnames)
    extra = pd.Series(_residual_natural(f.residual), dtype=float)
    return pd.concat([pv.iloc[:f.layout.n_theta + 1], extra, pv.iloc[f.layout.n_theta + 1:]])


def _bootstrap_residual(result, nsim, seed, use_u, progress, n_jobs) -> pd.DataFrame:
    """The bootstrap of a model with ``correlation=`` / ``disp=``: responses with correlated residuals
    (:func:`mixedfx.inference.simulate.simulate_array`, on the data's scale with the offset), each
    refitted in full."""
    from .simulate import simulate_array
    fit = result.fit
    Y = simulate_array(result, nsim, seed, use_u=use_u)
    t0 = time.perf_counter()
    with progress_bar(nsim, "bootstrap", progress) as bar:
        rows = replicate_map(_refit_residual_one, {"design": fit.design, "reml": fit.reml, "Y": Y}, nsim, n_jobs,
                             bar)
    seconds = time.perf_counter() - t0
    out = pd.DataFrame(rows).reset_index(drop=True)
    out.attrs["refits_per_second"] = nsim / seconds if seconds > 0 else np.inf
    return out


def _residual_natural(residual) -> dict:
    """``{"rho": ..., "delta_SexFemale": ...}``: the residual model's parameters by name."""
    out = {k: v for k, v in residual.natural.items() if k != "delta"}
    for name, v in zip(residual.disp_names, np.atleast_1d(residual.natural.get("delta", ()))):
        out[f"delta_{name}"] = float(v)
    return out


def boot_confint(result, level=0.95, nsim=500, seed=None, n_jobs: int = 1, progress=None) -> pd.DataFrame:
    """Percentile intervals from :func:`bootstrap` replicates (LMMs and GLMMs; failed GLMM refits
    are left out, with a warning)."""
    reps = bootstrap(result, nsim=nsim, seed=seed, n_jobs=n_jobs, progress=progress)
    a = (1 - level) / 2
    return pd.DataFrame({"lower": reps.quantile(a), "upper": reps.quantile(1 - a)})
