"""Brute-force dense oracles: the blocked PLS factorization against numpy.linalg on explicit matrices."""
from __future__ import annotations

import zlib

import numpy as np
import pytest
import scipy.sparse as sp

from mixedfx.core import PLSWorkspace, ThetaLayout, random_effects_matrix
from mixedfx.core.schur import DenseGram, SchurPlan


def random_problem(rng, n, terms, p=2, weights=False):
    """terms: list of (n_levels, p_k); returns X, y, blocks, w."""
    X = np.column_stack([np.ones(n)] + [rng.normal(size=n) for _ in range(p - 1)])
    blocks = []
    for nl, pk in terms:
        codes = rng.integers(0, nl, size=n)
        codes[:nl] = np.arange(nl)           # every level observed
        Xk = np.column_stack([np.ones(n)] + [rng.normal(size=n) for _ in range(pk - 1)])
        blocks.append((codes, Xk, nl))
    y = X @ rng.normal(size=p) + rng.normal(size=n)
    for codes, Xk, nl in blocks:
        y += np.einsum("ij,ij->i", Xk, rng.normal(size=(nl, Xk.shape[1]))[codes])
    w = rng.uniform(0.5, 2.0, size=n) if weights else None
    return X, y, blocks, w


def dense_oracle(X, y, blocks, w, theta, reml):
    """Everything from explicit dense matrices: Lambda, Z, the full Cholesky, the deviance."""
    n, p = X.shape
    layout = ThetaLayout(tuple(b[1].shape[1] for b in blocks))
    lams = layout.lambdas(theta)
    Z = sp.hstack([random_effects_matrix(c, Xk, nl) for c, Xk, nl in blocks]).toarray()
    Lam = sp.block_diag([np.kron(np.eye(nl), lam) for lam, (_, _, nl) in zip(lams, blocks)]).toarray()
    sw = np.ones(n) if w is None else np.sqrt(w)
    ZL = (Z * sw[:, None]) @ Lam
    Xw, yw = X * sw[:, None], y * sw
    q = Z.shape[1]
    big = np.block([[ZL.T @ ZL + np.eye(q), ZL.T @ Xw], [Xw.T @ ZL, Xw.T @ Xw]])
    L = np.linalg.cholesky(big)
    rhs = np.concatenate([ZL.T @ yw, Xw.T @ yw])
    sol = np.linalg.solve(big, rhs)
    u, beta = sol[:q], sol[q:]
    r2 = np.sum((yw - ZL @ u - Xw @ beta) ** 2) + np.sum(u ** 2)
    logdet_Z = 2 * np.sum(np.log(np.diag(L)[:q]))
    logdet_X = 2 * np.sum(np.log(np.diag(L)[q:]))
    nu = n - p if reml else n
    ldw = 0.0 if w is None else np.sum(np.log(w))
    dev = logdet_Z + nu * (1 + np.log(2 * np.pi * r2 / nu)) - ldw + (logdet_X if reml else 0.0)
    sigma2 = r2 / nu
    Linv = np.linalg.inv(L[:q, :q])
    condvar = sigma2 * Lam @ (Linv.T @ Linv) @ Lam.T
    vcov = sigma2 * np.linalg.inv(Xw.T @ Xw - (Xw.T @ ZL) @ np.linalg.solve(ZL.T @ ZL + np.eye(q), ZL.T @ Xw))
    return dict(L=L, logdet_Z=logdet_Z, logdet_X=logdet_X, r2=r2, dev=dev, beta=beta, b=Lam @ u,
                condvar=condvar, vcov=vcov, q=q)


CASES = {
    "one scalar term": [(12, 1)],
    "random slopes": [(9, 2)],
    "three correlated columns": [(7, 3)],
    "crossed scalar": [(15, 1), (6, 1)],
    "crossed three terms": [(20, 1), (8, 1), (3, 1)],
    "vector first, scalar rest": [(10, 2), (5, 1)],
    "scalar first, vector rest": [(16, 1), (4, 2)],
    "vector both": [(11, 2), (4, 3)],
}


SPARSE_CASES = [c for c, terms in CASES.items() if len(terms) > 1 and all(p == 1 for _, p in terms[1:])]


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("weights", [False, True])
@pytest.mark.parametrize("case, rest", [(c, "auto") for c in sorted(CASES)] + [(c, "sparse") for c in SPARSE_CASES])
def test_blocked_factorization_matches_dense(case, rest, weights, reml):
    rng = np.random.default_rng(zlib.crc32(f"{case}-{weights}-{reml}".encode()))
    X, y, blocks, w = random_problem(rng, 120, CASES[case], weights=weights)
    ws = PLSWorkspace(X, y, blocks, weights=w, reml=reml, rest=rest)
    assert ws.rest_sparse == (rest == "sparse")
    layout = ws.layout
    theta = rng.uniform(0.2, 1.5, size=layout.n_theta) * np.where(layout.lower_bounds() == 0, 1, 0.4)
    ref = dense_oracle(X, y, blocks, w, theta, reml)
    ws.update(theta)
    assert np.isclose(ws.logdet_Z, ref["logdet_Z"], rtol=1e-10)
    assert np.isclose(ws.logdet_X, ref["logdet_X"], rtol=1e-10)
    assert np.isclose(ws.pwrss, ref["r2"], rtol=1e-10)
    assert np.isclose(ws.objective_value, ref["dev"], rtol=1e-12)
    np.testing.assert_allclose(ws.beta(), ref["beta"], rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(np.concatenate([b.ravel() for b in ws.b_blocks()]), ref["b"], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ws.vcov_beta(), ref["vcov"], rtol=1e-8, atol=1e-12)
    # conditional covariance: diagonal blocks of the dense matrix, per term and level
    start = 0
    for cv in ws.cond_var_blocks():
        for blk in cv:
            k = blk.shape[0]
            np.testing.assert_allclose(blk, ref["condvar"][start:start + k, start:start + k], rtol=1e-8, atol=1e-12)
            start += k
    assert start == ref["q"]
    # the factor itself: L00 (block) diagonal and the dense rest block
    q0 = ws.q0
    L = ref["L"]
    if ws.sizes[0] == 1:
        np.testing.assert_allclose(ws.L00, np.diag(L)[:q0], rtol=1e-10)
    if ws.has_rest and not ws.rest_sparse:
        np.testing.assert_allclose(np.tril(ws.Lrr), L[q0:ref["q"], q0:ref["q"]], rtol=1e-9, atol=1e-12)


def test_schur_plan_matches_sparse_product():
    rng = np.random.default_rng(1)
    for p0 in (1, 2):
        A = sp.random(30, 12 * p0, density=0.3, random_state=2, format="csr")
        S = rng.normal(size=(12, p0, p0))
        S = S @ np.transpose(S, (0, 2, 1))
        Sblk = sp.block_diag(list(S)).toarray()
        expected = np.tril(A.toarray() @ Sblk @ A.toarray().T)
        F = np.linalg.cholesky(S)            # S_g = F_g F_g'
        for plan in (SchurPlan(A, p0), DenseGram(A, p0, np.zeros((30, 30)))):
            M = np.zeros((30, 30))
            plan.subtract_from(M, F if p0 > 1 else F[:, 0, 0])
            np.testing.assert_allclose(np.tril(-M), expected, rtol=1e-12, atol=1e-12)


def test_failed_factorization_returns_large_finite_value():
    rng = np.random.default_rng(3)
    X, y, blocks, _ = random_problem(rng, 50, [(5, 1)])
    X = np.column_stack([X, X[:, 1]])  # singular X'X: R_X cannot be factored
    ws = PLSWorkspace(X, y, blocks)
    value = ws.objective(np.array([0.5]))
    assert np.isfinite(value) and value >= 1e10


def test_batched_small_cholesky_and_inverse_match_numpy():
    from mixedfx.core.blocks import batched_cholesky, batched_lower_inverse
    rng = np.random.default_rng(7)
    for p in (1, 2, 3, 5, 9):     # 9: the LAPACK path for large blocks
        A = rng.normal(size=(40, p, p))
        C = A @ np.swapaxes(A, 1, 2) + 0.1 * np.eye(p)
        L = batched_cholesky(C)
        np.testing.assert_allclose(L, np.linalg.cholesky(C), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(batched_lower_inverse(L), np.linalg.inv(L), rtol=1e-9, atol=1e-11)
    C[3] = -np.eye(p)
    assert batched_cholesky(C) is None


def test_nested_many_levels_takes_the_sparse_path_and_matches_dense():
    """Classes nested in schools: the schools' block is diagonal, so "auto" goes sparse."""
    rng = np.random.default_rng(11)
    n_school, per = 800, 3
    school_of_class = np.repeat(np.arange(n_school), per)
    cls = np.repeat(np.arange(n_school * per), 4)
    school = school_of_class[cls]
    n = len(cls)
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = X @ [1.0, 0.5] + rng.normal(size=n_school)[school] + 0.7 * rng.normal(size=n_school * per)[cls] \
        + rng.normal(size=n)
    blocks = [(cls, np.ones((n, 1)), n_school * per), (school, np.ones((n, 1)), n_school)]
    auto = PLSWorkspace(X, y, blocks)
    dense = PLSWorkspace(X, y, blocks, rest="dense")
    assert auto.rest_sparse and not dense.rest_sparse
    for theta in ([0.7, 1.1], [0.05, 2.0], [1.5, 0.0]):
        a, d = auto.update(np.array(theta)), dense.update(np.array(theta))
        assert np.isclose(a.objective_value, d.objective_value, rtol=1e-12)
        np.testing.assert_allclose(a.beta(), d.beta(), rtol=1e-10)
        np.testing.assert_allclose(a.u(), d.u(), rtol=1e-8, atol=1e-12)
    for ca, cd in zip(auto.cond_var_blocks(), dense.cond_var_blocks()):
        np.testing.assert_allclose(ca, cd, rtol=1e-8)


@pytest.mark.parametrize("case, rest", [(c, "auto") for c in sorted(CASES)] + [(c, "sparse") for c in SPARSE_CASES])
def test_reweight_equals_a_fresh_workspace(case, rest):
    """PIRLS re-weights in place: same patterns, new values, identical factorization."""
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    X, y, blocks, _ = random_problem(rng, 120, CASES[case])
    w1, w2 = rng.uniform(0.2, 3.0, size=120), rng.uniform(0.2, 3.0, size=120)
    y2 = y + rng.normal(size=120)
    ws = PLSWorkspace(X, y, blocks, weights=w1, rest=rest).reweight(w2, y2)
    fresh = PLSWorkspace(X, y2, blocks, weights=w2, rest=rest)
    theta = rng.uniform(0.3, 1.2, size=ws.layout.n_theta) * np.where(ws.layout.lower_bounds() == 0, 1, 0.3)
    assert ws.objective(theta) == pytest.approx(fresh.objective(theta), rel=1e-12)
    np.testing.assert_allclose(ws.beta(), fresh.beta(), rtol=1e-10)
    np.testing.assert_allclose(ws.u(), fresh.u(), rtol=1e-9, atol=1e-12)


def test_reweight_with_the_sparse_schur_plan():
    """Force the sparse plan (not the dense Gram) and check a reweight against a fresh build."""
    rng = np.random.default_rng(5)
    X, y, blocks, _ = random_problem(rng, 400, [(60, 1), (25, 1), (4, 1)])
    w = rng.uniform(0.5, 2.0, size=400)
    old = PLSWorkspace.SPARSE_MIN_Q
    ws = PLSWorkspace(X, y, blocks, rest="dense")
    from mixedfx.core.schur import SchurPlan as Plan
    if not isinstance(ws.schur, Plan):   # make the test independent of the auto choice
        ws.schur = Plan(ws.Ar0, 1, ws._Arr_sparse)
    ws.reweight(w, y * 2)
    fresh = PLSWorkspace(X, y * 2, blocks, weights=w, rest="dense")
    theta = np.array([0.8, 0.5, 0.3])
    assert ws.objective(theta) == pytest.approx(fresh.objective(theta), rel=1e-12)
    assert PLSWorkspace.SPARSE_MIN_Q == old


@pytest.mark.parametrize("case, rest", [(c, "auto") for c in sorted(CASES)] + [(c, "sparse") for c in SPARSE_CASES])
def test_u_only_solve_equals_the_full_update(case, rest):
    """PIRLS's u-only step (L_Z only) gives the same modes as the full PLS update at fixed beta."""
    rng = np.random.default_rng(zlib.crc32((case + "u").encode()))
    X, y, blocks, w = random_problem(rng, 120, CASES[case], weights=True)
    ws = PLSWorkspace(X, y, blocks, weights=w, rest=rest)
    theta = rng.uniform(0.3, 1.2, size=ws.layout.n_theta) * np.where(ws.layout.lower_bounds() == 0, 1, 0.3)
    beta = rng.normal(size=X.shape[1])
    full = ws.update(theta).u(beta)
    logdet = ws.logdet_Z
    Z = sp.hstack([random_effects_matrix(c, Xk, nl) for c, Xk, nl in blocks]).tocsr()
    ws.reweight_zz(w)
    assert ws.factor_z(theta)
    assert ws.logdet_Z == pytest.approx(logdet, rel=1e-12)
    np.testing.assert_allclose(ws.solve_u(Z.T @ (w * (y - X @ beta))), full, rtol=1e-9, atol=1e-11)
