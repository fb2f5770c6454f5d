"""The compiled per-level scatter Gram (core/scatter_gram.py) against dense oracles and the other paths."""
import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

pytest.importorskip("numba")

import mixedfx as mfx  # noqa: E402
from mixedfx.core import scatter_gram as sg  # noqa: E402
from mixedfx.core.blocksum import partition_blocks, sum_blocks  # noqa: E402
from mixedfx.core.scaled_workspace import ScaledWorkspace  # noqa: E402
from mixedfx.core.workspace import PLSWorkspace  # noqa: E402


def _random_csc(q_r, q0, density, seed):
    rng = np.random.default_rng(seed)
    A = sp.random(q_r, q0, density=density, random_state=rng, format="csc")
    A.data = rng.normal(size=A.nnz)
    A.sort_indices()
    return A


def _mixed_csc(q_r, q0, seed):
    """Columns from nearly empty to full: some levels go to the SYRK, the rest are scattered."""
    rng = np.random.default_rng(seed)
    cols = [np.sort(rng.choice(q_r, int(k), replace=False)) for k in rng.integers(1, q_r, q0) ** 2 // q_r + 1]
    indptr = np.concatenate([[0], np.cumsum([len(c) for c in cols])])
    A = sp.csc_matrix((rng.normal(size=indptr[-1]), np.concatenate(cols), indptr), shape=(q_r, q0))
    A.sort_indices()
    return A


@pytest.mark.parametrize("q_r,q0,density", [(7, 30, 0.5), (600, 80, 0.2), (513, 40, 0.9), (300, 1, 1.0),
                                            (2000, 50, 0.01), (700, 120, None)])
def test_gram_equals_dense(q_r, q0, density):
    """Tiles across the block (q_r above and not a multiple of the tile), alpha, overwrite; levels
    scattered, in the SYRK, or both (``density=None``: mixed column sizes)."""
    A = _random_csc(q_r, q0, density, 1) if density is not None else _mixed_csc(q_r, q0, 1)
    F = np.random.default_rng(2).uniform(0.2, 2.0, q0)
    G = sg.ScatterGram(A)
    if density is None:
        assert len(G.dense_levels) and len(G.sparse_levels)
    if density == 0.01:
        assert not len(G.dense_levels)
    M = np.asfortranarray(np.random.default_rng(3).normal(size=(q_r, q_r)))
    before = M.copy()
    G.add_gram(M, F, alpha=-0.7)
    dense = (A.toarray() * F ** 2) @ A.toarray().T
    low = np.tril_indices(q_r)
    np.testing.assert_allclose(M[low], before[low] - 0.7 * dense[low], rtol=1e-12, atol=1e-11)
    np.testing.assert_array_equal(np.triu(M, 1), np.triu(before, 1))      # upper triangle untouched
    G.add_gram(M, F, alpha=2.0, overwrite=True)
    np.testing.assert_allclose(M[low], 2.0 * dense[low], rtol=1e-12, atol=1e-11)


@pytest.mark.parametrize("q_r", [5, 600, 2000, 700])
def test_level_quadratic_equals_dense(q_r):
    """Over the scattered levels (the SYRK's levels are left at 0 for cond_var_parts)."""
    A = _random_csc(q_r, 50, 0.3 if q_r < 700 else 0.01, 4) if q_r != 700 else _mixed_csc(q_r, 60, 4)
    N = np.random.default_rng(5).normal(size=(q_r, q_r))
    N = N + N.T
    G = sg.ScatterGram(A)
    Q = G.level_quadratic(np.asfortranarray(np.tril(N)))     # lower triangle only
    Ad = A.toarray()
    want = np.einsum("ig,ij,jg->g", Ad, N, Ad)
    want[G.dense_levels] = 0.0
    np.testing.assert_allclose(Q[:, 0, 0], want, rtol=1e-11, atol=1e-10)


def test_csr_input_refresh_and_shared_csc():
    A = _random_csc(40, 60, 0.3, 6)
    G_csc = sg.ScatterGram(A)
    assert G_csc.A is A and G_csc._perm is None             # used as it is: one copy
    G_csr = sg.ScatterGram(A.tocsr())
    F = np.linspace(0.5, 1.5, 60)
    M1, M2 = np.zeros((40, 40), order="F"), np.zeros((40, 40), order="F")
    G_csc.add_gram(M1, F)
    G_csr.add_gram(M2, F)
    np.testing.assert_allclose(M1, M2, rtol=1e-14, atol=1e-14)
    B = A.tocsr()
    B.data = B.data * 3.0                                   # new values, same pattern (PIRLS)
    G_csr.refresh(B)
    G_csr.add_gram(M2, F, overwrite=True)
    np.testing.assert_allclose(M2, 9.0 * M1, rtol=1e-13, atol=1e-13)


def test_scaled_columns_matches_dense():
    A = _random_csc(30, 45, 0.25, 7)
    rng = np.random.default_rng(8)
    left, right = rng.uniform(0.5, 2, 30), rng.uniform(0.5, 2, 45)
    op = sg.ScaledColumns(A, left, right)
    D = left[:, None] * A.toarray() * right[None, :]
    x, X, y = rng.normal(size=45), rng.normal(size=(45, 3)), rng.normal(size=30)
    np.testing.assert_allclose(op @ x, D @ x, rtol=1e-13)
    np.testing.assert_allclose(op @ X, D @ X, rtol=1e-13)
    np.testing.assert_allclose(op.T @ y, D.T @ y, rtol=1e-13)
    np.testing.assert_allclose(op[:, 5:17].toarray(), D[:, 5:17], rtol=1e-14)
    np.testing.assert_allclose(op.toarray(), D, rtol=1e-14)
    assert op.shape == (30, 45) and op.T.shape == (45, 30)


def test_use_scatter_rule(monkeypatch):
    A = _random_csc(50, 400, 0.5, 9)                        # ~400 x 300 products, block 1275 entries
    assert not sg.use_scatter(A, 1, True, "auto")           # below the plan's cap
    assert sg.use_scatter(A, 1, True, "auto", min_pairs=1000)   # choose_update's second question
    monkeypatch.setattr(sg, "MAX_PLAN_ENTRIES", 1000)
    assert sg.use_scatter(A, 1, True, "auto") and sg.use_scatter(A.tocsr(), 1, True, "dense")
    assert not sg.use_scatter(A, 2, True, "auto")           # vector first term
    assert not sg.use_scatter(A, 1, False, "auto")          # vector later terms
    assert not sg.use_scatter(A, 1, True, "sparse")


def test_without_numba_a_huge_block_warns(monkeypatch):
    A = sp.csc_matrix((np.ones(50_000), np.arange(50_000), [0, 50_000]), shape=(50_000, 1))   # 1.25e9 products
    monkeypatch.setattr(sg, "scatter_available", lambda: False)
    with pytest.warns(RuntimeWarning, match=r"mixedfx\[fast\]"):
        assert not sg.use_scatter(A, 1, True, "auto")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not sg.use_scatter(A, 1, True, "auto", warn=False)


@pytest.fixture(scope="module")
def crossed():
    rng = np.random.default_rng(11)
    U, I, n = 400, 300, 16_000      # ~37 items per user: scattered (a SYRK per level would cost more)
    u, i = rng.integers(0, U, n), rng.integers(0, I, n)
    w = rng.uniform(0.5, 2.0, n)
    y = 0.8 * rng.normal(size=U)[u] + 0.5 * rng.normal(size=I)[i] + rng.normal(size=n) + 3.0
    return pd.DataFrame({"y": y, "x": rng.normal(size=n), "u": u, "i": i, "w": w})


@pytest.mark.parametrize("weights", [None, "w"])
@pytest.mark.parametrize("reml", [True, False])
def test_fit_equals_hybrid_path(crossed, monkeypatch, weights, reml):
    """The same crossed model through the scatter path and the plan/SYRK path: same optimum."""
    formula = "y ~ x + (1 | u) + (1 | i)"
    with monkeypatch.context() as mp:           # the reference: the path without numba
        mp.setattr(sg, "scatter_available", lambda: False)
        ref = mfx.lmer(formula, crossed, reml=reml, weights=weights)
        assert type(ref.fit.fresh_workspace().internal.schur).__name__ == "HybridGram"
    m = mfx.lmer(formula, crossed, reml=reml, weights=weights)     # ~2.8e5 products: scattered by default
    schur = m.fit.fresh_workspace().internal.schur
    assert isinstance(schur, sg.ScatterGram) and len(schur.sparse_levels) > 300     # most scattered
    assert abs(m.fit.objective - ref.fit.objective) <= 1e-12 * abs(ref.fit.objective)
    np.testing.assert_allclose(m.fit.theta, ref.fit.theta, rtol=1e-8)
    np.testing.assert_allclose(m.fit.beta, ref.fit.beta, rtol=1e-9)
    np.testing.assert_allclose(m.fit.vcov, ref.fit.vcov, rtol=1e-8)
    for a, b in zip(m.fit.cond_var, ref.fit.cond_var):
        np.testing.assert_allclose(a, b, rtol=1e-8)
    for a, b in zip(m.fit.b, ref.fit.b):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9 * np.abs(b).max())
    # the analytic gradient reads Lr0 through the on-the-fly operator
    g = mfx.lmer(formula, crossed, reml=reml, weights=weights, optimizer="lbfgs")
    np.testing.assert_allclose(g.fit.theta, ref.fit.theta, rtol=1e-5)


def test_from_blocks_keeps_one_copy_of_ar0(crossed, monkeypatch):
    """Summed blocks handed over as CSC: the workspace and the scatter share them (no copy)."""
    monkeypatch.setattr(sg, "MAX_PLAN_ENTRIES", 1000)
    ref = mfx.lmer("y ~ x + (1 | u) + (1 | i)", crossed, weights="w")
    design, scaling = ref.fit.design, ref.fit.scaling
    pieces = []
    for s in range(3):
        idx = np.arange(s, design.n, 3)
        blocks = [(b.codes[idx], scaling.term(k, b.X[idx]), b.nlevels) for k, b in enumerate(design.blocks)]
        pieces.append(partition_blocks(scaling.fixed(design.X[idx]), scaling.response(design.y[idx]), blocks,
                                       scaling.weights(design.weights[idx])))
    sums = sum_blocks(pieces)
    csc = sums.Ar0.tocsc()
    csc.sort_indices()
    sums = dataclasses.replace(sums, Ar0=csc)
    ws = ScaledWorkspace.from_blocks(sums, scaling, [b.p for b in design.blocks], [b.nlevels for b in design.blocks])
    assert ws.internal.Ar0 is csc and ws.internal.schur.A is csc
    theta = ref.fit.internal.theta
    ws.internal.update(theta)
    iws = ref.fit.fresh_workspace().internal.update(theta)
    assert abs(ws.internal.objective_value - iws.objective_value) <= 1e-12 * abs(iws.objective_value)
    np.testing.assert_allclose(ws.internal.beta(), iws.beta(), rtol=1e-10)
    for a, b in zip(ws.internal.cond_var_blocks(), iws.cond_var_blocks()):
        np.testing.assert_allclose(a, b, rtol=1e-10)
    # without the scatter path a CSC Ar0 is turned into the usual CSR
    monkeypatch.setattr(sg, "MAX_PLAN_ENTRIES", 10**12)
    monkeypatch.setattr(sg, "SCATTER_MIN_PAIRS", 10**12)
    ws2 = PLSWorkspace.from_blocks(sums, sums.n, sums.p, [1, 1], [b.nlevels for b in design.blocks], sums.log_weights)
    assert ws2.Ar0.format == "csr" and type(ws2.schur).__name__ == "HybridGram"


@pytest.mark.parametrize("q_r,q0,density", [(600, 80, 0.2), (700, 120, None), (300, 40, 0.05)])
def test_assemble_scaled_with_several_later_terms_equals_dense(q_r, q0, density):
    """Non-uniform lambda (two later terms): folded into the kernels' values, against the dense formula."""
    A = _random_csc(q_r, q0, density, 5) if density is not None else _mixed_csc(q_r, q0, 5)
    rng = np.random.default_rng(6)
    R = sp.random(q_r, q_r, density=0.02, random_state=7)
    Arr = (R + R.T + sp.diags(rng.uniform(1, 2, q_r))).tocsr()
    F = rng.uniform(0.2, 2.0, q0)
    lam = np.where(np.arange(q_r) < q_r // 3, 0.7, 1.9)
    G = sg.ScatterGram(A, 1, Arr)
    assert not G._cache_size and A.nnz <= q_r * q_r           # the folded route
    M = np.asfortranarray(rng.normal(size=(q_r, q_r)))
    G.assemble_scaled(M, F, lam)
    Ad = A.toarray()
    dense = lam[:, None] * (Arr.toarray() - (Ad * F ** 2) @ Ad.T) * lam[None, :] + np.eye(q_r)
    low = np.tril_indices(q_r)
    np.testing.assert_allclose(M[low], dense[low], rtol=1e-12, atol=1e-11)
    M2 = np.asfortranarray(np.zeros((q_r, q_r)))
    HybridGram = sg.HybridGram
    HybridGram.assemble_scaled(G, M2, F, lam)                 # the two-pass route of the base class
    np.testing.assert_allclose(M[low], M2[low], rtol=1e-12, atol=1e-12)
