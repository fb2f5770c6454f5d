"""An LMM fitted from cross-products summed over row partitions equals mfx.lmer (issue 13, step 2).

Each case fits the model in memory, splits the design's rows into partitions (random non-contiguous
splits, contiguous ones where levels stay in one partition, empty partitions), computes the
standardization from merged column moments and every partition's blocks with the global level
codes, sums them and runs the in-memory optimizer path on a workspace built from the sums.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import mixedfx as mfx
from mixedfx.core.blocksum import BlockSums, partition_blocks, sum_blocks
from mixedfx.core.crossprod import CrossProducts
from mixedfx.core.moments import ColumnMoments, standardize_from_moments
from mixedfx.core.scaled_workspace import ScaledWorkspace
from mixedfx.core.start import moment_start
from mixedfx.core.workspace import FAILED_OBJECTIVE, PLSWorkspace
from mixedfx.models.layout import block_structures
from mixedfx.models.lmm import make_workspace
from mixedfx.models.optimizers import optimize_theta


def rel(a, b) -> float:
    """max |a - b| / max |b| (vectors), |a - b| / |b| (scalars)."""
    a, b = np.atleast_1d(np.asarray(a, float)), np.atleast_1d(np.asarray(b, float))
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b))) if a.size else 0.0


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


def nested_data(rng):
    """600 schools x 2 classes x 3 pupils: 1,200 classes (term 0) and a 600-level later term (sparse path)."""
    school = np.repeat(np.arange(600), 6)
    klass = np.repeat(np.arange(1200), 3)
    x = rng.normal(size=len(school))
    y = 1 + 0.5 * x + rng.normal(0, 0.7, 600)[school] + rng.normal(0, 0.5, 1200)[klass] + rng.normal(size=len(x))
    return pd.DataFrame({"y": y, "x": x + 1e4, "school": [f"s{i}" for i in school],
                         "klass": [f"c{i}" for i in klass]})


def case_data(name):
    rng = np.random.default_rng(1)
    if name.startswith("sleep"):
        df = mfx.datasets.load("sleepstudy")
        w = rng.uniform(0.2, 3.0, len(df))
        w[[3, 40, 41]] = 0.0          # zero weights count in n, not in sum log w
        return df.assign(w=w)
    if name.startswith("penicillin"):
        df = mfx.datasets.load("penicillin")
        w = rng.uniform(0.5, 2.0, len(df))
        w[[0, 7]] = 0.0
        return df.assign(w=w)
    if name == "nested":
        return nested_data(rng)
    inst = mfx.datasets.load("insteval")      # a 2,500-row subset whose dept variance is not at the boundary
    rows = np.random.default_rng(2).choice(len(inst), 2500, replace=False)
    return inst.iloc[np.sort(rows)].reset_index(drop=True)


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
        m = mfx.lmer(formula, case_data(name), **kw)
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
