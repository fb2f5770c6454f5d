"""GEEResult: summary, tests, predictions, QIC, covariance types, and input checking of mixedfx.gee."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx.api_gee import gee


@pytest.fixture(scope="module")
def ohio():
    return mfx.datasets.load("ohio")


@pytest.fixture(scope="module")
def g_exch(ohio):
    return gee("resp ~ age + smoke", ohio, groups="id", family="binomial", corstr="exchangeable", data_name="ohio")


def test_summary_layout(g_exch):
    text = str(g_exch.summary())
    assert "Call:\ngee(formula = 'resp ~ age + smoke', family = 'binomial', data = ohio, groups = 'id', " \
           "corstr = 'exchangeable')" in text
    head = next(ln for ln in text.splitlines() if "Estimate" in ln and "Wald" in ln)
    assert head.split() == ["Estimate", "Std.err", "Wald", "Pr(>|W|)"]
    assert "(Intercept)" in text and "***" in text
    assert "Correlation structure = exchangeable" in text
    assert "alpha" in text and "0.3543" in text
    assert "Number of clusters:   537  Maximum cluster size: 4" in text
    assert "Std.err: robust (sandwich)" in text
    assert "<pre>" in g_exch.summary()._repr_html_()
    assert "537 clusters" in repr(g_exch)


def test_notebook_display_is_the_summary(g_exch):
    html = g_exch._repr_html_()
    assert html.startswith("<pre>") and "Correlation structure = exchangeable" in html


def test_coef_table_and_wald_tests(g_exch):
    tab = g_exch.coef_table()
    np.testing.assert_allclose(tab["Wald"], (g_exch.coef / g_exch.se) ** 2)
    w = g_exch.wald_test("smoke")
    assert w["Df"] == 1 and w["X2"] == pytest.approx(tab.loc["smoke", "Wald"])
    joint = g_exch.wald_test(["age", "smoke"])
    b = g_exch.coef[["age", "smoke"]].to_numpy()
    V = g_exch.vcov().loc[["age", "smoke"], ["age", "smoke"]].to_numpy()
    assert joint["Df"] == 2 and joint["X2"] == pytest.approx(b @ np.linalg.solve(V, b))
    L = np.array([[0.0, 1.0, -1.0]])
    d = L @ g_exch.coef.to_numpy()
    assert g_exch.wald_test(L)["X2"] == pytest.approx(float(d @ np.linalg.solve(L @ g_exch.vcov().to_numpy() @ L.T, d)))
    with pytest.raises(ValueError, match="neither a term"):
        g_exch.wald_test("weight")
    ci = g_exch.conf_int()
    np.testing.assert_allclose(ci.iloc[:, 1] - ci.iloc[:, 0], 2 * 1.959963984540054 * g_exch.se)


def test_anova_per_term():
    d = mfx.datasets.load("dietox")
    g = gee("Weight ~ Time + Cu", d, groups="Pig", corstr="exchangeable")
    a = g.anova(method="marginal")
    assert list(a.index) == ["Time", "Cu"]
    assert a.loc["Cu", "Df"] == 2 and a.loc["Time", "Df"] == 1
    assert a.loc["Cu", "X2"] == pytest.approx(g.wald_test(["CuCu035", "CuCu175"])["X2"])
    assert a.loc["Time", "X2"] == pytest.approx(g.wald_test("Time")["X2"])
    assert a.loc["Time", "P(>|Chi|)"] < 1e-10
    seq = g.anova()                                    # geepack's: Time tested in Weight ~ Time
    assert seq.loc["Cu", "X2"] == pytest.approx(a.loc["Cu", "X2"])
    alone = gee("Weight ~ Time", d, groups="Pig", corstr="exchangeable")
    assert seq.loc["Time", "X2"] == pytest.approx(alone.wald_test("Time")["X2"], rel=1e-9)
    assert seq.loc["Time", "X2"] != pytest.approx(a.loc["Time", "X2"], rel=1e-5)
    md = g.anova(method="marginal", type="md")
    assert md.loc["Cu", "X2"] < a.loc["Cu", "X2"]
    with pytest.raises(ValueError, match="'sequential' or 'marginal'"):
        g.anova(method="type3")


def test_vcov_types(g_exch):
    rob, md, kc, nv = (g_exch.vcov(t) for t in ("robust", "md", "kauermann-carroll", "naive"))
    assert np.all(np.diag(md) > np.diag(kc)) and np.all(np.diag(kc) > np.diag(rob))
    pd.testing.assert_frame_equal(g_exch.vcov("san.se"), rob)
    assert list(md.index) == ["(Intercept)", "age", "smoke"]
    g_md = gee("resp ~ age + smoke", mfx.datasets.load("ohio"), groups="id", family="binomial",
               corstr="exchangeable", std_err="mancl-derouen")
    np.testing.assert_allclose(g_md.se, np.sqrt(np.diag(md)))
    assert "Mancl-DeRouen" in str(g_md.summary())
    with pytest.raises(ValueError, match="unknown standard-error type 'jack'.*mancl-derouen"):
        g_exch.vcov("jack")
    with pytest.raises(ValueError, match="unknown standard-error type"):
        gee("resp ~ age", mfx.datasets.load("ohio"), groups="id", family="binomial", std_err="fij")
    assert not nv.equals(rob)


def test_predict_and_fitted_in_data_order(ohio):
    shuffled = ohio.sample(frac=1.0, random_state=3)
    g = gee("resp ~ age + smoke", shuffled, groups="id", family="binomial", corstr="exchangeable")
    ref = gee("resp ~ age + smoke", ohio, groups="id", family="binomial", corstr="exchangeable")
    np.testing.assert_allclose(g.coef, ref.coef, rtol=1e-9)          # exchangeable: row order is irrelevant
    fit = g.fitted()
    assert fit.index.equals(shuffled.index)
    np.testing.assert_allclose(g.predict(type="response"), fit)
    np.testing.assert_allclose(g.predict(shuffled, type="response"), fit)
    new = pd.DataFrame({"age": [-2, 1], "smoke": [0, 1]})
    eta = g.predict(new)
    np.testing.assert_allclose(eta, g.coef.iloc[0] + g.coef.iloc[1] * new.age + g.coef.iloc[2] * new.smoke)
    np.testing.assert_allclose(g.predict(new, type="response"), 1 / (1 + np.exp(-eta)))
    np.testing.assert_allclose(g.residuals(), shuffled["resp"] - fit)
    with pytest.raises(ValueError, match="'link' or 'response'"):
        g.predict(new, type="prob")


def test_predict_uses_the_offset():
    d = mfx.datasets.load("seizure")
    g = gee("y ~ x * trt + offset(log(t))", d, groups="id", family="poisson", corstr="exchangeable")
    new = pd.DataFrame({"x": [1, 1], "trt": [0, 0], "t": [2.0, 4.0]})
    r = g.predict(new, type="response").to_numpy()
    assert r[1] == pytest.approx(2 * r[0])


def test_qic_independence_and_orderings(g_exch, ohio):
    q = g_exch.qic
    assert list(q.index) == ["QIC", "QICu", "Quasi Lik", "CIC", "params", "QICC"]
    assert q["QIC"] == pytest.approx(-2 * (q["Quasi Lik"] - q["CIC"]))
    assert q["QICu"] == pytest.approx(-2 * (q["Quasi Lik"] - 3))
    gi = gee("resp ~ age + smoke", ohio, groups="id", family="binomial")
    # independence: CIC = trace(Omega_I V_R) of its own sandwich
    Vr = gi.vcov("robust").to_numpy()
    assert gi.qic["CIC"] == pytest.approx(float(np.trace(np.linalg.solve(gi.vcov("naive").to_numpy(), Vr))))


def test_time_orders_rows_and_defines_gaps():
    d = mfx.datasets.load("respiratory")
    f = "outcome ~ treat + sex + age + baseline"
    by_pos = gee(f, d, groups="subject", family="binomial", corstr="ar1")
    shuffled = d.sample(frac=1.0, random_state=1)
    before = shuffled.copy()
    by_time = gee(f, shuffled, groups="subject", family="binomial", corstr="ar1", time="visit")
    pd.testing.assert_frame_equal(shuffled, before)                  # the caller's data are not sorted
    np.testing.assert_allclose(by_time.coef, by_pos.coef, rtol=1e-8)
    np.testing.assert_allclose(by_time.corr_params, by_pos.corr_params, rtol=1e-8)
    wc = by_time.working_corr()
    assert list(wc.index) == [1, 2, 3, 4] and wc.loc[1, 3] == pytest.approx(by_time.corr_params["alpha"] ** 2)
    # drop visit 2 of some patients: with time= the distance 1 -> 3 is 2, without it 1
    gap = d[~((d.visit == 2) & (d.subject % 3 == 0))]
    a = gee(f, gap, groups="subject", family="binomial", corstr="ar1", time="visit")
    b = gee(f, gap, groups="subject", family="binomial", corstr="ar1")
    assert abs(a.corr_params["alpha"] - b.corr_params["alpha"]) > 1e-3
    u = gee(f, gap, groups="subject", family="binomial", corstr="unstructured", time="visit")
    assert list(u.corr_params.index) == ["alpha.1:2", "alpha.1:3", "alpha.1:4", "alpha.2:3", "alpha.2:4",
                                         "alpha.3:4"]


def test_text_time_is_refused_and_an_ordered_categorical_is_used():
    """Text times sort as text ('week10' before 'week2'): refused; categories in time order work."""
    d = mfx.datasets.load("respiratory")
    f = "outcome ~ treat + sex + age + baseline"
    text = d.assign(week="week" + (d.visit * 5).astype(str))           # week5, week10, week15, week20
    with pytest.raises(mfx.DesignError, match="time= column 'week' holds text"):
        gee(f, text, groups="subject", family="binomial", corstr="ar1", time="week")
    order = [f"week{5 * v}" for v in (1, 2, 3, 4)]
    cat = text.assign(week=pd.Categorical(text.week, categories=order))
    a = gee(f, cat, groups="subject", family="binomial", corstr="ar1", time="week")
    b = gee(f, d, groups="subject", family="binomial", corstr="ar1", time="visit")
    np.testing.assert_allclose(a.coef, b.coef, rtol=1e-10)


def test_rescaled_covariate_and_response_give_equivalent_fits():
    d = mfx.datasets.load("dietox")
    a = gee("Weight ~ Time + Cu", d, groups="Pig", corstr="ar1")
    d2 = d.assign(Days=d.Time * 7.0, Grams=d.Weight * 1000.0)
    b = gee("Grams ~ Days + Cu", d2, groups="Pig", corstr="ar1")
    scale = np.array([1000.0, 1000.0 / 7.0, 1000.0, 1000.0])
    np.testing.assert_allclose(b.coef.to_numpy() / scale, a.coef.to_numpy(), rtol=1e-8)
    np.testing.assert_allclose(b.se.to_numpy() / scale, a.se.to_numpy(), rtol=1e-7)
    np.testing.assert_allclose(b.corr_params, a.corr_params, rtol=1e-8)
    assert b.scale == pytest.approx(a.scale * 1e6, rel=1e-8)
    o = mfx.datasets.load("ohio")
    m1 = gee("resp ~ age + smoke", o, groups="id", family="binomial", corstr="unstructured")
    m2 = gee("resp ~ months + smoke", o.assign(months=o.age * 12), groups="id", family="binomial",
             corstr="unstructured")
    assert m2.coef["months"] * 12 == pytest.approx(m1.coef["age"], rel=1e-8)
    assert m2.qic["QIC"] == pytest.approx(m1.qic["QIC"], rel=1e-9)


def test_binomial_counts_proportions_and_binary_rows():
    rng = np.random.default_rng(5)
    K, m = 30, 6
    g = np.repeat(np.arange(K), 3)
    x = rng.normal(size=3 * K)
    s = rng.binomial(m, 1 / (1 + np.exp(-(0.3 + 0.8 * x))))
    agg = pd.DataFrame({"g": g, "x": x, "s": s, "f": m - s, "p": s / m, "n": m})
    a = gee("cbind(s, f) ~ x", agg, groups="g", family="binomial")
    b = gee("p ~ x", agg, groups="g", family="binomial", weights="n")
    np.testing.assert_allclose(a.coef, b.coef, rtol=1e-10)
    np.testing.assert_allclose(a.se, b.se, rtol=1e-10)
    rows = agg.loc[agg.index.repeat(m)].copy()
    rows["y"] = np.concatenate([[1] * k + [0] * (m - k) for k in s])
    c = gee("y ~ x", rows, groups="g", family="binomial")
    np.testing.assert_allclose(c.coef, a.coef, rtol=1e-8)
    np.testing.assert_allclose(c.se, a.se, rtol=1e-7)      # independence: the sandwich is free of phi


def test_gamma_log_link_and_non_contiguous_clusters():
    rng = np.random.default_rng(2)
    K = 40
    g = np.tile(np.arange(K), 4)                                      # clusters interleaved
    x = rng.normal(size=4 * K)
    u = rng.normal(0, 0.3, K)[g]
    y = rng.gamma(4.0, np.exp(1 + 0.5 * x + u) / 4.0)
    d = pd.DataFrame({"g": g, "x": x, "y": y})
    a = gee("y ~ x", d, groups="g", family="Gamma", link="log", corstr="exchangeable")
    b = gee("y ~ x", d.sort_values("g", kind="stable"), groups="g", family="gamma", link="log",
            corstr="exchangeable")
    np.testing.assert_allclose(a.coef, b.coef, rtol=1e-9)
    assert a.n_clusters == K and a.cluster_sizes.eq(4).all()
    assert a.coef["x"] == pytest.approx(0.5, abs=0.15) and a.corr_params["alpha"] > 0
    assert np.isfinite(a.qic["QIC"])


def test_missing_values_are_dropped_with_a_count():
    d = mfx.datasets.load("dietox").copy()
    d.loc[[0, 5], "Weight"] = np.nan
    d.loc[7, "Time"] = np.nan
    with pytest.warns(mfx.MissingDataWarning, match="3 row"):
        g = gee("Weight ~ Time", d, groups="Pig", corstr="exchangeable")
    assert g.nobs == len(d) - 3 and g.n_dropped == 3
    assert "3 row(s) with missing values dropped" in str(g.summary())
    d2 = mfx.datasets.load("dietox").copy()
    d2["T2"] = d2.Time.astype(float)
    d2.loc[3, "T2"] = np.nan
    with pytest.warns(mfx.MissingDataWarning, match="missing time"):
        g2 = gee("Weight ~ Time", d2, groups="Pig", corstr="ar1", time="T2")
    assert g2.nobs == len(d2) - 1


def test_weights_series_with_foreign_index_is_a_clear_error():
    d = mfx.datasets.load("ohio")
    w = pd.Series(np.ones(len(d)), index=d.index + 10_000)
    with pytest.raises(mfx.DesignError, match="weights= is a Series whose index does not match"):
        gee("resp ~ age", d, groups="id", family="binomial", weights=w)


def test_missing_time_and_missing_values_give_one_count():
    d = mfx.datasets.load("dietox").copy()
    d["T2"] = d.Time.astype(float)
    d.loc[3, "T2"] = np.nan
    d.loc[[0, 5], "Weight"] = np.nan
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        g = gee("Weight ~ Time", d, groups="Pig", corstr="ar1", time="T2")
    missing = [w for w in caught if issubclass(w.category, mfx.MissingDataWarning)]
    assert len(missing) == 1
    assert str(missing[0].message).startswith(f"3 row(s) with missing values dropped (of {len(d)}")
    assert "'T2' (time=): 1" in str(missing[0].message) and missing[0].filename == __file__
    assert g.nobs == len(d) - 3 and g.n_dropped == 3
    assert "3 row(s) with missing values dropped" in str(g.summary())


def test_dict_input_gives_the_same_fit(ohio):
    a = gee("resp ~ age + smoke", {c: ohio[c].to_numpy() for c in ohio.columns}, groups="id", family="binomial",
            corstr="ar1")
    b = gee("resp ~ age + smoke", ohio, groups="id", family="binomial", corstr="ar1")
    np.testing.assert_allclose(a.coef, b.coef)
    d = a.to_dict()
    assert d["corstr"] == "ar1" and set(d["coef"]) == {"(Intercept)", "age", "smoke"} and d["converged"]


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(corstr="toeplitz"), ValueError, "unknown corstr 'toeplitz'.*'independence', 'exchangeable', 'ar1'"),
    (dict(family="negbin"), ValueError, "not available for gee; use one of gaussian, binomial, poisson, Gamma"),
    (dict(family="tweedie"), ValueError, "unknown family 'tweedie' for gee"),
    (dict(groups="ID"), mfx.DesignError, "groups='ID' is not a column of data \\(did you mean 'id'"),
    (dict(time="visit"), mfx.DesignError, "time='visit' is not a column"),
    (dict(time="id"), mfx.DesignError, "same column"),
    (dict(formula="resp ~ age + (1 | id)"), mfx.DesignError, "GEE has no random effects: remove \\(1 \\| id\\)"),
    (dict(formula="age ~ smoke"), mfx.DesignError, "outside \\[0, 1\\]"),
    (dict(groups=["id"]), TypeError, "groups= must be the name of a column"),
    (dict(maxiter=0), ValueError, "maxiter"),
    (dict(time="age", corstr="ar1", groups="smoke"), mfx.DesignError, "has time -2 more than once"),
])
def test_bad_input_errors(ohio, kwargs, exc, match):
    args = dict(formula="resp ~ age + smoke", groups="id", family="binomial")
    args.update(kwargs)
    formula = args.pop("formula")
    with pytest.raises(exc, match=match):
        gee(formula, ohio, **args)


def test_more_input_errors():
    d = pd.DataFrame({"g": [1, 1, 2, 2, 3, 3], "y": [1, -2, 3, 0, 1, 2], "t": [1, 2, 1, 3, 2, 3], "x": range(6)})
    with pytest.raises(mfx.DesignError, match="negative"):
        gee("y ~ x", d, groups="g", family="poisson")
    with pytest.raises(mfx.DesignError, match="never occur in the same cluster"):
        gee("y ~ x", d.assign(t=[1, 2, 1, 2, 3, 4]), groups="g", corstr="unstructured", time="t")
    long = pd.DataFrame({"g": np.repeat([0, 1], 120), "y": np.arange(240.0) % 7, "x": np.arange(240.0)})
    with pytest.raises(mfx.DesignError, match="over 120 times has 7140 parameters"):
        gee("y ~ x", long, groups="g", corstr="unstructured")
    with pytest.raises(mfx.DesignError, match="fewer than 2 clusters"):
        gee("y ~ x", d.assign(g=1), groups="g")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = gee("y ~ x", d, groups="g", corstr="ar1", time="t")   # gaussian, gaps in time: runs cleanly
    assert g.working_corr().shape == (3, 3)
