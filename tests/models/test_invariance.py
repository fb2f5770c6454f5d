"""Fits do not depend on the units or origin of the data (issue: trust).

A change of units that leaves the model unchanged must give the equivalent fit, every
estimate transformed exactly (1e-8 relative) and the criterion moved by its Jacobian term
only.  Shifted data are compared with the same rounded numbers shifted back: ``y + b`` in
floating point has already lost the low digits of ``y``, so the reference is the fit to
``(y + b) - b``, the data the shifted fit actually sees.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import mixedfx as mfx

RTOL = 1e-8

MODELS = {
    "slopes": ("sleepstudy", "Reaction ~ Days + (Days | Subject)", "Reaction", "Days"),
    "crossed": ("penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", "diameter", None),
    "nested": ("pastes", "strength ~ 1 + (1 | batch/cask)", "strength", None),
    "factorial": ("cake", "angle ~ recipe + temp + (1 | replicate)", "angle", "temp"),
}


def _data(name):
    return mfx.datasets.load(MODELS[name][0])


def _fit(formula, data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mfx.lmer(formula, data, **kw)


def _close(a, b, rtol=RTOL, scale=None):
    a, b = np.asarray(a, float), np.asarray(b, float)
    s = np.max(np.abs(b)) if scale is None else scale
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * s)


def _check_response_map(m2, m1, a, b, reml=True):
    """m2 is the fit to a*y + b, m1 the fit to y (the same rounded data)."""
    n, p = m1.nobs, len(m1.fixef)
    jac = 2 * ((n - p) if reml else n) * np.log(abs(a))
    _close(m2.objective, m1.objective + jac, scale=max(abs(m1.objective), 1.0) + abs(jac))
    _close(m2.theta, m1.theta, scale=max(np.max(np.abs(m1.theta)), 1e-3))
    _close(m2.sigma, abs(a) * m1.sigma)
    beta1 = a * m1.fixef.to_numpy()
    beta1[0] += b
    scale = np.max(np.abs(a * m1.fixef.to_numpy()))
    _close(m2.fixef, beta1, scale=scale)     # the intercept absorbs b: compare on the scale of a*beta
    _close(m2.vcov().to_numpy(), a * a * m1.vcov().to_numpy())
    _close(m2.varcorr["sdcor"], m1.varcorr["sdcor"] * np.where(m1.varcorr["var2"].notna() &
                                                                 (m1.varcorr["var2"] != ""), 1.0, abs(a)))
    _close(m2.ranef()["condval"], a * m1.ranef()["condval"], scale=abs(a) * m1.sigma)
    _close(m2.ranef()["condsd"], abs(a) * m1.ranef()["condsd"])


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("a,b_sd", [(1.0, 1e6), (1.0, 1e12), (1e-8, 0.0), (1e8, 1e3), (-3.7, 1e9), (2.0 ** -20, 1e12)])
def test_response_units(name, a, b_sd):
    df = _data(name)
    _, formula, y, _ = MODELS[name]
    b = b_sd * a * df[y].std()
    y2 = a * df[y].to_numpy() + b
    y1 = (y2 - b) / a
    m2 = _fit(formula, df.assign(**{y: y2}))
    m1 = _fit(formula, df.assign(**{y: y1}))
    _check_response_map(m2, m1, a, b)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log_a=st.floats(-8, 8), sign=st.sampled_from([1.0, -1.0]), log_b=st.floats(0, 12),
       reml=st.booleans())
def test_response_units_property(log_a, sign, log_b, reml):
    df = _data("slopes")
    a = sign * 10.0 ** log_a
    b = 10.0 ** log_b * abs(a) * df.Reaction.std()
    y2 = a * df.Reaction.to_numpy() + b
    y1 = (y2 - b) / a
    formula = MODELS["slopes"][1]
    _check_response_map(_fit(formula, df.assign(Reaction=y2), reml=reml),
                        _fit(formula, df.assign(Reaction=y1), reml=reml), a, b, reml)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log_a=st.floats(-8, 8), shift=st.sampled_from([0.0, 1000.0, 1e6]), reml=st.booleans())
def test_random_slope_covariate_units(log_a, shift, reml):
    """``(X | Subject)`` with ``X = a * Days + shift``: the same model (intercept, unstructured)."""
    df = _data("slopes")
    a = 10.0 ** log_a
    X = a * df.Days.to_numpy() + shift
    m2 = _fit("Reaction ~ X + (X | Subject)", df.assign(X=X), reml=reml)
    days = (X - shift) / a
    m1 = _fit("Reaction ~ X + (X | Subject)", df.assign(X=days), reml=reml)
    jac = 2 * np.log(a) if reml else 0.0        # REML: log|R_X|^2 moves with the column's scale
    _close(m2.objective, m1.objective + jac, scale=abs(m1.objective))
    _close(m2.sigma, m1.sigma)
    _close(m2.fixef.iloc[1], m1.fixef.iloc[1] / a)
    _close(m2.fixef.iloc[0], m1.fixef.iloc[0] - m1.fixef.iloc[1] * shift / a, scale=abs(m1.fixef.iloc[0]) +
           abs(m1.fixef.iloc[1] * shift / a))
    # fitted values and predictions are the same numbers
    _close(m2.fitted(), m1.fitted())
    # the G matrix transforms as T G T' with b_user = (b0 - b1 shift / a, b1 / a)
    G1 = _g_matrix(m1)
    T = np.array([[1.0, -shift / a], [0.0, 1.0 / a]])
    _close(_g_matrix(m2), T @ G1 @ T.T, rtol=1e-7)
    assert m2.is_singular == m1.is_singular


def _g_matrix(m):
    vc = m.varcorr
    sd = vc["sdcor"].to_numpy()
    return np.array([[sd[0] ** 2, sd[2] * sd[0] * sd[1]], [sd[2] * sd[0] * sd[1], sd[1] ** 2]])


@pytest.mark.parametrize("a", [1e-8, 1e-6, 1e4, 1e5, 1e8])
def test_fixed_and_random_slope_scaled(a):
    """The issue's cases: a slope covariate in other units is the same fit, with no false warnings."""
    df = _data("slopes")
    base = _fit("Reaction ~ Days + (Days | Subject)", df)
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # no spurious singular-fit or identifiability warning
        m = mfx.lmer("Reaction ~ X + (X | Subject)", df.assign(X=df.Days * a))
    _close(m.fixef.iloc[1] * a, base.fixef.iloc[1], rtol=1e-7)
    _close(m.sigma, base.sigma, rtol=1e-7)
    _close(m.objective, base.objective + 2 * np.log(a), rtol=1e-9, scale=abs(base.objective))
    assert m.fit.opt.messages == ()
    assert not m.is_singular
    _close(m.coef_table()["df"], base.coef_table()["df"], rtol=1e-6)      # Satterthwaite
    _close(m.coef_table()["statistic"], base.coef_table()["statistic"], rtol=1e-7)


def test_calendar_year_covariate():
    """``X = Days + 1000`` as a covariate such as a year: the same fit as Days (was 22 above the optimum)."""
    df = _data("slopes")
    base = _fit("Reaction ~ Days + (Days | Subject)", df)
    m = _fit("Reaction ~ X + (X | Subject)", df.assign(X=df.Days + 1000.0))
    _close(m.objective, base.objective, rtol=1e-10)
    _close(m.sigma, base.sigma, rtol=1e-7)
    _close(m.fitted(), base.fitted(), rtol=1e-8)
    _close(m.coef_table()["statistic"].iloc[1], base.coef_table()["statistic"].iloc[1], rtol=1e-6)


@pytest.mark.parametrize("shift", [1e8, 1e12])
def test_constant_offset(shift):
    df = _data("slopes")
    y = df.Reaction.to_numpy() + shift
    m2 = _fit("Reaction ~ Days + (Days | Subject)", df.assign(Reaction=y), offset=np.full(len(df), shift))
    m1 = _fit("Reaction ~ Days + (Days | Subject)", df.assign(Reaction=y - shift))
    _close(m2.objective, m1.objective, scale=abs(m1.objective))
    _close(m2.fixef, m1.fixef)
    _close(m2.sigma, m1.sigma)
    _close(m2.theta, m1.theta)


@pytest.mark.parametrize("k", [1e-6, 3.0, 1e6])
def test_prior_weights_scaled(k):
    df = _data("slopes")
    w = np.random.default_rng(3).uniform(0.5, 2.0, len(df))
    m1 = _fit("Reaction ~ Days + (Days | Subject)", df, weights=w)
    m2 = _fit("Reaction ~ Days + (Days | Subject)", df, weights=k * w)
    _close(m2.objective, m1.objective, scale=abs(m1.objective))   # the same distribution of y
    _close(m2.fixef, m1.fixef)
    _close(m2.vcov().to_numpy(), m1.vcov().to_numpy())
    _close(m2.sigma, m1.sigma * np.sqrt(k))        # residual variance sigma^2 / w_i
    _close(m2.varcorr["sdcor"].iloc[:-1], m1.varcorr["sdcor"].iloc[:-1])
    _close(m2.theta, m1.theta / np.sqrt(k))


def test_uncorrelated_slope_only_scales():
    """``(x || g)`` and ``(0 + x | g)``: only a scale of x is invariant; a scale gives the same fit."""
    df = _data("slopes")
    for formula in ("Reaction ~ X + (X || Subject)", "Reaction ~ X + (1 | Subject) + (0 + X | Subject)"):
        m1 = _fit(formula, df.assign(X=df.Days))
        m2 = _fit(formula, df.assign(X=df.Days * 1e6))
        _close(m2.sigma, m1.sigma, rtol=1e-7)
        _close(m2.fixef.iloc[1] * 1e6, m1.fixef.iloc[1], rtol=1e-7)


def test_downstream_methods_see_user_units():
    """Satterthwaite df, KR, profile, bootstrap, influence and predictions transform with the data."""
    df = _data("slopes")
    a, b = 1e-6, 1e9
    y2 = a * df.Reaction.to_numpy() + b
    y1 = (y2 - b) / a
    f = MODELS["slopes"][1]
    m2, m1 = _fit(f, df.assign(Reaction=y2)), _fit(f, df.assign(Reaction=y1))
    ct1, ct2 = m1.coef_table(), m2.coef_table()
    _close(ct2["df"], ct1["df"], rtol=1e-6)
    _close(ct2["statistic"].iloc[1], ct1["statistic"].iloc[1], rtol=1e-7)
    kr1, kr2 = m1.coef_table(ddf="kenward-roger"), m2.coef_table(ddf="kenward-roger")
    _close(kr2["se"], a * kr1["se"], rtol=1e-6)
    _close(kr2["df"], kr1["df"], rtol=1e-6)
    _close(m2.hatvalues(), m1.hatvalues(), rtol=1e-7)
    new = pd.DataFrame({"Days": [0, 4.5, 9], "Subject": ["308", "330", "999"]})
    _close(m2.predict(new, allow_new_levels=True), a * m1.predict(new, allow_new_levels=True) + b,
           rtol=1e-12)
    inf1, inf2 = m1.influence(level="Subject"), m2.influence(level="Subject")
    _close(inf2["cooksd"], inf1["cooksd"], rtol=1e-5)
    boot1 = m1.bootstrap(nsim=5, seed=2)
    boot2 = m2.bootstrap(nsim=5, seed=2)
    _close(boot2["sigma"], a * boot1["sigma"], rtol=1e-6)
    _close(boot2["Days"], a * boot1["Days"], rtol=1e-6)


def test_check_is_clean_in_any_units():
    """check() judges convergence and singularity on the standardized problem."""
    df = _data("slopes")
    for X in (df.Days * 1e8, df.Days * 1e-6, df.Days + 1000.0):
        rep = _fit("Reaction ~ X + (X | Subject)", df.assign(X=X)).check()
        table = rep.findings
        status = dict(zip(table["check"], table["status"]))
        assert status["convergence"] == "ok" and status["singular fit"] == "ok", table


# ------------------------------------------------------------------------------------- GLMMs
# The Laplace deviance carries PIRLS noise of ~1e-10 relative and the standard errors come from a
# finite-difference Hessian, so GLMM estimates are compared to 1e-6 (against lme4: 1e-3).
GLMM_RTOL = 1e-6


def _poisson_data():
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(30), 10)
    x = rng.uniform(0, 10, g.size)
    eta = 0.5 + 0.1 * x + rng.normal(0, 0.5, 30)[g] + rng.normal(0, 0.1, 30)[g] * x
    return pd.DataFrame({"y": rng.poisson(np.exp(eta)), "x": x, "g": g, "t": rng.uniform(1, 3, g.size)})


@pytest.mark.parametrize("a,shift", [(1e-6, 0.0), (1e8, 0.0), (1.0, 1000.0), (1e-3, 1e6)])
def test_glmm_covariate_units(a, shift):
    df = _poisson_data()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = mfx.glmer("y ~ x + (x | g)", df.assign(x=a * df.x + shift), family="poisson")
    base = _fit_glmm("y ~ x + (x | g)", df)
    _close(m.objective, base.objective, rtol=1e-9, scale=abs(base.objective))
    _close(m.fixef.iloc[1] * a, base.fixef.iloc[1], rtol=GLMM_RTOL)
    _close(m.se.iloc[1] * a, base.se.iloc[1], rtol=GLMM_RTOL)
    _close(m.varcorr["sdcor"].iloc[1] * a, base.varcorr["sdcor"].iloc[1], rtol=GLMM_RTOL)
    _close(m.fitted(), base.fitted(), rtol=GLMM_RTOL)
    assert m.is_singular == base.is_singular


@pytest.mark.parametrize("shift", [1e3, 1e8])
def test_glmm_offset_shift(shift):
    df = _poisson_data()
    m0 = _fit_glmm("y ~ x + (1 | g)", df, offset=np.log(df.t))
    m = _fit_glmm("y ~ x + (1 | g)", df, offset=np.log(df.t) + shift)
    _close(m.objective, m0.objective, rtol=1e-9, scale=abs(m0.objective))
    _close(m.fixef.iloc[1], m0.fixef.iloc[1], rtol=GLMM_RTOL)
    _close(m.fixef.iloc[0] + shift, m0.fixef.iloc[0], rtol=GLMM_RTOL, scale=shift)
    _close(m.fitted(), m0.fitted(), rtol=GLMM_RTOL)


def _fit_glmm(formula, data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mfx.glmer(formula, data, family="poisson", **kw)
