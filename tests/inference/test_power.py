"""power(): simr-style power curves by simulation.

Fast tests use a handful of simulations; the slow ones check the size of the test under the
null (rejection rate within its binomial 99% interval around alpha) and the power of a design
where the LMM t-test is the paired t-test, against the exact noncentral-t power.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import mixedfx as mfx
from mixedfx.inference.power import clopper_pearson, extend_data
from mixedfx.results.power_result import PowerCurve, power


@pytest.fixture(scope="module")
def sleep():
    return mfx.lmer("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))


def _paired(n, seed=0, sd_b=2.0, sigma=1.0, beta=0.0):
    """n subjects, one observation in each of two conditions."""
    rng = np.random.default_rng(seed)
    d = pd.DataFrame({"id": np.repeat(np.arange(n), 2), "x": np.tile([0.0, 1.0], n)})
    d["y"] = beta * d["x"] + np.repeat(rng.normal(0, sd_b, n), 2) + rng.normal(0, sigma, 2 * n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mfx.lmer("y ~ x + (1 | id)", d)


def test_extend_data_copies_levels_with_new_labels():
    d = pd.DataFrame({"s": [2, 2, 1, 1, 3], "x": [0, 1, 0, 1, 5], "grp": list("aabbb")})
    ext, rank = extend_data(d, "s", 5)
    # levels sorted as R's factor (1, 2, 3); new levels 4, 5 copy levels 1 and 2
    assert sorted(ext["s"].unique()) == [1, 2, 3, 4, 5]
    np.testing.assert_array_equal(ext.loc[ext["s"] == 4, "x"], d.loc[d["s"] == 1, "x"])
    np.testing.assert_array_equal(ext.loc[ext["s"] == 5, "x"], d.loc[d["s"] == 2, "x"])
    assert set(ext.loc[rank < 2, "s"]) == {1, 2} and set(ext.loc[rank < 4, "s"]) == {1, 2, 3, 4}
    # string labels get '.k' copies; within= extends each cell separately
    d2 = d.assign(s=d["s"].map({1: "u", 2: "v", 3: "w"}))
    ext, rank = extend_data(d2, "s", 3, within="grp")
    per = ext.groupby("grp")["s"].nunique()
    assert per.to_dict() == {"a": 3, "b": 3}
    assert set(ext.loc[ext["grp"] == "a", "s"]) == {"v", "v.1", "v.2"}
    assert ext.loc[rank < 1].groupby("grp")["s"].nunique().to_dict() == {"a": 1, "b": 1}
    with pytest.raises(ValueError, match="several cells"):
        extend_data(d2.assign(grp=list("ababb")), "s", 3, within="grp")


def test_clopper_pearson_matches_scipy_exact_interval():
    for x, n in [(0, 10), (3, 10), (10, 10), (37, 200)]:
        ci = stats.binomtest(x, n).proportion_ci(0.95, method="exact")
        np.testing.assert_allclose(clopper_pearson(x, n), (ci.low, ci.high), rtol=1e-10, atol=1e-12)


def test_power_curve_table_and_reproducibility(sleep):
    pw = power(sleep, test="Days", effect=5.0, along="Subject", sizes=[4, 20], nsim=6, seed=1)
    assert isinstance(pw, PowerCurve)
    t = pw.table
    assert list(t.columns[:8]) == ["size", "nobs", "nsim", "successes", "power", "lower", "upper", "n_failed"]
    assert t["size"].tolist() == [4, 20] and t["nobs"].tolist() == [40, 200]
    for _, row in t.iterrows():
        n = row["nsim"] - row["n_failed"]
        assert row["power"] == row["successes"] / n
        assert (row["lower"], row["upper"]) == clopper_pearson(int(row["successes"]), int(n))
    assert t["power"].iloc[1] > t["power"].iloc[0]            # 20 subjects: far more power than 4
    assert len(pw.pvalues) == 12 and pw.method == "satterthwaite"
    again = power(sleep, test="Days", effect=5.0, along="Subject", sizes=[4, 20], nsim=6, seed=1)
    np.testing.assert_array_equal(again.pvalues["p"], pw.pvalues["p"])
    other = power(sleep, test="Days", effect=5.0, along="Subject", sizes=[4, 20], nsim=6, seed=2)
    assert not np.array_equal(other.pvalues["p"], pw.pvalues["p"])
    assert "Satterthwaite" in repr(pw) and "'Subject'" in repr(pw)


def test_n_jobs_gives_the_same_answer(sleep):
    kw = dict(test="Days", effect=3.0, along="Subject", sizes=[6, 12], nsim=4, seed=5)
    a, b = power(sleep, **kw), power(sleep, n_jobs=2, **kw)
    np.testing.assert_array_equal(a.pvalues["p"], b.pvalues["p"])


def test_effect_changes_the_simulated_slope(sleep):
    """A huge effect is always detected; without along= the data are used as they are."""
    pw = power(sleep, test="Days", effect=50.0, nsim=3, seed=3)
    assert pw.table["power"].iloc[0] == 1.0 and pw.table["nobs"].iloc[0] == 180
    assert pw.effect == 50.0 and pw.along is None


def test_lrt_and_glmm_defaults():
    m = _paired(10, seed=1, beta=1.0)
    pw = power(m, test="x", nsim=4, seed=1, method="lrt")
    assert pw.method == "lrt" and pw.table["n_failed"].iloc[0] == 0
    cb = mfx.datasets.load("cbpp")
    g = mfx.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cb, family="binomial")
    pz = power(g, test="period2", along="herd", sizes=[15], nsim=3, seed=1)
    assert pz.method == "z"
    pt = power(g, test="period", nsim=2, seed=1)             # a 3-column term: likelihood ratio
    assert pt.method == "lrt" and pt.table["nsim"].iloc[0] == 2


def test_within_extends_each_cell():
    rng = np.random.default_rng(0)
    d = pd.DataFrame({"id": np.repeat(np.arange(6), 3), "grp": np.repeat(list("ababab"), 3),
                      "t": np.tile(np.arange(3.0), 6)})
    d["y"] = rng.normal(size=18) + np.repeat(rng.normal(size=6), 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mfx.lmer("y ~ grp + t + (1 | id)", d)
    pw = power(m, test="grpb", effect=1.0, along="id", within="grp", sizes=[2, 5], nsim=2, seed=1)
    # sizes count subjects per group: 2 x 2 x 3 and 2 x 5 x 3 observations
    assert pw.table["nobs"].tolist() == [12, 30] and pw.within == ("grp",)


@pytest.mark.parametrize("kwargs, match", [
    (dict(test="Day"), "neither a fixed-effect coefficient"),
    (dict(along="Days"), "covariate of the model"),
    (dict(along="Subjects"), "not a column"),
    (dict(sizes=[3, 5]), "sizes= needs along="),
    (dict(within="Subject"), "within= needs along="),
    (dict(along="Subject", sizes=[2.5]), "whole numbers"),
    (dict(method="f"), "not available for 'Days'"),
    (dict(nsim=0), "nsim"),
    (dict(params={"beta": {"day": 1}}), "not a fixed effect"),
])
def test_power_validation(sleep, kwargs, match):
    with pytest.raises(ValueError, match=match):
        power(sleep, **{"test": "Days", "nsim": 2, **kwargs})


def test_effect_on_a_multi_column_term_is_refused():
    cb = mfx.datasets.load("cbpp")
    g = mfx.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cb, family="binomial")
    with pytest.raises(ValueError, match="3 columns"):
        power(g, test="period", effect=1.0, nsim=2)


def test_plot_draws_the_curve(sleep):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    pw = power(sleep, test="Days", effect=5.0, along="Subject", sizes=[4, 8], nsim=2, seed=1)
    ax = pw.plot()
    assert ax.get_ylabel() == "power" and len(ax.containers) == 1     # one errorbar container
    np.testing.assert_allclose(ax.lines[0].get_xdata(), [4, 8])
    plt.close(ax.figure)


@pytest.mark.slow
def test_null_effect_rejects_at_alpha():
    m = _paired(10, seed=3)
    nsim = 400
    pw = power(m, test="x", effect=0.0, params={"sd": {"id": 2.0}, "sigma": 1.0}, nsim=nsim, seed=11)
    x = int(pw.table["successes"].iloc[0])
    n = nsim - int(pw.table["n_failed"].iloc[0])
    lo, hi = stats.binom.ppf([0.005, 0.995], n, 0.05)
    assert lo <= x <= hi, (x, n)


@pytest.mark.slow
def test_paired_design_matches_noncentral_t_power():
    """y = b_i + beta x + e with x = 0/1 within subject: the REML t-test of beta is the paired
    t-test, whose power is exact: P(|T| > t_crit) with T ~ t(n-1, ncp = beta / sqrt(2 sigma^2 / n))."""
    n, beta, sigma, nsim = 12, 0.7, 1.0, 400
    m = _paired(n, seed=4)
    pw = power(m, test="x", effect=beta, params={"sd": {"id": 2.0}, "sigma": sigma}, nsim=nsim, seed=21)
    df, ncp = n - 1, beta / np.sqrt(2 * sigma ** 2 / n)
    crit = stats.t.ppf(0.975, df)
    exact = stats.nct.sf(crit, df, ncp) + stats.nct.cdf(-crit, df, ncp)
    got = float(pw.table["power"].iloc[0])
    assert abs(got - exact) < 3 * np.sqrt(exact * (1 - exact) / nsim), (got, exact)
    # and it grows with the number of subjects as the exact power does
    curve = power(m, test="x", effect=beta, params={"sd": {"id": 2.0}, "sigma": sigma}, along="id",
                  sizes=[6, 24], nsim=200, seed=22)
    for size, got in zip(curve.table["size"], curve.table["power"]):
        df, ncp = size - 1, beta / np.sqrt(2 * sigma ** 2 / size)
        crit = stats.t.ppf(0.975, df)
        exact = stats.nct.sf(crit, df, ncp) + stats.nct.cdf(-crit, df, ncp)
        assert abs(got - exact) < 3.3 * np.sqrt(exact * (1 - exact) / 200), (size, got, exact)


# ------------------------------------------------------------ review of issue 12 (regressions)
def test_bad_arguments_name_themselves(sleep):
    """within= naming no column used to raise a bare KeyError; non-numeric sizes, nsim or alpha
    ended in numpy / Python conversion errors."""
    with pytest.raises(ValueError, match="within='Grp' is not a column"):
        power(sleep, along="Subject", within="Grp", sizes=[4], nsim=2)
    with pytest.raises(ValueError, match="sizes must be whole numbers"):
        power(sleep, along="Subject", sizes=["a"], nsim=2)
    with pytest.raises(ValueError, match="nsim must be a whole number"):
        power(sleep, nsim="a")
    with pytest.raises(ValueError, match="alpha must be a number"):
        power(sleep, nsim=2, alpha="0.05")
