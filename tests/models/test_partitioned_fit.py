"""An LMM fitted from a list of pandas frames with the passes of a distributed fit (issue 13, step 5)
equals mfx.lmer on the concatenated frame."""
from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from conftest import rel_max as rel
from mixedfx.design import DesignError, MissingDataWarning, RankDeficiencyWarning
from mixedfx.models.partitioned import (aliased_columns, fit_lmm_partitions, partition_block_sums,
                                        partition_moments, partition_survey, spec_from_survey, survey_plan)


def _sleep_na():
    df = mfx.datasets.load("sleepstudy").copy()
    rng = np.random.default_rng(3)
    df["w"] = rng.uniform(0.5, 2.0, len(df))
    df.loc[[5, 90], "w"] = 0.0
    df["o"] = rng.normal(0, 5, len(df))
    df.loc[[3, 40, 41, 100], "Reaction"] = np.nan
    df.loc[[7, 150], "w"] = np.nan
    df.loc[[60], "o"] = np.nan
    return df


CASES = {
    "sleepstudy": ("Reaction ~ Days + (Days | Subject)", lambda: mfx.datasets.load("sleepstudy"), {}),
    "sleepstudy ML": ("Reaction ~ Days + (Days | Subject)", lambda: mfx.datasets.load("sleepstudy"),
                      {"reml": False}),
    "penicillin": ("diameter ~ 1 + (1 | plate) + (1 | sample)", lambda: mfx.datasets.load("penicillin"), {}),
    "weighted offset NA": ("Reaction ~ Days + (Days | Subject)", _sleep_na, {"weights": "w", "offset": "o"}),
    "factor no intercept": ("Reaction ~ 0 + factor(Days > 4) + Days + (1 | Subject)",
                            lambda: mfx.datasets.load("sleepstudy"), {}),
}


def _splits(n, k, seed, contiguous=False):
    """k partitions plus an empty one; contiguous splits leave some levels in one partition only."""
    if contiguous:
        parts = list(np.array_split(np.arange(n), k))
    else:
        lab = np.random.default_rng(seed).integers(0, k, n)
        parts = [np.flatnonzero(lab == j) for j in range(k)]
    return parts[:1] + [np.zeros(0, dtype=int)] + parts[1:]


def _lmer(formula, df, kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mfx.lmer(formula, df, **kw)


@pytest.mark.parametrize("contiguous", [False, True])
@pytest.mark.parametrize("case", list(CASES))
def test_partitions_equal_lmer(case, contiguous):
    formula, load, kw = CASES[case]
    df = load()
    ref = _lmer(formula, df, kw)
    frames = [df.iloc[ix] for ix in _splits(len(df), 4, seed=len(case), contiguous=contiguous)]
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        got = fit_lmm_partitions(formula, frames, **kw)
    fit, opt = ref.fit, got.optimum
    assert got.xnames == tuple(ref.fit.design.xnames)
    assert got.n == ref.nobs and got.n_dropped == ref.fit.design.n_dropped
    assert got.levels == tuple(b.levels for b in ref.fit.design.blocks)
    assert abs(opt.objective - fit.objective) <= 1e-10 * abs(fit.objective)
    assert abs(opt.deviance_ml - fit.deviance_ml) <= 1e-10 * abs(fit.deviance_ml)
    for key in ("theta", "beta", "sigma", "vcov"):
        assert rel(getattr(opt, key), getattr(fit, key)) < 1e-8, key
    assert max(rel(a, b) for a, b in zip(opt.b, fit.b)) < 1e-8
    msgs = [str(w.message) for w in rec if issubclass(w.category, MissingDataWarning)]
    if ref.fit.design.n_dropped:
        assert msgs == [got.missing_message] and "dropped" in msgs[0]
    else:
        assert not msgs and got.missing_message is None
    assert [c.sum() for c in got.counts] == [got.n] * len(got.counts)


def test_workers_pickle_and_all_but_one_partition_empty():
    formula = "Reaction ~ Days + (Days | Subject)"
    df = mfx.datasets.load("sleepstudy")
    ref = _lmer(formula, df, {})
    frames = [df.iloc[:0], df, df.iloc[:0]]
    got = pickle.loads(pickle.dumps(fit_lmm_partitions(formula, frames)))
    assert abs(got.optimum.objective - ref.fit.objective) <= 1e-10 * abs(ref.fit.objective)
    plan = survey_plan(formula)
    spec = pickle.loads(pickle.dumps(spec_from_survey(plan, partition_survey(df, plan))))
    assert partition_moments(df.iloc[:0], spec) is None
    assert partition_block_sums(df.iloc[:0], spec, got.scaling) is None


def test_aliased_column_dropped_as_in_memory():
    df = mfx.datasets.load("sleepstudy").assign(D2=lambda d: 2.0 * d["Days"] + 1e6)
    formula = "Reaction ~ Days + D2 + (1 | Subject)"
    with pytest.warns(RankDeficiencyWarning, match="D2"):
        ref = mfx.lmer(formula, df)
    with pytest.warns(RankDeficiencyWarning, match="dropping 1 column\\(s\\): D2"):
        got = fit_lmm_partitions(formula, [df.iloc[:90], df.iloc[90:]])
    assert got.xnames == ("(Intercept)", "Days")
    assert rel(got.optimum.beta, ref.fit.beta) < 1e-8
    # Days + 1e6 next to an intercept is not aliased (no cancellation in the Gram from co-moments)
    df2 = df.assign(D3=lambda d: d["Days"] ** 2 + 1e6)
    plan = survey_plan("Reaction ~ Days + D3 + (1 | Subject)")
    spec = spec_from_survey(plan, partition_survey(df2, plan))
    assert aliased_columns(partition_moments(df2, spec).x, spec.fixed.names) == []


def test_clear_errors():
    df = mfx.datasets.load("sleepstudy")
    with pytest.raises(DesignError, match="column 'Days' is not in partition 1 of 2"):
        fit_lmm_partitions("Reaction ~ Days + (1 | Subject)", [df, df.drop(columns="Days")])
    with pytest.raises(DesignError, match="weights= must be a column name"):
        fit_lmm_partitions("Reaction ~ Days + (1 | Subject)", [df], weights=np.ones(len(df)))
    with pytest.raises(DesignError, match="negative"):
        fit_lmm_partitions("Reaction ~ Days + (1 | Subject)", [df.assign(w=-1.0)], weights="w")
    with pytest.raises(DesignError, match="only 1 level"):
        fit_lmm_partitions("Reaction ~ Days + (1 | Subject)", [df[df.Subject == df.Subject.iloc[0]]])
    with pytest.raises(DesignError, match="covariance structure"):
        fit_lmm_partitions("Reaction ~ Days + cs(1 | Subject)", [df])
    with pytest.raises(DesignError, match="no rows|empty"):
        fit_lmm_partitions("Reaction ~ Days + (1 | Subject)", [df.iloc[:0]])
    pd.testing.assert_frame_equal(df, mfx.datasets.load("sleepstudy"))     # inputs untouched


def _crossed(n=1500, seed=5):
    """Three crossed scalar terms (60 x 15 x 8 levels) with weights (a few zero)."""
    rng = np.random.default_rng(seed)
    g = [rng.integers(0, k, n) for k in (60, 15, 8)]
    eff = [rng.normal(0, s, k) for s, k in ((1.0, 60), (0.7, 15), (0.5, 8))]
    x = rng.normal(size=n)
    y = 2.0 + 0.5 * x + sum(e[c] for e, c in zip(eff, g)) + rng.normal(size=n)
    w = rng.uniform(0.5, 2.0, n)
    w[:5] = 0.0
    return pd.DataFrame({"y": y, "x": x, "g1": g[0], "g2": g[1], "g3": g[2], "w": w})


@pytest.mark.parametrize("weighted", [False, True])
def test_bucketed_blocks_and_start_tables_equal_lmer(weighted, monkeypatch):
    """Ar0 summed in many buckets (CSC, the in-memory pattern); the start's count tables read from A (no
    weights) or built per partition and summed in buckets (weights): the start and the fit are lmer's."""
    from mixedfx.core.start import StartStats, moment_start_from_stats, ols_rows, start_residuals
    from mixedfx.models import partitioned as P
    from mixedfx.models.lmm import make_workspace
    formula = "y ~ x + (1 | g1) + (1 | g2) + (1 | g3)"
    df = _crossed()
    kw = {"weights": "w"} if weighted else {}
    ref = _lmer(formula, df, kw)
    seen, real = {}, P.fit_lmm_from_blocks

    def spy(sums, scaling, sizes, nlevels, structures, stats, **k):
        seen.update(sums=sums, stats=stats)
        return real(sums, scaling, sizes, nlevels, structures, stats, **k)
    monkeypatch.setattr(P, "fit_lmm_from_blocks", spy)
    frames = [df.iloc[ix] for ix in _splits(len(df), 4, seed=1)]
    got = fit_lmm_partitions(formula, frames, bucket_bytes=600, **kw)
    opt, fit = got.optimum, ref.fit
    assert len(P.ar0_level_edges(got.spec, P.merge_moments([P.partition_moments(f, got.spec, kw.get("weights"))
                                                            for f in frames]), 600)) > 10
    A = seen["sums"].Ar0
    assert A.format == "csc" and A.has_sorted_indices
    ws = make_workspace(fit.design, fit.reml)
    mem = ws.internal.Ar0.tocsr()
    mem.sort_indices()
    C = A.tocsr()
    C.sort_indices()
    assert np.array_equal(C.indptr, mem.indptr) and np.array_equal(C.indices, mem.indices)
    # the start: the same tables and theta as the in-memory moment start
    y_int = ws.scaling.response(fit.design.y)
    st = StartStats.of(start_residuals(ws.X, y_int, ols_rows(ws.X, y_int, ws.weights)), ws.blocks)
    assert seen["stats"].tables.keys() == st.tables.keys() == {(0, 1), (0, 2), (1, 2)}
    for key, t in st.tables.items():
        assert (seen["stats"].tables[key] != t).nnz == 0
    assert rel(moment_start_from_stats(seen["stats"], ws.layout), moment_start_from_stats(st, ws.layout)) <= 1e-14
    assert abs(opt.objective - fit.objective) <= 1e-10 * abs(fit.objective)
    for key in ("theta", "beta", "sigma"):
        assert rel(getattr(opt, key), getattr(fit, key)) < 1e-8, key
