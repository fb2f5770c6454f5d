"""The Laplace deviance's analytic gradient and Hessian against a dense oracle, and quadrature
against a per-node loop.

The oracle recomputes ``D(theta, beta) = -2 log f(y | u_hat) + u_hat'u_hat / phi +
log|I + V'WV|`` with dense matrices: its own Newton iteration for the modes (observed
information, to machine precision), ``numpy.linalg.slogdet``, and the dispersion by the
generic numerical search.  Its derivatives are Richardson-extrapolated central differences.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.linalg as sla

import mixedfx as mfx
from mixedfx.core.finite_diff import deriv12_hessian, richardson_derivative, richardson_hessian
from mixedfx.core.laplace_gradient import LaplaceGradient
from mixedfx.families import Family


def _quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **k)


def _simulated(kind: str) -> pd.DataFrame:
    rng = np.random.default_rng({"crossed": 11, "sparse": 12, "slopes": 13}[kind])
    if kind == "crossed":        # every g level meets every h level: the dense Schur path
        g, h = np.meshgrid(np.arange(15), np.arange(8), indexing="ij")
        g, h = np.repeat(g.ravel(), 2), np.repeat(h.ravel(), 2)
    elif kind == "sparse":       # each g level meets 2 of 30 h levels: the pair-list path
        g = np.repeat(np.arange(60), 3)
        h = (g + rng.integers(0, 2, g.size) * 7) % 30
    else:                        # random slopes in term 0 and a crossed term
        g = np.repeat(np.arange(12), 10)
        h = rng.integers(0, 6, g.size)
    x = rng.normal(size=g.size)
    eta = 0.5 + 0.4 * x + rng.normal(0, 0.6, 100)[g] + rng.normal(0, 0.4, 100)[h]
    if kind == "slopes":
        eta += rng.normal(0, 0.3, 12)[g] * x
    return pd.DataFrame({"y": rng.poisson(np.exp(eta)), "x": x, "g": [f"g{v:02d}" for v in g],
                         "h": [f"h{v:02d}" for v in h]})


MODELS = {
    "cbpp_logit": ("cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial"),
    "cbpp_probit": ("cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial probit"),
    "gamma_log": ("sleepstudy", "Reaction ~ Days + (1 | Subject)", "Gamma log"),
    "crossed": ("crossed", "y ~ x + (1 | g) + (1 | h)", "poisson"),
    "sparse": ("sparse", "y ~ x + (1 | g) + (1 | h)", "poisson"),
    "slopes": ("slopes", "y ~ x + (1 + x | g) + (1 | h)", "poisson"),
}
_FITS: dict = {}


def fitted(key):
    if key not in _FITS:
        data, formula, family = MODELS[key]
        df = mfx.datasets.load(data) if data in ("cbpp", "sleepstudy") else _simulated(data)
        _FITS[key] = _quiet(mfx.glmer, formula, df, family=family)
    return _FITS[key]


class DenseOracle:
    """``D(theta, beta)`` from dense matrices, independent of the PIRLS workspace."""

    def __init__(self, gw):
        self.gw, self.fam = gw, gw.family
        self.Z = gw._Z.toarray()
        self.k = gw.layout.n_theta

    def lam(self, theta):
        mats = [np.kron(np.eye(nl), lam) for lam, (_, _, nl) in zip(self.gw.layout.lambdas(theta), self.gw.blocks)]
        return sla.block_diag(*mats)

    def __call__(self, x, nagq: int = 1):
        gw, fam = self.gw, self.fam
        theta, beta = x[:self.k], x[self.k:]
        V = self.Z @ self.lam(theta)
        fixed = gw.X @ beta + gw.offset
        q = V.shape[1]
        u = np.zeros(q)

        def pdev(u):
            mu = fam.link.inverse(fixed + V @ u)
            return np.sum(gw.w * fam.unit_deviance(gw.y, mu)) + u @ u
        for it in range(200):
            eta = fixed + V @ u
            W, _, s, Wo = fam.working_derivatives(gw.y, eta, fam.link.inverse(eta), gw.w)
            weights = W if it < 4 else Wo        # Fisher scoring first, then Newton
            step = np.linalg.solve(np.eye(q) + V.T @ (weights[:, None] * V), V.T @ s - u)
            t, base = 1.0, pdev(u)
            while pdev(u + t * step) > base + 1e-13 * abs(base) and t > 1e-8:
                t /= 2
            u = u + t * step
            if it >= 4 and np.max(np.abs(t * step)) < 1e-14 * (1 + np.max(np.abs(u))):
                break
        eta = fixed + V @ u
        mu = fam.link.inverse(eta)
        W = fam.irls_weights(eta, mu, gw.w)[0]
        phi = Family.profile_dispersion(fam, gw.y, mu, gw.w, u @ u) if fam.has_dispersion else 1.0
        if nagq > 1:
            return self.quadrature(V, fixed, u, W, nagq, phi)
        logdet = np.linalg.slogdet(np.eye(q) + V.T @ (W[:, None] * V))[1]
        return -2 * fam.loglik(gw.y, mu, gw.w, phi) + u @ u / phi + logdet

    def quadrature(self, V, fixed, u, W, nagq, phi):
        """One scalar term: each group's integral by the k-point rule centred at the mode, scale
        ``sqrt(phi / (1 + V_g' W V_g))``, node by node."""
        gw, fam = self.gw, self.fam
        x, wq = np.polynomial.hermite.hermgauss(nagq)
        total = 0.0
        for g in range(V.shape[1]):
            rows = np.flatnonzero(V[:, g] != 0)
            sd = np.sqrt(phi / (1.0 + np.sum(W[rows] * V[rows, g] ** 2)))
            vals = []
            for xk, wk in zip(x, wq):
                v = u[g] + np.sqrt(2.0) * sd * xk
                mu = fam.link.inverse(fixed[rows] + V[rows, g] * v)
                ll = np.sum(fam.loglik_terms(gw.y[rows], mu, gw.w[rows], phi))
                vals.append(np.log(wk) + xk ** 2 + ll - 0.5 * v * v / phi - 0.5 * np.log(2 * np.pi * phi))
            total += np.log(np.sqrt(2.0) * sd) + np.logaddexp.reduce(vals)
        return -2.0 * total


def _point(m):
    return np.concatenate([m.fit.theta, m.fit.beta])


@pytest.mark.parametrize("key", list(MODELS))
def test_oracle_is_the_workspace_deviance(key):
    m = fitted(key)
    gw = m.fit.fresh_workspace()
    x = _point(m) * 1.05 + 0.02
    k = gw.layout.n_theta
    ours = gw.laplace(gw.pirls(x[:k], beta=x[k:], utol=1e-13))
    assert ours == pytest.approx(DenseOracle(gw)(x), rel=1e-11, abs=1e-9)


@pytest.mark.parametrize("key", list(MODELS))
def test_gradient_matches_differenced_oracle(key):
    m = fitted(key)
    gw = m.fit.fresh_workspace()
    oracle = DenseOracle(gw)
    x = _point(m) * 1.1 + 0.05          # away from the optimum: a gradient of order 1-100
    k = gw.layout.n_theta
    r = gw.pirls(x[:k], beta=x[k:], utol=1e-13)
    gw.laplace(r)
    g = gw.laplace_gradient(x[:k], r)
    numeric = np.array([richardson_derivative(oracle, x, i, 1e-3) for i in range(len(x))])
    np.testing.assert_allclose(g, numeric, rtol=1e-7, atol=1e-7 * np.max(np.abs(numeric)))


@pytest.mark.parametrize("key", list(MODELS))
def test_hessian_matches_differenced_oracle(key):
    m = fitted(key)
    gw = m.fit.fresh_workspace()
    x = _point(m)
    H, err = gw.deviance_hessian(x)
    ref = richardson_hessian(DenseOracle(gw), x, 2e-3)
    scale = np.max(np.abs(ref))
    assert np.max(np.abs(H - ref)) <= 1e-6 * scale
    assert err <= 1e-6 * scale


def test_schur_paths_are_both_exercised():
    paths = {}
    for key in ("crossed", "sparse", "slopes"):
        gw = fitted(key).fit.fresh_workspace()
        g = LaplaceGradient(gw.X, gw.blocks, gw.layout, gw.family, gw.y, gw.w)
        paths[key] = g.r0_dense
    assert paths["crossed"] and not paths["sparse"]
    assert fitted("slopes").fit.layout.sizes[0] == 2       # term 0 with a random slope


@pytest.mark.parametrize("key", ["cbpp_logit", "gamma_log", "crossed"])
def test_standard_errors_are_the_oracle_hessians(key):
    """``vcov(beta)`` = the beta block of ``2 H^{-1}`` with ``H`` the oracle's Hessian at the optimum;
    the second-difference Hessian lme4 uses agrees to its own noise."""
    m = fitted(key)
    assert m.fit.vcov_method == "hessian"
    gw = m.fit.fresh_workspace()
    x = _point(m)
    k = gw.layout.n_theta
    oracle = DenseOracle(gw)
    se_ref = np.sqrt(np.diag(2 * np.linalg.inv(richardson_hessian(oracle, x, 2e-3)))[k:])
    np.testing.assert_allclose(m.se.to_numpy(), se_ref, rtol=1e-6)
    se_fd = np.sqrt(np.diag(2 * np.linalg.inv(deriv12_hessian(oracle, x)))[k:])
    np.testing.assert_allclose(m.se.to_numpy(), se_fd, rtol=1e-4)


def test_separated_fit_hessian_is_below_its_error():
    """Complete separation: every curvature ~1e-9, under the differencing error, so the
    Hessian is not used (the PIRLS factor's vcov is, with a warning)."""
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"x": rng.normal(size=200), "g": np.repeat(np.arange(10), 20)})
    df["y"] = (df.x > 0).astype(float)
    m = _quiet(mfx.glmer, "y ~ x + (1 | g)", df)
    gw = m.fit.fresh_workspace()
    H, err = gw.deviance_hessian(_point(m))
    assert np.linalg.eigvalsh(H)[0] < len(H) * err
    assert m.fit.vcov_method == "pirls"


# ------------------------------------------------------------------ quadrature
def _agq_loop(gw, theta, res, nagq, phi=1.0):
    """The per-node loop quadrature was computed with before vectorizing (the oracle)."""
    codes, Xk, nl = gw.blocks[0]
    lam = float(gw.layout.lambdas(theta)[0][0, 0])
    x, wq = np.polynomial.hermite.hermgauss(nagq)
    s = np.sqrt(phi) / gw.ws.L00
    eta_fixed = res.eta - lam * Xk[:, 0] * res.u[codes]
    logs = np.empty((nagq, nl))
    for k in range(nagq):
        ug = res.u + np.sqrt(2.0) * s * x[k]
        mu = gw.family.link.inverse(eta_fixed + lam * Xk[:, 0] * ug[codes])
        ll = np.bincount(codes, gw.family.loglik_terms(gw.y, mu, gw.w, phi), minlength=nl)
        logs[k] = np.log(wq[k]) + x[k] ** 2 + ll - 0.5 * ug * ug / phi - 0.5 * np.log(2 * np.pi * phi)
    top = logs.max(axis=0)
    return float(-2 * (top + np.log(np.exp(logs - top).sum(axis=0)) + np.log(np.sqrt(2.0) * s)).sum())


@pytest.mark.parametrize("nagq", [2, 5, 25])
@pytest.mark.parametrize("key", ["cbpp_logit", "cbpp_probit", "gamma_log"])
def test_quadrature_equals_the_per_node_loop(key, nagq):
    m = fitted(key)
    gw = m.fit.fresh_workspace()
    k = gw.layout.n_theta
    for scale in (0.5, 1.0, 2.0):
        theta, beta = m.fit.theta * scale, m.fit.beta + 0.1 * (scale - 1)
        r = gw.pirls(theta, beta=beta)
        gw.laplace(r)
        assert gw.agq(theta, r, nagq, gw.phi) == pytest.approx(_agq_loop(gw, theta, r, nagq, gw.phi), abs=1e-10)
    assert k == 1


def test_quadrature_fit_unchanged_on_cbpp():
    """The nagq = 25 fit against converged lme4 (tests/reference/glmm_converged.json, -2 log L on
    lme4's scale there; ours keeps all constants, so compare estimates and standard errors)."""
    import json
    import os
    path = os.path.join(os.path.dirname(__file__), "..", "reference", "glmm_converged.json")
    conv = json.load(open(path))["models"]["cbpp_binomial_agq"]
    m = _quiet(mfx.glmer, MODELS["cbpp_logit"][1], mfx.datasets.load("cbpp"), family="binomial", nagq=25)
    np.testing.assert_allclose(m.se.to_numpy(), [conv["se"][n] for n in m.se.index], rtol=5e-5)


QUADRATURE = {"cbpp_logit": MODELS["cbpp_logit"], "cbpp_probit": MODELS["cbpp_probit"],
              "ticks": ("grouseticks", "TICKS ~ YEAR + (1 | BROOD)", "poisson")}


def fitted_quadrature(key):
    if ("q", key) not in _FITS:
        data, formula, family = QUADRATURE[key]
        _FITS[("q", key)] = _quiet(mfx.glmer, formula, mfx.datasets.load(data), family=family, nagq=7)
    return _FITS[("q", key)]


@pytest.mark.parametrize("key", list(QUADRATURE))
def test_oracle_quadrature_is_the_workspace_quadrature(key):
    m = fitted_quadrature(key)
    gw = m.fit.fresh_workspace()
    x = _point(m) * 1.05 + 0.02
    r = gw.pirls(x[:1], beta=x[1:], utol=1e-13)
    gw.laplace(r)
    assert gw.agq(x[:1], r, 7, gw.phi) == pytest.approx(DenseOracle(gw)(x, 7), rel=1e-11, abs=1e-9)


@pytest.mark.parametrize("key, nagq", [("cbpp_logit", 2), ("cbpp_logit", 25), ("cbpp_probit", 7), ("ticks", 7)])
def test_quadrature_gradient_matches_differenced_oracle(key, nagq):
    m = fitted_quadrature(key)
    gw = m.fit.fresh_workspace()
    oracle = DenseOracle(gw)
    x = _point(m) * 1.1 + 0.05
    r = gw.pirls(x[:1], beta=x[1:], utol=1e-13)
    g = gw.agq_gradient(x[:1], r, nagq)
    numeric = np.array([richardson_derivative(lambda z: oracle(z, nagq), x, i, 1e-3) for i in range(len(x))])
    np.testing.assert_allclose(g, numeric, rtol=1e-7, atol=1e-7 * np.max(np.abs(numeric)))


@pytest.mark.parametrize("key", list(QUADRATURE))
def test_quadrature_hessian_and_standard_errors_match_the_oracle(key):
    m = fitted_quadrature(key)
    assert m.fit.opt.optimizer == "lbfgs" and m.fit.vcov_method == "hessian"
    gw = m.fit.fresh_workspace()
    x = _point(m)
    H, err = gw.deviance_hessian(x, 7)
    ref = richardson_hessian(lambda z: DenseOracle(gw)(z, 7), x, 2e-3)
    assert np.max(np.abs(H - ref)) <= 1e-6 * np.max(np.abs(ref))
    se_ref = np.sqrt(np.diag(2 * np.linalg.inv(ref))[1:])
    np.testing.assert_allclose(m.se.to_numpy(), se_ref, rtol=1e-6)


def test_quadrature_with_a_dispersion_keeps_the_derivative_free_path():
    """The dispersion is profiled on the Laplace likelihood, so the quadrature deviance is not
    stationary in it: no analytic gradient; BOBYQA and the second-difference Hessian."""
    m = fitted("gamma_log")
    gw = m.fit.fresh_workspace()
    r = gw.pirls(m.fit.theta, beta=m.fit.beta)
    assert gw.agq_gradient(m.fit.theta, r, 5) is None and gw.deviance_hessian(_point(m), 5) is None
    q = _quiet(mfx.glmer, MODELS["gamma_log"][1], mfx.datasets.load("sleepstudy"), family="Gamma log", nagq=5)
    assert q.fit.opt.optimizer == "bobyqa" and q.fit.vcov_method == "hessian"
    with pytest.raises(ValueError, match="quadrature"):
        mfx.glmer(MODELS["gamma_log"][1], mfx.datasets.load("sleepstudy"), family="Gamma log", nagq=5,
                  optimizer="lbfgs")
