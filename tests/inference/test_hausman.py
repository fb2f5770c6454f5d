"""Hausman and Mundlak tests of random vs fixed group effects (tests/reference/hausman.json: plm's
within model and H computed in R from plm's within fit and lme4's REML fixef/vcov)."""
from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import mixedfx as mfx
from mixedfx.design.within_between import within_between
from mixedfx.inference.hausman import hausman

with open(os.path.join(os.path.dirname(__file__), "..", "reference", "hausman.json")) as _f:
    REF = {t["id"]: t for t in json.load(_f)["tests"]}


def _fit(formula, data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mfx.lmer(formula, data, **kw)


@pytest.fixture(scope="module")
def fits():
    return {"dietox": _fit(REF["dietox"]["lmer"], mfx.datasets.load("dietox")),
            "longsim": _fit(REF["longsim"]["lmer"], mfx.datasets.load("longsim"))}


def _hausman(m, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return hausman(m, **kw)


@pytest.mark.parametrize("case", ["dietox", "longsim"])
def test_within_estimator_matches_plm(fits, case):
    ref = REF[case]
    res = _hausman(fits[case])
    assert list(res.coef_fe.index) == ref["within_vars"]
    np.testing.assert_allclose(res.coef_fe, ref["fe_coef"], rtol=1e-8)
    np.testing.assert_allclose(res.vcov_fe, ref["fe_vcov"], rtol=1e-8)
    np.testing.assert_allclose(res.sigma2_fe, ref["fe_sigma2"], rtol=1e-8)
    assert res.df_resid == ref["fe_df_resid"]
    # the RE side is the mixed model (lme4's REML optimum, to the optimizers' agreement)
    np.testing.assert_allclose(res.coef_re, ref["re_coef"], rtol=1e-6)
    np.testing.assert_allclose(res.vcov_re, ref["re_vcov"], rtol=1e-5)


@pytest.mark.parametrize("case", ["dietox", "longsim"])
def test_statistic_matches_r(fits, case):
    ref = REF[case]
    res = _hausman(fits[case])
    assert res.df == ref["df"]
    np.testing.assert_allclose(res.statistic, ref["statistic"], rtol=1e-5)
    np.testing.assert_allclose(res.pvalue, ref["p_value"], rtol=1e-4)
    np.testing.assert_allclose(np.sort(res.eigenvalues), np.sort(ref["eigen_vdiff"]), rtol=1e-4, atol=1e-8)


def test_not_positive_definite_difference_warns(fits):
    # dietox: the pig means of Time barely vary; V_FE - V_RE has a tiny negative eigenvalue
    with pytest.warns(UserWarning, match="not positive semi-definite"):
        res = hausman(fits["dietox"])
    assert res.df == 1 and res.between_only == ("(Intercept)", "CuCu035", "CuCu175")


def test_within_equals_group_dummy_ols(fits):
    # brute force: OLS on the covariates plus one dummy per group (the LSDV form of the within estimator)
    m = fits["longsim"]
    d = m.fit.design
    codes = d.blocks[0].codes
    D = np.eye(codes.max() + 1)[codes]
    A = np.column_stack([d.X[:, [1, 2]], D])                 # t, x and the id dummies
    beta, rss, *_ = np.linalg.lstsq(A, d.y, rcond=None)
    s2 = float(rss[0]) / (d.n - A.shape[1])
    V = s2 * np.linalg.inv(A.T @ A)[:2, :2]
    res = _hausman(m)
    np.testing.assert_allclose(res.coef_fe, beta[:2], rtol=1e-8)
    np.testing.assert_allclose(res.vcov_fe, V, rtol=1e-7)
    d_ = res.coef_fe.to_numpy() - res.coef_re.to_numpy()
    H = d_ @ np.linalg.solve(res.vcov_fe.to_numpy() - res.vcov_re.to_numpy(), d_)
    np.testing.assert_allclose(res.statistic, H, rtol=1e-10)


def test_mundlak_method_and_within_between(fits):
    m = fits["longsim"]
    res = _hausman(m)
    mun = hausman(m, method="mundlak")
    # Mundlak's regression reproduces the within estimator exactly
    np.testing.assert_allclose(mun.coef_re, res.coef_fe, rtol=1e-6)
    # ... and equals the lmer fit of the augmented data made by within_between
    wb = within_between(mfx.datasets.load("longsim"), ["t", "x"], group="id")
    m2 = _fit("y ~ t + x + group + t_between + x_between + (1 | id)", wb)
    g = m2.fixef[["t_between", "x_between"]].to_numpy()
    V = m2.vcov().loc[["t_between", "x_between"], ["t_between", "x_between"]].to_numpy()
    np.testing.assert_allclose(mun.coef_fe, g, rtol=1e-5)
    np.testing.assert_allclose(mun.statistic, g @ np.linalg.solve(V, g), rtol=1e-5)
    assert mun.df == 2 and mun.method == "mundlak"
    # the within/between parametrization: x_within's coefficient is the within effect
    m3 = _fit("y ~ t_within + x_within + t_between + x_between + group + (1 | id)", wb)
    np.testing.assert_allclose(m3.fixef[["t_within", "x_within"]], res.coef_fe, rtol=1e-5)
    contextual = m3.fixef[["t_between", "x_between"]].to_numpy() - m3.fixef[["t_within", "x_within"]].to_numpy()
    np.testing.assert_allclose(contextual, mun.coef_fe, rtol=1e-4)


def test_result_presentation(fits):
    res = _hausman(fits["longsim"])
    text = repr(res)
    assert "Hausman test" in text and "group: id" in text and "df = 2" in text and "groupB" in text
    tab = res.table()
    assert list(tab.columns) == ["FE (within)", "RE (mixed)", "difference", "se(diff)"]
    assert list(tab.index) == ["t", "x"]
    with pytest.raises(AttributeError):
        res.statistic = 1.0
    assert "contextual" in repr(hausman(fits["longsim"], method="mundlak"))


def test_errors():
    ss = mfx.datasets.load("sleepstudy")
    with pytest.raises(ValueError, match="random slopes for Subject"):
        hausman(_fit("Reaction ~ Days + (Days | Subject)", ss))
    with pytest.raises(ValueError, match="no fixed-effects column varies within"):
        hausman(_fit("Yield ~ 1 + (1 | Batch)", mfx.datasets.load("dyestuff")))
    pen = mfx.datasets.load("penicillin")
    pen = pen.assign(x=np.random.default_rng(1).normal(size=len(pen)))
    m = _fit("diameter ~ x + (1 | plate) + (1 | sample)", pen)
    with pytest.raises(ValueError, match="group='plate'"):
        hausman(m)
    with pytest.raises(ValueError, match="not a grouping factor"):
        hausman(m, group="nope")
    with pytest.warns(UserWarning, match="other grouping factors"):
        assert hausman(m, group="sample").df == 1
    with pytest.raises(ValueError, match="method must be"):
        hausman(m, group="plate", method="robust")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        glmm = mfx.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", mfx.datasets.load("cbpp"),
                         family="binomial")
    with pytest.raises(NotImplementedError, match="linear mixed models"):
        hausman(glmm)
    with pytest.raises(TypeError, match="fitted model"):
        hausman(pd.DataFrame())


def test_loaded_fit_has_no_data(fits, tmp_path):
    fits["longsim"].save(tmp_path / "m.json")
    with pytest.raises(ValueError, match="carries no data"):
        hausman(mfx.load(tmp_path / "m.json"))


def _panel(rng, G, T, corr):
    a = rng.normal(size=G)                                   # group-level part of x
    x = (a[:, None] + rng.normal(size=(G, T))).ravel()
    u = corr * a + np.sqrt(1 - corr ** 2) * rng.normal(size=G)
    g = np.repeat(np.arange(G), T)
    y = 1.0 + 0.5 * x + u[g] + rng.normal(size=G * T)
    return pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g)})


@pytest.mark.slow
def test_simulation_size_and_power():
    rng = np.random.default_rng(20261130)
    p_null, p_alt = [], []
    for _ in range(200):
        p_null.append(_hausman(_fit("y ~ x + (1 | g)", _panel(rng, 40, 5, 0.0))).pvalue)
    for _ in range(60):
        p_alt.append(_hausman(_fit("y ~ x + (1 | g)", _panel(rng, 60, 5, 0.9))).pvalue)
    p_null = np.array(p_null)
    # under H0 the p-values are ~uniform (KS) and the 5% test rejects at ~5% (binomial 99.9% band)
    assert stats.kstest(p_null, "uniform").pvalue > 1e-3
    lo, hi = stats.binom.ppf([0.0005, 0.9995], len(p_null), 0.05) / len(p_null)
    assert lo <= np.mean(p_null < 0.05) <= hi
    # u correlated with the group mean of x: H rejects
    assert np.mean(np.array(p_alt) < 0.05) > 0.9


def test_balanced_design_has_nothing_to_test():
    """sleepstudy: every subject has Days 0..9, so the within and mixed estimates of Days coincide and
    the REML V_FE - V_RE is rounding noise (8e-10 against 0.65).  It used to report chisq = 3.6e-20
    (REML) and 7e-27 (ML) on 1 df, p = 1, from a difference of 5e-15; method='mundlak' already
    refused (the Days means are all equal)."""
    ss = mfx.datasets.load("sleepstudy")
    for reml in (True, False):
        m = _fit("Reaction ~ Days + (1 | Subject)", ss, reml=reml)
        with pytest.raises(ValueError, match="estimates of Days coincide"):
            hausman(m)
        with pytest.raises(ValueError, match="group means of Days are collinear"):
            hausman(m, method="mundlak")
