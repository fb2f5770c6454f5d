"""The blocks of A = [Z F]' W [Z F] against a dense oracle, on both F' W Z routes (bincounts, CSR)."""
from __future__ import annotations

import numpy as np
import pytest

from mixedfx.core.crossprod import CrossProducts


def _problem(seed, sizes, levels, n=90):
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.normal(size=(n, 2))])
    blocks = []
    for p, nl in zip(sizes, levels):
        codes = rng.integers(0, nl, n)
        codes[:nl] = np.arange(nl)
        Xk = np.column_stack([np.ones(n)] + [rng.normal(size=n) for _ in range(p - 1)])
        blocks.append((codes, Xk, nl))
    return X, rng.normal(size=n), rng.uniform(0.5, 2.0, n), blocks


def _dense_z(blocks, n):
    cols = []
    for codes, Xk, nl in blocks:
        p = Xk.shape[1]
        Z = np.zeros((n, nl * p))
        for j in range(p):
            Z[np.arange(n), codes * p + j] = Xk[:, j]
        cols.append(Z)
    return cols


@pytest.mark.parametrize("bincount_max", [0, 10**9])
@pytest.mark.parametrize("sizes, levels", [((1,), (7,)), ((2,), (9,)), ((1, 1), (12, 5)), ((2, 1, 3), (8, 6, 4))])
def test_blocks_equal_the_dense_oracle(monkeypatch, bincount_max, sizes, levels):
    monkeypatch.setattr(CrossProducts, "BINCOUNT_MAX", bincount_max)
    X, y, w, blocks = _problem(sum(sizes) + len(levels), sizes, levels)
    n = len(y)
    cp = CrossProducts(X, blocks)
    A = cp.compute(w, y)
    Zs = _dense_z(blocks, n)
    F = np.column_stack([X, y])
    W = w[:, None]
    np.testing.assert_allclose(A["AFF"], F.T @ (W * F), rtol=1e-12)
    np.testing.assert_allclose(A["AF0"], F.T @ (W * Zs[0]), rtol=1e-12, atol=1e-12)
    assert ("Z0" not in cp._zt) == (bincount_max > 0)
    if len(blocks) > 1:
        Zr = np.hstack(Zs[1:])
        np.testing.assert_allclose(A["AFr"], F.T @ (W * Zr), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(A["Ar0"].toarray(), Zr.T @ (W * Zs[0]), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(A["Arr"].toarray(), Zr.T @ (W * Zr), rtol=1e-12, atol=1e-12)
    # a new response (PIRLS) reuses the same Z
    A2 = cp.compute(w, 2 * y)
    np.testing.assert_allclose(A2["AF0"][-1], 2 * A["AF0"][-1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("sizes, levels", [((1,), (7,)), ((2,), (9,)), ((2, 1, 3), (8, 6, 4))])
def test_both_routes_give_the_same_bits(monkeypatch, sizes, levels):
    """The route never changes a fit: both add each column's products in row order from zero."""
    X, y, w, blocks = _problem(11, sizes, levels, n=400)
    monkeypatch.setattr(CrossProducts, "BINCOUNT_MAX", 0)
    sparse = CrossProducts(X, blocks).compute(w, y)
    monkeypatch.setattr(CrossProducts, "BINCOUNT_MAX", 10**9)
    counted = CrossProducts(X, blocks).compute(w, y)
    for key in ("AF0", "AFr") if len(blocks) > 1 else ("AF0",):
        np.testing.assert_array_equal(counted[key], sparse[key])
