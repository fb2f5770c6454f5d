"""Column moments merged over row partitions give standardize's Standardization (issue 13, step 1)."""
from __future__ import annotations

import numpy as np
import pytest

from mixedfx.core.moments import ColumnMoments, ones_candidate, ones_residual, standardize_from_moments
from mixedfx.core.scaling import standardize

FIELDS = ("y_center", "y_scale", "w_scale", "g", "x_center", "x_scale", "A")


def rel(a, b) -> float:
    a, b = np.atleast_1d(np.asarray(a, float)), np.atleast_1d(np.asarray(b, float))
    assert a.shape == b.shape
    if not a.size:
        return 0.0
    scale = np.max(np.abs(b))
    return float(np.max(np.abs(a - b)) / scale) if scale > 0 else float(np.max(np.abs(a)))


def assert_same(s, ref, tol=1e-14):
    for f in FIELDS:
        assert rel(getattr(s, f), getattr(ref, f)) <= tol, f
    for name in ("T", "term_center", "term_scale"):
        got, want = getattr(s, name), getattr(ref, name)
        assert len(got) == len(want)
        for k, (a, b) in enumerate(zip(got, want)):
            assert rel(a, b) <= tol, (name, k)


def split(n, K, rng, empty=True):
    """Non-contiguous random partition of range(n) into K parts (plus empty ones)."""
    lab = rng.integers(0, K, n)
    parts = [np.flatnonzero(lab == k) for k in range(K)]
    if empty:
        parts.insert(1, np.zeros(0, int))
        parts.append(np.zeros(0, int))
    return parts


def make_data(rng, n=500):
    days = rng.integers(0, 10, n).astype(float)
    X = np.column_stack([np.ones(n), days + 1e6, rng.normal(0.05, 1.0, n), np.zeros(n), rng.normal(size=n) * 1e-8])
    y = 300 + 10 * days + rng.normal(0, 30, n)
    w = rng.uniform(0.2, 3.0, n)
    w[rng.choice(n, 7, replace=False)] = 0.0
    terms = [np.column_stack([np.ones(n), days]),                      # unstructured with an intercept
             np.column_stack([np.full(n, 2.0), days, days ** 2 + 5]),  # intercept of 2: centres scale by it
             np.column_stack([days, rng.normal(size=n)]),              # no intercept: scaled only
             np.column_stack([np.ones(n), days]),                      # diagonal ("column")
             np.column_stack([days + 1, 3 * days + 2]),                # shared variance ("common")
             np.ones((n, 1))]
    kinds = ["center", "center", "center", "column", "common", "center"]
    return X, y, w, terms, kinds


def moments_over(parts, X, y, w, terms, center=None):
    def merged(V, comoment=False):
        return ColumnMoments.merge_all([ColumnMoments.of(V[idx], comoment) for idx in parts])
    return (merged(X, True), merged(y), [merged(T) for T in terms], None if w is None else merged(w),
            None if center is None else merged(center))


@pytest.mark.parametrize("K", [1, 3, 8])
@pytest.mark.parametrize("weighted", [False, True])
def test_standardization_equals_full_data(K, weighted):
    rng = np.random.default_rng(K + 10 * weighted)
    X, y, w, terms, kinds = make_data(rng)
    w = w if weighted else None
    ref = standardize(X, y, terms, w, term_kinds=kinds)
    for seed in range(3):
        parts = split(len(y), K, np.random.default_rng(seed))
        mx, my, mt, mw, _ = moments_over(parts, X, y, w, terms)
        assert mx.n == len(y)
        s = standardize_from_moments(mx, my, mt, mw, term_kinds=kinds)
        assert_same(s, ref)
    # the merge order does not matter (tree reductions)
    pieces = [ColumnMoments.of(X[idx], True) for idx in split(len(y), K, rng)]
    a = ColumnMoments.merge_all(pieces)
    b = ColumnMoments.merge_all(pieces[::-1])
    assert rel(a.mean, b.mean) < 1e-15 and rel(a.m2, b.m2) < 1e-13 and rel(a.comoment, b.comoment) < 1e-13


def test_moments_of_one_partition_are_exact_for_constants():
    v = np.full(1000, 0.1)
    m = ColumnMoments.merge_all([ColumnMoments.of(v[:300]), ColumnMoments.of(v[300:]), ColumnMoments.of(v[:0])])
    assert m.mean[0] == 0.1 and m.m2[0] == 0.0 and m.const[0] == 0.1
    assert m.rms(0, 0.1) == 1.0                    # a column equal to its centre: scale 1, as standardize
    d = ColumnMoments.of(np.array([1.0, 2.0]))
    assert np.isnan(ColumnMoments.merge(d, ColumnMoments.of(np.array([1.0]))).const[0])


def test_glmm_offset_centre_and_no_response_scaling():
    rng = np.random.default_rng(5)
    X, y, w, terms, kinds = make_data(rng, 300)
    off = rng.normal(2.0, 0.3, len(y))
    ref = standardize(X, None, terms, w, scale_response=False, center=off, term_kinds=kinds)
    mx, _, mt, mw, mc = moments_over(split(len(y), 4, rng), X, y, w, terms, center=off)
    assert_same(standardize_from_moments(mx, None, mt, mw, scale_response=False, center=mc, term_kinds=kinds), ref)


def test_no_explicit_constant_column_needs_a_verified_g():
    rng = np.random.default_rng(2)
    n = 400
    f = rng.integers(0, 3, n)
    X = np.column_stack([(f == j).astype(float) for j in range(3)] + [rng.normal(5, 2, n)])   # 0 + f + x
    y = rng.normal(size=n) + f
    ref = standardize(X, y, [np.ones((n, 1))])
    assert np.any(ref.g != 0)
    parts = split(n, 5, rng)
    mx, my, mt, _, _ = moments_over(parts, X, y, None, [np.ones((n, 1))])
    with pytest.raises(ValueError, match="no explicit constant column"):
        standardize_from_moments(mx, my, mt)
    g = ones_candidate(mx)
    assert max(ones_residual(X[idx], g) for idx in parts) < 1e-12
    assert_same(standardize_from_moments(mx, my, mt, ones=g), ref, tol=1e-13)
    # the constant not in the column space: the caller's check fails and it passes None
    Xn = X[:, 3:]
    g = ones_candidate(ColumnMoments.of(Xn, True))
    assert ones_residual(Xn, g) > 1e-3
    ref = standardize(Xn, y, [np.ones((n, 1))])
    assert_same(standardize_from_moments(ColumnMoments.of(Xn, True), my, mt, ones=None), ref)


def test_bad_arguments():
    m = ColumnMoments.of(np.ones((3, 2)))
    with pytest.raises(ValueError, match="2 and 3 columns"):
        m.merge(ColumnMoments.of(np.ones((3, 3))))
    with pytest.raises(ValueError, match="comoment=True"):
        m.gram()
    with pytest.raises(ValueError, match="term_kinds has 1"):
        standardize_from_moments(m, None, [], term_kinds=["center"])
    with pytest.raises(ValueError, match="no moments"):
        ColumnMoments.merge_all([None])
