"""Likelihood-ratio tests between nested models against R's anova() (tests/reference/inference.json)."""
from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest

import mixedfx as mfx

with open(os.path.join(os.path.dirname(__file__), "..", "reference", "inference.json")) as _f:
    REF = json.load(_f)


@pytest.fixture(scope="module")
def fits():
    df = mfx.datasets.load("sleepstudy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {"m0": mfx.lmer("Reaction ~ Days + (1 | Subject)", df),
                "m1": mfx.lmer("Reaction ~ Days + (Days || Subject)", df),
                "m2": mfx.lmer("Reaction ~ Days + (Days | Subject)", df),
                "m3": mfx.lmer("Reaction ~ 1 + (Days | Subject)", df)}


def check(table, ref):
    assert list(table.index) == ref["model"]
    for col in ("npar", "AIC", "BIC", "logLik", "deviance"):
        np.testing.assert_allclose(table[col], ref[col], rtol=1e-6)
    for col in ("Chisq", "Df", "p"):
        ours = table[col].to_numpy()[1:]
        theirs = np.asarray(ref[col][1:], float)
        np.testing.assert_allclose(ours, theirs, rtol=1e-4)
        assert np.isnan(table[col].iloc[0])


@pytest.mark.parametrize("key, names", [("intercept_vs_slopes", ["m0", "m2"]), ("three_models", ["m0", "m1", "m2"]),
                                        ("fixed_effect", ["m3", "m2"])])
def test_lrt_tables_match_r(fits, key, names):
    with pytest.warns(UserWarning, match="refitting model"):
        table = mfx.anova(*[fits[n] for n in names], names=names)
    assert list(table.columns) == ["npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df", "p"]
    check(table, REF[key])


def test_boundary_aware_test_halves_p_for_one_variance_component(fits):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = mfx.anova(fits["m0"], fits["m1"], names=["m0", "m1"])
        bound = mfx.anova(fits["m0"], fits["m1"], names=["m0", "m1"], boundary=True)
    assert plain["Df"].iloc[1] == 1
    assert bound["p"].iloc[1] == pytest.approx(plain["p"].iloc[1] / 2, rel=1e-12)


def test_refit_false_and_bad_comparisons(fits):
    table = mfx.anova(fits["m0"], fits["m2"], refit=False)
    assert table["logLik"].iloc[0] == pytest.approx(fits["m0"].loglik)     # REML log-likelihoods compared
    with pytest.raises(ValueError, match="different fixed effects"):
        mfx.anova(fits["m3"], fits["m2"], refit=False)
    other = mfx.lmer("Reaction ~ Days + (1 | Subject)", mfx.datasets.load("sleepstudy").iloc[:170])
    with pytest.raises(ValueError, match="same observations"):
        mfx.anova(fits["m0"], other)
    with pytest.raises(ValueError, match="at least two"):
        mfx.anova(fits["m0"])


def test_bootstrap_lrt(fits):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        strong = mfx.anova(fits["m0"], fits["m2"], method="bootstrap", nsim=99, seed=1)
        # a null comparison: two models simulated-equal in distribution give a non-small p-value
        df = mfx.datasets.load("sleepstudy")
        rng = np.random.default_rng(0)
        df["noise"] = rng.normal(size=len(df))
        a = mfx.lmer("Reaction ~ Days + (1 | Subject)", df, reml=False)
        b = mfx.lmer("Reaction ~ Days + noise + (1 | Subject)", df, reml=False)
        null = mfx.anova(a, b, method="bootstrap", nsim=99, seed=2)
    assert strong["p"].iloc[1] == pytest.approx(1 / 100)          # the observed LRT (42) is never reached
    chi2_p = mfx.anova(a, b)["p"].iloc[1]
    assert abs(null["p"].iloc[1] - chi2_p) < 0.15                  # close to the chi-square p-value
    with pytest.raises(ValueError, match="'lrt' or 'bootstrap'"):
        mfx.anova(a, b, method="exact")
