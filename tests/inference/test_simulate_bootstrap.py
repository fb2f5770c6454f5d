"""simulate() moments and reproducibility; the parametric bootstrap."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx


@pytest.fixture(scope="module")
def sleep_fit():
    return mfx.lmer("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))


def test_simulate_shape_seed_and_moments(sleep_fit):
    m = sleep_fit
    a, b = m.simulate(nsim=4, seed=7), m.simulate(nsim=4, seed=7)
    assert a.shape == (180, 4) and list(a.columns) == ["sim_1", "sim_2", "sim_3", "sim_4"]
    pd.testing.assert_frame_equal(a, b)
    sims = m.simulate(nsim=4000, seed=1).to_numpy()
    # unconditional: mean X beta, variance z' G z + sigma^2 at each row
    X = m.fit.design.X
    days = X[:, 1]
    G = m.varcorr
    v0, v1, c = G.loc[0, "vcov"], G.loc[1, "vcov"], G.loc[2, "vcov"]
    var = v0 + 2 * c * days + v1 * days ** 2 + m.sigma ** 2
    np.testing.assert_allclose(sims.mean(axis=1), X @ m.fit.beta, atol=4 * np.sqrt(var.max() / 4000))
    np.testing.assert_allclose(sims.var(axis=1), var, rtol=0.12)
    # conditional on the fitted modes: mean = fitted values, variance sigma^2
    cond = m.simulate(nsim=4000, seed=2, use_u=True).to_numpy()
    np.testing.assert_allclose(cond.mean(axis=1), m.fitted(), atol=4 * m.sigma / np.sqrt(4000))
    np.testing.assert_allclose(cond.var(axis=1), m.sigma ** 2, rtol=0.12)


def test_simulate_new_levels_get_their_own_effects(sleep_fit):
    new = pd.DataFrame({"Days": [0.0] * 4, "Subject": ["a", "a", "b", "308"]})
    sims = sleep_fit.simulate(nsim=3000, seed=3, newdata=new, use_u=True).to_numpy()
    cov = np.cov(sims)
    tau2 = sleep_fit.varcorr.loc[0, "vcov"]
    assert cov[0, 1] == pytest.approx(tau2, rel=0.15)          # same new subject: shared effect
    assert abs(cov[0, 2]) < 0.15 * tau2                          # different new subjects: independent
    assert sims[3].mean() == pytest.approx(sleep_fit.predict(new.iloc[3:]), abs=3)


def test_glmm_simulation_draws_from_the_family():
    cbpp = mfx.datasets.load("cbpp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = mfx.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp)
    sims = g.simulate(nsim=200, seed=4).to_numpy()
    trials = cbpp["size"].to_numpy()[:, None]
    assert np.all((sims >= 0) & (sims <= 1))
    np.testing.assert_allclose(sims * trials, np.round(sims * trials), atol=1e-9)


def test_bootstrap_replicates_intervals_and_speed(sleep_fit):
    reps = sleep_fit.bootstrap(nsim=200, seed=5)
    assert list(reps.columns) == ["sd_(Intercept)|Subject", "cor_Days.(Intercept)|Subject", "sd_Days|Subject",
                                  "sigma", "(Intercept)", "Days"]
    assert len(reps) == 200 and reps.notna().all().all()
    assert reps.attrs["refits_per_second"] > 50          # the benchmark reports ~250/s; tests only guard regressions
    pd.testing.assert_frame_equal(reps, sleep_fit.bootstrap(nsim=200, seed=5), check_exact=False, rtol=1e-8)
    # replicate means near the estimates (fixed effects unbiased; within 4 bootstrap SEs of the mean)
    for name in ("(Intercept)", "Days"):
        assert abs(reps[name].mean() - sleep_fit.fixef[name]) < 4 * reps[name].std() / np.sqrt(200)
    assert reps["Days"].std() == pytest.approx(sleep_fit.se["Days"], rel=0.2)
    ci = sleep_fit.confint(method="boot", nsim=200, seed=6)
    assert (ci["lower"] < ci["upper"]).all()
    assert ci.loc["Days", "lower"] < sleep_fit.fixef["Days"] < ci.loc["Days", "upper"]
    assert ci.loc["sigma", "lower"] < sleep_fit.sigma < ci.loc["sigma", "upper"]


def test_bootstrap_n_jobs_gives_the_same_replicates(sleep_fit):
    serial = sleep_fit.bootstrap(nsim=40, seed=11)
    parallel = sleep_fit.bootstrap(nsim=40, seed=11, n_jobs=2)
    pd.testing.assert_frame_equal(serial, parallel, check_exact=False, rtol=1e-10)
    ci = sleep_fit.confint(method="boot", nsim=40, seed=11, n_jobs=-1)
    assert ci.loc["Days", "lower"] == pytest.approx(serial["Days"].quantile(0.025))


def test_bootstrap_refits_agree_with_and_without_the_compiled_criterion(sleep_fit, monkeypatch):
    pytest.importorskip("numba")
    from mixedfx.core import fused
    compiled = sleep_fit.bootstrap(nsim=30, seed=3)
    monkeypatch.setattr(fused, "ENABLED", False)
    general = sleep_fit.bootstrap(nsim=30, seed=3)
    # the same optimum of each replicate: BOBYQA stops within ~1e-7 relative of it on either route
    pd.testing.assert_frame_equal(compiled, general, check_exact=False, rtol=2e-6, atol=1e-6)


def test_bootstrap_with_a_residual_model_keeps_the_offset_once():
    """Regression: with correlation= the bootstrap responses carried the offset twice."""
    ss = mfx.datasets.load("sleepstudy").assign(off=100.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mfx.lmer("Reaction ~ Days + offset(off) + (1 | Subject)", ss, correlation="ar1(Days | Subject)")
        b = m.bootstrap(nsim=20, seed=1, progress=False)
    est, se = m.fixef["(Intercept)"], m.se["(Intercept)"]
    assert abs(b["(Intercept)"].mean() - est) < 4 * se / np.sqrt(20) + se / 2
