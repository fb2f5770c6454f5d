"""mfx.lmer on a dask DataFrame (issue 13): the passes on a 2-process LocalCluster give mfx.lmer's fit."""
from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("distributed")
dd = pytest.importorskip("dask.dataframe")
import dask  # noqa: E402

import mixedfx as mfx  # noqa: E402
from conftest import dask_from_frames as _from_frames, rel_max as rel  # noqa: E402
from mixedfx.design import DesignError, MissingDataWarning  # noqa: E402


def _lmer(formula, df, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mfx.lmer(formula, df, **kw)


def _assert_same_fit(got, ref):
    assert abs(got.objective - ref.objective) <= 1e-10 * abs(ref.objective)
    for key in ("theta", "beta", "vcov"):
        assert rel(getattr(got.fit, key), getattr(ref.fit, key)) < 1e-8, key
    assert rel(got.sigma, ref.sigma) < 1e-8
    assert max(rel(a, b) for a, b in zip(got.fit.b, ref.fit.b)) < 1e-8
    assert got.nobs == ref.nobs and list(got.fixef.index) == list(ref.fixef.index)


def test_sleepstudy_equals_lmer_and_outputs_are_dask_series(dask_client):
    formula = "Reaction ~ Days + (Days | Subject)"
    df = mfx.datasets.load("sleepstudy")
    ref = _lmer(formula, df)
    got = mfx.lmer(formula, dd.from_pandas(df, npartitions=4))
    _assert_same_fit(got, ref)
    assert type(got).__name__ == "DaskLinearMixedModelResult"
    pd.testing.assert_frame_equal(got.ranef(), ref.ranef(), rtol=1e-7)
    pd.testing.assert_frame_equal(got.varcorr, ref.varcorr, rtol=1e-7)
    # Satterthwaite df from the summed blocks
    pd.testing.assert_frame_equal(got.coef_table(), ref.coef_table(), rtol=1e-6)
    text, want = str(got.summary()), str(ref.summary())
    assert text == want           # residual quantiles from an extra pass, Satterthwaite df from the blocks
    for name, lazy, mem in (("fitted", got.fitted(), ref.fitted()),
                            ("residuals", got.residuals(), ref.residuals()),
                            ("marginal", got.residuals(level="marginal"), ref.residuals(level="marginal")),
                            ("predict", got.predict(), pd.Series(ref.predict(), index=ref.fitted().index))):
        assert isinstance(lazy, dd.Series), name
        vals = lazy.compute()
        assert list(vals.index) == list(mem.index), name
        assert rel(vals.to_numpy(), mem.to_numpy()) < 1e-10, name
    new = df.iloc[::7].assign(Subject=lambda d: d["Subject"].astype(str).where(d.index % 2 == 0, "new"))
    lazy = got.predict(dd.from_pandas(new, npartitions=2), allow_new_levels=True)
    assert isinstance(lazy, dd.Series)
    want = ref.predict(new, allow_new_levels=True)
    assert rel(lazy.compute().to_numpy(), want) < 1e-10
    assert rel(got.predict(new, allow_new_levels=True), want) < 1e-10          # pandas newdata: in-memory code
    with pytest.raises(NotImplementedError, match="in memory"):
        got.hatvalues()


def test_penicillin_level_in_one_partition_and_empty_partition(dask_client):
    formula = "diameter ~ 1 + (1 | plate) + (1 | sample)"
    df = mfx.datasets.load("penicillin")
    ref = _lmer(formula, df)
    idx = np.argsort(df["plate"].astype(str).to_numpy(), kind="stable")
    frames = [df.iloc[ix] for ix in np.array_split(idx, 3)]        # contiguous by plate: levels in one partition
    frames.insert(1, df.iloc[:0])                                   # an empty partition
    got = mfx.lmer(formula, _from_frames(frames))
    _assert_same_fit(got, ref)
    fitted = got.fitted().compute().sort_index()
    assert rel(fitted.to_numpy(), ref.fitted().sort_index().to_numpy()) < 1e-10
    back = pickle.loads(pickle.dumps(got))            # the estimates pickle; the lazy frame does not
    assert np.array_equal(back.fixef, got.fixef)
    with pytest.raises(ValueError, match="no dask frame"):
        back.fitted()


def test_weights_offset_missing_values(dask_client):
    df = mfx.datasets.load("sleepstudy").copy()
    rng = np.random.default_rng(3)
    df["w"] = rng.uniform(0.5, 2.0, len(df))
    df["o"] = rng.normal(0, 5, len(df))
    df.loc[[3, 40, 100], "Reaction"] = np.nan
    df.loc[[7], "w"] = np.nan
    formula = "Reaction ~ Days + (Days | Subject)"
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        ref = mfx.lmer(formula, df, weights="w", offset="o")
    want = [str(w.message) for w in rec if issubclass(w.category, MissingDataWarning)]
    with pytest.warns(MissingDataWarning) as rec2:
        got = mfx.lmer(formula, dd.from_pandas(df, npartitions=3), weights="w", offset="o")
    assert [str(w.message) for w in rec2 if issubclass(w.category, MissingDataWarning)] == want
    _assert_same_fit(got, ref)
    res = got.residuals(type="pearson").compute()
    assert rel(res.to_numpy(), ref.residuals(type="pearson").to_numpy()) < 1e-10
    assert list(res.index) == list(ref.residuals().index)


def test_clear_errors(dask_client):
    df = mfx.datasets.load("sleepstudy")
    frames = [df.iloc[:60], df.iloc[60:120].drop(columns="Days"), df.iloc[120:]]
    with pytest.raises(DesignError, match="column 'Days' is not in partition 1 of 3"):
        mfx.lmer("Reaction ~ Days + (1 | Subject)", _from_frames(frames))
    with pytest.raises(DesignError, match="column name"):
        mfx.lmer("Reaction ~ Days + (1 | Subject)", dd.from_pandas(df, npartitions=2), weights=np.ones(len(df)))
    with pytest.raises(NotImplementedError, match="correlation="):
        mfx.lmer("Reaction ~ Days + (1 | Subject)", dd.from_pandas(df, npartitions=2),
                 correlation="ar1(Days | Subject)")


def test_parquet_glob(dask_client, tmp_path):
    pytest.importorskip("pyarrow")
    formula = "Reaction ~ Days + (1 | Subject)"
    df = mfx.datasets.load("sleepstudy")
    df = df.assign(Subject=df["Subject"].astype(str))
    for i, part in enumerate(np.array_split(np.arange(len(df)), 3)):
        df.iloc[part].to_parquet(tmp_path / f"part-{i}.parquet")
    ref = _lmer(formula, df)
    got = mfx.lmer(formula, str(tmp_path / "*.parquet"))
    _assert_same_fit(got, ref)
    df.to_csv(tmp_path / "all.csv", index=False)
    _assert_same_fit(mfx.lmer(formula, str(tmp_path / "all.csv")), ref)


def test_glmer_on_a_dask_frame_says_what_works():
    """A function that needs the data in memory (here an in-memory GLMM's predict) names the dask frame and
    points to lmer/glmer and .compute() (glmer itself fits dask frames since step 8: test_glmer_dask.py)."""
    import dask.dataframe as dd
    cb = mfx.datasets.load("cbpp")
    m = mfx.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cb, family="binomial")
    with pytest.raises(TypeError, match=r"dask \(out-of-memory\) frame: mfx.lmer fits it directly.*glmer.*"
                                        r"\.compute\(\)"):
        m.predict(dd.from_pandas(cb, npartitions=2))


@pytest.mark.parametrize("weighted", [False, True])
def test_bucketed_pass3_and_pass4_equal_lmer(dask_client, weighted, monkeypatch):
    """A small bucket size forces many buckets of Ar0 (and, with weights, of the start's count tables): the
    client assembles one CSC Ar0 with the in-memory pattern, and the fit is lmer's."""
    from mixedfx.cluster import lmm as L
    from mixedfx.models.lmm import make_workspace
    rng = np.random.default_rng(5)
    n = 1500
    g = [rng.integers(0, k, n) for k in (60, 15, 8)]
    y = 2.0 + sum(rng.normal(0, s, k)[c] for s, k, c in zip((1.0, 0.7, 0.5), (60, 15, 8), g)) + rng.normal(size=n)
    w = rng.uniform(0.5, 2.0, n)
    w[:5] = 0.0
    df = pd.DataFrame({"y": y, "x": rng.normal(size=n), "g1": g[0], "g2": g[1], "g3": g[2], "w": w})
    formula = "y ~ x + (1 | g1) + (1 | g2) + (1 | g3)"
    kw = {"weights": "w"} if weighted else {}
    ref = _lmer(formula, df, **kw)
    calls, real = [], L.map_reduce_buckets

    def spy(parts, fn, split, merge_head, edges, *args, **kwargs):
        calls.append((fn.__name__, len(edges) - 1))
        return real(parts, fn, split, merge_head, edges, *args, **kwargs)
    monkeypatch.setattr(L, "map_reduce_buckets", spy)
    frames = [df.iloc[ix] for ix in np.array_split(np.random.default_rng(1).permutation(n), 5)]
    got = mfx.lmer(formula, _from_frames(frames[:2] + [df.iloc[:0]] + frames[2:]), bucket_bytes=600, **kw)
    assert calls[0][0] == "partition_block_sums" and calls[0][1] > 10
    assert [c[0] for c in calls[1:]] == (["partition_start_stats"] if weighted else [])
    _assert_same_fit(got, ref)
    A = got.fit.sums.Ar0
    assert A.format == "csc" and A.indices.dtype == np.int32
    mem = make_workspace(ref.fit.design, True).internal.Ar0.tocsr()
    mem.sort_indices()
    C = A.tocsr()
    C.sort_indices()
    assert np.array_equal(C.indptr, mem.indptr) and np.array_equal(C.indices, mem.indices)


def test_bucketed_reduction_without_a_distributed_client():
    """The synchronous scheduler: every bucket computed, then assembled; all-empty partitions give None."""
    from mixedfx.cluster.passes import distributed_client, map_reduce_buckets, partitions
    from mixedfx.core.blocksum import block_buckets, bucket_edges, sum_blocks
    from mixedfx.models import partitioned as P
    df = mfx.datasets.load("penicillin")
    formula = "diameter ~ 1 + (1 | plate) + (1 | sample)"
    frames = [df.iloc[:40], df.iloc[:0], df.iloc[40:]]
    got = P.fit_lmm_partitions(formula, frames)
    spec, scaling = got.spec, got.scaling
    edges = bucket_edges(np.ones(24), 5)
    with dask.config.set(scheduler="synchronous"):
        assert distributed_client() is None
        head, sparse = map_reduce_buckets(partitions(_from_frames(frames)), P.partition_block_sums, block_buckets,
                                          sum_blocks, edges, spec, scaling, None, split_every=2)
        assert map_reduce_buckets(partitions(_from_frames([df.iloc[:0]] * 3)), P.partition_block_sums,
                                  block_buckets, sum_blocks, edges, spec, scaling, None) is None
    ref = sum_blocks([P.partition_block_sums(f, spec, scaling) for f in frames])
    A = sparse["Ar0"].tocsr()
    assert sparse["Ar0"].format == "csc" and head.Ar0 is None and head.n == len(df)
    assert np.array_equal(A.indptr, ref.Ar0.indptr) and np.array_equal(A.indices, ref.Ar0.indices)
    assert rel(A.data, ref.Ar0.data) <= 1e-15 and rel(head.AF0, ref.AF0) <= 1e-14


def test_large_crossed_path_keeps_one_ar0(dask_client, monkeypatch):
    """The compiled scatter update (forced by a small plan cap) on the bucketed CSC Ar0: the fit's workspace
    uses the summed matrix itself (no CSR or CSC copy) and the fit is lmer's (which takes the plan/SYRK path)."""
    pytest.importorskip("numba")
    from mixedfx.core import scatter_gram as sg
    rng = np.random.default_rng(9)
    n, U, I = 8000, 200, 300       # ~36 items per user: the scatter kernel, not the SYRK
    u, i = rng.integers(0, U, n), rng.integers(0, I, n)
    y = 1.0 + 0.8 * rng.normal(size=U)[u] + 0.5 * rng.normal(size=I)[i] + rng.normal(size=n)
    df = pd.DataFrame({"y": y, "x": rng.normal(size=n), "user": u, "item": i})
    formula = "y ~ x + (1 | user) + (1 | item)"
    ref = _lmer(formula, df)
    assert type(ref.fit.fresh_workspace().internal.schur).__name__ == "HybridGram"
    monkeypatch.setattr(sg, "MAX_PLAN_ENTRIES", 1000)
    got = mfx.lmer(formula, dd.from_pandas(df, npartitions=4), bucket_bytes=2000)
    _assert_same_fit(got, ref)
    for a, b in zip(got.fit.cond_var, ref.fit.cond_var):
        assert rel(a, b) < 1e-8
    ws = got.fit.fresh_workspace().internal
    assert isinstance(ws.schur, sg.ScatterGram) and len(ws.schur.sparse_levels) > U // 2
    assert ws.Ar0 is got.fit.sums.Ar0 and ws.schur.A is got.fit.sums.Ar0
