"""Parametric bootstrap of a GLMM (lme4's ``bootMer`` for ``glmer`` fits) and the shared refit machinery.

Each replicate is a response simulated from the fit (:func:`mixedfx.inference.simulate.simulate_array`:
new random effects unless ``use_u=True``, then a draw from the family; binomial responses are
proportions of the prior-weight trials, refitted with the same weights), refitted by
:func:`refit_glmm` with the original family, ``nagq`` and the estimates as the start (lme4's
``refit``).  Parameters are reported on lme4's scale and with its names: the SDs and correlations
of each random term, ``sigma`` for families with a dispersion (``sqrt(phi)``), ``shape`` for the
negative binomial (re-estimated for each replicate; lme4's ``refit`` keeps it fixed), then the
fixed effects.

Failures: a refit that raises (an invalid simulated response, means outside the link's range,
a rank-deficient system) or whose optimizer reports non-convergence is dropped; the table keeps
the replicate numbers of the others as its index, ``attrs["failed"]`` maps each dropped replicate
to its reason, and a :class:`RefitFailureWarning` gives the count.  (lme4 keeps errors as NA
rows and convergence-warned refits as they are, with a warning.)

All responses are simulated before any refit, so the replicates do not depend on ``n_jobs``.
"""
from __future__ import annotations

import time
import warnings
from collections import Counter

import numpy as np
import pandas as pd

from ..models.glmm import fit_glmm
from .parallel import STATE, check_count, replicate_map
from .parameters import parameter_vector
from .progress import progress_bar
from .simulate import simulate_array

__all__ = ["glmm_bootstrap", "refit_glmm", "glmm_parameters", "RefitFailureWarning"]


class RefitFailureWarning(UserWarning):
    """Some bootstrap or case-deletion refits failed or did not converge (they were dropped)."""


def refit_glmm(fit, design, start=None, compute_vcov: bool = False):
    """Refit ``fit``'s model (family, ``nagq``) on ``design`` (a new response or fewer rows).

    ``start``: ``{"theta", "beta"}`` (default: ``fit``'s estimates).  A negative binomial whose
    shape was estimated gets it re-estimated (a bounded search over ``log shape`` within a
    factor ``e^3`` of ``fit``'s, each step a warm-started fit, as ``glmer.nb``).  Warnings are
    silenced: callers read ``opt.converged``.
    """
    family, nagq = fit.family, fit.nagq
    st = {"theta": fit.theta, "beta": fit.beta} if start is None else dict(start)
    if nagq == 0:             # with beta given nagq = 0 would skip its only (theta) stage
        st = {"theta": st["theta"]}
    # a fit that ended with BOBYQA (asked for, or the fallback) is refitted with it, as lme4 reuses
    # the model's optimizer
    optimizer = "bobyqa" if getattr(fit.opt, "optimizer", "") == "bobyqa" else "auto"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not getattr(family, "estimated", False):
            return fit_glmm(design, family, nagq=nagq, start=st, warn=False, compute_vcov=compute_vcov,
                            optimizer=optimizer)
        return _refit_negbin(design, family, nagq, st, compute_vcov, optimizer)


def _refit_negbin(design, family, nagq, start, compute_vcov, optimizer="auto"):
    from scipy.optimize import minimize_scalar

    from ..families import NegativeBinomial
    link = family.link.name
    state = {"start": start}

    def crit(log_shape):
        f = fit_glmm(design, NegativeBinomial(float(np.exp(log_shape)), link=link), nagq=nagq,
                     start=state["start"], warn=False, compute_vcov=False, optimizer=optimizer)
        if nagq > 0:
            state["start"] = {"theta": f.theta, "beta": f.beta}
        return f.objective

    s0 = np.log(family.theta)
    res = minimize_scalar(crit, bounds=(max(s0 - 3.0, np.log(1e-4)), min(s0 + 3.0, np.log(1e6))),
                          method="bounded", options={"xatol": 1e-6})
    fam = NegativeBinomial(float(np.exp(res.x)), link=link, estimated=True)
    return fit_glmm(design, fam, nagq=nagq, start=state["start"], warn=False, compute_vcov=compute_vcov,
                    optimizer=optimizer)


def glmm_parameters(fit) -> pd.Series:
    """lme4-named parameters of a GLMM fit: SDs/correlations, ``sigma`` (dispersion families),
    ``shape`` (negative binomial with estimated shape), fixed effects."""
    d, fam = fit.design, fit.family
    disp = bool(fam.has_dispersion)
    pv = parameter_vector(d.blocks, fit.layout, fit.theta, np.sqrt(fit.phi) if disp else 1.0, fit.beta,
                          d.xnames, with_sigma=disp)
    if getattr(fam, "estimated", False):
        k = fit.layout.n_theta
        pv = pd.concat([pv.iloc[:k], pd.Series({"shape": fam.theta}), pv.iloc[k:]])
    return pv


def failure_reason(f) -> str | None:
    """Why a refit is not usable (None: it is)."""
    if not f.opt.converged:
        return "not converged: " + "; ".join(f.opt.messages)
    if not (np.all(np.isfinite(f.theta)) and np.all(np.isfinite(f.beta)) and np.isfinite(f.objective)):
        return "non-finite estimates"
    return None


def _describe(exc: Exception) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 160 else text[:157] + "..."


def _boot_worker(s: int):
    """Replicate ``s``: (parameters or None, failure reason or None)."""
    from dataclasses import replace
    fit = STATE["fit"]
    try:
        f = refit_glmm(fit, replace(fit.design, y=STATE["Y"][:, s]))
    except (ArithmeticError, ValueError, np.linalg.LinAlgError, RuntimeError) as exc:
        return None, _describe(exc)
    reason = failure_reason(f)
    return (None, reason) if reason else (glmm_parameters(f), None)


def warn_failures(failed: dict, total: int, what: str, unit: str = "replicates", fate: str = "were dropped") -> None:
    """One :class:`RefitFailureWarning` for the dropped refits (``{index: reason}``)."""
    if not failed:
        return
    common, k = Counter(failed.values()).most_common(1)[0]
    first = ", ".join(str(i) for i in list(failed)[:5]) + (", ..." if len(failed) > 5 else "")
    warnings.warn(f"{len(failed)} of {total} {what} failed or did not converge and {fate} "
                  f"({unit} {first}); most common reason ({k}x): {common}", RefitFailureWarning, stacklevel=4)


def glmm_bootstrap(result, nsim: int = 500, seed=None, use_u: bool = False, progress=None,
                   n_jobs: int = 1) -> pd.DataFrame:
    """Parametric-bootstrap replicates of a GLMM's parameters (see module docstring)."""
    fit = result.fit
    nsim = check_count(nsim)
    Y = simulate_array(result, nsim, seed, use_u=use_u)
    t0 = time.perf_counter()
    with progress_bar(nsim, "bootstrap", progress) as bar:
        out = replicate_map(_boot_worker, {"fit": fit, "Y": Y}, nsim, n_jobs, bar)
    seconds = time.perf_counter() - t0
    failed = {s: reason for s, (_, reason) in enumerate(out) if reason is not None}
    rows = {s: pv for s, (pv, _) in enumerate(out) if pv is not None}
    if not rows:
        raise RuntimeError(f"all {nsim} bootstrap refits failed; the first: {failed[0]}")
    warn_failures(failed, nsim, "bootstrap refits")
    table = pd.DataFrame(list(rows.values()), index=list(rows))
    table.attrs["refits_per_second"] = nsim / seconds if seconds > 0 else np.inf
    table.attrs["n_failed"] = len(failed)
    table.attrs["failed"] = failed
    return table
