"""Covariance structures: the map parameters -> lambda, its derivative, and the exact maps
used by the standardization (dense brute-force checks)."""
import numpy as np
import pytest

from mixedfx.core.covariance import ThetaLayout
from mixedfx.core.structures import STRUCTURES, make_structure

TIMES = (0.0, 0.5, 1.75, 2.0, 4.5)


def _make(name, p=5):
    return make_structure(name, p, TIMES[:p] if name == "ou" else None)


def _random_par(st, rng):
    par = st.initial() + rng.uniform(-0.4, 0.6, st.n_params)
    lb = st.lower_bounds()
    par[lb == 0] = np.abs(par[lb == 0]) + 0.1
    return par


@pytest.mark.parametrize("name", STRUCTURES)
def test_jacobian_matches_central_differences(name):
    rng = np.random.default_rng(3)
    st = _make(name)
    for _ in range(3):
        par = _random_par(st, rng)
        J = st.lam_jacobian(par)
        h = 1e-6
        for m in range(st.n_params):
            e = np.zeros(st.n_params)
            e[m] = h
            fd = (st.lam(par + e) - st.lam(par - e)) / (2 * h)
            assert np.max(np.abs(J[:, :, m] - fd)) < 1e-7 * max(1.0, np.max(np.abs(fd)))
        assert np.allclose(np.triu(st.lam(par), 1), 0.0)


@pytest.mark.parametrize("name", STRUCTURES)
def test_covariance_has_the_structure(name):
    rng = np.random.default_rng(4)
    st = _make(name)
    S = st.cov(_random_par(st, rng))
    sd = np.sqrt(np.diag(S))
    C = S / np.outer(sd, sd)
    p = st.p
    assert np.all(np.linalg.eigvalsh(S) > 0)
    if name in ("homdiag", "homcs", "ar1", "ou"):
        assert np.allclose(sd, sd[0], rtol=1e-12)
    if name in ("diag", "homdiag"):
        assert np.allclose(C, np.eye(p), atol=1e-14)
    if name in ("cs", "homcs"):
        off = C[~np.eye(p, dtype=bool)]
        assert np.allclose(off, off[0], rtol=1e-12)
    if name == "ar1":
        rho = C[1, 0]
        assert np.allclose(C, rho ** np.abs(np.subtract.outer(np.arange(p), np.arange(p))), rtol=1e-12)
    if name == "ou":
        t = np.array(TIMES)
        kappa = st.natural(_random_par(st, np.random.default_rng(4)))["kappa"]
        assert np.allclose(C, np.exp(-kappa * np.abs(np.subtract.outer(t, t))), rtol=1e-12)
    if name == "toep":
        for k in range(1, p):
            d = np.diag(C, -k)
            assert np.allclose(d, d[0], rtol=1e-12)


@pytest.mark.parametrize("name", [s for s in STRUCTURES if s != "us"])
def test_from_cov_and_scale_are_exact(name):
    rng = np.random.default_rng(5)
    st = _make(name)
    par = _random_par(st, rng)
    S = st.cov(par)
    assert np.allclose(st.cov(st.from_cov(S)), S, rtol=1e-10, atol=1e-12)
    t = np.full(st.p, 3.7) if st.scaling == "common" else rng.uniform(0.1, 10.0, st.p)
    assert np.allclose(st.cov(st.scale(par, t)), np.outer(t, t) * S, rtol=1e-12)


@pytest.mark.parametrize("name", STRUCTURES)
def test_rectify_and_flip_keep_the_covariance(name):
    rng = np.random.default_rng(6)
    st = _make(name)
    par = _random_par(st, rng)
    S = st.cov(par)
    bounded = np.flatnonzero(st.lower_bounds() == 0)
    for j in bounded:
        flipped = st.flip(par, j)
        assert flipped[j] == -par[j]
        assert np.allclose(st.cov(flipped), S, rtol=1e-13)
        assert np.allclose(st.rectify(flipped), par)


def test_layout_chains_gradients_through_structures():
    rng = np.random.default_rng(7)
    layout = ThetaLayout((2, 4, 5), (make_structure("us", 2), make_structure("cs", 4), _make("ou")))
    theta = np.concatenate([_random_par(s, rng) for s in layout.structures])
    G = [np.tril(rng.normal(size=(p, p))) for p in layout.sizes]

    def f(th):
        return sum(float(np.sum(g * lam)) for g, lam in zip(G, layout.lambdas(th)))
    h = 1e-6
    fd = np.array([(f(theta + h * e) - f(theta - h * e)) / (2 * h) for e in np.eye(len(theta))])
    assert np.allclose(layout.chain(theta, G), fd, rtol=1e-7, atol=1e-8)
    assert layout.n_theta == 3 + 5 + 2
    assert len(layout.names(["a", "b", "c"], [("x", "y"), tuple("pqrs"), tuple("vwxyz")])) == layout.n_theta


def test_unknown_structure_is_named():
    with pytest.raises(ValueError, match="unknown covariance structure 'ar2'"):
        make_structure("ar2", 3)
