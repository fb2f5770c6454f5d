"""HybridGram: the Schur update of the dense later-terms block, split between a dense SYRK and a
sparse plan, against explicit dense products."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from mixedfx.core import PLSWorkspace
from mixedfx.core.gram import HybridGram, level_pairs


def busy_and_light(rng, q_r, l0, p0, heavy=4):
    """A sparse (q_r, l0 p0) block: a few levels meet most rows, the others a handful."""
    rows, cols, vals = [], [], []
    for g in range(l0):
        k = rng.integers(int(0.6 * q_r), q_r) if g < heavy else rng.integers(1, 5)
        r = rng.choice(q_r, size=k, replace=False)
        for a in range(p0):
            keep = r if a == 0 else r[rng.random(k) < 0.8]      # columns of a level may differ
            rows.append(keep)
            cols.append(np.full(len(keep), g * p0 + a))
            vals.append(rng.normal(size=len(keep)))
    A = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(q_r, l0 * p0))
    Arr = sp.random(q_r, q_r, density=0.2, random_state=int(rng.integers(1 << 30)))
    return A, (Arr + Arr.T + sp.identity(q_r) * 5).tocsr()


def factors(rng, l0, p0):
    if p0 == 1:
        return rng.uniform(0.1, 2.0, size=l0)
    return np.tril(rng.normal(size=(l0, p0, p0)))


def explicit(A, F, p0):
    S = F * F if F.ndim == 1 else F @ np.swapaxes(F, 1, 2)
    Sblk = np.diag(S) if F.ndim == 1 else sp.block_diag(list(S)).toarray()
    Ad = A.toarray()
    return Ad @ Sblk @ Ad.T


@pytest.mark.parametrize("p0", [1, 2, 3])
@pytest.mark.parametrize("split", ["auto", "all dense", "all sparse", "capped"])
def test_gram_matches_the_dense_product(p0, split):
    rng = np.random.default_rng(p0 * 10 + len(split))
    q_r, l0 = 40, 30
    A, Arr = busy_and_light(rng, q_r, l0, p0)
    kw = {"auto": {}, "all dense": {"entry_cost": 1e9}, "all sparse": {"entry_cost": 0.0},
          "capped": {"entry_cost": 0.0, "max_entries": 200}}[split]
    hg = HybridGram(A, p0, Arr, **kw)
    pairs = level_pairs(hg.A, p0)
    assert hg.plan_entries == pairs[hg.sparse_levels].sum()
    if split == "all dense":
        assert len(hg.sparse_levels) == 0
    if split == "all sparse":
        assert len(hg.dense_levels) == 0
    if split == "capped":
        assert hg.plan_entries <= 200 and len(hg.dense_levels) and len(hg.sparse_levels)
    F = factors(rng, l0, p0)
    G = explicit(A, F, p0)
    M = np.zeros((q_r, q_r), order="F")
    hg.add_gram(M, F, -2.0)
    np.testing.assert_allclose(np.tril(M), np.tril(-2.0 * G), rtol=1e-12, atol=1e-12)
    assert np.all(np.triu(M, 1) == 0)
    M7 = np.full((q_r, q_r), 7.0, order="F")            # overwrite: the lower triangle is set
    hg.add_gram(M7, F, 3.0, overwrite=True)
    np.testing.assert_allclose(np.tril(M7), np.tril(3.0 * G), rtol=1e-12, atol=1e-12)
    assert np.all(np.isin(M7[np.triu_indices(q_r, 1)], (0.0, 7.0)))
    # the scaled block, uniform and per-row lambda
    for lam in (np.full(q_r, 0.7), rng.uniform(0.2, 1.5, size=q_r)):
        hg.assemble_scaled(M, F, lam)
        want = lam[:, None] * (Arr.toarray() - G) * lam[None, :] + np.eye(q_r)
        np.testing.assert_allclose(np.tril(M), np.tril(want), rtol=1e-12, atol=1e-12)
    # C-ordered target with a scale
    C = np.ones((q_r, q_r))
    s = rng.uniform(0.5, 2.0, size=q_r)
    hg.subtract_from(C, F, s)
    np.testing.assert_allclose(np.tril(C), np.tril(1.0 - s[:, None] * G * s[None, :]), rtol=1e-12, atol=1e-12)
    # per-level quadratic forms A_g' N A_g on the sparse levels
    N = rng.normal(size=(q_r, q_r))
    N = np.asfortranarray(N + N.T)
    Q = hg.level_quadratic(N)
    Ad = A.toarray()
    for g in hg.sparse_levels:
        Ag = Ad[:, g * p0:(g + 1) * p0]
        np.testing.assert_allclose(Q[g], Ag.T @ N @ Ag, rtol=1e-10, atol=1e-10)
    assert np.all(Q[hg.dense_levels] == 0)


@pytest.mark.parametrize("p0", [1, 2])
def test_refresh_equals_a_fresh_build(p0):
    rng = np.random.default_rng(3 + p0)
    A, Arr = busy_and_light(rng, 30, 25, p0)
    hg = HybridGram(A, p0, Arr, entry_cost=0.0, max_entries=150)
    A2 = A.copy()
    A2.data = rng.normal(size=A2.nnz)
    Arr2 = Arr.copy()
    Arr2.data = Arr2.data * 1.5
    for _ in range(2):                       # the second refresh reuses the stored factor positions
        hg.refresh(A2, Arr2)
    fresh = HybridGram(A2, p0, Arr2, entry_cost=0.0, max_entries=150)
    F = factors(rng, 25, p0)
    lam = rng.uniform(0.3, 1.2, size=30)
    M1, M2 = np.zeros((30, 30), order="F"), np.zeros((30, 30), order="F")
    hg.assemble_scaled(M1, F, lam)
    fresh.assemble_scaled(M2, F, lam)
    np.testing.assert_allclose(np.tril(M1), np.tril(M2), rtol=1e-13, atol=1e-13)


def test_crossed_users_and_items_match_a_dense_workspace():
    """A small MovieLens-like crossing (busy and light users) through the hybrid split: the same
    criterion, estimates and conditional variances as with every level dense."""
    rng = np.random.default_rng(8)
    n_users, n_items = 120, 60
    k = np.where(rng.random(n_users) < 0.1, rng.integers(40, 60, n_users), rng.integers(2, 8, n_users))
    users = np.repeat(np.arange(n_users), k)
    items = np.concatenate([rng.choice(n_items, size=kk, replace=False) for kk in k])
    n = len(users)
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = X @ [3.0, 0.2] + 0.5 * rng.normal(size=n_users)[users] + 0.6 * rng.normal(size=n_items)[items] \
        + rng.normal(size=n)
    blocks = [(users, np.ones((n, 1)), n_users), (items, np.ones((n, 1)), n_items)]
    ws = PLSWorkspace(X, y, blocks, rest="dense")
    ws.schur = HybridGram(ws.Ar0, 1, ws._Arr_sparse, entry_cost=40.0, max_entries=400)
    assert len(ws.schur.dense_levels) and len(ws.schur.sparse_levels)
    ref = PLSWorkspace(X, y, blocks, rest="dense")
    ref.schur = HybridGram(ref.Ar0, 1, ref._Arr_sparse, entry_cost=1e9)
    for theta in ([0.5, 0.6], [1.3, 0.2], [0.5, 0.6]):
        a, b = ws.update(np.array(theta)), ref.update(np.array(theta))
        assert a.objective_value == pytest.approx(b.objective_value, rel=1e-13)
        np.testing.assert_allclose(a.beta(), b.beta(), rtol=1e-11)
    for ca, cb in zip(ws.cond_var_blocks(), ref.cond_var_blocks()):
        np.testing.assert_allclose(ca, cb, rtol=1e-10)


def test_cached_grams_give_the_same_block():
    """The Gram cache (reused when the term-0 factor repeats with another lambda_r) changes nothing."""
    rng = np.random.default_rng(21)
    A, Arr = busy_and_light(rng, 30, 20, 1)
    cached = HybridGram(A, 1, Arr, entry_cost=40.0, max_entries=100)
    cached._cache_size = 2
    plain = HybridGram(A, 1, Arr, entry_cost=40.0, max_entries=100)
    plain._cache_size = 0
    Fs = [factors(rng, 20, 1) for _ in range(3)]
    for j in [0, 1, 0, 2, 0, 1, 1]:
        lam = np.full(30, rng.uniform(0.3, 1.5))
        M1, M2 = np.zeros((30, 30), order="F"), np.zeros((30, 30), order="F")
        cached.assemble_scaled(M1, Fs[j], lam)
        plain.assemble_scaled(M2, Fs[j], lam)
        np.testing.assert_allclose(np.tril(M1), np.tril(M2), rtol=1e-14, atol=1e-14)
    assert len(cached._cache) == 2
    A2 = A.copy()
    A2.data = A2.data * 2.0
    cached.refresh(A2, Arr)
    assert not cached._cache


def test_a_repeated_theta_after_reweighting_sees_the_new_weights():
    """The factor kept for an exact repeat of theta is not reused once the data change."""
    rng = np.random.default_rng(4)
    n = 300
    users, items = rng.integers(0, 40, n), rng.integers(0, 15, n)
    users[:40], items[:15] = np.arange(40), np.arange(15)
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = X @ [1.0, 0.5] + rng.normal(size=40)[users] + rng.normal(size=15)[items] + rng.normal(size=n)
    blocks = [(users, np.ones((n, 1)), 40), (items, np.ones((n, 1)), 15)]
    ws = PLSWorkspace(X, y, blocks, rest="dense")
    theta = np.array([0.8, 0.6])
    first = ws.objective(theta)
    assert ws.objective(theta) == first
    w = rng.uniform(0.5, 2.0, size=n)
    ws.reweight(w, y)
    fresh = PLSWorkspace(X, y, blocks, weights=w, rest="dense")
    assert ws.objective(theta) == pytest.approx(fresh.objective(theta), rel=1e-12)
    assert ws.objective(theta) != first


@pytest.mark.parametrize("p0", [1, 2])
def test_plan_built_in_many_row_blocks(p0, monkeypatch):
    """The plan regrouped block by block (small blocks forced) equals the one-block build."""
    import mixedfx.core.gram as gram
    rng = np.random.default_rng(30 + p0)
    A, Arr = busy_and_light(rng, 35, 25, p0)
    one = HybridGram(A, p0, Arr, entry_cost=0.0)
    monkeypatch.setattr(gram, "_BUILD_BLOCK", 40)
    monkeypatch.setattr(gram, "_BUILD_PAIRS", 30)
    many = HybridGram(A, p0, Arr, entry_cost=0.0)
    assert many.plan_entries > 400
    np.testing.assert_array_equal(one.T.indptr, many.T.indptr)
    F = factors(rng, 25, p0)
    M1, M2 = np.zeros((35, 35), order="F"), np.zeros((35, 35), order="F")
    one.add_gram(M1, F)
    many.add_gram(M2, F)
    np.testing.assert_allclose(M2, M1, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(np.tril(M2), np.tril(explicit(A, F, p0)), rtol=1e-12, atol=1e-12)
    A2 = A.copy()
    A2.data = rng.normal(size=A2.nnz)
    many.refresh(A2, Arr)
    M2[:] = 0.0
    many.add_gram(M2, F)
    np.testing.assert_allclose(np.tril(M2), np.tril(explicit(A2, F, p0)), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("levels_per_row", [1, 3, 40])
def test_pattern_density_counts_the_lower_triangle_and_stops_early_when_dense(levels_per_row):
    from mixedfx.core.schur import pattern_density
    rng = np.random.default_rng(levels_per_row)
    q_r, l0 = 300, 3000
    cols, rows_list = [], []
    for g in range(l0):        # level g meets 1..levels_per_row of the later-term columns
        k = int(rng.integers(1, levels_per_row + 1))
        r = rng.choice(q_r, size=k, replace=False)
        rows_list.append(r)
        cols.append(np.full(k, g))
    A = sp.csr_matrix((rng.normal(size=sum(map(len, rows_list))),
                       (np.concatenate(rows_list), np.concatenate(cols))), shape=(q_r, l0))
    Arr = sp.diags(rng.uniform(1, 2, q_r)).tocsr()
    touched = (abs(A) @ abs(A).T + Arr + sp.identity(q_r)).toarray() != 0     # the brute-force pattern
    exact = np.count_nonzero(np.tril(touched)) / (q_r * (q_r + 1) / 2)
    assert pattern_density(A, 1, Arr) == pytest.approx(exact, rel=1e-12)
    early = pattern_density(A, 1, Arr, max_density=0.02)
    assert (early > 0.02) == (exact > 0.02)
    if exact <= 0.02:
        assert early == pytest.approx(exact, rel=1e-12)
    else:
        assert 0.02 < early <= exact


def test_a_first_term_level_without_rows_gives_an_empty_plan_column():
    """A term-0 level with no rows (possible for summed blocks) has no later-term entries: an empty
    column of the plan, not a division by zero; the criterion equals the dense oracle's."""
    from test_workspace_oracle import dense_oracle
    rng = np.random.default_rng(0)
    n, l0, l1 = 3000, 1000, 600
    codes0 = rng.integers(0, l0 - 1, n)                 # level l0 - 1 has no rows
    codes1 = rng.integers(0, l1, n)
    X, y = np.ones((n, 1)), rng.normal(size=n)
    blocks = [(codes0, np.ones((n, 1)), l0), (codes1, np.ones((n, 1)), l1)]
    ws = PLSWorkspace(X, y, blocks, rest="dense")
    assert isinstance(ws.schur, HybridGram) and len(ws.schur.sparse_levels)
    theta = np.array([0.6, 0.4])
    assert ws.objective(theta) == pytest.approx(dense_oracle(X, y, blocks, None, theta, True)["dev"], rel=1e-10)
