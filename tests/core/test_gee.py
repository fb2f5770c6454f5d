"""GEE numerics against dense brute-force formulas (mixedfx.core.gee)."""
from __future__ import annotations

import numpy as np
import pytest

from mixedfx.core.gee import (GEENumericalError, cluster_layout, corr_matrix, fit_gee, glm_start, quasi_loglik,
                              vcov_kinds)
from mixedfx.families import get_family


def _data(seed=1, family="binomial", K=14, weights=False, waves_gap=False):
    """Unbalanced clusters (sizes 1..5) given in shuffled (non-contiguous) row order."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 6, K)
    sizes[0] = 5
    codes = np.repeat(np.arange(K), sizes)
    n = len(codes)
    pos = np.concatenate([np.arange(s) for s in sizes])
    waves = pos if not waves_gap else np.concatenate([np.sort(rng.choice(6, s, replace=False)) for s in sizes])
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.integers(0, 2, n)])
    u = rng.normal(0, 0.8, K)[codes]
    eta = 0.2 + 0.5 * X[:, 1] - 0.4 * X[:, 2] + u
    if family == "binomial":
        y = rng.binomial(1, 1 / (1 + np.exp(-eta))).astype(float)
    elif family == "poisson":
        y = rng.poisson(np.exp(eta)).astype(float)
    elif family == "Gamma":
        y = rng.gamma(3.0, np.exp(eta) / 3.0)
    else:
        y = eta + rng.normal(size=n)
    w = rng.uniform(0.5, 2.0, n) if weights else np.ones(n)
    perm = rng.permutation(n)
    return y[perm], X[perm], np.zeros(n), w[perm], codes[perm], waves[perm]


def _fit(corstr, family="binomial", link=None, waves=True, **kw):
    y, X, off, w, codes, wv = _data(family=family, **kw)
    order, lay = cluster_layout(codes, wv if waves else None)
    fam = get_family(family, link)
    sol = fit_gee(y[order], X[order], off[order], w[order], fam, lay, corstr, maxiter=300, tol=1e-12)
    return sol, (y[order], X[order], off[order], w[order], fam, lay)


def _dense(sol, y, X, off, w, fam, lay, corstr):
    """Per cluster: D_i = dmu/dbeta, weighted V_i^{-1}, residuals r_i (brute force)."""
    eta = X @ sol.beta + off
    mu = fam.link.inverse(eta)
    out = []
    for k in range(lay.n_clusters):
        sl = slice(lay.starts[k], lay.starts[k + 1])
        R = corr_matrix(corstr, sol.alpha, lay.waves[sl], lay.n_waves)
        a = np.sqrt(fam.variance(mu[sl]))
        V = sol.phi * np.outer(a, a) * R
        sw = np.sqrt(w[sl])
        Vinv = np.outer(sw, sw) * np.linalg.inv(V)          # W^1/2 V^-1 W^1/2
        D = fam.link.mu_eta(eta[sl])[:, None] * X[sl]
        out.append((D, Vinv, y[sl] - mu[sl]))
    return out


@pytest.mark.parametrize("corstr", ["independence", "exchangeable", "ar1", "unstructured"])
@pytest.mark.parametrize("family", ["binomial", "poisson", "gaussian"])
def test_sandwich_equals_dense_formula(corstr, family):
    sol, args = _fit(corstr, family, weights=True, K=300 if corstr == "unstructured" else 14)
    assert sol.converged
    parts = _dense(sol, *args, corstr)
    B = sum(D.T @ Vi @ D for D, Vi, _ in parts)
    U = [D.T @ Vi @ r for D, Vi, r in parts]
    Bi = np.linalg.inv(B)
    M = sum(np.outer(u, u) for u in U)
    np.testing.assert_allclose(sol.vcov_naive, Bi, rtol=1e-9)
    np.testing.assert_allclose(sol.vcov_robust, Bi @ M @ Bi, rtol=1e-9)
    # the estimating equations hold at the solution
    assert np.max(np.abs(Bi @ sum(U))) < 1e-9 * np.max(np.sqrt(np.diag(Bi)))


@pytest.mark.parametrize("corstr", ["exchangeable", "ar1", "unstructured"])
def test_small_sample_corrections_equal_dense_formula(corstr):
    sol, args = _fit(corstr, "binomial", weights=True, K=300 if corstr == "unstructured" else 14)
    assert sol.converged
    parts = _dense(sol, *args, corstr)
    Bi = np.linalg.inv(sum(D.T @ Vi @ D for D, Vi, _ in parts))
    md = np.zeros_like(Bi)
    kc = np.zeros_like(Bi)
    for D, Vi, r in parts:
        n = len(r)
        H = D @ Bi @ D.T @ Vi
        IHi = np.linalg.inv(np.eye(n) - H)
        u = D.T @ Vi @ IHi @ r
        md += np.outer(u, u)
        # Kauermann-Carroll in standardized coordinates: G = V^{-1/2} (symmetric), H~ = G D B^-1 D' G
        vals, vecs = np.linalg.eigh(Vi)
        G = vecs @ np.diag(np.sqrt(vals)) @ vecs.T
        Ht = G @ D @ Bi @ D.T @ G
        ev, evec = np.linalg.eigh(np.eye(n) - Ht)
        u = (G @ D).T @ evec @ np.diag(ev ** -0.5) @ evec.T @ G @ r
        kc += np.outer(u, u)
    got = vcov_kinds(sol, *args, corstr)
    np.testing.assert_allclose(got["mancl-derouen"], Bi @ md @ Bi, rtol=1e-9)
    np.testing.assert_allclose(got["kauermann-carroll"], Bi @ kc @ Bi, rtol=1e-9)
    # the corrections inflate the sandwich
    d = np.diag(sol.vcov_robust)
    assert np.all(np.diag(got["kauermann-carroll"]) > d) and np.all(np.diag(got["mancl-derouen"]) > np.diag(
        got["kauermann-carroll"]))


def _pearson(sol, y, X, off, w, fam, lay):
    mu = fam.link.inverse(X @ sol.beta + off)
    return (y - mu) / np.sqrt(fam.variance(mu))


def _pairs(lay):
    for k in range(lay.n_clusters):
        s0, s1 = lay.starts[k], lay.starts[k + 1]
        for j in range(s0, s1):
            for m in range(j + 1, s1):
                yield j, m, abs(int(lay.waves[m]) - int(lay.waves[j])), (int(lay.waves[j]), int(lay.waves[m]))


@pytest.mark.parametrize("corstr", ["exchangeable", "ar1", "unstructured"])
def test_moment_estimators(corstr):
    # unstructured: 15 parameters (6 times) need many clusters; poisson with this overdispersion diverges
    sol, args = (_fit(corstr, "binomial", weights=True, waves_gap=True, K=100) if corstr == "unstructured"
                 else _fit(corstr, "poisson", weights=True, waves_gap=True))
    assert sol.converged
    y, X, off, w, fam, lay = args
    r = _pearson(sol, *args)
    np.testing.assert_allclose(sol.phi, np.sum(w * r * r) / np.sum(w), rtol=1e-10)   # no "- p"
    pairs = list(_pairs(lay))
    z = np.array([r[j] * r[m] / sol.phi for j, m, _, _ in pairs])
    ww = np.array([w[j] * w[m] for j, m, _, _ in pairs])
    if corstr == "exchangeable":
        np.testing.assert_allclose(sol.alpha[0], np.sum(ww * z) / np.sum(ww), rtol=1e-9)
    elif corstr == "unstructured":
        T = lay.n_waves
        wp = np.array([p[3] for p in pairs])
        k = 0
        for a in range(T):
            for b in range(a + 1, T):
                sel = (wp[:, 0] == a) & (wp[:, 1] == b)
                np.testing.assert_allclose(sol.alpha[k], np.sum(ww[sel] * z[sel]) / np.sum(ww[sel]), rtol=1e-9)
                k += 1
    else:
        d = np.array([lag for _, _, lag, _ in pairs], float)
        a = sol.alpha[0]
        score = np.sum(ww * d * a ** (d - 1) * (z - a ** d))
        assert abs(score) < 1e-9 * np.sum(ww)
        lag1 = np.sum((ww * z)[d == 1]) / np.sum(ww[d == 1])
        assert abs(lag1 - a) > 1e-3        # the all-pairs equation is not the lag-1 moment estimator


def test_independence_is_the_glm():
    y, X, off, w, codes, wv = _data(family="poisson", weights=True)
    order, lay = cluster_layout(codes, None)
    fam = get_family("poisson")
    sol = fit_gee(y[order], X[order], off[order], w[order], fam, lay, "independence", tol=1e-12)
    np.testing.assert_allclose(sol.beta, glm_start(y, X, off, w, fam), rtol=1e-9)
    assert sol.alpha.size == 0


def test_cluster_layout_groups_noncontiguous_rows():
    codes = np.array([2, 0, 2, 1, 0, 2])
    order, lay = cluster_layout(codes, None)
    np.testing.assert_array_equal(codes[order], [0, 0, 1, 2, 2, 2])
    np.testing.assert_array_equal(order, [1, 4, 3, 0, 2, 5])         # stable within a cluster
    np.testing.assert_array_equal(lay.waves, [0, 1, 0, 0, 1, 2])
    np.testing.assert_array_equal(lay.sizes, [2, 1, 3])
    order, lay = cluster_layout(codes, np.array([3, 1, 0, 0, 0, 1]))
    np.testing.assert_array_equal(order, [4, 1, 3, 2, 5, 0])         # by cluster, then wave
    assert lay.n_waves == 4
    with pytest.raises(ValueError, match="twice"):
        cluster_layout(codes, np.array([1, 1, 1, 0, 1, 2]))


def test_corr_matrix_structures():
    w = np.array([0, 2, 3])
    np.testing.assert_allclose(corr_matrix("ar1", np.array([0.5]), w, 4),
                               [[1, 0.25, 0.125], [0.25, 1, 0.5], [0.125, 0.5, 1]])
    al = np.arange(1, 7) / 10.0                       # 0:1 0:2 0:3 1:2 1:3 2:3
    np.testing.assert_allclose(corr_matrix("unstructured", al, w, 4), [[1, .2, .3], [.2, 1, .6], [.3, .6, 1]])
    np.testing.assert_allclose(corr_matrix("exchangeable", np.array([0.3]), w, 4)[0], [1, .3, .3])


def test_rescaled_covariate_gives_equivalent_fit():
    y, X, off, w, codes, wv = _data(family="binomial")
    order, lay = cluster_layout(codes, None)
    fam = get_family("binomial")
    a = fit_gee(y[order], X[order], off[order], w[order], fam, lay, "ar1", tol=1e-12)
    S = np.diag([1.0, 1e-4, 1e5])
    b = fit_gee(y[order], X[order] @ S, off[order], w[order], fam, lay, "ar1", tol=1e-12)
    np.testing.assert_allclose(S @ b.beta, a.beta, rtol=1e-8)
    np.testing.assert_allclose(S @ b.vcov_robust @ S, a.vcov_robust, rtol=1e-7)
    np.testing.assert_allclose(b.alpha, a.alpha, rtol=1e-8)


def test_quasi_loglik_forms():
    y = np.array([0.0, 1.0, 1.0])
    mu = np.array([0.2, 0.6, 0.9])
    w = np.array([1.0, 2.0, 1.0])
    assert quasi_loglik(get_family("binomial"), y, mu, w) == pytest.approx(
        np.sum(w * (y * np.log(mu / (1 - mu)) + np.log(1 - mu))))
    assert quasi_loglik(get_family("Gamma"), y + 1, mu, w) == pytest.approx(np.sum(w * (-(y + 1) / mu - np.log(mu))))
    assert quasi_loglik(get_family("gaussian"), y, mu, w) == pytest.approx(-0.5 * np.sum(w * (y - mu) ** 2))


def test_degenerate_correlation_raises():
    # two observations per cluster, perfectly correlated residuals: exchangeable alpha -> 1
    codes = np.repeat(np.arange(6), 2)
    x = np.arange(12.0)
    e = np.repeat(np.array([1.0, -1.0, 2.0, -2.0, 0.5, -0.5]), 2)
    X = np.column_stack([np.ones(12), x])
    order, lay = cluster_layout(codes, None)
    with pytest.raises(GEENumericalError, match="singular"):
        fit_gee(1 + x + e, X, np.zeros(12), np.ones(12), get_family("gaussian"), lay, "exchangeable")


def test_long_ar1_clusters_with_gaps_use_lag_sums_and_the_tridiagonal_inverse():
    # spans > 128 take the FFT lag sums; R^{-1} is applied in tridiagonal form
    rng = np.random.default_rng(7)
    K, s = 6, 150
    waves = np.concatenate([np.sort(rng.choice(220, s, replace=False)) for _ in range(K)])
    codes = np.repeat(np.arange(K), s)
    X = np.column_stack([np.ones(K * s), rng.normal(size=K * s)])
    e = np.zeros((K, 220))
    for t in range(1, 220):                        # AR(1) with correlation 0.6 per time step
        e[:, t] = 0.6 * e[:, t - 1] + 0.8 * rng.normal(size=K)
    e = np.concatenate([e[k, waves[k * s:(k + 1) * s]] for k in range(K)])
    y = 1 + 0.5 * X[:, 1] + e
    w = rng.uniform(0.5, 2, K * s)
    order, lay = cluster_layout(codes, waves)
    fam = get_family("gaussian")
    sol = fit_gee(y[order], X[order], np.zeros(K * s), w[order], fam, lay, "ar1", tol=1e-12)
    assert sol.converged and 0 < sol.alpha[0] < 1
    args = (y[order], X[order], np.zeros(K * s), w[order], fam, lay)
    r = _pearson(sol, *args)
    a = sol.alpha[0]
    score = 0.0
    parts = _dense(sol, *args, "ar1")
    for k in range(K):
        sl = slice(lay.starts[k], lay.starts[k + 1])
        j, m = np.triu_indices(s, 1)
        rr, ww, wv = r[sl], w[order][sl], lay.waves[sl]
        d = (wv[m] - wv[j]).astype(float)
        score += np.sum(ww[j] * ww[m] * d * a ** (d - 1) * (rr[j] * rr[m] / sol.phi - a ** d))
    assert abs(score) < 1e-8 * np.sum(w)
    B = sum(D.T @ Vi @ D for D, Vi, _ in parts)
    np.testing.assert_allclose(sol.vcov_naive, np.linalg.inv(B), rtol=1e-8)
    M = sum(np.outer(D.T @ Vi @ rr, D.T @ Vi @ rr) for D, Vi, rr in parts)
    np.testing.assert_allclose(sol.vcov_robust, np.linalg.inv(B) @ M @ np.linalg.inv(B), rtol=1e-8)
