"""Parametric bootstrap of GLMMs: replicates, intervals, bootstrap LRTs, failures, n_jobs."""
from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx.inference import bootstrap_glmm
from mixedfx.inference.bootstrap_glmm import RefitFailureWarning

CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


@pytest.fixture(scope="module")
def cbpp():
    df = mfx.datasets.load("cbpp")
    return df, quiet(mfx.glmer, CBPP, df, family="binomial")


@pytest.fixture(scope="module")
def gamma_data():
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(10), 6)
    x = rng.standard_normal(60)
    mu = np.exp(1 + 0.5 * x + rng.normal(0, 0.4, 10)[g])
    return pd.DataFrame({"y": rng.gamma(4, mu / 4), "c": rng.poisson(mu), "x": x, "g": g.astype(str)})


def test_replicates_names_reproducibility_and_n_jobs(cbpp):
    _, m = cbpp
    reps = m.bootstrap(nsim=8, seed=3)
    assert list(reps.columns) == ["sd_(Intercept)|herd", "(Intercept)", "period2", "period3", "period4"]
    assert list(reps.index) == list(range(8)) and reps.notna().all().all()
    assert reps.attrs["n_failed"] == 0 and reps.attrs["failed"] == {}
    assert (reps["sd_(Intercept)|herd"] >= 0).all()
    # simulate-then-refit: each row is the fit to the simulated response of the same seed
    y1 = m.simulate(nsim=8, seed=3)["sim_2"]
    one = quiet(m.refit, y1)
    np.testing.assert_allclose(reps.loc[1, list(m.fixef.index)], one.fixef, atol=1e-5)
    assert reps.loc[1, "sd_(Intercept)|herd"] == pytest.approx(one.varcorr["sdcor"].iloc[0], abs=1e-5)
    pd.testing.assert_frame_equal(reps, m.bootstrap(nsim=8, seed=3, n_jobs=2), check_exact=True)
    assert not reps.equals(m.bootstrap(nsim=8, seed=4))
    cond = m.bootstrap(nsim=8, seed=3, use_u=True)
    assert not cond.equals(reps) and cond.shape == reps.shape


def test_boot_confint_is_the_percentile_interval(cbpp, capsys):
    _, m = cbpp
    reps = m.bootstrap(nsim=10, seed=8, progress=True)
    err = capsys.readouterr().err
    assert "bootstrap" in err and "10/10" in err            # the bar counts finished refits
    ci = m.confint(method="boot", nsim=10, seed=8, level=0.9)
    assert list(ci.index) == list(reps.columns)
    np.testing.assert_allclose(ci["lower"], reps.quantile(0.05), rtol=1e-12)
    np.testing.assert_allclose(ci["upper"], reps.quantile(0.95), rtol=1e-12)
    sub = m.confint(method="boot", nsim=10, seed=8, parm=["period2"])
    assert list(sub.index) == ["period2"]


def test_failed_refits_are_counted_dropped_and_independent_of_n_jobs(cbpp, monkeypatch):
    _, m = cbpp
    real = bootstrap_glmm.fit_glmm
    trials = m.fit.design.weights

    def flaky(design, family, **kwargs):
        k = int(round(np.sum(design.y * trials)))          # total simulated cases: a replicate's fingerprint
        if k % 4 == 0:
            raise FloatingPointError("simulated failure")
        fit = real(design, family, **kwargs)
        if k % 4 == 1:
            fit = replace(fit, opt=replace(fit.opt, messages=("maxeval reached",)))
        return fit

    monkeypatch.setattr(bootstrap_glmm, "fit_glmm", flaky)
    sims = m.simulate(nsim=12, seed=9).to_numpy()
    totals = np.round(sims.T @ trials).astype(int)
    bad = {s for s in range(12) if totals[s] % 4 in (0, 1)}
    assert 0 < len(bad) < 12
    with pytest.warns(RefitFailureWarning, match=f"{len(bad)} of 12 bootstrap refits failed"):
        reps = m.bootstrap(nsim=12, seed=9)
    assert set(reps.attrs["failed"]) == bad and reps.attrs["n_failed"] == len(bad)
    assert list(reps.index) == [s for s in range(12) if s not in bad]
    assert all(("simulated failure" in r) == (totals[s] % 4 == 0) for s, r in reps.attrs["failed"].items())
    assert all("not converged" in r for s, r in reps.attrs["failed"].items() if totals[s] % 4 == 1)
    with pytest.warns(RefitFailureWarning):
        parallel = m.bootstrap(nsim=12, seed=9, n_jobs=2)
    pd.testing.assert_frame_equal(reps, parallel, check_exact=True)
    assert parallel.attrs["failed"] == reps.attrs["failed"]


def test_dispersion_families_report_sigma(gamma_data):
    m = quiet(mfx.glmer, "y ~ x + (1 | g)", gamma_data, family="Gamma", link="log")
    reps = m.bootstrap(nsim=6, seed=1)
    assert list(reps.columns) == ["sd_(Intercept)|g", "sigma", "(Intercept)", "x"]
    assert reps.notna().all().all() and (reps["sigma"] > 0).all()
    # the replicates scatter around the estimates (6 draws: within 4 Wald SEs)
    assert abs(reps["x"].mean() - m.fixef["x"]) < 4 * m.se["x"]
    assert reps["sigma"].median() == pytest.approx(m.sigma, rel=0.5)


def test_nagq0_replicates_are_optimized(cbpp):
    """nAGQ = 0 refits optimize theta (with beta by PIRLS) from the fit's theta: a replicate equals
    a fresh fit to the simulated proportions with the trials as weights."""
    df, _ = cbpp
    m = quiet(mfx.glmer, CBPP, df, family="binomial", nagq=0)
    reps = m.bootstrap(nsim=3, seed=1)
    y = m.simulate(nsim=3, seed=1)["sim_1"].to_numpy()
    fresh = quiet(mfx.glmer, "p ~ period + (1 | herd)", df.assign(p=y), family="binomial",
                  weights=df["size"].to_numpy(), nagq=0)
    np.testing.assert_allclose(reps.loc[0, list(m.fixef.index)], fresh.fixef, atol=1e-4)
    assert reps.loc[0, "sd_(Intercept)|herd"] == pytest.approx(fresh.varcorr["sdcor"].iloc[0], abs=1e-4)


@pytest.mark.slow
def test_quadrature_fits_refit_with_their_nagq(cbpp):
    df, _ = cbpp
    m = quiet(mfx.glmer, CBPP, df, family="binomial", nagq=7)
    reps = m.bootstrap(nsim=6, seed=2)
    y = m.simulate(nsim=6, seed=2)["sim_1"]
    direct = quiet(m.refit, y)
    assert direct.nagq == 7
    np.testing.assert_allclose(reps.loc[0, list(m.fixef.index)], direct.fixef, atol=1e-5)


def test_bootstrap_lrt_for_glmms(cbpp):
    df, m = cbpp
    # a useless covariate (LRT 0.56): the bootstrap p-value is not small, and the same with 2 processes
    df = df.assign(z=np.random.default_rng(1).standard_normal(len(df)))
    m1 = quiet(mfx.glmer, CBPP + " + z", df, family="binomial")
    a = mfx.anova(m, m1, method="bootstrap", nsim=9, seed=3)
    b = mfx.anova(m, m1, method="bootstrap", nsim=9, seed=3, n_jobs=2)
    assert a["p"].iloc[1] > 0.1
    assert a["p"].iloc[1] == b["p"].iloc[1]
    # p = (1 + #{LRT* >= LRT}) / (nsim + 1) from the refits to responses simulated from the small model
    Y = m.simulate(nsim=9, seed=3).to_numpy()
    lrt = [quiet(m.refit, Y[:, s]).objective - quiet(m1.refit, Y[:, s]).objective for s in range(9)]
    assert a["p"].iloc[1] == pytest.approx((1 + np.sum(np.array(lrt) >= a["Chisq"].iloc[1] - 1e-10)) / 10)


@pytest.mark.slow
def test_bootstrap_lrt_for_a_strong_glmm_effect(cbpp):
    df, m = cbpp
    m0 = quiet(mfx.glmer, "cbind(incidence, size - incidence) ~ 1 + (1 | herd)", df, family="binomial")
    tab = mfx.anova(m0, m, method="bootstrap", nsim=49, seed=1)
    assert tab["Chisq"].iloc[1] > 20                             # LRT ~25 on 3 df: no replicate reaches it
    assert tab["p"].iloc[1] == pytest.approx(1 / 50)


def test_bootstrap_lrt_rejects_mixed_kinds(cbpp, gamma_data):
    df = gamma_data
    g0 = quiet(mfx.glmer, "c ~ 1 + (1 | g)", df, family="poisson")
    g1 = quiet(mfx.glmer, "c ~ x + (1 | g)", df, family="poisson", link="sqrt")
    with pytest.raises(ValueError, match="one family and link"):
        mfx.anova(g0, g1, method="bootstrap", nsim=3)


@pytest.mark.slow
def test_lmm_bootstrap_lrt_is_unchanged_by_processes():
    df = mfx.datasets.load("sleepstudy")
    df = df.assign(z=np.random.default_rng(1).standard_normal(len(df)))
    m0 = quiet(mfx.lmer, "Reaction ~ Days + (1 | Subject)", df, reml=False)
    m1 = quiet(mfx.lmer, "Reaction ~ Days + z + (1 | Subject)", df, reml=False)
    a = mfx.anova(m0, m1, method="bootstrap", nsim=20, seed=2)
    b = mfx.anova(m0, m1, method="bootstrap", nsim=20, seed=2, n_jobs=2)
    assert a["p"].iloc[1] == b["p"].iloc[1]
    Y = m0.simulate(nsim=20, seed=2).to_numpy()
    lrt = [quiet(m0.refit, Y[:, s]).objective - quiet(m1.refit, Y[:, s]).objective for s in range(20)]
    assert a["p"].iloc[1] == pytest.approx((1 + np.sum(np.array(lrt) >= a["Chisq"].iloc[1] - 1e-10)) / 21)


@pytest.mark.slow
def test_cbpp_bootstrap_distribution_agrees_with_wald(cbpp):
    """200 replicates: SDs of the fixed effects near the Wald SEs (Monte Carlo SE of an SD ~5%), means
    near the estimates.  The means are not unbiased: the ML estimates of this logistic model are
    biased away from zero (1000 replicates: period4 -0.047 = 0.11 SE, 3.3 Monte Carlo SEs; lme4's
    bootMer: -0.078), so a mean may differ by that bias (at most 0.15 SE) plus 3 Monte Carlo SEs."""
    _, m = cbpp
    reps = m.bootstrap(nsim=200, seed=42, n_jobs=2)
    assert reps.attrs["n_failed"] == 0
    fe = reps[list(m.fixef.index)]
    np.testing.assert_allclose(fe.std(), m.se, rtol=0.15)
    assert np.all(np.abs(fe.mean() - m.fixef) < 0.15 * m.se + 3 * fe.std() / np.sqrt(200))
    assert np.all(np.abs(fe.median() - m.fixef) < 4 * 1.25 * m.se / np.sqrt(200))
    sd = reps["sd_(Intercept)|herd"]
    assert sd.median() == pytest.approx(m.varcorr["sdcor"].iloc[0], rel=0.2)
    ci = m.confint(method="boot", nsim=200, seed=42)
    assert (ci["lower"] < m.confint(method="wald").reindex(ci.index)["upper"].fillna(np.inf)).all()


@pytest.mark.slow
def test_negative_binomial_bootstrap_re_estimates_the_shape(gamma_data):
    rng = np.random.default_rng(3)
    df = gamma_data.assign(nb=rng.negative_binomial(2, 2 / (2 + np.exp(1 + 0.5 * gamma_data["x"]))))
    m = quiet(mfx.glmer, "nb ~ x + (1 | g)", df, family="negbin")
    reps = m.bootstrap(nsim=6, seed=1)
    assert list(reps.columns) == ["sd_(Intercept)|g", "shape", "(Intercept)", "x"]
    assert reps["shape"].nunique() == 6            # one estimate per replicate, not the fit's
    y = m.simulate(nsim=6, seed=1)["sim_1"]
    refit = quiet(mfx.glmer, "nb ~ x + (1 | g)", df.assign(nb=y.to_numpy()), family="negbin")
    assert reps.loc[0, "shape"] == pytest.approx(refit.family.theta, rel=1e-3)
    np.testing.assert_allclose(reps.loc[0, ["(Intercept)", "x"]], refit.fixef, atol=1e-4)


@pytest.mark.parametrize("bad", [0, -1, 2.5, "a", True, None])
def test_nsim_must_be_a_positive_whole_number(cbpp, bad):
    """nsim=2.5 was truncated to 2 and "a" raised int()'s message (GLMM); an LMM's nsim=0 returned an
    empty table, -1 and 2.5 numpy errors; anova(method="bootstrap", nsim=0) gave p = NaN silently."""
    g = cbpp[1]
    m = mfx.lmer("Reaction ~ Days + (1 | Subject)", mfx.datasets.load("sleepstudy"))
    m0 = mfx.lmer("Reaction ~ 1 + (1 | Subject)", mfx.datasets.load("sleepstudy"))
    for call in (lambda: g.bootstrap(bad), lambda: m.bootstrap(bad), lambda: m.confint(method="boot", nsim=bad),
                 lambda: quiet(mfx.anova, m0, m, method="bootstrap", nsim=bad)):
        with pytest.raises(ValueError, match="nsim must be a positive whole number"):
            call()
    assert len(m.bootstrap(np.int64(3), seed=1)) == len(m.bootstrap(3.0, seed=1)) == 3


def test_bootstrap_lrt_gives_no_p_value_for_models_with_equal_parameter_counts():
    """(1 | Subject) vs (0 + Days | Subject): 4 parameters each, not nested.  The chi-square column
    has no p (Df 0, as lme4's NA); the bootstrap path used to simulate anyway and report p = 0.167."""
    ss = mfx.datasets.load("sleepstudy")
    a = mfx.lmer("Reaction ~ Days + (1 | Subject)", ss)
    b = mfx.lmer("Reaction ~ Days + (0 + Days | Subject)", ss)
    with pytest.warns(UserWarning, match="same number of parameters"):
        tab = mfx.anova(a, b, method="bootstrap", nsim=5, seed=1, refit=False)
    assert tab["Df"].iloc[1] == 0 and np.isnan(tab["p"]).all()


@pytest.mark.parametrize("bad", ["a", 1.5, True])
def test_n_jobs_must_be_a_whole_number(cbpp, bad):
    """n_jobs="a" raised "'<' not supported between str and int", 1.5 ran as 1."""
    with pytest.raises(ValueError, match="n_jobs must be a whole number"):
        cbpp[1].bootstrap(2, seed=1, n_jobs=bad)
    with pytest.raises(ValueError, match="n_jobs must be a whole number"):
        cbpp[1].influence(level="herd", n_jobs=bad)
