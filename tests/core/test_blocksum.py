"""An LMM fitted from cross-products summed over row partitions equals mfx.lmer (issue 13, step 2).

Each case fits the model in memory, splits the design's rows into partitions (random non-contiguous
splits, contiguous ones where levels stay in one partition, empty partitions), computes the
standardization from merged column moments and every partition's blocks with the global level
codes, sums them and runs the in-memory optimizer path on a workspace built from the sums.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import mixedfx as mfx
from conftest import partition_case_data, rel_max as rel
from mixedfx.core.blocksum import BlockSums, partition_blocks, sum_blocks
from mixedfx.core.crossprod import CrossProducts
from mixedfx.core.moments import ColumnMoments, standardize_from_moments
from mixedfx.core.scaled_workspace import ScaledWorkspace
from mixedfx.core.start import moment_start
from mixedfx.core.workspace import FAILED_OBJECTIVE, PLSWorkspace
from mixedfx.models.layout import block_structures
from mixedfx.models.lmm import make_workspace
from mixedfx.models.optimizers import optimize_theta


def splits(n: int, K: int, how: str, seed: int = 0) -> list[np.ndarray]:
    """Row indices of K partitions plus one empty partition (second position)."""
    if how == "random":         # non-contiguous: every partition holds rows from everywhere
        lab = np.random.default_rng(seed).integers(0, K, n)
        parts = [np.flatnonzero(lab == k) for k in range(K)]
    else:                       # contiguous: most levels live in one partition
        parts = list(np.array_split(np.arange(n), K))
    parts.insert(1, np.zeros(0, dtype=int))
    return parts


def partitioned_workspace(design, parts, reml):
    """The client's work: moments -> standardization -> per-partition blocks -> sum -> workspace."""
    y = design.y if design.offset is None else design.y - design.offset
    w = design.weights
    structures = block_structures(design.blocks)

    def merged(V, comoment=False):
        return ColumnMoments.merge_all([ColumnMoments.of(V[idx], comoment) for idx in parts])
    scaling = standardize_from_moments(merged(design.X, True), merged(y), [merged(b.X) for b in design.blocks],
                                       None if w is None else merged(w), term_kinds=[st.scaling for st in structures])
    pieces = []
    for idx in parts:
        blocks = [(b.codes[idx], scaling.term(k, b.X[idx]), b.nlevels) for k, b in enumerate(design.blocks)]
        pieces.append(partition_blocks(scaling.fixed(design.X[idx]), scaling.response(y[idx]), blocks,
                                       None if w is None else scaling.weights(w[idx])))
    assert sum(p is None for p in pieces) == sum(len(idx) == 0 for idx in parts)
    sums = sum_blocks(pieces)
    ws = ScaledWorkspace.from_blocks(sums, scaling, [b.p for b in design.blocks], [b.nlevels for b in design.blocks],
                                     reml=reml, structures=structures)
    return ws, sums, scaling


def optimize(ws, x0):
    """fit_lmm's optimizer call (moment start, its trust region and evaluation cap)."""
    lower = ws.layout.lower_bounds()
    step = np.where(lower == 0, np.clip(0.25 * np.abs(x0), 0.1, 0.75), 0.25)
    opt = optimize_theta(ws.internal, x0, lower, step, "auto", max(20_000, 1_000 * ws.layout.n_theta))
    ws.internal.update(opt.x)
    assert ws.internal.objective_value < FAILED_OBJECTIVE
    return opt


CASES = {   # name: formula, lmer keywords, expected sparse later-terms path
    "sleep REML": ("Reaction ~ Days + (Days | Subject)", {}, False),
    "sleep ML": ("Reaction ~ Days + (Days | Subject)", {"reml": False}, False),
    "sleep weighted": ("Reaction ~ Days + (Days | Subject)", {"weights": "w"}, False),
    "sleep 2 terms": ("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", {}, False),
    "penicillin crossed": ("diameter ~ 1 + (1 | plate) + (1 | sample)", {}, False),
    "penicillin weighted ML": ("diameter ~ 1 + (1 | plate) + (1 | sample)", {"weights": "w", "reml": False}, False),
    "nested": ("y ~ x + (1 | klass) + (1 | school)", {}, True),
    "insteval": ("y ~ service + (1 | s) + (1 | d) + (1 | dept)", {}, True),   # 2,500 rows: sparsely crossed
}


@pytest.mark.parametrize("how,K", [("random", 4), ("contiguous", 3)])
@pytest.mark.parametrize("name", list(CASES))
def test_fit_from_summed_blocks_equals_lmer(name, how, K):
    formula, kw, sparse = CASES[name]
    reml = kw.get("reml", True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mfx.lmer(formula, partition_case_data(name), **kw)
    fit, design = m.fit, m.fit.design
    parts = splits(len(design.y), K, how)
    ws, sums, scaling = partitioned_workspace(design, parts, reml)
    assert sums.n == len(design.y)
    # the blocks equal the in-memory workspace's on the same standardization, with the same patterns
    mem = make_workspace(design, reml, scaling=scaling)
    for key in ("A00", "AF0", "AFF") + (("AFr",) if len(design.blocks) > 1 else ()):
        assert rel(sums[key], getattr(mem.internal, key)) < 1e-12, key
    if len(design.blocks) > 1:
        for mine, theirs in ((sums.Ar0, mem.internal.Ar0), (sums.Arr, mem.internal._Arr_sparse)):
            assert np.array_equal(mine.indptr, theirs.indptr) and np.array_equal(mine.indices, theirs.indices)
            assert rel(mine.data, theirs.data) < 1e-12
    assert ws.internal.rest_sparse == mem.internal.rest_sparse == sparse
    assert abs(ws.log_weights - mem.log_weights) <= 1e-12 * max(1.0, abs(mem.log_weights))
    # the in-memory start (the start from partition sums is step 3 of the plan), then the optimizer
    y = design.y if design.offset is None else design.y - design.offset
    ref_ws = make_workspace(design, reml)
    x0 = moment_start(ref_ws.X, ref_ws.scaling.response(y), ref_ws.blocks, ref_ws.layout, ref_ws.weights)
    opt = optimize(ws, x0)
    assert abs(opt.fun + ws.shift - fit.objective) <= 1e-10 * abs(fit.objective)
    assert rel(ws.theta_to_user(opt.x), fit.theta) < 1e-8
    assert rel(ws.beta(), fit.beta) < 1e-8
    assert rel(np.sqrt(ws.sigma2), fit.sigma) < 1e-8
    assert max(rel(a, b) for a, b in zip(ws.b_blocks(), fit.b)) < 1e-8


def test_sum_keeps_entries_that_cancel_and_zero_weights():
    """+1 and -1 in two partitions (and a zero-weight row) keep stored zeros: the in-memory pattern."""
    codes0 = np.array([0, 0, 1, 2, 2, 1])
    codes1 = np.array([0, 0, 1, 1, 0, 0])
    z1 = np.array([1.0, -1.0, 2.0, 1.0, 0.5, 3.0])
    X = np.ones((6, 1))
    y = np.arange(6.0)
    w = np.array([1.0, 1.0, 1.0, 0.0, 1.0, 2.0])
    blocks = [(codes0, np.ones((6, 1)), 3), (codes1, z1[:, None], 2)]
    full = CrossProducts(X, blocks).compute(w, y)
    parts = [np.array([0, 2, 3]), np.array([1, 4, 5]), np.zeros(0, int)]
    pieces = [partition_blocks(X[i], y[i], [(c[i], v[i], nl) for c, v, nl in blocks], w[i]) for i in parts]
    assert pieces[2] is None
    total = sum_blocks(pieces)
    for key in ("Ar0", "Arr"):
        assert np.array_equal(total[key].indptr, full[key].indptr)
        assert np.array_equal(total[key].indices, full[key].indices)
        np.testing.assert_allclose(total[key].data, full[key].data, rtol=0, atol=1e-15)
    assert np.any(total.Ar0.data == 0.0) and total.Ar0.nnz == full["Ar0"].nnz
    assert sp.csr_matrix(pieces[0].Ar0 + pieces[1].Ar0).nnz < total.Ar0.nnz     # what adding CSR would do
    for key in ("A00", "AF0", "AFF", "AFr"):
        np.testing.assert_allclose(total[key], full[key], rtol=1e-15, atol=1e-15)
    assert total.n == 6 and total.npos == 5 and total.log_weights == pytest.approx(np.log(2.0))
    # sums of sums (tree reductions) give the same result
    again = sum_blocks([sum_blocks(pieces[:1]), sum_blocks(pieces[1:])])
    assert np.array_equal(again.Ar0.indices, total.Ar0.indices) and np.array_equal(again.Arr.data, total.Arr.data)


def test_from_blocks_workspace_matches_in_memory_criterion():
    rng = np.random.default_rng(3)
    n = 300
    codes0, codes1 = rng.integers(0, 40, n), rng.integers(0, 7, n)
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = rng.normal(size=n)
    blocks = [(codes0, np.column_stack([np.ones(n), rng.normal(size=n)]), 40), (codes1, np.ones((n, 1)), 7)]
    mem = PLSWorkspace(X, y, blocks)
    ws = PLSWorkspace.from_blocks(sum_blocks([partition_blocks(X[i], y[i], [(c[i], v[i], nl) for c, v, nl in blocks])
                                              for i in np.array_split(rng.permutation(n), 5)]),
                                  n, 2, [2, 1], [40, 7])
    theta = np.array([0.8, 0.1, 0.4, 1.3])
    assert ws.objective(theta) == pytest.approx(mem.objective(theta), rel=1e-13, abs=0)
    with pytest.raises(ValueError, match="no rows to reweight"):
        ws.reweight(np.ones(n), y)


def test_bad_partitions():
    X, y = np.ones((3, 1)), np.zeros(3)
    with pytest.raises(ValueError, match=r"term 0: level codes must lie in \[0, 2\)"):
        partition_blocks(X, y, [(np.array([0, 1, 2]), np.ones((3, 1)), 2)])
    with pytest.raises(ValueError, match="no rows in any partition"):
        sum_blocks([None, None])
    a = partition_blocks(X, y, [(np.array([0, 1, 1]), np.ones((3, 1)), 2)])
    b = partition_blocks(X, y, [(np.array([0, 1, 2]), np.ones((3, 1)), 3)])
    with pytest.raises(ValueError, match="are the level codes global"):
        sum_blocks([a, b])
    with pytest.raises(KeyError):
        BlockSums.__getitem__(a, "n")


# ------------------------------------------------------------------ bucketed sums of Ar0 (issue 13, large models)
def _crossed_parts(seed=11, n=900, K=5):
    """Per-partition BlockSums of a 3-term crossed design (60 x 15 x 8 levels) with zero weights, entries that
    cancel (+1 and -1 rows at one pair) and two empty partitions."""
    rng = np.random.default_rng(seed)
    codes = [rng.integers(0, 60, n), rng.integers(0, 15, n), rng.integers(0, 8, n)]
    codes[0][:40] = np.arange(40) % 20          # levels 40..59 of term 0 appear late or never: empty buckets
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = rng.normal(size=n)
    w = rng.uniform(0.5, 2.0, n)
    w[rng.choice(n, 30, replace=False)] = 0.0
    Xk = [np.ones((n, 1)), rng.normal(size=(n, 1)), np.ones((n, 1))]
    Xk[1][[0, 1]] = [[1.0], [-1.0]]             # rows 0 and 1: same pair of levels, values cancelling
    codes[1][[0, 1]], codes[0][[0, 1]] = 3, 7
    lab = rng.integers(0, K, n)
    lab[[0, 1]] = [0, 2]                         # the cancelling rows in different partitions
    parts = []
    for k in range(K):
        idx = np.flatnonzero(lab == k)
        blocks = [(c[idx], x[idx], nl) for c, x, nl in zip(codes, Xk, (60, 15, 8))]
        parts.append(partition_blocks(X[idx], y[idx], blocks, w[idx]))
    return parts[:2] + [None] + parts[2:] + [None]


@pytest.mark.parametrize("B", [1, 3, 7])
def test_bucketed_sum_equals_unbucketed_sum(B):
    from mixedfx.core.blocksum import bucket_edges, sum_blocks_bucketed
    parts = _crossed_parts()
    ref = sum_blocks(parts)
    weights = np.r_[np.ones(40), np.zeros(20)]          # the last buckets hold no level with entries
    for edges in (bucket_edges(np.ones(60), B), bucket_edges(weights, B), np.r_[0, np.repeat(30, B - 1), 60]
                  if B > 1 else np.array([0, 60])):
        got = sum_blocks_bucketed(parts, edges)
        A = got.Ar0
        assert A.format == "csc" and A.shape == ref.Ar0.shape and A.indices.dtype == np.int32
        assert A.has_sorted_indices and np.all(np.diff(A.indptr) >= 0)
        assert all(np.all(np.diff(A.indices[a:b]) > 0) for a, b in zip(A.indptr[:-1], A.indptr[1:]))
        C = A.tocsr()
        C.sort_indices()
        assert np.array_equal(C.indptr, ref.Ar0.indptr) and np.array_equal(C.indices, ref.Ar0.indices)
        assert np.max(np.abs(C.data - ref.Ar0.data)) <= 1e-15 * np.max(np.abs(ref.Ar0.data))
        assert np.count_nonzero(C.data == 0.0) >= 1                  # the cancelled pair stays stored
        for key in ("A00", "AF0", "AFF", "AFr"):
            np.testing.assert_allclose(got[key], ref[key], rtol=1e-14, atol=1e-14)
        assert (got.Arr != ref.Arr).nnz == 0 and np.array_equal(got.Arr.indices, ref.Arr.indices)
        assert (got.n, got.npos) == (ref.n, ref.npos) and got.log_weights == pytest.approx(ref.log_weights, 1e-15)


def test_bucket_helpers_edges_and_errors():
    from mixedfx.core.blocksum import ColumnAssembler, bucket_edges, split_columns, union_sum_csc
    assert bucket_edges(np.ones(10), 3).tolist() == [0, 4, 7, 10]
    assert bucket_edges(np.ones(10), 3, width=2).tolist() == [0, 8, 14, 20]
    assert bucket_edges(np.ones(4), 9).tolist() == [0, 1, 2, 3, 4]             # at most one bucket per level
    assert bucket_edges(np.r_[0, 0, 0, 9.0], 3).tolist()[-1] == 4
    m = sp.coo_matrix(([1.0, 2.0, -2.0, 0.0], ([0, 1, 1, 2], [0, 3, 3, 4])), shape=(3, 5))
    pieces = split_columns(m, [0, 2, 2, 5])
    assert [p.shape for p in pieces] == [(3, 2), (3, 0), (3, 3)] and [p.nnz for p in pieces] == [1, 0, 3]
    u = union_sum_csc([pieces[2]])
    assert u.nnz == 2 and u.format == "csc"                 # 2 - 2 summed and kept; the stored 0 kept
    with pytest.raises(ValueError, match="edges"):
        split_columns(m, [0, 3])
    with pytest.raises(ValueError, match="bucket 2"):
        ColumnAssembler(3, [0, 2, 2, 5], [1, 0, 3]).put(2, u)       # 2 stored entries, 3 announced
    asm = ColumnAssembler(3, [0, 2, 2, 5], [1, 0, 2])
    asm.put(0, pieces[0])
    with pytest.raises(ValueError, match="never filled"):
        asm.result()
    asm.put(1, None)
    asm.put(2, u)
    assert (asm.result() != union_sum_csc([m])).nnz == 0


def test_start_tables_bucketed_or_read_from_blocks_equal_the_row_tables():
    from mixedfx.core.blocksum import bucket_edges, sum_blocks_bucketed, sum_buckets
    from mixedfx.core.start import StartStats, tables_in_blocks
    rng = np.random.default_rng(2)
    n = 700
    nl = (50, 12, 6)
    codes = [rng.integers(0, k, n) for k in nl]
    ones = np.ones((n, 1))
    e = rng.normal(size=n)
    whole = StartStats.of(e, [(c, ones, k) for c, k in zip(codes, nl)])
    assert set(whole.tables) == {(0, 1), (0, 2), (1, 2)}
    lab = rng.integers(0, 4, n)
    idx = [np.flatnonzero(lab == k) for k in range(4)]

    def part(i, skip=()):
        return StartStats.of(e[i], [(c[i], ones[i], k) for c, k in zip(codes, nl)], skip=skip)
    for edges in (bucket_edges(np.ones(50), 1), bucket_edges(np.ones(50), 7), np.array([0, 10, 10, 50])):
        got = StartStats.finish_buckets(*sum_buckets([part(i) for i in idx] + [None], StartStats.buckets,
                                                     StartStats.merge_all, edges))
        assert got.tables.keys() == whole.tables.keys()
        for key, t in whole.tables.items():
            assert got.tables[key].shape == t.shape and (got.tables[key] != t).nnz == 0
    # unweighted unit intercepts: every table is in A = [Z F]' [Z F]
    pairs = tables_in_blocks([True, True, True], weighted=False)
    assert pairs == [(0, 1), (0, 2), (1, 2)] and tables_in_blocks([True, True], weighted=True) == []
    assert tables_in_blocks([True, False, True], weighted=False) == [(0, 2)]
    X = np.ones((n, 1))
    sums = sum_blocks_bucketed([partition_blocks(X[i], e[i], [(c[i], ones[i], k) for c, k in zip(codes, nl)])
                                for i in idx], bucket_edges(np.ones(50), 5))
    merged = StartStats.merge_all([part(i, skip=pairs) for i in idx])
    assert not merged.tables
    got = merged.with_tables_from_blocks(sums.Ar0, sums.Arr, [1, 1, 1], pairs)
    for key, t in whole.tables.items():
        assert got.tables[key].shape == t.shape and (got.tables[key] != t).nnz == 0
    # two terms: the (0, 1) table is Ar0's transpose itself (no copy)
    sums2 = sum_blocks_bucketed([partition_blocks(X[i], e[i], [(c[i], ones[i], k) for c, k in
                                                             zip(codes[:2], nl[:2])]) for i in idx],
                                bucket_edges(np.ones(50), 3))
    st2 = StartStats.merge_all([StartStats.of(e[i], [(c[i], ones[i], k) for c, k in zip(codes[:2], nl[:2])],
                                              skip=[(0, 1)]) for i in idx])
    t01 = st2.with_tables_from_blocks(sums2.Ar0, sums2.Arr, [1, 1], [(0, 1)]).tables[(0, 1)]
    assert np.shares_memory(t01.data, sums2.Ar0.data) and (t01 != whole.tables[(0, 1)]).nnz == 0
