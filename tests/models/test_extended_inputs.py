"""Bad input to glmmTMB-style models and clmm gets a clear, specific error; missing values are
dropped with a count."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import mixedfx as mfx

SAL = mfx.datasets.load("salamanders")
BETA = mfx.datasets.load("betasim")
WINE = mfx.datasets.load("wine")
F = "count ~ mined + (1 | site)"


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(family="poisson", zi="~ 1", data=SAL.assign(count=SAL["count"] + 1)), ValueError,
     "the response has no zero"),
    (dict(family="nbinom2", data=SAL.assign(count=SAL["count"] + 0.5)), mfx.ResponseError, "whole-number counts"),
    (dict(family="nbinom3"), ValueError, "unknown family 'nbinom3'.*nbinom1, nbinom2"),
    (dict(family="poisson", disp="~ spp"), ValueError, "the poisson family has none"),
    (dict(family="nbinom2", link="logit"), ValueError, "link 'logit' is not available for the nbinom2 family"),
    (dict(family="nbinom2", df=3), ValueError, "the 'nbinom2' family has none"),
    (dict(family="t", df=-1), ValueError, "df= must be a positive number"),
    (dict(family="truncated_poisson"), ValueError, "zero-truncated model, but the response has 387 zero"),
    (dict(family="truncated_beta", zi="~ 1"), ValueError, "only count families can be truncated"),
    (dict(family="poisson", zi="~ nosuch"), mfx.DesignError, "zi= refers to column.*'nosuch'"),
    (dict(family="poisson", zi="count ~ mined"), mfx.DesignError, "has a response; write it one-sided"),
    (dict(family="poisson", zi=3), TypeError, "must be a one-sided formula string"),
    (dict(family="poisson", zi="~ mined + (1 | site)"), mfx.DesignError, "random effects are supported in the "
                                                                           "conditional formula only"),
    (dict(family="nbinom2", start={"gamma": 1}), ValueError, "start= takes theta, beta"),
])
def test_clear_errors(kwargs, error, match):
    data = kwargs.pop("data", SAL)
    with pytest.raises(error, match=match):
        mfx.glmer(F, data, **kwargs)


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_beta_response_at_the_bounds(value):
    y = BETA["y"].to_numpy().copy()
    y[:3] = value
    with pytest.raises(mfx.ResponseError, match="strictly inside \\(0, 1\\); 3 of 600 rows"):
        mfx.glmer("y ~ x + (1 | g)", BETA.assign(y=y), family="beta")


def test_zero_inflation_of_a_continuous_family():
    with pytest.raises(ValueError, match="the beta family is continuous"):
        mfx.glmer("y ~ x + (1 | g)", BETA, family="beta", zi="~ 1")


def test_ordinal_errors():
    with pytest.raises(mfx.DesignError, match="empty category '6'"):
        mfx.clmm("rating ~ temp + (1 | judge)", WINE.assign(rating=WINE["rating"].cat.add_categories(["6"])))
    with pytest.raises(mfx.DesignError, match="has 1 category"):
        mfx.clmm("rating ~ temp + (1 | judge)", WINE.assign(rating=1))
    with pytest.raises(mfx.DesignError, match="must be a column of the data"):
        mfx.clmm("log(rating) ~ temp + (1 | judge)", WINE)
    with pytest.raises(ValueError, match="link must be one of"):
        mfx.clmm("rating ~ temp + (1 | judge)", WINE, link="cauchit")
    with pytest.raises(ValueError, match="nagq must be"):
        mfx.clmm("rating ~ temp + (1 | judge)", WINE, nagq=0)


def test_missing_values_of_a_part_are_dropped_with_a_count():
    d = SAL.copy()
    d.loc[[0, 1, 2], "mined"] = np.nan
    with pytest.warns(mfx.MissingDataWarning, match="3 row\\(s\\) with missing values dropped.*'mined': 3"):
        m = mfx.glmer("count ~ spp + (1 | site)", d, family="poisson", zi="~ mined")
    assert m.nobs == len(SAL) - 3 and m.n_dropped == 3


def test_ordinal_missing_responses_are_dropped():
    d = WINE.copy()
    d.loc[[0, 5], "rating"] = None
    with pytest.warns(mfx.MissingDataWarning, match="2 row"):
        m = mfx.clmm("rating ~ temp + contact + (1 | judge)", d)
    assert m.nobs == 70


def test_zi_zero_formula_means_no_zero_inflation():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = mfx.glmer("count ~ spp + (1 | site)", SAL, family="poisson", zi="~ 0")
    assert len(m.fixef_zi) == 0
    plain = mfx.glmer("count ~ spp + (1 | site)", SAL, family="poisson", disp=None)
    assert m.objective == pytest.approx(plain.objective, rel=1e-6)
