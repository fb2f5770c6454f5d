"""Population-averaged (marginal) means and slopes of a GLMM.

For a row with fixed-effect linear predictor ``eta_f = x' beta + offset`` and random part
``z' b`` (``b ~ N(0, G)``), the random part is ``N(0, v)`` with ``v = sum_k z_k' G_k z_k``,
and the population-averaged mean is

    mu_bar = E[g^{-1}(eta_f + e)],   e ~ N(0, v),

computed by 40-point Gauss-Hermite quadrature.  Its derivative with respect to ``eta_f`` is
``E[dmu/deta(eta_f + e)]``; the population-averaged slope of a covariate on the link scale
is ``beta_c`` times the average over rows of ``E[dmu/deta] / dmu/deta(g(mu_bar))``, the
attenuation factor (for a logit random intercept about ``1 / sqrt(1 + 0.346 tau^2)``).
``v`` is held fixed when differentiating, so for random slopes on the same covariate the
slope is the part due to the fixed effect.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.expectation import normal_expectation
from ..design.frames import as_pandas

__all__ = ["marginal_mean", "marginal_slopes"]



def _fixed_and_variance(result, newdata):
    fit = result.fit
    d = fit.design
    lams = fit.layout.lambdas(fit.theta)
    G = [result._scale ** 2 * lam @ lam.T for lam in lams]
    if newdata is None:
        eta_f = d.X @ fit.beta + (0.0 if d.offset is None else d.offset)
        Zs = [b.X for b in d.blocks]
    else:
        newdata = as_pandas(newdata, "newdata")
        spec = d.spec
        eta_f = spec.fixed_matrix(newdata) @ fit.beta
        if spec.has_offset:
            eta_f = eta_f + spec.offset(newdata)
        Zs = [Xk for _, Xk in spec.random_parts(newdata)]
    v = np.zeros(len(eta_f))
    for Zk, Gk in zip(Zs, G):
        v += np.einsum("ij,jk,ik->i", Zk, Gk, Zk)
    return eta_f, v


def marginal_mean(result, newdata=None) -> np.ndarray:
    """Population-averaged means on the response scale."""
    eta_f, v = _fixed_and_variance(result, newdata)
    return normal_expectation(result.family.link.inverse, eta_f, v)


def marginal_slopes(result) -> pd.DataFrame:
    """Conditional and population-averaged slopes (link scale) and average marginal effects."""
    link = result.family.link
    eta_f, v = _fixed_and_variance(result, None)
    mu_bar = normal_expectation(link.inverse, eta_f, v)
    dmu_pa = normal_expectation(link.mu_eta, eta_f, v)
    attenuation = float(np.mean(dmu_pa / link.mu_eta(link.link(mu_bar))))
    rows = {}
    for name, beta in result.fixef.items():
        if name == "(Intercept)":
            continue
        rows[name] = {"conditional_slope": beta, "population_averaged_slope": beta * attenuation,
                      "attenuation": attenuation,
                      "conditional_ame": float(np.mean(link.mu_eta(eta_f)) * beta),
                      "population_averaged_ame": float(np.mean(dmu_pa) * beta)}
    return pd.DataFrame.from_dict(rows, orient="index")
