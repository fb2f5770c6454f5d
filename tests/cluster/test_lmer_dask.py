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
from mixedfx.design import DesignError, MissingDataWarning  # noqa: E402


def rel(a, b) -> float:
    a, b = np.atleast_1d(np.asarray(a, float)), np.atleast_1d(np.asarray(b, float))
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b))) if a.size else 0.0


def _from_frames(frames):
    """A dask frame whose partitions are exactly ``frames`` (empty ones and missing columns included)."""
    meta = frames[0].iloc[:0]
    return dd.from_delayed([dask.delayed(f) for f in frames], meta=meta, verify_meta=False)


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
