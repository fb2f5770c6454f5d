"""mfx.glmer on a dask DataFrame (issue 13, step 8): persisted partitions on a 2-process LocalCluster, one
map-reduce per PIRLS iteration, the same BOBYQA path as the in-memory ``glmer(..., optimizer="bobyqa")``.

Tolerances: the partition sums differ from the in-memory row sums by summation order (~1e-16 relative), so the
deviance agrees to 1e-10; the estimates to 1e-6 relative (BOBYQA's path reacts to last-bit changes of the
criterion; here both fits take the same number of evaluations and end within ~1e-8).  ``vcov``: the Dask fit
differences the deviance twice (lme4's ``deriv12``), the in-memory fit differences the analytic gradient once:
the two Hessians agree to ~1e-4 relative (the second differences' truncation and PIRLS-noise error).
"""
from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("distributed")
dd = pytest.importorskip("dask.dataframe")

import mixedfx as mfx  # noqa: E402
from conftest import dask_from_frames as _from_frames, rel_max as rel  # noqa: E402


def _split(df, k, seed=0):
    """``k`` non-contiguous random partitions plus an empty one (second)."""
    idx = np.array_split(np.random.default_rng(seed).permutation(len(df)), k)
    frames = [df.iloc[np.sort(i)] for i in idx]
    return frames[:1] + [df.iloc[:0]] + frames[1:]


def _glmer(formula, data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mfx.glmer(formula, data, optimizer="bobyqa", **kw)


def _assert_same_fit(got, ref, vcov_tol=1e-3):
    assert abs(got.fit.objective - ref.fit.objective) <= 1e-10 * abs(ref.fit.objective)
    assert abs(got.fit.deviance - ref.fit.deviance) <= 1e-8 * abs(ref.fit.deviance)
    assert rel(got.fit.theta, ref.fit.theta) < 1e-6
    assert rel(got.fit.beta, ref.fit.beta) < 1e-6
    assert max(rel(a, b) for a, b in zip(got.fit.b, ref.fit.b)) < 1e-6
    assert max(rel(a, b) for a, b in zip(got.fit.cond_var, ref.fit.cond_var)) < 1e-6
    assert got.fit.vcov_method == ref.fit.vcov_method == "hessian"
    assert rel(got.fit.vcov, ref.fit.vcov) < vcov_tol
    assert got.nobs == ref.nobs and list(got.fixef.index) == list(ref.fixef.index)


@pytest.fixture(scope="module")
def cbpp(dask_client):
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    df = mfx.datasets.load("cbpp")
    ref = _glmer(formula, df, family="binomial")
    got = mfx.glmer(formula, _from_frames(_split(df, 3)), family="binomial")
    return formula, df, ref, got


def test_cbpp_cbind_equals_in_memory_bobyqa(cbpp):
    formula, df, ref, got = cbpp
    assert type(got).__name__ == "DaskGeneralizedLinearMixedModelResult"
    _assert_same_fit(got, ref)
    # the same BOBYQA path: the same number of deviance evaluations in both stages
    assert (got.fit.opt_stage1.nfev, got.fit.opt.nfev) == (ref.fit.opt_stage1.nfev, ref.fit.opt.nfev)
    assert got.fit.extra["passes"] > 0 and got.fit.extra["partitions"] == 4
    pd.testing.assert_frame_equal(got.coef_table(), ref.coef_table(), rtol=1e-3)
    assert list(got.ranef()) == list(ref.ranef())
    text = str(got.summary())
    assert "z value" in text and "Laplace" in text and formula in text


def test_cbpp_per_row_outputs_are_lazy_and_equal(cbpp):
    formula, df, ref, got = cbpp
    index = ref.fitted().index
    cases = (("fitted", got.fitted(), ref.fitted()),
             ("deviance residuals", got.residuals(), ref.residuals()),
             ("pearson", got.residuals("pearson"), ref.residuals("pearson")),
             ("marginal response", got.residuals("response", "marginal"), ref.residuals("response", "marginal")),
             ("predict link", got.predict(), pd.Series(ref.predict(), index=index)),
             ("predict response", got.predict(type="response"), pd.Series(ref.predict(type="response"), index=index)))
    for name, lazy, mem in cases:
        assert isinstance(lazy, dd.Series), name
        vals = lazy.compute().sort_index()
        assert list(vals.index) == list(mem.index), name
        assert rel(vals.to_numpy(), mem.to_numpy()) < 1e-6, name
    new = df.iloc[::5]
    lazy = got.predict(dd.from_pandas(new, npartitions=2), type="response")
    assert rel(lazy.compute().to_numpy(), ref.predict(new, type="response")) < 1e-6
    assert rel(got.predict(new), ref.predict(new)) < 1e-6          # pandas newdata: the in-memory path
    back = pickle.loads(pickle.dumps(got))
    assert rel(back.fixef, ref.fixef) < 1e-6
    with pytest.raises(ValueError, match="no dask frame"):
        back.fitted()


def test_unsupported_options_raise_clear_errors(dask_client):
    df = mfx.datasets.load("cbpp")
    ddf = dd.from_pandas(df, npartitions=2)
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    with pytest.raises(NotImplementedError, match="nagq > 1"):
        mfx.glmer(formula, ddf, family="binomial", nagq=5)
    with pytest.raises(NotImplementedError, match="only 'bobyqa'"):
        mfx.glmer(formula, ddf, family="binomial", optimizer="lbfgs")
    with pytest.raises(NotImplementedError, match="dispersion"):
        mfx.glmer("incidence ~ period + (1 | herd)", ddf, family="gamma")
    with pytest.raises(ValueError, match="binomial response"):
        mfx.glmer(formula, ddf, family="poisson")
    with pytest.raises(NotImplementedError, match="zi="):
        mfx.glmer("incidence ~ period + (1 | herd)", ddf, family="poisson", zi="~ 1")


@pytest.mark.slow
def test_cbpp_proportion_with_weights_equals_cbind(dask_client):
    df = mfx.datasets.load("cbpp").assign(prop=lambda d: d["incidence"] / d["size"])
    ref = _glmer("prop ~ period + (1 | herd)", df, family="binomial", weights="size")
    got = mfx.glmer("prop ~ period + (1 | herd)", _from_frames(_split(df, 3, seed=1)), family="binomial",
                    weights="size")
    _assert_same_fit(got, ref)


@pytest.mark.slow
def test_grouseticks_poisson_crossed_with_offset(dask_client):
    df = mfx.datasets.load("grouseticks")
    df = df.assign(expo=0.1 * (np.arange(len(df)) % 3) - 0.05)
    formula = "TICKS ~ YEAR + HEIGHT + (1 | BROOD) + (1 | LOCATION)"
    ref = _glmer(formula, df, family="poisson", offset="expo")
    got = mfx.glmer(formula, _from_frames(_split(df, 3, seed=2)), family="poisson", offset="expo")
    _assert_same_fit(got, ref)
    assert rel(got.predict().compute().sort_index().to_numpy(), ref.predict()) < 1e-6
