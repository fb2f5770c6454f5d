"""Negative binomial GLMM with the shape estimated (lme4's ``glmer.nb``).

The shape ``theta`` (``Var(y) = mu + mu^2 / theta``) maximizes the Laplace log-likelihood:
a bounded one-dimensional search over ``log theta`` in which each step refits the GLMM at
fixed ``theta`` (warm-started from the previous fit, no Hessian), followed by a final fit
with standard errors at the best shape.  The start is a Poisson GLMM's means with the
moment estimate ``theta0 = mean(mu)^2 / max(var(y) - mean(mu), small)``.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

from ..design import build_design
from ..families import NegativeBinomial, Poisson, get_link

__all__ = ["fit_negbin"]


def fit_negbin(f, data, link=None, nagq=1, weights=None, offset=None, **control):
    """Negative binomial GLMM with its shape estimated; returns a :class:`GlmmFit`."""
    from .glmm import fit_glmm

    link = get_link(link if link is not None else "log").name
    design = build_design(f, data, weights=weights, offset=offset, family=NegativeBinomial(1.0, link=link))
    inner = {"optimizer": control["optimizer"]} if "optimizer" in control else {}
    pois = fit_glmm(design, Poisson(link=link), nagq=nagq, warn=False, compute_vcov=False, **inner)
    mbar = float(np.mean(pois.mu))
    theta0 = mbar ** 2 / max(float(np.var(design.y)) - mbar, 1e-3 * mbar)
    state = {"start": {"theta": pois.theta, "beta": pois.beta}}

    def crit(log_shape):
        fam = NegativeBinomial(float(np.exp(log_shape)), link=link)
        fit = fit_glmm(design, fam, nagq=nagq, start=state["start"], warn=False, compute_vcov=False, **inner)
        state["start"] = {"theta": fit.theta, "beta": fit.beta}
        return fit.objective

    lo, hi = np.log(theta0) - 3.0, np.log(theta0) + 3.0
    res = minimize_scalar(crit, bounds=(max(lo, np.log(1e-4)), min(hi, np.log(1e6))), method="bounded",
                          options={"xatol": 1e-6})
    fam = NegativeBinomial(float(np.exp(res.x)), link=link, estimated=True)
    return fit_glmm(design, fam, nagq=nagq, start=state["start"], **control)
