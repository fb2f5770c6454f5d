"""The analytic gradient of the profiled criteria (core/gradient.py) against a dense oracle.

The oracle evaluates the profiled deviance from first principles with dense matrices,
``V = W^{-1} + Z Lambda Lambda' Z'`` (residual variance 1):

    ML   = log|V| + n (1 + log(2 pi r^2 / n)),           r^2 = e' V^{-1} e at the GLS beta
    REML = log|V| + log|X' V^{-1} X| + (n - p) (1 + log(2 pi r^2 / (n - p)))

and is differentiated by central differences; the workspace's criterion must equal the
oracle's and its analytic gradient the oracle's derivatives, on every block layout the
workspace factors (one term; scalar and vector later terms; the dense SYRK update of crossed
vector terms; the sparse Schur plan) with and without prior weights.
"""
from __future__ import annotations

import zlib

import numpy as np
import pytest

from mixedfx.core.gradient import gradient_supported, profiled_gradient
from mixedfx.core.schur import DenseGram, SchurPlan
from mixedfx.core.workspace import PLSWorkspace, random_effects_matrix


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """The oracle's n x n algebra is tiny: BLAS threads only contend on a shared machine."""
    from threadpoolctl import threadpool_limits
    with threadpool_limits(1, user_api="blas"):
        yield


def _data(rng, n, terms, crossed=False, weights=False, p=3):
    X = np.column_stack([np.ones(n)] + [rng.normal(size=n) for _ in range(p - 1)])
    blocks = []
    for k, (pk, l) in enumerate(terms):
        if crossed:      # every level of term 0 meets every level of term 1
            codes = np.arange(n) % l if k == 0 else (np.arange(n) // terms[0][1]) % l
        else:
            codes = rng.integers(0, l, n)
            codes[:l] = np.arange(l)
        Xk = np.column_stack([np.ones(n)] + [rng.normal(size=n) for _ in range(pk - 1)])
        blocks.append((codes, Xk, l))
    y = X @ rng.normal(size=p) + rng.normal(size=n) * 2.0
    for codes, Xk, l in blocks:
        y += np.sum(Xk * rng.normal(size=(l, Xk.shape[1]))[codes], axis=1)
    w = rng.uniform(0.3, 3.0, n) if weights else None
    return X, y, blocks, w


def _oracle(X, y, blocks, w, layout, theta, reml):
    n, p = X.shape
    Z = np.hstack([random_effects_matrix(c, Xk, l).toarray() for c, Xk, l in blocks])
    lams = layout.lambdas(theta)
    Lam = np.zeros((Z.shape[1], Z.shape[1]))
    start = 0
    for lam, (c, Xk, l) in zip(lams, blocks):
        pk = Xk.shape[1]
        for g in range(l):
            Lam[start + g * pk:start + (g + 1) * pk, start + g * pk:start + (g + 1) * pk] = lam
        start += pk * l
    V = (np.diag(1.0 / w) if w is not None else np.eye(n)) + Z @ Lam @ Lam.T @ Z.T
    Vi = np.linalg.inv(V)
    XtViX = X.T @ Vi @ X
    beta = np.linalg.solve(XtViX, X.T @ Vi @ y)
    e = y - X @ beta
    r2 = e @ Vi @ e
    nu = n - p if reml else n
    dev = np.linalg.slogdet(V)[1] + nu * (1.0 + np.log(2.0 * np.pi * r2 / nu))
    if reml:
        dev += np.linalg.slogdet(XtViX)[1]
    return dev


def _theta(rng, layout):
    lb = layout.lower_bounds()
    th = layout.initial() * rng.uniform(0.3, 1.5, layout.n_theta) + rng.normal(scale=0.3, size=layout.n_theta)
    return np.where(lb == 0, np.abs(th) + 0.05, th)


LAYOUTS = {   # name: (terms, crossed, expected Schur update)
    "scalar": ([(1, 25)], False, None),
    "vector": ([(3, 15)], False, None),
    "two_column": ([(2, 15)], False, None),
    "scalar_crossed": ([(1, 20), (1, 9)], True, None),
    "vector_then_scalar": ([(2, 14), (1, 8)], False, None),
    "vector_crossed_dense": ([(3, 12), (2, 10)], True, DenseGram),
    "four_by_four_crossed": ([(4, 10), (4, 8)], True, DenseGram),
    "three_terms": ([(2, 12), (3, 5), (1, 4)], False, None),
}


@pytest.mark.parametrize("weights", [False, True])
@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("name", list(LAYOUTS))
def test_gradient_matches_dense_oracle(name, reml, weights):
    terms, crossed, schur = LAYOUTS[name]
    rng = np.random.default_rng(zlib.crc32(f"{name}{reml}{weights}".encode()))
    n = 2 * terms[0][1] * terms[1][1] if crossed else 150
    X, y, blocks, w = _data(rng, n, terms, crossed=crossed, weights=weights)
    ws = PLSWorkspace(X, y, blocks, weights=w, reml=reml, rest="dense")
    if schur is not None:
        assert isinstance(ws.schur, schur)
    assert gradient_supported(ws)
    theta = _theta(rng, ws.layout)
    f0 = _oracle(X, y, blocks, w, ws.layout, theta, reml)
    ws.update(theta)
    # both carry -sum(log w): the oracle inside log|V|, the workspace explicitly
    assert ws.objective_value == pytest.approx(f0, rel=1e-10)
    g = profiled_gradient(ws)
    h = 1e-5
    fd = np.empty_like(theta)
    for i in range(len(theta)):
        tp, tm = theta.copy(), theta.copy()
        tp[i] += h
        tm[i] -= h
        fd[i] = (_oracle(X, y, blocks, w, ws.layout, tp, reml)
                 - _oracle(X, y, blocks, w, ws.layout, tm, reml)) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(fd).max()))


def test_gradient_on_a_boundary_face_is_a_one_sided_derivative():
    """At a zero diagonal entry the criterion is smooth in the (unbounded) theta: the analytic
    gradient equals the two-sided difference there, so an unbounded search can cross the face."""
    rng = np.random.default_rng(7)
    X, y, blocks, w = _data(rng, 400, [(3, 20)])
    ws = PLSWorkspace(X, y, blocks, reml=True)
    theta = _theta(rng, ws.layout)
    theta[3] = 0.0          # lambda[1, 1] = 0, column 1 still has lambda[2, 1]
    ws.update(theta)
    g = profiled_gradient(ws)
    h = 1e-6
    tp, tm = theta.copy(), theta.copy()
    tp[3], tm[3] = h, -h
    fd = (ws.objective(tp) - ws.objective(tm)) / (2 * h)
    assert g[3] == pytest.approx(fd, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("reml", [True, False])
def test_gradient_on_the_sparse_nested_path_matches_dense_oracle(reml):
    """Nested scalar terms factored by qdldl (M^{-1} formed from the L D L' factor)."""
    rng = np.random.default_rng(11 + reml)
    n = 360
    outer = np.arange(n) % 20
    inner = outer * 4 + rng.integers(0, 4, n)               # 80 classes nested in 20 schools
    inner = np.unique(inner, return_inverse=True)[1]
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = X @ [1.0, 0.5] + rng.normal(size=20)[outer] + rng.normal(size=inner.max() + 1)[inner] + rng.normal(size=n)
    blocks = [(inner, np.ones((n, 1)), inner.max() + 1), (outer, np.ones((n, 1)), 20)]
    w = rng.uniform(0.5, 2.0, n)
    ws = PLSWorkspace(X, y, blocks, weights=w, reml=reml, rest="sparse")
    assert ws.rest_sparse and gradient_supported(ws)
    theta = np.array([0.7, 1.3])
    ws.update(theta)
    g = profiled_gradient(ws)
    h = 1e-5
    fd = [(_oracle(X, y, blocks, w, ws.layout, theta + h * e, reml)
           - _oracle(X, y, blocks, w, ws.layout, theta - h * e, reml)) / (2 * h) for e in np.eye(2)]
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-6)


def test_too_large_sparse_blocks_have_no_gradient(monkeypatch):
    import mixedfx.core.gradient as grad_mod
    rng = np.random.default_rng(3)
    n = 3000
    X = np.ones((n, 1))
    outer = rng.integers(0, 60, n)
    inner = outer * 12 + rng.integers(0, 12, n)        # nested: 720 inner levels
    blocks = [(np.unique(inner, return_inverse=True)[1], np.ones((n, 1)), len(np.unique(inner))),
              (outer, np.ones((n, 1)), 60)]
    ws = PLSWorkspace(X, rng.normal(size=n), blocks, rest="sparse")
    assert isinstance(ws.schur, SchurPlan) and ws.rest_sparse
    monkeypatch.setattr(grad_mod, "SPARSE_MAX_QR", 50)
    assert not gradient_supported(ws)
    ws.update(np.array([0.5, 0.5]))
    with pytest.raises(NotImplementedError, match="60 columns"):
        profiled_gradient(ws)
