"""Residual correlation / variance models against dense brute-force covariance matrices."""
from __future__ import annotations

import numpy as np
import pytest

from mixedfx.core.residual import AR1, CAR1, CompSymm, ResidualModel

SIZES = [1, 5, 3, 8, 2, 6, 1, 4, 7, 3]       # unequal groups, two singletons; m_max = 8


def make_data(seed, times_kind, n_disp):
    """Rows of ``SIZES`` groups (non-contiguous codes) in shuffled order, times and a disp matrix."""
    rng = np.random.default_rng(seed)
    codes = np.repeat(np.arange(len(SIZES)) * 7 + 3, SIZES)
    if times_kind == "integer":             # distinct integer times with gaps
        times = np.concatenate([np.sort(rng.choice(20, m, replace=False)) - 5 for m in SIZES]).astype(float)
    elif times_kind == "real":              # distinct non-integer, unequal gaps
        times = np.concatenate([np.cumsum(rng.uniform(0.05, 2.5, m)) + rng.normal() for m in SIZES])
    else:
        times = None
    perm = rng.permutation(codes.size)
    codes = codes[perm]
    times = None if times is None else times[perm]
    D = rng.normal(size=(codes.size, n_disp))
    return codes, times, D


def dense_sigma(codes, times, kind, value, D, delta):
    """``S R S`` entry by entry from the definitions (positions in data order when ``times`` is None)."""
    n = codes.size
    if times is None:
        times = np.array([np.sum(codes[:i] == codes[i]) for i in range(n)], dtype=float)
    R = np.eye(n)
    for i in range(n):
        for j in range(n):
            if i != j and codes[i] == codes[j]:
                d = abs(times[i] - times[j])
                R[i, j] = value if kind == "cs" else value ** d
    s = np.exp(D @ delta) if D.shape[1] else np.ones(n)
    return s[:, None] * R * s[None, :]


def neg2ll(y, X, Sigma, sigma, beta):
    r = y - X @ beta
    sign, logdet = np.linalg.slogdet(sigma ** 2 * Sigma)
    assert sign > 0
    return y.size * np.log(2 * np.pi) + logdet + r @ np.linalg.solve(sigma ** 2 * Sigma, r)


def profiled(y, X, Sigma=None, W=None, log_jac=0.0, reml=False):
    """Profiled ML / REML ``-2 log L``: dense with ``Sigma``, or on whitened data ``W y``, ``W X`` + ``log_jac``."""
    if W is not None:
        y, X, Sigma = W @ y, W @ X, np.eye(y.size)
    n, p = X.shape
    Si = np.linalg.inv(Sigma)
    A = X.T @ Si @ X
    beta = np.linalg.solve(A, X.T @ Si @ y)
    rss = (y - X @ beta) @ Si @ (y - X @ beta)
    ld = np.linalg.slogdet(Sigma)[1] + log_jac
    if not reml:
        return n * (1 + np.log(2 * np.pi * rss / n)) + ld
    return (n - p) * (1 + np.log(2 * np.pi * rss / (n - p))) + ld + np.linalg.slogdet(A)[1]


CASES = [  # (corr factory, kind, times kind, natural value)
    (AR1, "ar1", "integer", 0.63), (AR1, "ar1", "integer", -0.71), (AR1, "ar1", None, 0.0), (AR1, "ar1", None, 0.4),
    (CAR1, "car1", "real", 0.37), (CAR1, "car1", "real", 0.93), (CAR1, "car1", None, 0.5),
    (CompSymm, "cs", None, 0.45), (CompSymm, "cs", "real", -0.13), (CompSymm, "cs", None, -1 / 7 + 1e-3),
    (None, "none", None, 0.0),    # independent residuals: 0 ** d = 0 off the diagonal
]


@pytest.mark.parametrize("n_disp", [0, 2])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_whitening_matches_dense_covariance(case, n_disp):
    factory, kind, times_kind, value = CASES[case]
    codes, times, D = make_data(100 + case, times_kind, n_disp)
    corr = None if factory is None else factory()
    model = ResidualModel(codes, times, corr, D if n_disp else None)
    delta = np.array([0.4, -0.7])[:n_disp]
    nat = {"delta": delta} if corr is None else {kind.replace("car1", "phi").replace("ar1", "rho").replace(
        "cs", "rho"): value, "delta": delta}
    par = model.from_natural(nat)
    got = model.natural(par)
    for k, v in nat.items():
        np.testing.assert_allclose(got[k], v, rtol=1e-13, atol=1e-15)
    Sigma = dense_sigma(codes, times, kind, value, D, delta)
    n = codes.size
    W = model.whiten(par, np.eye(n))
    # W' W = Sigma^{-1}, checked as W' W Sigma = I (well conditioned) and against the explicit inverse
    np.testing.assert_allclose(W.T @ W @ Sigma, np.eye(n), atol=1e-10)
    Si = np.linalg.inv(Sigma)
    np.testing.assert_allclose(W.T @ W, Si, atol=1e-10 * np.abs(Si).max())
    # whitened rows only combine rows of the same residual group
    assert np.all((np.abs(W) > 0) <= (codes[:, None] == codes[None, :]))
    sign, logdet = np.linalg.slogdet(Sigma)
    assert sign > 0
    assert abs(model.log_jacobian(par) - logdet) < 1e-10 * max(1.0, abs(logdet))
    # vector and matrix input agree; original row order kept
    rng = np.random.default_rng(case)
    y = rng.normal(size=n)
    X = np.column_stack([np.ones(n), rng.normal(size=(n, 2))])
    np.testing.assert_allclose(model.whiten(par, y), W @ y, atol=1e-12)
    np.testing.assert_allclose(model.whiten(par, X), W @ X, atol=1e-12)
    # Gaussian -2 log L: at fixed (beta, sigma), profiled ML and REML
    beta, sigma = np.array([0.3, -1.0, 0.5]), 1.7
    dense = neg2ll(y, X, Sigma, sigma, beta)
    r = model.whiten(par, y - X @ beta) / sigma
    white = n * np.log(2 * np.pi * sigma ** 2) + r @ r + model.log_jacobian(par)
    assert abs(dense - white) < 1e-10 * abs(dense)
    for reml in (False, True):
        a = profiled(y, X, Sigma=Sigma, reml=reml)
        b = profiled(y, X, W=W, log_jac=model.log_jacobian(par), reml=reml)
        assert abs(a - b) < 1e-10 * abs(a)


def test_sorted_input_and_parameter_bookkeeping():
    codes = np.repeat([0, 1, 2], [3, 4, 2])
    model = ResidualModel(codes, None, AR1(), np.arange(9.0)[:, None] ** 2, disp_names=["t2"])
    assert model.groups.perm is None                      # already sorted: no permutation
    for a in (0.8, -1.3):                                 # the no-permutation path against the dense oracle
        par = np.array([a, 0.05])
        Sigma = dense_sigma(codes, None, "ar1", model.natural(par)["rho"], np.arange(9.0)[:, None] ** 2, par[1:])
        W = model.whiten(par, np.eye(9))
        np.testing.assert_allclose(W.T @ W @ Sigma, np.eye(9), atol=1e-10)
        assert model.log_jacobian(par) == pytest.approx(np.linalg.slogdet(Sigma)[1], rel=1e-12, abs=1e-12)
    assert model.n_params == 2 and model.names() == ["rho", "t2"]
    np.testing.assert_array_equal(model.lower_bounds(), [-np.inf, -np.inf])
    np.testing.assert_array_equal(model.initial(), [0.0, 0.0])
    assert model.natural(model.initial())["rho"] == 0.0
    assert CAR1().natural(CAR1().initial())["phi"] == pytest.approx(0.2, rel=1e-14)
    plain = ResidualModel(codes, None, None, None)
    assert plain.n_params == 0 and plain.log_jacobian([]) == 0.0
    y = np.arange(9.0)
    out = plain.whiten([], y)
    np.testing.assert_array_equal(out, y)
    assert out is not y


@pytest.mark.parametrize("a", [-40.0, -3.0, -0.2, 0.0, 0.7, 5.0, 40.0, 1e4])
def test_transforms_round_trip_and_stay_in_range(a):
    cs = CompSymm(m_max=5)
    for corr, key, lo in ((AR1(), "rho", -1.0), (CAR1(), "phi", 0.0), (cs, "rho", -0.25)):
        v = corr.natural([a])[key]
        assert lo <= v <= 1.0
        if lo < v < 1.0 and abs(a) < 30:
            assert corr.from_natural({key: v})[0] == pytest.approx(a, rel=1e-9, abs=1e-12)
    # CS at extreme a: the largest group's R stays positive definite, log det finite and equal to dense
    codes = np.repeat([0, 1], [5, 2])
    model = ResidualModel(codes, None, CompSymm(), None)
    rho = model.natural([a])["rho"]
    R = np.zeros((7, 7))
    for m, s in ((5, slice(0, 5)), (2, slice(5, 7))):
        R[s, s] = (1 - rho) * np.eye(m) + rho
    lj = model.log_jacobian([a])
    assert np.isfinite(lj)
    if abs(a) < 30:
        assert lj == pytest.approx(np.linalg.slogdet(R)[1], rel=1e-9)


def test_errors():
    codes = np.array([0, 0, 0, 1, 1])
    with pytest.raises(ValueError, match="two rows .* at time 2"):
        ResidualModel(codes, np.array([1.0, 2.0, 2.0, 0.0, 1.0]), AR1(), None)
    with pytest.raises(ValueError, match="distinct within a group"):
        ResidualModel(codes, np.array([0.5, 1.5, 0.0, 0.5, 0.5]), CAR1(), None)
    with pytest.raises(ValueError, match="integer times .* use CAR1"):
        ResidualModel(codes, np.array([0.0, 1.5, 3.0, 0.0, 1.0]), AR1(), None)
    with pytest.raises(ValueError, match="outside"):
        CompSymm(m_max=4).from_natural({"rho": -0.5})           # below -1/3: not reachable
    with pytest.raises(ValueError, match="outside"):
        CompSymm(m_max=4).from_natural({"rho": 1.0})
    with pytest.raises(ValueError, match="outside"):
        AR1().from_natural({"rho": -1.0})
    with pytest.raises(ValueError, match="outside"):
        CAR1().from_natural({"phi": 0.0})
    with pytest.raises(ValueError, match="m_max=2"):
        ResidualModel(codes, None, CompSymm(m_max=2), None)
    with pytest.raises(ValueError, match="not identifiable"):
        ResidualModel(np.arange(4), None, CAR1(), None)
    with pytest.raises(ValueError, match="intercept"):
        ResidualModel(codes, None, None, np.column_stack([np.ones(5), np.arange(5.0)]))
    with pytest.raises(ValueError, match="shape"):
        ResidualModel(codes, None, None, np.ones((4, 1)))
    with pytest.raises(ValueError, match="NaN"):
        ResidualModel(codes, np.array([0, 1, np.nan, 0, 1]), CAR1(), None)
    with pytest.raises(ValueError, match="integer array"):
        ResidualModel(codes.astype(float), None, None, None)
    model = ResidualModel(codes, None, AR1(), None)
    with pytest.raises(ValueError, match="expected 1"):
        model.whiten([0.1, 0.2], np.ones(5))
    with pytest.raises(ValueError, match="M has shape"):
        model.whiten([0.1], np.ones(4))


@pytest.mark.parametrize("corr", ["ar1", "car1", "cs", None])
def test_color_inverts_whiten_and_gives_the_covariance(corr):
    rng = np.random.default_rng(5)
    n = 60
    codes = rng.integers(0, 9, n)
    times = rng.permutation(n).astype(float) if corr == "ar1" else rng.uniform(0, 20, n)
    D = rng.normal(size=(n, 1))
    obj = {"ar1": AR1(), "car1": CAR1(), "cs": CompSymm(), None: None}[corr]
    rm = ResidualModel(codes, times, obj, D)
    par = rm.initial() + 0.3
    Z = rng.normal(size=(n, 4))
    assert np.allclose(rm.whiten(par, rm.color(par, Z)), Z, atol=1e-12)
    C = rm.color(par, np.eye(n))
    Wm = rm.whiten(par, np.eye(n))
    assert np.allclose(C @ C.T, np.linalg.inv(Wm.T @ Wm), rtol=1e-9, atol=1e-12)    # S R S
