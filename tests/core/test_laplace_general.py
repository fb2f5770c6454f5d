"""The general Laplace workspace against dense brute-force oracles.

For small designs the Laplace deviance is computed from first principles: the modes maximize
``sum l_i(X beta + Z Lambda u) - u'u / 2`` (scipy, dense), the Hessian is formed densely and
``D = -2 sum l + u'u + log det(I + Lambda'Z' W Z Lambda)`` with ``W = -l''``.  The analytic
gradient is checked against central differences of the deviance, the modes' derivatives against
differences of the modes, and adaptive quadrature against numerical integration.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, optimize

from mixedfx.core.laplace_general import LaplaceWorkspace
from mixedfx.families.conditional import ConditionalLikelihood
from mixedfx.families.distributions import NBinom2, Poisson, StudentT
from mixedfx.families.links import get_link


def _data(seed=0, n=60, groups=6, slope=False):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), n // groups)
    x = rng.standard_normal(n)
    X = np.column_stack([np.ones(n), x])
    Zk = np.column_stack([np.ones(n), x]) if slope else np.ones((n, 1))
    return rng, g, x, X, Zk


def _models():
    """(name, workspace, parameter vector) for several likelihoods and layouts."""
    out = []
    rng, g, x, X, Zk = _data()
    y = rng.poisson(np.exp(0.3 + 0.5 * x + rng.normal(0, 0.5, 6)[g])).astype(float)
    y[rng.random(len(y)) < 0.25] = 0.0
    lik = ConditionalLikelihood(Poisson(), get_link("log"), y, zi_X=np.column_stack([np.ones(len(y)), x]))
    out.append(("zip", LaplaceWorkspace(X, [(g, Zk, 6)], lik), np.array([0.7, 0.2, 0.4, -1.0, 0.3])))
    rng, g, x, X, Zk = _data(1, slope=True)
    y = rng.negative_binomial(2.0, 2.0 / (2.0 + np.exp(0.5 + 0.3 * x))).astype(float)
    lik = ConditionalLikelihood(NBinom2(), get_link("log"), y, disp_X=np.column_stack([np.ones(len(y)), x]))
    out.append(("nb2 disp, slope", LaplaceWorkspace(X, [(g, Zk, 6)], lik),
                np.array([0.6, 0.1, 0.3, 0.4, 0.2, 0.5, -0.2])))
    rng, g, x, X, Zk = _data(2)
    y = 1.0 + 0.5 * x + rng.standard_t(3, len(x))
    lik = ConditionalLikelihood(StudentT(), get_link("identity"), y)
    out.append(("t", LaplaceWorkspace(X, [(g, Zk, 6)], lik), np.array([0.5, 1.0, 0.4, 0.1, np.log(4.0)])))
    rng, g, x, X, Zk = _data(3)
    h = np.tile(np.arange(5), 12)
    y = rng.poisson(np.exp(0.2 + 0.4 * x)).astype(float)
    y[:8] = 0
    lik = ConditionalLikelihood(Poisson(), get_link("log"), y, zi_X=np.ones((len(y), 1)), hurdle=True)
    out.append(("hurdle crossed", LaplaceWorkspace(X, [(g, Zk, 6), (h, np.ones((len(y), 1)), 5)], lik),
                np.array([0.5, 0.3, 0.2, 0.4, -1.0])))
    return out


MODELS = _models()


def _dense_deviance(ws, x):
    theta, beta, extra = ws.split(x)
    st = ws.lik.state(extra)
    lams = ws.layout.lambdas(theta)
    Z = np.hstack([(np.eye(nl)[codes][:, :, None] * Xk[:, None, :]).reshape(len(codes), -1)
                   for codes, Xk, nl in ws.blocks])
    Lam = np.zeros((Z.shape[1], Z.shape[1]))
    start = 0
    for lam, (_, Xk, nl) in zip(lams, ws.blocks):
        p = Xk.shape[1]
        for j in range(nl):
            Lam[start + j * p:start + (j + 1) * p, start + j * p:start + (j + 1) * p] = lam
        start += nl * p
    V = Z @ Lam
    fixed = ws.X @ beta

    def negh(u):
        return -(np.sum(ws.lik.derivs(fixed + V @ u, st)[0]) - 0.5 * u @ u)

    def grad(u):
        return -(V.T @ ws.lik.derivs(fixed + V @ u, st)[1] - u)
    res = optimize.minimize(negh, np.zeros(V.shape[1]), jac=grad, method="BFGS", options={"gtol": 1e-11})
    u = res.x
    l, _, l2 = ws.lik.derivs(fixed + V @ u, st)
    M = np.eye(V.shape[1]) + V.T @ (-l2[:, None] * V)
    return float(-2 * np.sum(l) + u @ u + np.linalg.slogdet(M)[1]), u


@pytest.mark.parametrize("name,ws,x", MODELS, ids=[m[0] for m in MODELS])
def test_deviance_matches_dense_oracle(name, ws, x):
    dense, u = _dense_deviance(ws, x)
    m = ws.modes(x, utol=1e-13)
    assert m.converged
    np.testing.assert_allclose(m.u, u, atol=1e-6)
    assert m.deviance == pytest.approx(dense, rel=1e-10)


@pytest.mark.parametrize("name,ws,x", MODELS, ids=[m[0] for m in MODELS])
def test_gradient_matches_differences(name, ws, x):
    m = ws.modes(x, utol=1e-13)
    g, du = ws.gradient(x, m, mode_derivatives=True)
    h = 1e-5
    num, dnum = [], []
    for j in range(len(x)):
        e = np.zeros(len(x))
        e[j] = h
        mp, mm = ws.modes(x + e, u0=m.u, utol=1e-13), ws.modes(x - e, u0=m.u, utol=1e-13)
        num.append((mp.deviance - mm.deviance) / (2 * h))
        dnum.append((mp.u - mm.u) / (2 * h))
    np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(du, np.column_stack(dnum), rtol=1e-5, atol=1e-6)


def test_quadrature_matches_numerical_integration():
    name, ws, x = MODELS[0]
    theta, beta, extra = ws.split(x)
    st = ws.lik.state(extra)
    codes, Xk, nl = ws.blocks[0]
    lam = theta[0]
    total = 0.0
    for gi in range(nl):
        rows = codes == gi

        def f(v):
            eta = ws.X[rows] @ beta + lam * v
            return np.exp(np.sum(_rows_loglik(ws, eta, st, rows)) - 0.5 * v * v) / np.sqrt(2 * np.pi)
        total += np.log(integrate.quad(f, -12, 12, epsabs=0, epsrel=1e-13, limit=200)[0])
    exact = -2 * total
    m = ws.modes(x, utol=1e-13)
    assert ws.agq(x, m, 25) == pytest.approx(exact, rel=1e-9)
    assert ws.agq(x, m, 1) == pytest.approx(m.deviance, rel=1e-12)       # one node is Laplace
    assert abs(ws.agq(x, m, 5) - exact) < abs(m.deviance - exact)


def _rows_loglik(ws, eta_rows, st, rows):
    eta = np.zeros(ws.n)
    eta[rows] = eta_rows
    return ws.lik.derivs(eta, st)[0][rows]


def test_negative_observed_information_of_some_rows():
    """A t density far in its tails is convex in eta: the rows of group 0 have negative observed
    information at the start; Newton (clipped weights where needed) still finds the modes, and the
    Laplace value uses the observed information there."""
    rng, g, x, X, Zk = _data(4)
    y = np.where(g == 0, 1e4, rng.standard_normal(len(g)))
    lik = ConditionalLikelihood(StudentT(df=1.0), get_link("identity"), y)
    ws = LaplaceWorkspace(X, [(g, Zk, 6)], lik)
    x0 = np.array([1e-3, 0.0, 0.0, 0.0])          # the group's effect pinned near 0 by a tiny SD
    m = ws.modes(x0)
    l2 = lik.derivs(X @ x0[1:3], lik.state(x0[3:]))[2]
    assert np.all(l2[g == 0] > 0)                  # convex: negative information in group 0
    assert m is not None and m.converged
    assert m.deviance == pytest.approx(_dense_deviance(ws, x0)[0], rel=1e-9)
