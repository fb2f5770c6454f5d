"""Client memory of a workspace built from summed blocks for a crossed model (issue 13, step 9).

The large index arrays are int32, the workspace keeps no copy of Ar0's column indices (the Lr0
buffer shares Ar0's pattern), the Schur update's plan is skipped when it would keep under 1% of
the levels out of the dense SYRK, and none of it changes the criterion.
"""
from __future__ import annotations

import numpy as np
import pytest

from mixedfx.core import gram
from mixedfx.core.blocksum import partition_blocks, sum_blocks
from mixedfx.core import scatter_gram
from mixedfx.core.gram import HybridGram
from mixedfx.core.workspace import PLSWorkspace

N_USERS, N_ITEMS, N_ROWS = 3000, 300, 120_000


@pytest.fixture(scope="module")
def crossed():
    rng = np.random.default_rng(13)
    user = rng.integers(0, N_USERS, N_ROWS)
    item = rng.integers(0, N_ITEMS, N_ROWS)
    x = rng.standard_normal(N_ROWS)
    y = (1.0 + 0.5 * x + 0.8 * rng.standard_normal(N_USERS)[user] + 0.6 * rng.standard_normal(N_ITEMS)[item]
         + rng.standard_normal(N_ROWS))
    X = np.column_stack([np.ones(N_ROWS), x])
    one = np.ones((N_ROWS, 1))
    blocks = [(user, one, N_USERS), (item, one, N_ITEMS)]
    parts = [partition_blocks(X[s:s + N_ROWS // 3], y[s:s + N_ROWS // 3],
                              [(c[s:s + N_ROWS // 3], z[s:s + N_ROWS // 3], nl) for c, z, nl in blocks])
             for s in range(0, N_ROWS, N_ROWS // 3)]
    with pytest.MonkeyPatch.context() as mp:     # these tests are about HybridGram (without numba)
        mp.setattr(scatter_gram, "scatter_available", lambda: False)
        lean = PLSWorkspace.from_blocks(sum_blocks(parts), N_ROWS, 2, (1, 1), (N_USERS, N_ITEMS))
        return PLSWorkspace(X, y, blocks), lean


def _arrays(obj, depth=0):
    """(name, array) for the numpy arrays an object holds (attributes, tuples, sparse parts)."""
    for name, v in vars(obj).items():
        if isinstance(v, np.ndarray):
            yield name, v
        elif hasattr(v, "indptr"):
            yield from ((f"{name}.{a}", getattr(v, a)) for a in ("data", "indices", "indptr"))
        elif isinstance(v, (list, tuple)):
            for i, item in enumerate(v):
                for j, w in enumerate(item if isinstance(item, tuple) else (item,)):
                    if isinstance(w, np.ndarray):
                        yield f"{name}[{i}][{j}]", w
        elif depth == 0 and isinstance(v, HybridGram):
            yield from ((f"{name}.{n}", a) for n, a in _arrays(v, 1))


def test_lean_footprint(crossed):
    _, ws = crossed
    ws.update(np.array([0.8, 0.6]))
    assert isinstance(ws.schur, HybridGram) and ws.Ar0.nnz >= 2**16
    wide = [(n, a.size) for n, a in _arrays(ws) if a.dtype == np.int64 and a.size >= 2**16]
    assert wide == [], f"int64 index arrays where int32 suffices: {wide}"
    assert ws.schur._perm.dtype == np.int32
    assert not hasattr(ws, "_ar0_cols") and not hasattr(ws, "_ar0_rows")      # no nnz-long copies of Ar0's pattern
    # Lr0 shares Ar0's pattern: its only own large array is the values
    assert np.shares_memory(ws.Lr0.indices, ws.Ar0.indices) and np.shares_memory(ws.Lr0.indptr, ws.Ar0.indptr)
    own = {id(a.base if a.base is not None else a): a for n, a in _arrays(ws)
           if a.dtype.kind == "i" and a.size >= 2**16 and not n.startswith("schur.T.")}   # (the plan aside)
    index_bytes = sum(a.nbytes for a in own.values())
    # Ar0, its CSC copy, _perm (4 bytes an entry) and the dense chunks' three indices (8 bytes below 2^24 entries)
    assert index_bytes <= (3 * 4 + 3 * 8) * ws.Ar0.nnz


@pytest.mark.parametrize("theta", [[1.0, 1.0], [0.8, 0.6], [0.05, 2.0], [1.5, 0.01]])
def test_criterion_equals_in_memory(crossed, theta):
    mem, lean = crossed
    a, b = mem.objective(np.array(theta)), lean.objective(np.array(theta))
    assert abs(a - b) <= 1e-12 * abs(a)
    u_mem = mem.u()
    assert np.max(np.abs(lean.u() - u_mem)) <= 1e-11 * np.max(np.abs(u_mem))   # sums in another order


def test_no_plan_when_it_would_keep_under_one_percent_of_levels(crossed, monkeypatch):
    mem, _ = crossed
    full = HybridGram(mem.Ar0, 1, mem._Arr_sparse, max_entries=10**9)
    assert len(full.sparse_levels) > 0.5 * N_USERS and full.T is not None     # most users pay as plan entries
    cap = int(np.sort(gram.level_pairs(full.A, 1))[:10].sum())          # the 10 lightest users fit the cap
    capped = HybridGram(mem.Ar0, 1, mem._Arr_sparse, max_entries=cap)
    assert capped.T is None and len(capped.dense_levels) == N_USERS
    monkeypatch.setattr(gram, "PLAN_MIN_LEVEL_SHARE", 0.0)                # the rule off: a small plan stays
    kept = HybridGram(mem.Ar0, 1, mem._Arr_sparse, max_entries=cap)
    assert kept.T is not None and 0 < len(kept.sparse_levels) < 0.01 * N_USERS
    F = np.random.default_rng(1).uniform(0.2, 1.0, N_USERS)
    G = [np.zeros((N_ITEMS, N_ITEMS), order="F") for _ in range(3)]
    for g, M in zip((full, capped, kept), G):
        g.add_gram(M, F)
    low = np.tril_indices(N_ITEMS)
    for M in G[1:]:
        assert np.max(np.abs(M[low] - G[0][low])) <= 1e-12 * np.max(np.abs(G[0][low]))
