"""simulate(params=...): user-set fixed effects, variance components and sigma.

The moments are checked against a dense brute-force computation: mean ``X beta`` and covariance
``Z G Z' + sigma^2 I`` built from the design's blocks, with tolerances from the Monte Carlo
standard errors of a sample mean and a sample covariance.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx.inference.simulate_params import resolve_params


def _small_data(seed=0, n_groups=5, per=4):
    rng = np.random.default_rng(seed)
    g = np.repeat([f"g{i}" for i in range(n_groups)], per)
    x = np.tile(np.arange(per, dtype=float), n_groups)
    b0 = np.repeat(rng.normal(0, 1.0, n_groups), per)
    b1 = np.repeat(rng.normal(0, 0.5, n_groups), per)
    y = 1.0 + 0.5 * x + b0 + b1 * x + rng.normal(0, 0.7, len(x))
    return pd.DataFrame({"y": y, "x": x, "g": g})


@pytest.fixture(scope="module")
def small_fit():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mfx.lmer("y ~ x + (x | g)", _small_data())


def _dense_Z(design) -> np.ndarray:
    cols = []
    for b in design.blocks:
        Zk = np.zeros((design.n, b.nlevels * b.p))
        for c in range(b.p):
            Zk[np.arange(design.n), b.codes * b.p + c] = b.X[:, c]
        cols.append(Zk)
    return np.hstack(cols)


def test_moments_match_user_parameters(small_fit):
    m = small_fit
    beta = np.array([3.0, -2.0])
    sd0, sd1, r, sigma = 2.0, 0.8, -0.4, 0.5
    params = {"beta": {"(Intercept)": 3.0, "x": -2.0}, "sd": {"g": {"(Intercept)": sd0, "x": sd1}},
              "corr": {"g": r}, "sigma": sigma}
    nsim = 20000
    Y = m.simulate(nsim=nsim, seed=11, params=params).to_numpy()
    d = m.fit.design
    G1 = np.array([[sd0 ** 2, r * sd0 * sd1], [r * sd0 * sd1, sd1 ** 2]])
    G = np.kron(np.eye(d.blocks[0].nlevels), G1)        # levels contiguous, as the dense Z
    Z = _dense_Z(d)
    V = Z @ G @ Z.T + sigma ** 2 * np.eye(d.n)
    mu = d.X @ beta
    z_mean = (Y.mean(axis=1) - mu) / np.sqrt(np.diag(V) / nsim)
    assert np.max(np.abs(z_mean)) < 4.5
    S = np.cov(Y)
    se = np.sqrt((np.outer(np.diag(V), np.diag(V)) + V ** 2) / nsim)    # SE of a Gaussian sample covariance
    assert np.max(np.abs(S - V) / se) < 5.0
    # the fitted parameters are not what was simulated (the check has power)
    V_fit = Z @ np.kron(np.eye(5), m._term_covariances()[0]) @ Z.T + m.sigma ** 2 * np.eye(d.n)
    assert np.max(np.abs(S - V_fit) / se) > 10


def test_theta_and_sigma_are_lme4_scaled(small_fit):
    m = small_fit
    theta = np.array([2.0, 0.5, 1.0])       # lme4's order: (1,1), (2,1), (2,2) of Lambda
    sp = resolve_params(m, {"theta": theta, "sigma": 3.0})
    lam = np.array([[2.0, 0.0], [0.5, 1.0]])
    np.testing.assert_allclose(sp.covs[0], 9.0 * lam @ lam.T)
    # changing sigma alone keeps the absolute variance components (as simr's sigma<-)
    sp2 = resolve_params(m, {"sigma": 3.0})
    np.testing.assert_allclose(sp2.covs[0], m._term_covariances()[0])
    assert sp2.sigma == 3.0 and not sp2.variance_changed
    by_name = resolve_params(m, {"theta": {"g.x": 1.0}})
    t = m.fit.theta.copy()
    t[2] = 1.0
    L = m.fit.layout.lambdas(t)[0]
    np.testing.assert_allclose(by_name.covs[0], m.sigma ** 2 * L @ L.T)


def test_empty_params_and_unchanged_varcorr_reproduce_the_fit(small_fit):
    m = small_fit
    a = m.simulate(nsim=3, seed=5).to_numpy()
    np.testing.assert_allclose(m.simulate(nsim=3, seed=5, params={}).to_numpy(), a, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(m.simulate(nsim=3, seed=5, params={"varcorr": m.varcorr}).to_numpy(), a,
                               rtol=1e-9, atol=1e-9)


def test_varcorr_table_edits(small_fit):
    m = small_fit
    vc = m.varcorr.copy()
    vc["sdcor"] = [2.0, 0.8, -0.4, 0.5]
    sp = resolve_params(m, {"varcorr": vc.drop(columns="vcov")})
    np.testing.assert_allclose(sp.covs[0], [[4.0, -0.64], [-0.64, 0.64]])
    assert sp.sigma == 0.5
    with pytest.raises(ValueError, match="disagree"):
        resolve_params(m, {"varcorr": vc})          # sdcor edited, vcov left stale


@pytest.mark.parametrize("params, match", [
    ({"beta": {"slope": 1.0}}, r"'slope' is not a fixed effect.*'\(Intercept\)', 'x'"),
    ({"beta": [1.0, 2.0, 3.0]}, "has 3 values; the model has 2"),
    ({"beta": {"x": np.nan}}, "finite number"),
    ({"sd": {"h": 1.0}}, "'h' is not a grouping factor.*valid groups: 'g'"),
    ({"sd": {"g": {"z": 1.0}}}, r"'z' is not a random effect of 'g'; valid: '\(Intercept\)', 'x'"),
    ({"sd": {"g": 1.0}}, "has 2 random effects"),
    ({"sd": {"g": {"x": -1.0}}}, "non-negative"),
    ({"corr": {"g": 1.5}}, r"\[-1, 1\]"),
    ({"corr": {"g": {("x", "x"): 0.5}}}, "not two columns"),
    ({"sigma": 0.0}, "positive"),
    ({"theta": [1.0, 2.0]}, "must be 3 values"),
    ({"theta": {"g.y": 1.0}}, "not a theta parameter"),
    ({"theta": [1.0, 0.0, 1.0], "sd": {"g": {"x": 1.0}}}, "not both"),
    ({"varcorr": "x"}, "DataFrame like result.varcorr"),
    ({"betas": 1}, "unknown key.*valid keys"),
])
def test_params_validation(small_fit, params, match):
    with pytest.raises((ValueError, TypeError), match=match):
        small_fit.simulate(params=params)


def test_use_u_with_new_variances_is_refused(small_fit):
    with pytest.raises(ValueError, match="use_u=True"):
        small_fit.simulate(use_u=True, params={"sd": {"g": {"x": 1.0}}})
    # new fixed effects with the fitted modes are fine: the mean shifts by X (beta_new - beta)
    a = small_fit.simulate(nsim=1, seed=3, use_u=True).to_numpy()[:, 0]
    b = small_fit.simulate(nsim=1, seed=3, use_u=True, params={"beta": {"x": small_fit.fixef["x"] + 1}})
    np.testing.assert_allclose(b.to_numpy()[:, 0] - a, small_fit.fit.design.X[:, 1], atol=1e-9)


def test_repeated_grouping_factor_routes_columns():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mfx.lmer("y ~ x + (1 | g) + (0 + x | g)", _small_data(1))
    sp = resolve_params(m, {"sd": {"g": {"(Intercept)": 2.0, "x": 3.0}}})
    np.testing.assert_allclose([sp.covs[0][0, 0], sp.covs[1][0, 0]], [4.0, 9.0])
    sp = resolve_params(m, {"sd": {"g.1": 5.0}})
    np.testing.assert_allclose(sp.covs[1][0, 0], 25.0)


def test_corr_matrix_must_be_valid():
    rng = np.random.default_rng(2)
    n = 40
    d = pd.DataFrame({"g": np.repeat(np.arange(n // 4), 4), "a": rng.normal(size=n), "b": rng.normal(size=n)})
    d["y"] = rng.normal(size=n) + d["a"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mfx.lmer("y ~ a + (a + b | g)", d)
    R = np.array([[1, 0.9, 0.9], [0.9, 1, -0.9], [0.9, -0.9, 1]])
    with pytest.raises(ValueError, match="positive semidefinite"):
        resolve_params(m, {"corr": {"g": R}})
    R = np.array([[1, 0.2, 0.0], [0.2, 1, 0.3], [0.0, 0.3, 1]])
    sp = resolve_params(m, {"sd": {"g": {"(Intercept)": 1.0, "a": 2.0, "b": 1.0}}, "corr": {"g": R}})
    np.testing.assert_allclose(sp.covs[0], R * np.outer([1, 2, 1], [1, 2, 1]))
    with pytest.raises(ValueError, match="symmetric 3 x 3"):
        resolve_params(m, {"corr": {"g": R[:2, :2]}})


def test_poisson_glmm_mean_and_binomial_trials():
    rng = np.random.default_rng(4)
    n_g, per = 6, 5
    d = pd.DataFrame({"g": np.repeat(np.arange(n_g), per), "x": np.tile(np.linspace(-1, 1, per), n_g)})
    d["y"] = rng.poisson(np.exp(0.5 + 0.3 * d["x"] + np.repeat(rng.normal(0, 0.5, n_g), per)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mfx.glmer("y ~ x + (1 | g)", d, family="poisson")
    nsim = 8000
    Y = m.simulate(nsim=nsim, seed=8, params={"beta": [1.0, 0.8], "sd": {"g": 0.6}}).to_numpy()
    mean = np.exp(1.0 + 0.8 * d["x"].to_numpy() + 0.5 * 0.36)      # E exp(eta) for normal b
    z = (Y.mean(axis=1) - mean) / (Y.std(axis=1) / np.sqrt(nsim))
    assert np.max(np.abs(z)) < 4.5
    with pytest.raises(ValueError, match="no dispersion"):
        m.simulate(params={"sigma": 2.0})
    cb = mfx.datasets.load("cbpp")
    g = mfx.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cb, family="binomial")
    S = g.simulate(nsim=50, seed=1, params={"beta": {"(Intercept)": 0.0}}).to_numpy() * cb["size"].to_numpy()[:, None]
    assert np.allclose(S, np.round(S)) and np.all(S <= cb["size"].to_numpy()[:, None])
    # intercept 0 (p about 0.5 in period 1) versus the fitted -1.4 (p about 0.2): about twice the incidences
    first = cb["period"].astype(str).to_numpy() == "1"
    F = g.simulate(nsim=50, seed=1).to_numpy() * cb["size"].to_numpy()[:, None]
    assert S[first].mean() > 1.6 * F[first].mean()


def test_extended_models_give_a_clear_error():
    rng = np.random.default_rng(6)
    d = pd.DataFrame({"g": np.repeat(np.arange(8), 6), "x": rng.normal(size=48)})
    d["y"] = rng.poisson(2.0, size=48)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mfx.glmer("y ~ x + (1 | g)", d, family="nbinom2")
    with pytest.raises(NotImplementedError, match="lme4's families"):
        m.simulate(params={"beta": {"x": 1.0}})


# ------------------------------------------------------------ review of issue 12 (regressions)
def test_binomial_newdata_keeps_its_trials():
    """simulate(newdata=...) of a binomial model with trials used to draw one trial per row (0/1
    proportions).  The trials now come from newdata's cbind() columns (or the weights= column): with
    use_u=True and the same seed, newdata = the fitted rows gives the fitted rows' simulations."""
    cbpp = mfx.datasets.load("cbpp")
    g = mfx.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial")
    a = g.simulate(nsim=3, seed=4, use_u=True).to_numpy()
    b = g.simulate(nsim=3, seed=4, use_u=True, newdata=cbpp).to_numpy()
    np.testing.assert_array_equal(a, b)
    cbw = cbpp.assign(p=cbpp["incidence"] / cbpp["size"])
    gw = mfx.glmer("p ~ period + (1 | herd)", cbw, family="binomial", weights="size")
    np.testing.assert_array_equal(gw.simulate(nsim=3, seed=4, use_u=True, newdata=cbw).to_numpy(), a)
    with pytest.raises(ValueError, match="newdata lacks column.*'size'"):
        g.simulate(newdata=cbpp.drop(columns="size"))
    with pytest.raises(ValueError, match="numbers of trials"):
        gw.simulate(newdata=cbw.drop(columns="size"))
