"""Simulation-based (DHARMa) scaled residuals: definitions, tests, calibration, power."""
from __future__ import annotations

import json
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import mixedfx as mfx
from mixedfx.diagnostics.simulated_residuals import SimulatedResiduals, SimulationTest, _bh, scaled_residuals

REF = json.loads((pathlib.Path(__file__).parents[1] / "reference" / "dharma_htest.json").read_text())


def _counts_data(seed, n_groups=40, per=25, sd_b=0.4, kind="poisson"):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), per)
    x = rng.normal(size=g.size)
    mu = np.exp(0.6 + 0.4 * x + rng.normal(0, sd_b, n_groups)[g])
    if kind == "poisson":
        y = rng.poisson(mu)
    elif kind == "negbin":                      # size 1: Var = mu + mu^2
        y = rng.negative_binomial(1.0, 1.0 / (1.0 + mu))
    elif kind == "zip":                         # 30% structural zeros
        y = np.where(rng.random(g.size) < 0.3, 0, rng.poisson(mu))
    return pd.DataFrame({"y": y, "x": x, "g": g})


@pytest.fixture(scope="module")
def poisson_fit():
    return mfx.glmer("y ~ x + (1 | g)", _counts_data(1), family="poisson")


# ------------------------------------------------------------------ definitions
def test_continuous_residual_is_fraction_of_simulations_below():
    rng = np.random.default_rng(3)
    sims = rng.normal(size=(40, 57))
    y = rng.normal(size=40)
    r = SimulatedResiduals.from_simulations(sims, y, seed=1)
    brute = [sum(1 for s in sims[i] if s < y[i]) / 57 for i in range(40)]
    assert r.residuals.tolist() == brute            # exactly, no randomization without ties
    assert not r.integer_response
    assert np.allclose(r.fitted, sims.mean(axis=1))


def test_integer_residuals_randomized_between_strict_and_weak_ecdf():
    rng = np.random.default_rng(4)
    sims = rng.poisson(2.0, size=(300, 50)).astype(float)
    y = rng.poisson(2.0, size=300).astype(float)
    r = SimulatedResiduals.from_simulations(sims, y, seed=5)
    lo = np.array([np.sum(sims[i] < y[i]) for i in range(300)]) / 50
    hi = np.array([np.sum(sims[i] <= y[i]) for i in range(300)]) / 50
    assert r.integer_response
    assert np.all((r.residuals >= lo) & (r.residuals <= hi))
    tied = hi > lo
    assert tied.sum() > 250 and np.all(r.residuals[~tied] == lo[~tied])
    # within its interval the draw is uniform: position (r - lo) / (hi - lo) ~ U(0, 1)
    pos = (r.residuals[tied] - lo[tied]) / (hi[tied] - lo[tied])
    assert stats.kstest(pos, "uniform").pvalue > 0.001
    assert len(np.unique(pos)) == tied.sum()


def test_randomization_follows_seed():
    sims = np.tile(np.arange(10.0), (20, 1))
    y = np.full(20, 4.0)
    a = scaled_residuals(sims, y, 7)
    assert np.array_equal(a, scaled_residuals(sims, y, 7))
    assert not np.array_equal(a, scaled_residuals(sims, y, 8))
    assert np.all((a >= 0.4) & (a <= 0.5))


def test_model_residuals_reproducible_and_options(poisson_fit):
    a = poisson_fit.simulated_residuals(n=60, seed=11)
    b = poisson_fit.simulated_residuals(n=60, seed=11)
    c = poisson_fit.simulated_residuals(n=60, seed=12)
    assert np.array_equal(a.residuals, b.residuals) and np.array_equal(a.simulated, b.simulated)
    assert not np.array_equal(a.residuals, c.residuals)
    assert a.simulated.shape == (1000, 60) and a.n_sim == 60 and a.simulation == "unconditional"
    assert np.all((a.residuals >= 0) & (a.residuals <= 1))
    # default fitted: the population-level response (random effects at zero), as DHARMa
    assert np.allclose(a.fitted, poisson_fit.predict(type="response", re_form="~0"))
    s = poisson_fit.simulated_residuals(n=60, seed=11, fitted="simulations")
    assert np.allclose(s.fitted, s.simulated.mean(axis=1))
    u = poisson_fit.simulated_residuals(n=60, seed=11, use_u=True)
    assert u.simulation == "conditional"
    # conditional simulations vary less across replicates for the same row than unconditional ones
    assert u.simulated.var(axis=1).mean() < a.simulated.var(axis=1).mean()
    assert list(a.to_frame().columns) == ["observed", "fitted", "residual"]
    assert "n_sim=60" in repr(a) and "unconditional" in repr(a)


def test_binomial_compared_as_counts():
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(20), 10)
    n = rng.integers(1, 9, g.size)
    k = rng.binomial(n, 1 / (1 + np.exp(-rng.normal(-0.4, 0.8, 20)[g])))
    fit = mfx.glmer("cbind(k, n - k) ~ 1 + (1 | g)", pd.DataFrame({"k": k, "n": n, "g": g}), family="binomial")
    r = fit.simulated_residuals(n=40, seed=1)
    assert np.array_equal(r.observed, k) and r.integer_response
    assert np.all(r.simulated <= n[:, None]) and np.all(r.simulated == np.round(r.simulated))
    assert np.allclose(r.fitted, fit.predict(type="response", re_form="~0") * n)


# ------------------------------------------------------------------ the tests' definitions
@pytest.mark.parametrize("case", REF["ks"], ids=lambda c: f"{c['vector']}-{c['alternative']}")
def test_uniformity_matches_r_ks_test(case):
    x = np.asarray(REF["vectors"][case["vector"]], float)
    r = SimulatedResiduals(x, np.zeros((x.size, 2)), np.zeros(x.size), np.zeros(x.size), False)
    t = r.test_uniformity(case["alternative"])
    assert t.statistic == pytest.approx(case["statistic"], rel=1e-12)
    assert t.pvalue == pytest.approx(case["pvalue"], rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("case", REF["binom"], ids=lambda c: f"{c['k']}-{c['n']}-{c['alternative']}")
def test_binomial_outlier_test_matches_r_binom_test(case):
    n_sim = round(2 / case["p"]) - 1 if case["p"] > 1 / 200 else round(1 / case["p"]) - 1
    margin = "both" if case["p"] > 1 / 200 else "upper"
    k, n = int(case["k"]), int(case["n"])
    res = np.full(n, 0.5)
    res[:k] = 1.0                                # k observations above every simulation
    r = SimulatedResiduals(res, np.zeros((n, n_sim)), np.zeros(n), np.zeros(n), False)
    t = r.test_outliers(case["alternative"], margin=margin, type="binomial")
    assert t.statistic == k and t.details["expected_frequency"] == pytest.approx(case["p"])
    assert t.pvalue == pytest.approx(case["pvalue"], rel=1e-7, abs=1e-14)


def test_benjamini_hochberg_matches_r():
    assert np.allclose(_bh(np.asarray(REF["bh"]["p"])), REF["bh"]["adjusted"], rtol=1e-14)


def test_dispersion_and_zero_tests_by_hand():
    y = np.array([0.0, 0.0, 0.0, 4.0, 8.0])
    sims = np.array([[1, 0, 2], [2, 1, 1], [1, 2, 0], [3, 4, 2], [2, 3, 4]], float)
    f = np.array([1.0, 1.0, 1.0, 3.0, 3.0])
    r = SimulatedResiduals.from_simulations(sims, y, fitted=f, seed=1)
    d = r.test_dispersion()
    v_obs = np.var([-1, -1, -1, 1, 5], ddof=1)
    v_sim = [np.var([0, 1, 0, 0, -1], ddof=1), np.var([-1, 0, 1, 1, 0], ddof=1), np.var([1, 0, -1, -1, 1], ddof=1)]
    assert d.statistic == pytest.approx(v_obs / np.mean(v_sim))
    assert d.pvalue == 0.0 and d.statistic_name == "dispersion"         # observed above all three
    assert r.test_dispersion("less").pvalue == 1.0
    z = r.test_zero_inflation()
    assert z.statistic == pytest.approx(3 / np.mean([0, 1, 1]))      # zeros per simulation: 0, 1, 1
    assert z.pvalue == 0.0 and r.test_zero_inflation("less").pvalue == 1.0
    assert r.test_generic(lambda v: np.max(v, axis=0), alternative="greater").pvalue == 0.0   # max 8 > 4, 4, 4
    assert isinstance(z, SimulationTest) and "pvalue=0" in repr(z) and "two-sided" in repr(z)


def test_outlier_bootstrap_and_quantile_test():
    rng = np.random.default_rng(8)
    mu = np.exp(rng.normal(1, 0.5, 300))
    null = SimulatedResiduals.from_simulations(rng.poisson(mu[:, None], (300, 200)), rng.poisson(mu), seed=1)
    t = null.test_outliers()                    # integer, n <= 500: bootstrap by default
    assert "bootstrap" in t.method and t.pvalue > 0.01
    assert null.test_outliers().pvalue == t.pvalue            # the seed of the residuals is reused
    assert t.details["simulated"].shape == (100,)
    wide = SimulatedResiduals.from_simulations(rng.poisson(mu[:, None], (300, 200)),
                                               rng.negative_binomial(0.7, 0.7 / (0.7 + mu)), seed=1)
    t = wide.test_outliers()
    assert t.pvalue < 0.01 and t.details["frequency"] > 3 * t.details["expected_frequency"]
    assert wide.test_outliers(type="binomial").pvalue < 0.01
    assert null.test_quantiles().pvalue > 0.01
    # residual quantiles that drift with the predictor: scale too small on the right, too large on the left
    x = np.linspace(0, 1, 1000)
    sims = rng.normal(size=(1000, 100))
    y = rng.normal(size=1000) * (0.3 + 1.7 * x)
    t = SimulatedResiduals.from_simulations(sims, y, fitted=x, seed=1).test_quantiles()
    assert t.pvalue < 1e-4 and t.details["bins"] == 10 and len(t.details["pvalues"]) == 3


def test_exact_null_pvalues_are_uniform():
    """Observed and simulated data from one known model: p-values of the tests ~ U(0, 1)."""
    rng = np.random.default_rng(9)
    p_unif, p_disp, p_zero = [], [], []
    for _ in range(300):
        mu = np.exp(rng.normal(0.5, 0.6, 100))
        r = SimulatedResiduals.from_simulations(rng.poisson(mu[:, None], (100, 100)), rng.poisson(mu), seed=rng)
        p_unif.append(r.test_uniformity().pvalue)
        p_disp.append(r.test_dispersion().pvalue)
        p_zero.append(r.test_zero_inflation().pvalue)
    p_unif, p_disp, p_zero = map(np.asarray, (p_unif, p_disp, p_zero))
    assert stats.kstest(p_unif, "uniform").pvalue > 0.001
    for p in (p_unif, p_disp, p_zero):          # rejection rate at 5%: binomial(300, 0.05) sd 1.3%
        assert 0.01 <= np.mean(p < 0.05) <= 0.10


# ------------------------------------------------------------------ models
def test_overdispersion_detected_in_poisson_fit_to_negative_binomial_data():
    fit = mfx.glmer("y ~ x + (1 | g)", _counts_data(2, kind="negbin"), family="poisson")
    r = fit.simulated_residuals(n=250, seed=1)
    assert r.test_dispersion().pvalue < 0.01 and r.test_dispersion().statistic > 1.5
    assert r.test_uniformity().pvalue < 0.01
    rc = fit.simulated_residuals(n=250, seed=1, use_u=True)
    assert rc.test_dispersion().pvalue < 0.01 and rc.test_dispersion().statistic > 1.5


def test_zero_inflation_detected_in_poisson_fit_to_zero_inflated_data():
    fit = mfx.glmer("y ~ x + (1 | g)", _counts_data(3, kind="zip"), family="poisson")
    r = fit.simulated_residuals(n=250, seed=1)
    z = r.test_zero_inflation()
    assert z.pvalue < 0.01 and z.statistic > 1.2
    assert z.details["observed_zeros"] == np.sum(fit.fit.design.y == 0)


def test_correct_poisson_fit_passes(poisson_fit):
    r = poisson_fit.simulated_residuals(n=250, seed=1)
    assert r.test_uniformity().pvalue > 0.05
    assert r.test_dispersion().pvalue > 0.05 and 0.8 < r.test_dispersion().statistic < 1.25
    assert r.test_zero_inflation().pvalue > 0.05


def test_lmm_gaussian_and_heavy_tails():
    rng = np.random.default_rng(6)
    g = np.repeat(np.arange(30), 20)
    x = rng.normal(size=g.size)
    base = 2 + x + rng.normal(0, 1, 30)[g]
    good = mfx.lmer("y ~ x + (1 | g)", pd.DataFrame({"y": base + rng.normal(0, 1, g.size), "x": x, "g": g}))
    r = good.simulated_residuals(n=250, seed=1)
    assert not r.integer_response and np.allclose(r.fitted, good.predict(re_form="~0"))
    assert r.test_uniformity().pvalue > 0.05 and r.test_outliers().pvalue > 0.05
    assert 0.8 < r.test_dispersion().statistic < 1.25
    rc = good.simulated_residuals(n=250, seed=1, use_u=True)
    assert rc.test_uniformity().pvalue > 0.05 and rc.test_dispersion().pvalue > 0.05
    heavy = mfx.lmer("y ~ x + (1 | g)", pd.DataFrame({"y": base + rng.standard_t(2, g.size), "x": x, "g": g}))
    rh = heavy.simulated_residuals(n=250, seed=1, use_u=True)
    # sigma is inflated by the tails, so most residuals crowd the middle: a hump, not a flat line
    assert rh.test_uniformity().pvalue < 0.01 and np.mean(np.abs(rh.residuals - 0.5) < 0.1) > 0.3


def test_zero_inflation_refused_for_ordinal_model():
    """An ordinal response is a category 1..K: no zeros in the data or the simulations, so the
    test was a meaningless 0/0 (NaN ratio, p = 1); it now says why and what to use."""
    wine = mfx.datasets.load("wine")
    r = mfx.clmm("rating ~ temp + contact + (1 | judge)", wine).simulated_residuals(n=50, seed=1)
    assert r.observed.min() == 1 and r.simulated.min() == 1          # categories coded from 1
    for alt in ("two-sided", "greater"):
        with pytest.raises(ValueError, match=r"does not apply: an ordinal \(clmm\) model's response .* never 0"):
            r.test_zero_inflation(alt)
    with pytest.raises(ValueError, match="test_generic"):
        r.test_zero_inflation()
    # the suggested replacement counts the lowest category against its simulated distribution
    t = r.test_generic(lambda x: np.sum(x == 1, axis=0))
    assert t.details["observed_summary"] == np.sum(wine["rating"].astype(int) == 1)
    assert np.isfinite(t.statistic) and t.details["mean_simulated_summary"] > 0 and 0 < t.pvalue <= 1
    assert r.test_uniformity().pvalue > 0                            # the other tests still run


def test_zero_inflation_of_continuous_response_warns():
    """An LMM never simulates an exact zero: the test (computed, as DHARMa does) only says whether
    the data have any; a warning says so.  Counts, or continuous simulations with a point mass at
    zero, are tested without a warning."""
    sleep = mfx.datasets.load("sleepstudy")
    r = mfx.lmer("Reaction ~ Days + (1 | Subject)", sleep).simulated_residuals(n=50, seed=1)
    with pytest.warns(UserWarning, match=r"continuous response: .*\(0 here"):
        z = r.test_zero_inflation()
    assert np.isnan(z.statistic) and z.pvalue == 1.0
    zeroed = sleep.assign(Reaction=sleep["Reaction"].where(sleep.index % 60 != 0, 0.0))     # 3 exact zeros
    rz = mfx.lmer("Reaction ~ Days + (1 | Subject)", zeroed).simulated_residuals(n=50, seed=1)
    with pytest.warns(UserWarning, match=r"\(3 here"):
        z = rz.test_zero_inflation()
    assert z.statistic == np.inf and z.pvalue == 0.0 and z.details["observed_zeros"] == 3
    rng = np.random.default_rng(12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mu = np.exp(rng.normal(0.5, 0.5, 200))
        counts = SimulatedResiduals.from_simulations(rng.poisson(mu[:, None], (200, 100)), rng.poisson(mu), seed=1)
        assert counts.test_zero_inflation().pvalue > 0.01
        # semicontinuous: a point mass at zero in the simulations, more zeros in the data
        sims = np.where(rng.random((200, 100)) < 0.2, 0.0, rng.gamma(2.0, 1.0, (200, 100)))
        y = np.where(rng.random(200) < 0.5, 0.0, rng.gamma(2.0, 1.0, 200))
        semi = SimulatedResiduals.from_simulations(sims, y, seed=1)
        assert not semi.integer_response
        z = semi.test_zero_inflation()
    assert z.pvalue == 0.0 and z.statistic > 2


# ------------------------------------------------------------------ errors and plot
def test_bad_input_errors(poisson_fit):
    with pytest.raises(ValueError, match="n \\(simulations per observation\\)"):
        poisson_fit.simulated_residuals(n=1)
    with pytest.raises(ValueError, match="fitted must be"):
        poisson_fit.simulated_residuals(n=5, fitted="mean")
    with pytest.raises(ValueError, match="rows but observed"):
        SimulatedResiduals.from_simulations(np.zeros((4, 5)), np.zeros(3))
    with pytest.raises(ValueError, match="at least 2 simulations"):
        SimulatedResiduals.from_simulations(np.zeros((4, 1)), np.zeros(4))
    with pytest.raises(ValueError, match="finite"):
        SimulatedResiduals.from_simulations(np.full((4, 3), np.nan), np.zeros(4))
    r = SimulatedResiduals.from_simulations(np.arange(12.0).reshape(4, 3), np.zeros(4))
    with pytest.raises(ValueError, match="alternative must be"):
        r.test_dispersion("bigger")
    with pytest.raises(ValueError, match="margin must be"):
        r.test_outliers(margin="left")
    with pytest.raises(ValueError, match="predictor has 2 values"):
        r.test_quantiles(predictor=[1, 2])
    with pytest.raises(RuntimeError, match="simulated_residuals_plot"):
        r.plot()


def test_plot_two_panels(poisson_fit):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    r = poisson_fit.simulated_residuals(n=50, seed=1)
    axes = r.plot()
    assert len(axes) == 2
    assert axes[0].get_xlabel().startswith("expected") and "rank" in axes[1].get_xlabel()
    assert any("KS test" in t.get_text() for t in axes[0].texts)
    # reference lines at the three quantiles plus one binned-quantile line each
    assert sorted(line.get_ydata()[0] for line in axes[1].lines if len(set(line.get_ydata())) == 1
                  and line.get_ydata()[0] in (0.25, 0.5, 0.75)) == [0.25, 0.5, 0.75]
    fig, ax = plt.subplots(1, 2)
    assert list(r.plot(ax=ax)) == list(ax)
    plt.close("all")


# ------------------------------------------------------------------ calibration with fitted models (slow)
@pytest.mark.slow
@pytest.mark.parametrize("use_u", [False, True])
def test_pvalues_calibrated_for_fitted_poisson_glmm(use_u):
    """100 data sets from a known Poisson GLMM, each fitted and checked.

    With estimated parameters the KS test is conservative (as Lilliefors' problem: the fit adapts
    to the data), so the check is that no test rejects too often, that unconditional residuals
    pooled over the data sets are uniform, and that the conditional dispersion test holds its level
    (benchmarks/calibration_dharma.py records the full picture)."""
    p_unif, p_disp, p_zero, pooled = [], [], [], []
    for seed in range(100):
        fit = mfx.glmer("y ~ x + (1 | g)", _counts_data(1000 + seed, n_groups=30, per=10), family="poisson")
        r = fit.simulated_residuals(n=250, seed=seed, use_u=use_u)
        p_unif.append(r.test_uniformity().pvalue)
        p_disp.append(r.test_dispersion().pvalue)
        p_zero.append(r.test_zero_inflation().pvalue)
        pooled.append(r.residuals)
    for p in (p_unif, p_disp, p_zero):
        assert np.mean(np.asarray(p) < 0.05) <= 0.10
    if use_u:
        assert 0.01 <= np.mean(np.asarray(p_disp) < 0.05) and np.mean(np.asarray(p_disp) < 0.5) > 0.3
    else:
        assert stats.kstest(np.concatenate(pooled), "uniform").pvalue > 0.01


# ------------------------------------------------------------------ calibrated p-values (parametric bootstrap)
from mixedfx.diagnostics import simulated_residuals_calibrate as _cal  # noqa: E402
from mixedfx.inference.bootstrap_glmm import RefitFailureWarning  # noqa: E402


@pytest.fixture(scope="module")
def tiny_poisson():
    return mfx.glmer("y ~ x + (1 | g)", _counts_data(7, n_groups=8, per=6), family="poisson")


@pytest.fixture(scope="module")
def tiny_calibrated(tiny_poisson):
    return tiny_poisson.simulated_residuals(n=30, seed=3, calibrate=9, progress=False)


def test_bootstrap_pvalue_formula():
    # (1 + #{T_b >= T}) / (B + 1), ties counted as extreme
    assert _cal.bootstrap_pvalue(2.0, [1.0, 2.0, 3.0, 0.0]) == pytest.approx(3 / 5)
    assert _cal.bootstrap_pvalue(5.0, [1.0, 2.0, 3.0, 0.0]) == pytest.approx(1 / 5)
    assert _cal.bootstrap_pvalue(-1.0, [1.0, 2.0, 3.0, 0.0]) == 1.0
    # two-sided for counts: twice the smaller tail, at most 1
    assert _cal.bootstrap_pvalue(0.0, [1, 2, 3, 4, 5, 6, 7, 8, 9], True) == pytest.approx(2 * 1 / 10)
    assert _cal.bootstrap_pvalue(2.0, [1.0, 2.0, 3.0, 0.0], True) == 1.0
    # the vectorized KS statistics are scipy's
    x = np.random.default_rng(1).random((3, 17))
    for alt in ("two-sided", "greater", "less"):
        assert np.allclose(_cal.ks_statistic(x, alt), [stats.kstest(row, "uniform", alternative=alt).statistic
                                                         for row in x])
    assert _cal.log_ratio(0.0, 0.0) == 0.0 and _cal.log_ratio(0.0, 2.0) == -np.inf


def test_calibrated_shapes_and_labels(tiny_poisson, tiny_calibrated):
    r, cal = tiny_calibrated, tiny_calibrated.calibration
    plain = tiny_poisson.simulated_residuals(n=30, seed=3)
    assert np.array_equal(r.residuals, plain.residuals) and plain.calibration is None   # same residuals
    assert cal.residuals.shape == cal.fitted.shape == (9, 48) and cal.dispersion.shape == cal.zeros.shape == (9, 2)
    assert cal.n_refits == 9 and cal.n_failed == 0 and cal.requested == 9 and list(cal.replicates) == list(range(9))
    assert "calibrated_by=9 refits" in repr(r) and repr(cal) == "Calibration(n_refits=9, n_failed=0)"
    # the refits are genuine: their fitted responses differ from the data's and between replicates
    assert not np.allclose(cal.fitted[0], r.fitted) and not np.allclose(cal.fitted[0], cal.fitted[1])
    tests = {"uniformity": r.test_uniformity(), "dispersion": r.test_dispersion(),
             "zero_inflation": r.test_zero_inflation(), "outliers": r.test_outliers(), "quantiles": r.test_quantiles()}
    for name, t in tests.items():
        k = t.pvalue * 10
        assert abs(k - round(k)) < 1e-9 and 1 <= round(k) <= 10, name        # on the grid k / (B + 1)
        assert t.method.endswith("p-value calibrated by parametric bootstrap (9 refits)"), name
        assert t.details["n_refits"] == 9 and len(t.details["null_statistics"]) == 9
    plain_tests = {"uniformity": plain.test_uniformity(), "dispersion": plain.test_dispersion(),
                   "zero_inflation": plain.test_zero_inflation(), "outliers": plain.test_outliers(),
                   "quantiles": plain.test_quantiles()}
    for name, t in tests.items():           # statistic and plug-in p kept
        assert t.statistic == plain_tests[name].statistic and t.details["pvalue_plugin"] == plain_tests[name].pvalue
    assert set(r.tests()) == {"uniformity", "dispersion", "outliers"}
    assert "not calibrated" in r.test_generic(lambda v: np.max(v, axis=0)).method


def test_calibrated_pvalues_by_brute_force(tiny_calibrated):
    r, cal = tiny_calibrated, tiny_calibrated.calibration

    def pval(t, null):
        return (1 + sum(1 for tb in null if tb >= t - 1e-12)) / (len(null) + 1)

    d = stats.kstest(r.residuals, "uniform").statistic
    assert r.test_uniformity().pvalue == pytest.approx(
        pval(d, [stats.kstest(row, "uniform").statistic for row in cal.residuals]))
    dplus = stats.kstest(r.residuals, "uniform", alternative="greater").statistic
    assert r.test_uniformity("greater").pvalue == pytest.approx(
        pval(dplus, [stats.kstest(row, "uniform", alternative="greater").statistic for row in cal.residuals]))
    obs = np.var(r.observed - r.fitted, ddof=1)
    mean_sim = np.mean(np.var(r.simulated - r.fitted[:, None], axis=0, ddof=1))
    null = [abs(np.log(o / e)) for o, e in cal.dispersion]
    assert r.test_dispersion().pvalue == pytest.approx(pval(abs(np.log(obs / mean_sim)), null))
    assert r.test_dispersion("greater").pvalue == pytest.approx(
        pval(np.log(obs / mean_sim), [np.log(o / e) for o, e in cal.dispersion]))
    zeros = np.sum(r.observed == 0), np.mean(np.sum(r.simulated == 0, axis=0))
    assert r.test_zero_inflation().pvalue == pytest.approx(
        pval(abs(np.log(zeros[0] / zeros[1])), [abs(np.log(o / e)) for o, e in cal.zeros]))
    # outliers (bootstrap type for these counts): residuals at exactly 0 or 1, equal-tailed
    k, kb = np.sum((r.residuals == 0) | (r.residuals == 1)), [np.sum((x == 0) | (x == 1)) for x in cal.residuals]
    two = min(1.0, 2 * min(pval(k, kb), pval(-k, [-v for v in kb])))
    assert r.test_outliers().pvalue == pytest.approx(two)
    assert r.test_outliers(alternative="greater").pvalue == pytest.approx(pval(k, kb))
    # quantiles: smaller min-adjusted p is more extreme; each refit binned by its own fitted response
    qb = [SimulatedResiduals(x, r.simulated, r.observed, f, True).test_quantiles().pvalue
          for x, f in zip(cal.residuals, cal.fitted)]
    assert r.test_quantiles().pvalue == pytest.approx(pval(-r.test_quantiles().details["pvalue_plugin"],
                                                           [-q for q in qb]))


def test_calibration_reproducible_and_independent_of_n_jobs(tiny_poisson, tiny_calibrated):
    again = tiny_poisson.simulated_residuals(n=30, seed=3, calibrate=9, progress=False)
    par = tiny_poisson.simulated_residuals(n=30, seed=3, calibrate=9, n_jobs=2, progress=False)
    other = tiny_poisson.simulated_residuals(n=30, seed=4, calibrate=9, progress=False)
    for x in (again, par):
        assert np.array_equal(x.calibration.residuals, tiny_calibrated.calibration.residuals)
        assert np.array_equal(x.calibration.dispersion, tiny_calibrated.calibration.dispersion)
        assert x.test_uniformity().pvalue == tiny_calibrated.test_uniformity().pvalue
    assert not np.array_equal(other.calibration.residuals, tiny_calibrated.calibration.residuals)


def test_failed_refits_dropped_and_counted(tiny_poisson, monkeypatch):
    real, calls = _cal._refit, []

    def flaky(fit, y):
        calls.append(1)
        if len(calls) % 3 == 1:                     # replicates 0, 3, 6 fail
            raise np.linalg.LinAlgError("simulated failure")
        return real(fit, y)

    monkeypatch.setattr(_cal, "_refit", flaky)
    with pytest.warns(RefitFailureWarning, match="3 of 9 calibration refits failed"):
        r = tiny_poisson.simulated_residuals(n=30, seed=3, calibrate=9, progress=False)
    cal = r.calibration
    assert cal.n_failed == 3 and cal.n_refits == 6 and list(cal.replicates) == [1, 2, 4, 5, 7, 8]
    assert set(cal.failed) == {0, 3, 6} and "simulated failure" in cal.failed[0]
    t = r.test_dispersion()
    assert t.details["n_failed"] == 3 and "(6 refits)" in t.method
    assert abs(t.pvalue * 7 - round(t.pvalue * 7)) < 1e-9          # denominator B' + 1 = 7

    def broken(fit, y):
        raise ValueError("always")
    monkeypatch.setattr(_cal, "_refit", broken)
    with pytest.raises(RuntimeError, match="all 4 calibration refits failed"):
        tiny_poisson.simulated_residuals(n=30, seed=3, calibrate=4, progress=False)


def test_calibrate_lmm_and_bad_arguments(tiny_poisson):
    rng = np.random.default_rng(2)
    g = np.repeat(np.arange(8), 6)
    d = pd.DataFrame({"y": rng.normal(0, 1, 8)[g] + rng.normal(size=48), "g": g})
    with warnings.catch_warnings():         # the refits count zeros without the continuous-response warning
        warnings.filterwarnings("error", message="test_zero_inflation")
        r = mfx.lmer("y ~ 1 + (1 | g)", d).simulated_residuals(n=30, seed=1, calibrate=9, progress=False)
    assert r.calibration.n_refits == 9 and not r.integer_response
    assert r.test_dispersion().details["calibration_statistic"] >= 0
    with pytest.warns(UserWarning, match="continuous response"):
        assert r.test_zero_inflation().pvalue == 1.0          # no zeros anywhere: nothing to detect
    for bad in (-1, True, 2.5, "9"):
        with pytest.raises(ValueError, match="calibrate"):
            tiny_poisson.simulated_residuals(n=5, calibrate=bad)


def _discrete_uniform_chi2(p, B: int, bins: int) -> float:
    """p-value of a chi-square test of bootstrap p-values k/(B+1) against their discrete uniform null
    (``bins`` equally likely bins of the B+1 values; B+1 a multiple of ``bins``)."""
    k = np.rint(np.asarray(p) * (B + 1)).astype(int)
    assert np.allclose(k / (B + 1), p) and k.min() >= 1 and k.max() <= B + 1
    return float(stats.chisquare(np.bincount((k - 1) * bins // (B + 1), minlength=bins)).pvalue)


@pytest.mark.slow
def test_calibrated_pvalues_uniform_for_correct_poisson_glmm():
    """80 data sets from a Poisson GLMM (20 groups of 10, random intercept), each checked with
    B = 39 calibration refits: the p-values take the values k/40 and, unlike the plug-in ones, are
    uniform (benchmarks/calibration_dharma_refit.py: 200 data sets, B = 49)."""
    B, m = 39, 80
    cal = {"uniformity": [], "dispersion": [], "zero_inflation": []}
    plugin_ks = []
    for seed in range(m):
        fit = mfx.glmer("y ~ x + (1 | g)", _counts_data(5000 + seed, n_groups=20, per=10), family="poisson")
        r = fit.simulated_residuals(n=250, seed=seed, calibrate=B, progress=False)
        assert r.calibration.n_failed == 0
        cal["uniformity"].append(r.test_uniformity().pvalue)
        cal["dispersion"].append(r.test_dispersion().pvalue)
        cal["zero_inflation"].append(r.test_zero_inflation().pvalue)
        plugin_ks.append(r.test_uniformity().details["pvalue_plugin"])
    lo, hi = stats.binom.ppf(0.005, m, 0.1), stats.binom.isf(0.005, m, 0.1)      # 99% band of 8 rejections
    for name, p in cal.items():
        p = np.asarray(p)
        assert lo <= np.sum(p <= 0.1) <= hi, (name, np.sum(p <= 0.1))
        assert _discrete_uniform_chi2(p, B, 4) > 0.001, name
        assert 0.35 <= np.median(p) <= 0.65, name
    assert np.median(plugin_ks) > 0.6          # the plug-in KS p-values are far from uniform


@pytest.mark.slow
def test_calibrated_dispersion_uniform_for_correct_lmm():
    """The plug-in LMM dispersion p-value is near 1 for every data set; calibrated it is uniform."""
    B, m = 39, 80
    cal, plugin = [], []
    for seed in range(m):
        rng = np.random.default_rng(6000 + seed)
        g = np.repeat(np.arange(20), 10)
        x = rng.normal(size=g.size)
        d = pd.DataFrame({"y": 2 + x + rng.normal(0, 1, 20)[g] + rng.normal(size=g.size), "x": x, "g": g})
        r = mfx.lmer("y ~ x + (1 | g)", d).simulated_residuals(n=250, seed=seed, calibrate=B, progress=False)
        t = r.test_dispersion()
        cal.append(t.pvalue)
        plugin.append(t.details["pvalue_plugin"])
    cal = np.asarray(cal)
    lo, hi = stats.binom.ppf(0.005, m, 0.1), stats.binom.isf(0.005, m, 0.1)
    assert lo <= np.sum(cal <= 0.1) <= hi
    assert _discrete_uniform_chi2(cal, B, 4) > 0.001
    assert np.median(plugin) > 0.8 and np.mean(np.asarray(plugin) <= 0.1) == 0


@pytest.mark.slow
@pytest.mark.parametrize("kind, test", [("negbin", "dispersion"), ("zip", "zero_inflation")])
def test_calibrated_tests_keep_power(kind, test):
    """A Poisson GLMM fitted to overdispersed (negative-binomial) or zero-inflated counts: the
    calibrated test that targets the misfit rejects at 5% in (nearly) every data set (B = 19)."""
    rejected = []
    for seed in range(15):
        fit = mfx.glmer("y ~ x + (1 | g)", _counts_data(7000 + seed, n_groups=20, per=10, kind=kind),
                        family="poisson")
        r = fit.simulated_residuals(n=250, seed=seed, calibrate=19, progress=False)
        p = getattr(r, f"test_{test}")().pvalue
        rejected.append(p <= 0.05)
    assert np.mean(rejected) >= 0.8


@pytest.mark.parametrize("extra", [{}, {"correlation": "ar1(Days | Subject)"}], ids=["lmer", "ar1"])
def test_calibration_refits_keep_the_offset(extra):
    """Refits of simulated responses are centred on the fitted response, offset included."""
    ss = mfx.datasets.load("sleepstudy").assign(off=100.0)
    m = mfx.lmer("Reaction ~ Days + offset(off) + (1 | Subject)", ss, **extra)
    r = m.simulated_residuals(n=20, seed=1, calibrate=6, progress=False)
    assert r.calibration.n_refits == 6
    assert np.abs(r.calibration.fitted.mean(axis=0) - r.fitted).max() < 15      # the offset is 100


def test_calibration_for_glmmtmb_style_model():
    d = _counts_data(9, n_groups=6, per=8, kind="negbin")
    m = mfx.glmer("y ~ x + (1 | g)", d, family="nbinom2")
    r = m.simulated_residuals(n=20, seed=2, calibrate=4, progress=False)
    assert r.calibration.n_refits + r.calibration.n_failed == 4 and r.calibration.n_refits >= 3
    assert "parametric bootstrap" in r.test_dispersion().method


# ------------------------------------------------------------ review of issue 12 (regressions)
def test_bad_predictor_and_seed_get_clear_errors(poisson_fit):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from mixedfx.plots.simulated_residuals import residuals_vs_predicted

    """A predictor with missing values used to be binned silently (NaN sorted last); a
    non-numeric one and a non-integer seed ended in numpy errors."""
    r = poisson_fit.simulated_residuals(n=20, seed=1)
    x = np.asarray(poisson_fit.fit.design.X[:, 1], float).copy()
    x[3] = np.nan
    with pytest.raises(ValueError, match="predictor has 1 missing"):
        r.test_quantiles(predictor=x)
    with pytest.raises(ValueError, match="predictor must hold numbers"):
        r.test_quantiles(predictor=np.array(["a"] * r.n_obs, dtype=object))
    with pytest.raises(ValueError, match="predictor must hold numbers"):
        residuals_vs_predicted(r, predictor=["a"] * r.n_obs)
    with pytest.raises(ValueError, match="seed must be"):
        poisson_fit.simulated_residuals(n=20, seed="one")
