"""Conditional vs population-averaged effects on data simulated from a known logit GLMM (seed 000's set-up)."""
from __future__ import annotations

import numpy as np
import pandas as pd

import mixedfx as mfx


def pooled_logistic(X, y):
    """Plain logistic regression by IRLS: estimates and standard errors."""
    beta = np.zeros(X.shape[1])
    for _ in range(50):
        mu = 1 / (1 + np.exp(-(X @ beta)))
        w = mu * (1 - mu)
        step = np.linalg.solve(X.T @ (X * w[:, None]), X.T @ (y - mu))
        beta += step
        if np.max(np.abs(step)) < 1e-12:
            break
    mu = 1 / (1 + np.exp(-(X @ beta)))
    cov = np.linalg.inv(X.T @ (X * (mu * (1 - mu))[:, None]))
    return beta, np.sqrt(np.diag(cov))


def test_logit_glmm_recovers_conditional_and_population_averaged_slopes():
    rng = np.random.default_rng(2025)
    n_groups, per, tau, slope = 16, 250, 1.2, 0.22
    g = np.repeat(np.arange(n_groups), per)
    x = rng.uniform(0, 10, size=g.size)
    eta = -1.0 + slope * x + rng.normal(0, tau, n_groups)[g]
    y = (rng.uniform(size=g.size) < 1 / (1 + np.exp(-eta))).astype(float)
    m = mfx.glmer("y ~ x + (1 | market)", pd.DataFrame({"y": y, "x": x, "market": g}), family="binomial")
    # conditional (within-group) slope and the group SD are recovered
    assert abs(m.fixef["x"] - slope) < 2.5 * m.se["x"]
    assert 0.6 < m.varcorr["sdcor"].iloc[0] < 2.0
    # population-averaged slope: flatter than the conditional one, and equal to what a pooled
    # logistic regression (which estimates the population-averaged curve) finds, within its SE
    eff = m.marginal_effects()
    pa = eff.loc["x", "population_averaged_slope"]
    b_pooled, se_pooled = pooled_logistic(np.column_stack([np.ones_like(x), x]), y)
    assert pa < m.fixef["x"]
    assert abs(pa - b_pooled[1]) < se_pooled[1]
    tau_hat = m.varcorr["sdcor"].iloc[0]
    assert eff.loc["x", "attenuation"] < 1
    # the marginal mean is the logistic-normal integral: check against brute-force quadrature
    from scipy import integrate, special
    pts = pd.DataFrame({"x": [0.0, 4.0, 9.0], "market": [0, 0, 0]})
    ours = m.predict(pts, type="response", marginal=True)
    eta_f = m.fixef["(Intercept)"] + m.fixef["x"] * pts.x.to_numpy()
    exact = [integrate.quad(lambda e, c=c: special.expit(c + e) * np.exp(-e * e / (2 * tau_hat ** 2))
                            / np.sqrt(2 * np.pi) / tau_hat, -50, 50, epsabs=1e-13)[0] for c in eta_f]
    np.testing.assert_allclose(ours, exact, rtol=1e-7)
    # marginal predictions integrate the random effects out: between the typical-group curve and 0.5
    new = pd.DataFrame({"x": [0.0, 10.0], "market": [0, 0]})
    typical = m.predict(new, type="response", re_form="~0")
    averaged = m.predict(new, type="response", marginal=True)
    assert averaged[0] > typical[0] and averaged[1] < typical[1]
