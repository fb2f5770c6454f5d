"""GLMM responses as users write them, bad input, separation and zero groups."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx


@pytest.fixture(scope="module")
def cbpp():
    return mfx.datasets.load("cbpp")


def _quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **k)


def test_cbind_proportion_weights_and_bernoulli_rows_agree(cbpp):
    a = _quiet(mfx.glmer, "cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp)
    b = _quiet(mfx.glmer, "p ~ period + (1 | herd)", cbpp.assign(p=cbpp.incidence / cbpp["size"]), weights="size")
    rows = []
    for _, r in cbpp.iterrows():
        rows += [{"herd": r.herd, "period": r.period, "sick": k < r.incidence} for k in range(int(r["size"]))]
    long = pd.DataFrame(rows)
    long["herd"] = pd.Categorical(long.herd, categories=cbpp.herd.cat.categories)
    long["period"] = pd.Categorical(long.period, categories=cbpp.period.cat.categories)
    c = _quiet(mfx.glmer, "sick ~ period + (1 | herd)", long)                     # boolean response
    d = _quiet(mfx.glmer, "outcome ~ period + (1 | herd)",
               long.assign(outcome=np.where(long.sick, "yes", "no")))           # strings: first level = failure
    for m in (b, c, d):
        np.testing.assert_allclose(m.fixef, a.fixef, rtol=1e-5)
        np.testing.assert_allclose(m.theta, a.theta, rtol=1e-5)
    assert b.objective == pytest.approx(a.objective, rel=1e-10)
    # the Bernoulli likelihood drops the binomial coefficients, a known constant
    const = -2 * np.sum(np.log([__import__("math").comb(int(n), int(k)) for n, k in zip(cbpp["size"], cbpp.incidence)]))
    assert c.objective == pytest.approx(a.objective - const, rel=1e-8)


@pytest.mark.parametrize("formula, family, column, values, message", [
    ("y ~ x + (1 | g)", "poisson", "y", [-1.0] + [1.0] * 39, "non-negative counts"),
    ("y ~ x + (1 | g)", "poisson", "y", [1.5] + [1.0] * 39, "whole-number"),
    ("y ~ x + (1 | g)", "binomial", "y", [1.2] + [0.0] * 39, "proportions in \\[0, 1\\]"),
    ("y ~ x + (1 | g)", "gamma", "y", [0.0] + [1.0] * 39, "positive"),
    ("y ~ x + (1 | g)", "binomial", "y", ["a", "b", "c", "a"] * 10, "exactly two"),
    ("cbind(y, y) ~ x + (1 | g)", "poisson", "y", [1.0] * 40, "binomial response"),
    ("cbind(y, 3 - y) ~ x + (1 | g)", "binomial", "y", [0.5] * 40, "whole numbers"),
])
def test_impossible_responses_get_clear_errors(formula, family, column, values, message):
    df = pd.DataFrame({"x": np.arange(40.0), "g": np.repeat(np.arange(8), 5), column: values})
    with pytest.raises((mfx.DesignError, mfx.ResponseError), match=message):
        _quiet(mfx.glmer, formula, df, family=family)


def test_non_integer_successes_with_weights(cbpp):
    df = cbpp.assign(p=cbpp.incidence / cbpp["size"] + 0.01)
    with pytest.raises(mfx.ResponseError, match="whole numbers"):
        _quiet(mfx.glmer, "p ~ period + (1 | herd)", df, weights="size")


def test_quadrature_needs_one_scalar_term():
    df = mfx.datasets.load("grouseticks")
    with pytest.raises(ValueError, match="single scalar random-effect term"):
        mfx.glmer("TICKS ~ YEAR + (1 | BROOD) + (1 | LOCATION)", df, family="poisson", nagq=5)


def test_perfect_separation_warns_and_stays_finite():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"x": rng.normal(size=200), "g": np.repeat(np.arange(10), 20)})
    df["y"] = (df.x > 0).astype(float)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = mfx.glmer("y ~ x + (1 | g)", df)
    kinds = {type(w.message) for w in caught}
    assert mfx.SeparationWarning in kinds
    assert any("separation" in str(w.message) and "x" in str(w.message) for w in caught)
    # the diverging slope also makes the Hessian indefinite: said, with the fallback named
    assert mfx.ConvergenceWarning in kinds
    assert np.all(np.isfinite(m.fixef)) and np.isfinite(m.objective)


def test_poisson_group_of_zeros():
    rng = np.random.default_rng(2)
    g = np.repeat(np.arange(10), 20)
    y = rng.poisson(np.exp(0.5 + rng.normal(0, 0.5, 10)[g]))
    y[g == 3] = 0
    m = _quiet(mfx.glmer, "y ~ 1 + (1 | g)", pd.DataFrame({"y": y, "g": g}), family="poisson")
    re = m.ranef().set_index("grp")["condval"]
    assert np.isfinite(re).all() and re["3"] == re.min() and re["3"] < -1


def test_bad_family_and_link_names(cbpp):
    with pytest.raises(ValueError, match="unknown family"):
        mfx.glmer("incidence ~ period + (1 | herd)", cbpp, family="weibull")
    with pytest.raises(ValueError, match="not available for the poisson"):
        mfx.glmer("incidence ~ period + (1 | herd)", cbpp, family="poisson", link="logit")


def test_negative_binomial_shape_is_estimated():
    """Against lme4's glmer.nb on the same simulated data: shape 2.182266, fixef (1.010104, 0.412128),
    logLik -1337.433, SD 0.51484 (lme4 1.1-31)."""
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(30), 20)
    x = rng.normal(size=600)
    mu = np.exp(1 + 0.4 * x + rng.normal(0, 0.5, 30)[g])
    y = rng.negative_binomial(2.0, 2.0 / (2.0 + mu))
    m = _quiet(mfx.glmer, "y ~ x + (1 | g)", pd.DataFrame({"y": y, "x": x, "g": g}), family="negbin")
    assert m.family.theta == pytest.approx(2.182266, rel=1e-3)
    np.testing.assert_allclose(m.fixef, [1.010104, 0.412128], rtol=2e-3)
    assert m.loglik == pytest.approx(-1337.433, abs=2e-3)
    assert m.varcorr["sdcor"].iloc[0] == pytest.approx(0.51484, rel=5e-3)
    assert m.df == 4


def test_warm_start_from_a_previous_fit(cbpp):
    a = _quiet(mfx.glmer, "cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp)
    b = _quiet(mfx.glmer, "cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, start=a)
    assert b.objective == pytest.approx(a.objective, abs=1e-6)
    np.testing.assert_allclose(b.fixef, a.fixef, rtol=1e-4)
    assert b.fit.opt_stage1.nfev + b.fit.opt.nfev < a.fit.opt_stage1.nfev + a.fit.opt.nfev


def test_hessian_formula_is_exact_for_a_quadratic():
    from mixedfx.core.finite_diff import deriv12_hessian as _hessian
    A = np.array([[3.0, 0.4, -0.2], [0.4, 2.0, 0.7], [-0.2, 0.7, 1.5]])
    b = np.array([0.1, -0.3, 0.2])
    f = lambda x: float(x @ A @ x + b @ x + np.sin(0.0))
    np.testing.assert_allclose(_hessian(f, np.array([0.3, -0.2, 0.5])), 2 * A, rtol=1e-6)


def test_link_giving_invalid_means_fails_clearly():
    with pytest.raises(FloatingPointError, match="identity link"):
        _quiet(mfx.glmer, "TICKS ~ YEAR + (1 | BROOD)", mfx.datasets.load("grouseticks"), family="poisson",
               link="identity")
