"""The moment start from statistics merged over row partitions, and the fit from summed blocks
(issue 13, step 3): equal to the in-memory start and to mfx.lmer.

Each case fits the model with mfx.lmer, splits the design's rows into partitions (with an empty
one), builds the standardization from merged column moments, sums the partitions' blocks, merges
the partitions' start statistics (residuals from the OLS coefficients of the summed ``AFF``) and
fits with :func:`fit_lmm_from_blocks`.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import mixedfx as mfx
from conftest import partition_case_data, rel_max as rel
from mixedfx.core.blocksum import partition_blocks, sum_blocks
from mixedfx.core.moments import ColumnMoments, standardize_from_moments
from mixedfx.core.start import (StartStats, moment_start, moment_start_from_stats, ols_coefficients, ols_rows,
                                start_residuals)
from mixedfx.models.layout import block_structures
from mixedfx.models.lmm import LmmFit, fit_lmm_from_blocks, make_workspace


CASES = {
    "sleep REML": ("Reaction ~ Days + (Days | Subject)", {}),
    "sleep ML": ("Reaction ~ Days + (Days | Subject)", {"reml": False}),
    "sleep weighted": ("Reaction ~ Days + (Days | Subject)", {"weights": "w"}),
    "sleep 2 terms": ("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", {}),
    "sleep no fixed effects": ("Reaction ~ 0 + (1 | Subject)", {}),
    "penicillin crossed": ("diameter ~ 1 + (1 | plate) + (1 | sample)", {}),
    "penicillin weighted ML": ("diameter ~ 1 + (1 | plate) + (1 | sample)", {"weights": "w", "reml": False}),
    "nested": ("y ~ x + (1 | klass) + (1 | school)", {}),
    "insteval": ("y ~ service + (1 | s) + (1 | d) + (1 | dept)", {}),
}


def lmer(name):
    formula, kw = CASES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mfx.lmer(formula, partition_case_data(name), **kw)


def splits(n, K):
    """K random non-contiguous partitions plus an empty one; K = 1: all rows and an empty one."""
    lab = np.random.default_rng(0).integers(0, K, n)
    parts = [np.flatnonzero(lab == k) for k in range(K)]
    return parts[:1] + [np.zeros(0, dtype=int)] + parts[1:]


def from_partitions(design, parts, scaling=None, exact=False):
    """The client's passes: moments -> scaling, blocks -> sums, OLS from AFF -> start statistics.
    ``exact``: one partition holds every row and its OLS comes from the rows (as in memory)."""
    y = design.y if design.offset is None else design.y - design.offset
    w = design.weights

    def merged(V, comoment=False):
        return ColumnMoments.merge_all([ColumnMoments.of(V[idx], comoment) for idx in parts])
    if scaling is None:
        kinds = [st.scaling for st in block_structures(design.blocks)]
        scaling = standardize_from_moments(merged(design.X, True), merged(y), [merged(b.X) for b in design.blocks],
                                           None if w is None else merged(w), term_kinds=kinds)

    def arrays(idx):
        blocks = [(b.codes[idx], scaling.term(k, b.X[idx]), b.nlevels) for k, b in enumerate(design.blocks)]
        wi = None if w is None else scaling.weights(w[idx])
        return scaling.fixed(design.X[idx]), scaling.response(y[idx]), blocks, wi
    sums = sum_blocks([partition_blocks(*arrays(idx)) for idx in parts])
    beta = ols_coefficients(sums.AFF)
    if exact:
        X, yi, _, wi = arrays(parts[0])
        assert len(yi) == len(y)
        beta = ols_rows(X, yi, wi)
    centre = merged(scaling.response(y)).mean[0]          # used only without fixed effects
    pieces = []
    for idx in parts:
        X, yi, blocks, _ = arrays(idx)
        pieces.append(StartStats.of(start_residuals(X, yi, beta, centre), blocks))
    return scaling, sums, StartStats.merge_all(pieces)


def fit_from(design, scaling, sums, stats, reml):
    sizes, nlevels = [b.p for b in design.blocks], [b.nlevels for b in design.blocks]
    return fit_lmm_from_blocks(sums, scaling, sizes, nlevels, block_structures(design.blocks), stats, reml=reml,
                               warn=False)


def in_memory_stats(design, reml):
    """The start statistics fit_lmm computes on all rows."""
    ws = make_workspace(design, reml)
    y_int = ws.scaling.response(design.y if design.offset is None else design.y - design.offset)
    return ws, y_int, StartStats.of(start_residuals(ws.X, y_int, ols_rows(ws.X, y_int, ws.weights)), ws.blocks)


@pytest.mark.parametrize("name", list(CASES))
def test_start_from_merged_statistics_equals_in_memory(name):
    m = lmer(name)
    design, reml = m.fit.design, m.fit.reml
    _, _, stats = from_partitions(design, splits(len(design.y), 4))
    ws, y_int, mem = in_memory_stats(design, reml)
    assert stats.n == mem.n == len(design.y)
    assert abs(stats.total - mem.total) <= 1e-13 * np.sqrt(mem.n * mem.sumsq)      # sum e is ~0 after OLS
    assert rel(stats.sumsq, mem.sumsq) < 1e-13
    for a, b in zip(stats.terms, mem.terms):
        assert np.array_equal(a.count, b.count) and a.first == b.first or (np.isnan(a.first) and np.isnan(b.first))
        assert rel(a.total, b.total) < 1e-12 and rel(a.m2, b.m2) < 1e-13
        if b.XtX is not None:
            assert rel(a.XtX, b.XtX) < 1e-13 and rel(a.Xte, b.Xte) < 1e-12 and rel(a.ete, b.ete) < 1e-13
    assert stats.tables.keys() == mem.tables.keys()
    for key, table in mem.tables.items():
        assert (stats.tables[key] != table).nnz == 0
    x0 = moment_start_from_stats(stats, ws.layout)
    x0_mem = moment_start_from_stats(mem, ws.layout)
    assert rel(x0, x0_mem) <= 1e-13
    # the row-based moment_start (least squares on the rows) gives the same start
    assert rel(moment_start(ws.X, y_int, ws.blocks, ws.layout, ws.weights), x0_mem) <= 1e-13
    assert not np.array_equal(x0_mem, ws.layout.initial())     # the moment start is in use in every case


@pytest.mark.parametrize("name", list(CASES))
def test_fit_from_blocks_equals_lmer(name):
    m = lmer(name)
    fit, design = m.fit, m.fit.design
    scaling, sums, stats = from_partitions(design, splits(len(design.y), 4))
    got = fit_from(design, scaling, sums, stats, fit.reml)
    assert abs(got.objective - fit.objective) <= 1e-10 * abs(fit.objective)
    assert abs(got.deviance_ml - fit.deviance_ml) <= 1e-10 * abs(fit.deviance_ml)
    for key in ("theta", "beta", "sigma", "vcov"):
        assert rel(getattr(got, key), getattr(fit, key)) < 1e-8, key
    assert max(rel(a, b) for a, b in zip(got.b, fit.b)) < 1e-8
    assert got.is_singular == fit.is_singular and got.opt.optimizer == fit.opt.optimizer


@pytest.mark.parametrize("name", list(CASES))
def test_exact_sums_take_the_in_memory_path(name):
    """One partition (and an empty one) on the in-memory standardization, with the OLS coefficients from
    the rows: the sums and the start statistics are the in-memory ones bit for bit, so every evaluation
    and the optimum are lmer's.  (With the OLS from the summed ``AFF`` the start moves by ~5e-16 and
    BOBYQA may take another path to the same optimum: sleepstudy 72 evaluations instead of 54.)"""
    m = lmer(name)
    fit, design = m.fit, m.fit.design
    scaling, sums, stats = from_partitions(design, splits(len(design.y), 1), make_workspace(design, fit.reml).scaling,
                                           exact=True)
    got = fit_from(design, scaling, sums, stats, fit.reml)
    assert got.opt.nfev == fit.opt.nfev
    assert got.objective == fit.objective and np.array_equal(got.theta, fit.theta)
    again = LmmFit(design=design, **got.fields(), seconds=0.0)      # the in-memory fit object from the optimum
    assert np.array_equal(again.beta, fit.beta) and again.layout == fit.layout


def test_fit_from_blocks_start_options():
    m = lmer("penicillin crossed")
    design = m.fit.design
    scaling, sums, stats = from_partitions(design, splits(len(design.y), 3))
    sizes, nlevels = [b.p for b in design.blocks], [b.nlevels for b in design.blocks]
    with pytest.raises(ValueError, match="needs start_stats"):
        fit_lmm_from_blocks(sums, scaling, sizes, nlevels)
    with pytest.raises(ValueError, match="unknown optimizer"):
        fit_lmm_from_blocks(sums, scaling, sizes, nlevels, start_stats=stats, optimizer="newton")
    lme4 = fit_lmm_from_blocks(sums, scaling, sizes, nlevels, start="lme4")
    warm = fit_lmm_from_blocks(sums, scaling, sizes, nlevels, start=m.fit.theta)
    for got in (lme4, warm):
        assert abs(got.objective - m.fit.objective) <= 1e-10 * abs(m.fit.objective)
        assert rel(got.theta, m.fit.theta) < 1e-6
    assert warm.opt.nfev < lme4.opt.nfev


def test_start_statistics_merge_rules():
    rng = np.random.default_rng(4)
    n = 60
    codes = [rng.integers(0, 5, n), rng.integers(0, 4, n)]
    e = rng.normal(size=n)
    blocks = [(codes[0], np.full((n, 1), 2.0), 5), (codes[1], np.ones((n, 1)), 4)]
    parts = [np.arange(0, 25), np.arange(25, 60)]
    whole = StartStats.of(e, blocks)
    merged = StartStats.merge_all([StartStats.of(e[i], [(c[i], X[i], nl) for c, X, nl in blocks]) for i in parts])
    assert merged.terms[0].first == 2.0 and merged.terms[1].intercept and (0, 1) in merged.tables
    np.testing.assert_allclose(merged.terms[0].m2, whole.terms[0].m2, rtol=1e-14)
    np.testing.assert_allclose(merged.tables[(0, 1)].toarray(), whole.tables[(0, 1)].toarray(), rtol=0)
    # a column constant in each partition but not across them is not an intercept
    X1 = np.where(np.arange(n) < 25, 1.0, 3.0)[:, None]
    split = [StartStats.of(e[i], [(codes[0][i], blocks[0][1][i], 5), (codes[1][i], X1[i], 4)]) for i in parts]
    both = StartStats.merge_all(split + [None])
    assert split[0].terms[1].intercept and not both.terms[1].intercept and not both.tables
    with pytest.raises(ValueError, match="no rows in any partition"):
        StartStats.merge_all([None])
    with pytest.raises(ValueError, match="are the level codes global"):
        StartStats.of(e, blocks[:1]).merge(StartStats.of(e, [(codes[0], np.ones((n, 1)), 6)]))
