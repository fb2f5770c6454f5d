"""What users do with a glmmTMB-style or ordinal result: predictions, simulation, residuals,
summaries, intervals, comparisons, save/load, refit/update, and clear refusals."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import mixedfx as mfx

SAL = mfx.datasets.load("salamanders")
WINE = mfx.datasets.load("wine")
F = "count ~ spp + mined + (1 | site)"


@pytest.fixture(scope="module")
def zinb():
    return mfx.glmer(F, SAL, family="nbinom2", zi="~ mined", data_name="salamanders")


@pytest.fixture(scope="module")
def hurdle():
    return mfx.glmer("count ~ spp + (1 | site)", SAL, family="truncated_poisson", zi="~ spp")


@pytest.fixture(scope="module")
def ordinal():
    return mfx.clmm("rating ~ temp + contact + (1 | judge)", WINE)


def test_prediction_types_from_their_definitions(zinb):
    eta = zinb.predict(type="link")
    mu = np.exp(eta)
    p = special.expit(zinb.predict(type="zlink"))
    np.testing.assert_allclose(zinb.predict(type="zprob"), p, rtol=1e-14)
    np.testing.assert_allclose(zinb.predict(type="conditional"), mu, rtol=1e-13)
    np.testing.assert_allclose(zinb.predict(type="response"), (1 - p) * mu, rtol=1e-13)
    np.testing.assert_allclose(zinb.fitted().to_numpy(), (1 - p) * mu, rtol=1e-13)
    np.testing.assert_allclose(zinb.predict(type="disp"), zinb.sigma, rtol=1e-14)
    with pytest.raises(ValueError, match="type must be one of"):
        zinb.predict(type="prob")


def test_hurdle_mean_is_the_truncated_mean(hurdle):
    mu = np.exp(hurdle.predict(type="link"))
    p = hurdle.predict(type="zprob")
    np.testing.assert_allclose(hurdle.predict(type="conditional"), mu / -np.expm1(-mu), rtol=1e-12)
    np.testing.assert_allclose(hurdle.predict(type="response"), (1 - p) * mu / -np.expm1(-mu), rtol=1e-12)


def test_new_data_and_new_levels(zinb):
    new = SAL.iloc[[0, 100, 200]]
    np.testing.assert_allclose(zinb.predict(new, type="response"), zinb.predict(type="response")[[0, 100, 200]],
                               rtol=1e-12)
    unseen = new.assign(site="a new site")
    with pytest.raises(mfx.DesignError, match="allow_new_levels"):
        zinb.predict(unseen)
    at_zero = zinb.predict(unseen, type="link", allow_new_levels=True)
    np.testing.assert_allclose(at_zero, zinb.predict(new, type="link", re_form="~0"), rtol=1e-13)


def test_pearson_residuals_use_the_zero_inflated_variance(zinb):
    y = SAL["count"].to_numpy()
    mu, p, phi = zinb.predict(type="conditional"), zinb.predict(type="zprob"), zinb.sigma
    mean = (1 - p) * mu
    var = (1 - p) * (mu + mu * mu / phi + mu * mu) - mean * mean
    np.testing.assert_allclose(zinb.residuals("pearson").to_numpy(), (y - mean) / np.sqrt(var), rtol=1e-12)
    np.testing.assert_allclose(zinb.residuals().to_numpy(), y - mean, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="deviance residuals are not defined"):
        zinb.residuals("deviance")


def test_simulation_matches_the_model_moments(zinb):
    sims = zinb.simulate(400, seed=7, use_u=True).to_numpy()
    assert sims.shape == (len(SAL), 400)
    np.testing.assert_array_equal(sims, zinb.simulate(400, seed=7, use_u=True).to_numpy())
    assert np.all(sims == np.round(sims)) and sims.min() >= 0
    mean = zinb.predict(type="response")
    # with the fitted modes (use_u=True) each row's draws have the model's mean; pooled z-test
    z = (sims.mean(axis=1) - mean) / (sims.std(axis=1, ddof=1) / np.sqrt(400) + 1e-12)
    assert abs(np.mean(z)) < 4 / np.sqrt(len(z)) * 3
    zero_rate = np.mean(sims == 0)
    expected = np.mean(zinb.predict(type="zprob") + (1 - zinb.predict(type="zprob"))
                       * stats.nbinom.pmf(0, zinb.sigma, zinb.sigma / (zinb.sigma + zinb.predict(type="conditional"))))
    assert zero_rate == pytest.approx(expected, abs=0.01)


def test_summary_has_the_glmmtmb_blocks(zinb):
    text = str(zinb.summary())
    for piece in ("Conditional model:", "Zero-inflation model:", "Dispersion parameter for nbinom2 family",
                  "minedno", "site"):
        assert piece in text
    assert "Zero-inflation" in zinb._repr_html_()


def test_wald_intervals(zinb):
    ci = zinb.confint(level=0.9)
    z = stats.norm.ppf(0.95)
    se = np.sqrt(np.diag(zinb.vcov_all.to_numpy()))
    j = list(ci.index).index("minedno")
    np.testing.assert_allclose(ci.loc["minedno", "upper"], zinb.fixef["minedno"] + z * se[j])
    assert "zi~minedno" in ci.index and "disp~(Intercept)" in ci.index
    with pytest.raises(NotImplementedError, match="method='wald' or 'profile'"):
        zinb.confint(method="boot")


def test_t_df_interval_is_transformed_from_log_df():
    m = mfx.glmer("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"), family="t")
    lo, hi = m.confint().loc["df"]
    se = np.sqrt(m.vcov_all.loc["psi~df", "psi~df"])
    z = stats.norm.ppf(0.975)
    assert lo == pytest.approx(np.exp(np.log(m.family_params["df"]) - z * se))
    assert hi == pytest.approx(np.exp(np.log(m.family_params["df"]) + z * se))


def test_likelihood_ratio_test_of_zero_inflation(zinb):
    m0 = mfx.glmer(F, SAL, family="nbinom2")
    table = mfx.anova(nb=m0, zinb=zinb)
    assert list(table["npar"]) == [10, 12]
    chisq = 2 * (zinb.loglik - m0.loglik)
    assert table["Chisq"].iloc[1] == pytest.approx(chisq)
    assert table["p"].iloc[1] == pytest.approx(stats.chi2.sf(chisq, 2))


def test_save_load_round_trip(tmp_path, zinb, ordinal):
    for m in (zinb, ordinal):
        path = tmp_path / "fit.json"
        m.save(path)
        back = mfx.load(path)
        assert back.objective == m.objective
        new = SAL.head(7) if m is zinb else WINE.head(7)
        if m is zinb:
            for t in ("link", "response", "zprob", "disp", "conditional"):
                np.testing.assert_array_equal(back.predict(new, type=t), m.predict(new, type=t))
            pd.testing.assert_frame_equal(back.confint(), m.confint())
        else:
            pd.testing.assert_frame_equal(back.predict(new), m.predict(new))
            pd.testing.assert_series_equal(back.thresholds, m.thresholds)
        with pytest.raises(AttributeError, match="no data"):
            back.fitted()


def test_refit_and_update(zinb):
    y = zinb.simulate(1, seed=3)["sim_1"]
    r = zinb.refit(y)
    direct = mfx.glmer(F, SAL.assign(count=y.to_numpy()), family="nbinom2", zi="~ mined")
    assert r.objective == pytest.approx(direct.objective, rel=1e-8)
    u = zinb.update(zi="~ 1")
    assert list(u.fixef_zi.index) == ["(Intercept)"]
    assert zinb.update(start=zinb).objective == pytest.approx(zinb.objective, rel=1e-10)


def test_clear_refusals(zinb):
    for call in (zinb.icc, zinb.r2, zinb.influence, zinb.hatvalues, zinb.profile, zinb.bootstrap,
                 zinb.shrinkage, zinb.marginal_effects):
        with pytest.raises(NotImplementedError, match="glmmTMB-style models"):
            call()
    assert "<h2>Shrinkage</h2>" in zinb.report()


def test_fit_does_not_depend_on_units():
    """Rescaling and shifting a covariate of every part gives the equivalent fit."""
    d = mfx.datasets.load("betasim")
    m = mfx.glmer("y ~ x + (1 | g)", d, family="beta", disp="~ x")
    d2 = d.assign(x=1000.0 * d["x"] + 5e4)
    m2 = mfx.glmer("y ~ x + (1 | g)", d2, family="beta", disp="~ x")
    assert m2.objective == pytest.approx(m.objective, rel=1e-9)
    assert m2.fixef["x"] * 1000 == pytest.approx(m.fixef["x"], rel=1e-6)
    assert m2.fixef_disp["x"] * 1000 == pytest.approx(m.fixef_disp["x"], rel=1e-5)
    np.testing.assert_allclose(m2.fitted(), m.fitted(), rtol=1e-6)


def test_caller_data_are_not_modified(ordinal):
    before = WINE.copy()
    mfx.clmm("rating ~ temp + (1 | judge)", WINE)
    pd.testing.assert_frame_equal(WINE, before)


def test_ordinal_predictions_and_simulation(ordinal):
    P = ordinal.predict(type="prob")
    assert list(P.columns) == ["1", "2", "3", "4", "5"]
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-12)
    theta, eta = ordinal.thresholds.to_numpy(), ordinal.predict(type="link")
    np.testing.assert_allclose(P["1"], special.expit(theta[0] - eta), rtol=1e-12)
    np.testing.assert_allclose(ordinal.predict(type="mean"), P.to_numpy() @ np.arange(1, 6), rtol=1e-12)
    assert list(ordinal.predict(type="class")) == list(np.array(P.columns)[P.to_numpy().argmax(axis=1)])
    codes = WINE["rating"].cat.codes.to_numpy()
    np.testing.assert_allclose(ordinal.fitted(), P.to_numpy()[np.arange(len(codes)), codes], rtol=1e-12)
    sims = ordinal.simulate(300, seed=2, use_u=True)
    assert str(sims["sim_1"].dtype) == "category"
    freq = np.array([(sims == lev).to_numpy().mean() for lev in P.columns])
    np.testing.assert_allclose(freq, P.to_numpy().mean(axis=0), atol=0.02)
    text = str(ordinal.summary())
    assert "Threshold coefficients:" in text and "Cumulative Link Mixed Model" in text


def test_quadrature_needs_one_scalar_term():
    with pytest.raises(ValueError, match="single scalar random-effect term"):
        mfx.clmm("rating ~ temp + (1 | judge) + (1 | bottle)", WINE, nagq=5)


def test_warm_start_from_a_result(zinb):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = mfx.glmer(F, SAL, family="nbinom2", zi="~ mined", start=zinb)
    assert again.objective == pytest.approx(zinb.objective, abs=1e-8)
    assert again.fit.opt.nfev < zinb.fit.opt.nfev


def test_profile_interval_ends_are_where_the_likelihood_ratio_reaches_the_critical_value():
    """Oracle: refit with the coefficient fixed through an offset (the public API, another path)."""
    m = mfx.glmer("count ~ spp + mined + (1 | site)", SAL, family="poisson", zi="~ mined")
    ci = m.confint(method="profile", parm=["minedno", "zi~minedno", "sd_(Intercept)|site"])
    wald = m.confint()
    mn = (SAL["mined"] == "no").to_numpy(float)
    crit = stats.chi2.ppf(0.95, 1)
    for v in ci.loc["minedno"]:
        fixed = mfx.glmer("count ~ spp + (1 | site)", SAL.assign(off=v * mn), family="poisson", zi="~ mined",
                          offset="off")
        assert 2 * (m.loglik - fixed.loglik) == pytest.approx(crit, abs=2e-5)
    for v in ci.loc["zi~minedno"]:
        fixed = mfx.glmer("count ~ spp + mined + (1 | site)", SAL.assign(zoff=v * mn), family="poisson",
                          zi="~ 1 + offset(zoff)")
        assert 2 * (m.loglik - fixed.loglik) == pytest.approx(crit, abs=2e-5)
    # the profile is asymmetric where the likelihood is: not the Wald interval
    assert ci.loc["minedno", "upper"] - m.fixef["minedno"] != pytest.approx(
        m.fixef["minedno"] - ci.loc["minedno", "lower"], rel=1e-2)
    assert wald.loc["minedno", "lower"] != pytest.approx(ci.loc["minedno", "lower"], rel=1e-3)
    sd = m.varcorr["sdcor"].iloc[0]
    assert ci.loc["sd_(Intercept)|site", "lower"] < sd < ci.loc["sd_(Intercept)|site", "upper"]


def test_profile_of_a_zero_inflation_coefficient_with_a_plateau(zinb):
    """The zero-inflation probability of unmined sites can go to 0 at little cost: the profile of
    its coefficient levels off below the critical value (lower end -inf); the upper end is where
    a refit with the coefficient fixed (an offset) is worse by the chi-square quantile."""
    ci = zinb.confint(method="profile", parm="zi~minedno")
    assert ci.loc["zi~minedno", "lower"] == -np.inf
    v = ci.loc["zi~minedno", "upper"]
    mn = (SAL["mined"] == "no").to_numpy(float)
    fixed = mfx.glmer(F, SAL.assign(zoff=v * mn), family="nbinom2", zi="~ 1 + offset(zoff)")
    assert 2 * (zinb.loglik - fixed.loglik) == pytest.approx(stats.chi2.ppf(0.95, 1), abs=2e-5)
