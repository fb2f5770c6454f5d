"""Structured random-effect covariances and residual models fitted end to end, checked against
equivalent models, a dense likelihood oracle and changes of units (no reference software)."""
import warnings

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

import mixedfx as mfx
from mixedfx.design.errors import DesignError
from mixedfx.formula.parser import FormulaSyntaxError


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def sleep():
    return mfx.datasets.load("sleepstudy")


def _fit(formula, data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mfx.lmer(formula, data, **kw)


def test_diag_equals_double_bar(sleep):
    a = _fit("Reaction ~ Days + diag(Days | Subject)", sleep, reml=False)
    b = _fit("Reaction ~ Days + (Days || Subject)", sleep, reml=False)
    assert a.objective == pytest.approx(b.objective, rel=1e-10)
    assert np.allclose(a.fixef, b.fixef, rtol=1e-7)
    assert np.allclose(np.sort(a.theta.values), np.sort(b.theta.values), rtol=1e-5)
    assert a.sigma == pytest.approx(b.sigma, rel=1e-7)


def test_ar1_equals_ou_on_equally_spaced_times(sleep):
    a = _fit("Reaction ~ Days + ar1(0 + factor(Days) | Subject)", sleep, reml=False)
    b = _fit("Reaction ~ Days + ou(0 + numFactor(Days) | Subject)", sleep, reml=False)
    assert a.objective == pytest.approx(b.objective, rel=1e-9)
    rho = a.fit.layout.structures[0].natural(a.fit.theta)["rho"]
    kappa = b.fit.layout.structures[0].natural(b.fit.theta)["kappa"]
    assert rho == pytest.approx(np.exp(-kappa), rel=1e-5)
    assert np.allclose(a.fixef, b.fixef, rtol=1e-6)


def _sd_and_corr(result):
    vc = result.varcorr
    return vc["sdcor"].to_numpy()


@pytest.mark.parametrize("formula", ["Reaction ~ Days + ar1(0 + factor(Days) | Subject)",
                                     "Reaction ~ Days + cs(0 + factor(Days) | Subject)",
                                     "Reaction ~ Days + (1 | Subject) + ar1(0 + factor(Days) | Subject)",
                                     "Reaction ~ Days + diag(Days | Subject)"])
def test_structured_fit_does_not_depend_on_units(sleep, formula):
    base = _fit(formula, sleep, reml=False)
    moved = _fit(formula, sleep.assign(Reaction=sleep["Reaction"] * 1e3 + 1e5), reml=False)
    n = len(sleep)
    assert moved.objective == pytest.approx(base.objective + 2 * n * np.log(1e3), rel=1e-9)
    sd_b, sd_m = _sd_and_corr(base), _sd_and_corr(moved)
    vc = base.varcorr
    is_sd = (vc["var2"] == "").to_numpy()
    assert np.allclose(sd_m[is_sd], 1e3 * sd_b[is_sd], rtol=2e-5)
    assert np.allclose(sd_m[~is_sd], sd_b[~is_sd], rtol=2e-5, atol=2e-6)
    assert moved.fixef.iloc[1] == pytest.approx(1e3 * base.fixef.iloc[1], rel=1e-6)


def test_ou_time_scale_changes_only_kappa():
    rng = np.random.default_rng(11)
    grid = np.array([0.0, 1.0, 1.5, 3.0, 3.25, 5.0])           # unequally spaced visit times
    C = np.exp(-0.7 * np.abs(grid[:, None] - grid[None, :]))   # OU correlation of the subject effects
    rows = []
    for i in range(60):
        b = np.linalg.cholesky(C) @ rng.normal(size=len(grid)) * 1.5
        for j in np.sort(rng.choice(len(grid), 4, replace=False)):
            for _ in range(2):      # replicates identify the residual variance next to the OU process
                rows.append((f"s{i}", grid[j], 1.0 + 0.3 * grid[j] + b[j] + rng.normal() * 0.5))
    df = pd.DataFrame(rows, columns=["id", "t", "y"])
    a = _fit("y ~ t + ou(0 + numFactor(t) | id)", df, reml=False)
    b = _fit("y ~ t + ou(0 + numFactor(t) | id)", df.assign(t=df["t"] * 60.0), reml=False)
    assert b.objective == pytest.approx(a.objective, rel=1e-9)
    ka = a.fit.layout.structures[0].natural(a.fit.theta)["kappa"]
    kb = b.fit.layout.structures[0].natural(b.fit.theta)["kappa"]
    assert 0.2 < ka < 3.0 and not a.is_singular
    assert kb == pytest.approx(ka / 60.0, rel=1e-4)


def test_glmm_accepts_structures():
    cbpp = mfx.datasets.load("cbpp")
    f = "cbind(incidence, size - incidence) ~ period + {} | herd)"
    a = mfx.glmer(f.format("(1"), cbpp, family="binomial", optimizer="bobyqa")
    b = mfx.glmer(f.format("diag(1"), cbpp, family="binomial", optimizer="bobyqa")
    assert b.fit.deviance == pytest.approx(a.fit.deviance, rel=1e-9)
    assert b.theta.iloc[0] == pytest.approx(a.theta.iloc[0], rel=1e-4)


@pytest.mark.parametrize("formula, match", [
    ("Reaction ~ Days + ar1(Days | Subject)", "needs the time points as a factor"),
    ("Reaction ~ Days + cs(1 | Subject)", "correlates the term's columns"),
    ("Reaction ~ Days + ou(0 + factor(S) | Days)", "numeric time points"),
])
def test_structure_errors_name_the_term(sleep, formula, match):
    with pytest.raises(DesignError, match=match):
        mfx.lmer(formula, sleep.assign(S="s" + sleep["Subject"].astype(str)))


def test_ar1_on_unequal_spacing_points_to_ou(sleep):
    uneven = sleep.assign(T=sleep["Days"].map(lambda d: d ** 2))
    with pytest.raises(DesignError, match="ou\\(0 \\+ numFactor"):
        mfx.lmer("Reaction ~ Days + ar1(0 + factor(T) | Subject)", uneven)


def test_double_bar_inside_structure_is_a_syntax_error(sleep):
    with pytest.raises(FormulaSyntaxError, match="diag"):
        mfx.lmer("Reaction ~ Days + cs(Days || Subject)", sleep)


# ----------------------------------------------------------------------------- residual models
def _longitudinal(seed=5, n_id=30):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_id):
        m = int(rng.integers(3, 7))
        t = np.sort(rng.choice(np.arange(10), m, replace=False)).astype(float)
        g = "B" if i % 3 == 0 else "A"
        u = rng.normal() * 1.5
        e = np.zeros(m)
        for j in range(m):
            e[j] = (0.6 ** (t[j] - t[j - 1]) * e[j - 1] if j else 0.0) + rng.normal() * (2.0 if g == "B" else 1.0)
        for tj, ej in zip(t, e):
            rows.append((f"id{i}", tj, g, rng.normal(), 3.0 + 0.5 * tj + u + ej))
    df = pd.DataFrame(rows, columns=["id", "t", "g", "x", "y"])
    return df.sample(frac=1.0, random_state=1).reset_index(drop=True)      # rows in no particular order


def _dense_criterion(result, df, reml, w=None):
    """-2 log L (ML) or REML criterion from the dense covariance V = Z G Z' + sigma^2 S R S."""
    fit = result.fit
    X = fit.design.X
    y = fit.design.y
    n, p = X.shape
    ids = df["id"].to_numpy()
    G = float(result.varcorr["vcov"].iloc[0])
    same = ids[:, None] == ids[None, :]
    nat = fit.residual.natural
    t = df["t"].to_numpy()
    R = np.eye(n)
    if "rho" in nat:
        R = np.where(same, nat["rho"] ** np.abs(t[:, None] - t[None, :]), 0.0)
    elif "phi" in nat:
        R = np.where(same, nat["phi"] ** np.abs(t[:, None] - t[None, :]), 0.0)
    delta = np.asarray(nat["delta"], float)
    s = np.exp((df["g"].to_numpy() == "B") * (delta[0] if delta.size else 0.0))
    if w is not None:
        s = s / np.sqrt(w)
    V = G * same + fit.sigma ** 2 * (s[:, None] * R * s[None, :])
    Vi = np.linalg.inv(V)
    XtViX = X.T @ Vi @ X
    beta = np.linalg.solve(XtViX, X.T @ Vi @ y)
    r = y - X @ beta
    val = np.linalg.slogdet(V)[1] + r @ Vi @ r + (n - p if reml else n) * np.log(2 * np.pi)
    if reml:
        val += np.linalg.slogdet(XtViX)[1]
    return val, beta


@pytest.mark.parametrize("kw", [dict(correlation="ar1(t | id)"), dict(correlation="car1(t | id)"),
                                dict(disp="~ g"), dict(correlation="ar1(t | id)", disp="~ g")])
@pytest.mark.parametrize("reml", [False, True])
def test_residual_model_matches_dense_likelihood(kw, reml):
    df = _longitudinal()
    m = _fit("y ~ t + x + (1 | id)", df, reml=reml, **kw)
    val, beta = _dense_criterion(m, df, reml)
    assert m.objective == pytest.approx(val, rel=1e-9)
    assert np.allclose(m.fixef.to_numpy(), beta, rtol=1e-7)


def test_residual_model_does_not_depend_on_units():
    df = _longitudinal()
    a = _fit("y ~ t + x + (1 | id)", df, reml=False, correlation="ar1(t | id)", disp="~ g")
    b = _fit("y ~ t + x + (1 | id)", df.assign(y=df["y"] * 1e-4 + 7e3), reml=False, correlation="ar1(t | id)",
             disp="~ g")
    n = len(df)
    assert b.objective == pytest.approx(a.objective + 2 * n * np.log(1e-4), rel=1e-9)
    assert b.residual_params["rho"] == pytest.approx(a.residual_params["rho"], rel=1e-5)
    assert np.allclose(b.residual_params["delta"], a.residual_params["delta"], rtol=1e-5)
    assert b.sigma == pytest.approx(1e-4 * a.sigma, rel=1e-6)


def test_residual_cs_equals_random_intercept_when_positive():
    df = _longitudinal(seed=8)
    a = _fit("y ~ t + (1 | id)", df, reml=False)
    b = _fit("y ~ t + (1 | id)", df, reml=False, correlation="cs(1 | id)")
    # cs residuals add nothing to a random intercept when the within-group correlation is >= 0
    assert b.objective <= a.objective + 1e-8


def test_residual_model_errors():
    pen = mfx.datasets.load("penicillin")
    with pytest.raises(DesignError, match="nested in every grouping factor"):
        mfx.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", pen, correlation="ar1(1 | plate)")
    df = _longitudinal()
    with pytest.raises(DesignError, match="intercept"):
        mfx.lmer("y ~ t + (1 | id)", df, disp="~ 1")
    with pytest.raises(DesignError, match="one-sided"):
        mfx.lmer("y ~ t + (1 | id)", df, disp="y ~ g")
    with pytest.raises(ValueError, match="positive"):
        mfx.lmer("y ~ t + (1 | id)", df, weights=np.r_[0.0, np.ones(len(df) - 1)], correlation="ar1(t | id)")
    with pytest.raises(DesignError, match="not in the data"):
        mfx.lmer("y ~ t + (1 | id)", df, correlation="ar1(time | id)")
    with pytest.raises(FormulaSyntaxError, match="car1"):
        mfx.lmer("y ~ t + (1 | id)", df, correlation="ar2(t | id)")
    with pytest.raises(DesignError, match="integer"):
        mfx.lmer("y ~ t + (1 | id)", df.assign(t=df["t"] + 0.5 * (df["x"] > 0)), correlation="ar1(t | id)")


def test_residual_model_methods_that_need_refits_say_so():
    df = _longitudinal()
    m = _fit("y ~ t + (1 | id)", df, correlation="ar1(t | id)")
    text = str(m.summary())
    assert "residual correlation ar1(t | id): rho =" in text
    with pytest.raises(NotImplementedError, match="disp="):
        _fit("y ~ t + (1 | id)", df, disp="~ g").icc()
    for method in (lambda: m.simulate(2, newdata=df.head(3)),
                   lambda: m.influence()):
        with pytest.raises(NotImplementedError, match="correlation= or disp="):
            method()
    assert np.all(np.isfinite(m.predict(df.head(5))))


def test_profile_interval_of_a_structure_parameter_is_where_the_deviance_rises_by_z2(sleep):
    """At each end of the profile interval for ar1's rho, an independent minimization (Nelder-Mead
    over the other parameters, sigma profiled in closed form) gives ML deviance = optimum + z^2."""
    from scipy.optimize import minimize
    from scipy.stats import norm
    m = _fit("Reaction ~ Days + ar1(0 + factor(Days) | Subject)", sleep, reml=False)
    ci = m.confint(method="profile", parm=["rho_ar1|Subject", "sd_ar1|Subject"])
    st = m.fit.layout.structures[0]
    ws = m.fit.fresh_workspace()
    d_hat = m.objective
    z2 = norm.ppf(0.975) ** 2
    for end in ci.loc["rho_ar1|Subject"]:
        a = st.from_natural_vector([1.0, end], 1.0)[1]

        def dev(s):
            return ws.update(np.array([abs(s[0]), a])).deviance(reml=False)
        best = minimize(dev, [m.fit.theta[0]], method="Nelder-Mead", options=dict(xatol=1e-10, fatol=1e-12)).fun
        assert best - d_hat == pytest.approx(z2, abs=2e-3)
    lo, hi = ci.loc["sd_ar1|Subject"]
    assert 0 < lo < m.structure_params["ar1(0 + factor(Days) | Subject)"]["sd"] < hi
    zeta = m.profile(parm="rho_ar1|Subject", points=3)
    assert np.all(np.diff(zeta["zeta"].to_numpy()) > 0)       # increasing in rho


def test_inference_on_a_structured_term_equals_the_equivalent_model(sleep):
    a = _fit("Reaction ~ Days + diag(Days | Subject)", sleep)
    b = _fit("Reaction ~ Days + (Days || Subject)", sleep)
    for ddf in ("satterthwaite", "kenward-roger"):
        ta, tb = a.coef_table(ddf=ddf), b.coef_table(ddf=ddf)
        assert np.allclose(ta["se"], tb["se"], rtol=1e-5)
        assert np.allclose(ta["df"], tb["df"], rtol=1e-4)


def test_simulate_draws_from_the_structured_covariance(sleep):
    m = _fit("Reaction ~ Days + ar1(0 + factor(Days) | Subject)", sleep)
    sims = np.asarray(m.simulate(4000, seed=3))                    # (n, nsim)
    rows = np.flatnonzero((sleep["Subject"] == "308").to_numpy())
    emp = np.cov(sims[rows])
    st = m.fit.layout.structures[0]
    V = m.sigma ** 2 * (st.cov(m.fit.theta) + np.eye(len(rows)))
    assert np.max(np.abs(emp - V)) < 0.08 * np.max(V)
    assert np.allclose(sims[rows].mean(axis=1), m.predict(sleep.iloc[rows], re_form="~0"), atol=0.1 * np.sqrt(V[0, 0]))


def test_structured_and_residual_fits_save_and_load(tmp_path):
    bw = mfx.datasets.load("bodyweight")
    m = _fit("weight ~ Time * Diet + (1 + Time | Rat) + ou(0 + numFactor(Time) | Rat)", bw, reml=False)
    m.save(tmp_path / "ou.json")
    loaded = mfx.load(tmp_path / "ou.json")
    key = "ou(0 + numFactor(Time) | Rat)"
    assert loaded.structure_params[key]["kappa"] == pytest.approx(m.structure_params[key]["kappa"], rel=1e-12)
    assert np.allclose(loaded.predict(bw.head(5)), m.predict(bw.head(5)), rtol=1e-12)
    df = _longitudinal()
    r = _fit("y ~ t + (1 | id)", df, correlation="ar1(t | id)", disp="~ g")
    r.save(tmp_path / "r.json")
    back = mfx.load(tmp_path / "r.json")
    assert back.residual_params["rho"] == pytest.approx(r.residual_params["rho"], rel=1e-12)
    assert np.allclose(back.residual_params["delta"], r.residual_params["delta"], rtol=1e-12)


def test_satterthwaite_df_with_a_residual_model_match_a_dense_oracle():
    """df = 2 var^2 / (g' A g) from a dense REML deviance in (tau, rho, delta, sigma): the df do not
    depend on how the variance parameters are written, so this is an independent computation."""
    df = _longitudinal(seed=21, n_id=24)
    m = _fit("y ~ t + x + (1 | id)", df, correlation="ar1(t | id)", disp="~ g")
    X, y = m.fit.design.X, m.fit.design.y
    n, p = X.shape
    ids, t = df["id"].to_numpy(), df["t"].to_numpy()
    same = ids[:, None] == ids[None, :]
    lag = np.abs(t[:, None] - t[None, :])
    isb = (df["g"].to_numpy() == "B").astype(float)

    def parts(v):
        tau, rho, delta, sigma = v
        s = np.exp(isb * delta)
        V = tau ** 2 * same + sigma ** 2 * np.where(same, rho ** lag, 0.0) * np.outer(s, s)
        Vi = np.linalg.inv(V)
        XtViX = X.T @ Vi @ X
        return V, Vi, XtViX

    def deviance(v):
        V, Vi, XtViX = parts(v)
        beta = np.linalg.solve(XtViX, X.T @ Vi @ y)
        r = y - X @ beta
        return np.linalg.slogdet(V)[1] + np.linalg.slogdet(XtViX)[1] + r @ Vi @ r

    v0 = np.array([np.sqrt(float(m.varcorr["vcov"].iloc[0])), m.residual_params["rho"],
                   float(m.residual_params["delta"].iloc[0]), m.sigma])
    h = 1e-4 * np.abs(v0)
    k = len(v0)
    H = np.empty((k, k))
    for i in range(k):
        for j in range(k):
            ei, ej = np.eye(k)[i] * h[i], np.eye(k)[j] * h[j]
            H[i, j] = (deviance(v0 + ei + ej) - deviance(v0 + ei - ej) - deviance(v0 - ei + ej)
                       + deviance(v0 - ei - ej)) / (4 * h[i] * h[j])
    A = 2 * np.linalg.inv(H)
    ours = m.coef_table()["df"].to_numpy()
    for j in range(p):
        def var(v, j=j):
            return np.linalg.inv(parts(v)[2])[j, j]
        g = np.array([(var(v0 + np.eye(k)[i] * h[i]) - var(v0 - np.eye(k)[i] * h[i])) / (2 * h[i]) for i in range(k)])
        dense = 2 * var(v0) ** 2 / (g @ A @ g)
        assert ours[j] == pytest.approx(dense, rel=2e-3)


def test_bootstrap_reports_the_structure_parameters(sleep):
    m = _fit("Reaction ~ Days + ar1(0 + factor(Days) | Subject)", sleep)
    ci = m.confint(method="boot", nsim=20, seed=2)
    assert list(ci.index[:3]) == ["sd_ar1|Subject", "rho_ar1|Subject", "sigma"]
    assert -1 < ci.loc["rho_ar1|Subject", "lower"] < ci.loc["rho_ar1|Subject", "upper"] < 1


def test_simulate_and_bootstrap_with_a_residual_model():
    df = _longitudinal(seed=9, n_id=30)
    m = _fit("y ~ t + (1 | id)", df, correlation="car1(t | id)", disp="~ g")
    sims = np.asarray(m.simulate(4000, seed=4))
    first = df["id"].iloc[0]
    rows = np.flatnonzero((df["id"] == first).to_numpy())
    t = df["t"].to_numpy()[rows]
    s = np.exp((df["g"].to_numpy()[rows] == "B") * float(m.residual_params["delta"].iloc[0]))
    R = m.residual_params["phi"] ** np.abs(t[:, None] - t[None, :])
    V = float(m.varcorr["vcov"].iloc[0]) + m.sigma ** 2 * np.outer(s, s) * R
    emp = np.cov(sims[rows])
    assert np.max(np.abs(emp - V)) < 0.1 * np.max(V)
    reps = m.bootstrap(nsim=8, seed=1) if hasattr(m, "bootstrap") else None
    ci = m.confint(method="boot", nsim=8, seed=1)
    assert {"phi", "delta_gB", "sigma", "sd_(Intercept)|id"} <= set(ci.index)
    assert 0 < ci.loc["phi", "lower"] <= ci.loc["phi", "upper"] < 1
    assert reps is None or len(reps) == 8


def test_profile_interval_of_a_residual_parameter():
    """At the ends of the profile interval for disp's delta, re-minimizing the whitened criterion over
    the other parameters (Nelder-Mead, sigma profiled) gives the optimum + z^2."""
    from scipy.optimize import minimize
    from scipy.stats import norm
    from mixedfx.models.residual_fit import whitened_criterion
    df = _longitudinal(seed=12, n_id=30)
    m = _fit("y ~ t + (1 | id)", df, reml=False, correlation="car1(t | id)", disp="~ g")
    ci = m.confint(method="profile", parm=["delta_gB", "phi"])
    crit = whitened_criterion(m.fit)
    x_hat = np.concatenate([m.fit.internal.theta, m.fit.residual.par])
    d_hat = crit(x_hat)
    z2 = norm.ppf(0.975) ** 2
    for end in ci.loc["delta_gB"]:
        def f(z):
            return crit(np.array([z[0], z[1], end]))
        best = minimize(f, x_hat[:2], method="Nelder-Mead", options=dict(xatol=1e-9, fatol=1e-11)).fun
        assert best - d_hat == pytest.approx(z2, abs=2e-3)
    assert 0 < ci.loc["phi", "lower"] < m.residual_params["phi"] < ci.loc["phi", "upper"] < 1


def test_check_probes_the_residual_parameters_too():
    df = _longitudinal()
    m = _fit("y ~ t + (1 | id)", df, correlation="ar1(t | id)", disp="~ g")
    rows = dict(zip(m.check().findings["check"], m.check().findings["status"]))
    assert rows["convergence"] == "ok" and rows["identifiability"] == "ok"
    early = _fit("y ~ t + (1 | id)", df, correlation="ar1(t | id)", disp="~ g", maxeval=6)
    found = early.check().findings
    assert dict(zip(found["check"], found["status"]))["convergence"] == "warning"


@pytest.mark.parametrize("reml", [False, True])
def test_residual_model_with_prior_weights_matches_dense_likelihood(reml):
    df = _longitudinal(seed=13)
    w = np.random.default_rng(2).uniform(0.5, 2.0, len(df))
    m = _fit("y ~ t + x + (1 | id)", df, reml=reml, weights=w, correlation="car1(t | id)", disp="~ g")
    val, beta = _dense_criterion(m, df, reml, w=w)
    assert m.objective == pytest.approx(val, rel=1e-9)
    assert np.allclose(m.fixef.to_numpy(), beta, rtol=1e-7)
    c = _fit("y ~ t + x + (1 | id)", df, reml=reml, weights=np.full(len(df), 4.0), correlation="car1(t | id)")
    u = _fit("y ~ t + x + (1 | id)", df, reml=reml, correlation="car1(t | id)")
    assert c.objective == pytest.approx(u.objective, rel=1e-9)     # the same distribution of y
    assert c.sigma == pytest.approx(2.0 * u.sigma, rel=1e-6)


def test_structured_profiler_agrees_with_lme4s_profile_on_an_unstructured_model(sleep):
    """The natural-coordinate profiler handles unstructured terms too (next to structured ones);
    on (Days | Subject) its intervals equal those of the lme4-style profiler, itself checked
    against lme4."""
    from scipy.stats import norm
    from mixedfx.inference.profile_structured import StructuredProfiler
    m = _fit("Reaction ~ Days + (Days | Subject)", sleep, reml=False)
    ref = m.confint(method="profile")
    pr = StructuredProfiler(m)
    z = norm.ppf(0.975)
    for name in ["sd_(Intercept)|Subject", "cor_Days.(Intercept)|Subject", "sd_Days|Subject", "sigma"]:
        j = pr.names.index(name)
        lo, hi = pr.limit(j, -z), pr.limit(j, z)
        assert lo == pytest.approx(ref.loc[name, "lower"], abs=2e-3 * abs(pr.vhat[j]) + 1e-4)
        assert hi == pytest.approx(ref.loc[name, "upper"], abs=2e-3 * abs(pr.vhat[j]) + 1e-4)


@pytest.mark.parametrize("formula", ["Reaction ~ Days + (Days | Subject)",
                                     "Reaction ~ Days + ar1(0 + factor(Days) | Subject)",
                                     "Reaction ~ Days + (1 | Subject) + diag(Days | Subject)"])
def test_dense_kenward_roger_equals_the_q_space_one(sleep, formula):
    """The dense n x n path (used with correlation= / disp=) reproduces the Woodbury one."""
    from mixedfx.inference.kenward_roger import KenwardRoger
    m = _fit(formula, sleep)
    a, b = KenwardRoger(m.fit), KenwardRoger(m.fit, dense=True)
    assert np.allclose(a.Phi_A, b.Phi_A, rtol=1e-10)
    for L in (np.array([1.0, 0.0]), np.array([0.0, 1.0])):
        assert a.ddf(L) == pytest.approx(b.ddf(L), rel=1e-9)


def test_kenward_roger_with_a_residual_model():
    df = _longitudinal(seed=17, n_id=24)
    m = _fit("y ~ t + x + (1 | id)", df, correlation="ar1(t | id)", disp="~ g")
    kr = m.coef_table(ddf="kenward-roger")
    naive = m.coef_table(ddf="satterthwaite")
    assert np.all(kr["se"] >= naive["se"] * (1 - 1e-12)) and np.all(np.isfinite(kr["df"]))
    moved = _fit("y ~ t + x + (1 | id)", df.assign(y=df["y"] * 1e3 - 50), correlation="ar1(t | id)", disp="~ g")
    kr2 = moved.coef_table(ddf="kenward-roger")
    assert np.allclose(kr2["df"], kr["df"], rtol=1e-5)
    assert np.allclose(kr2["se"].iloc[1:], 1e3 * kr["se"].iloc[1:], rtol=1e-5)


def test_kenward_roger_does_not_depend_on_the_response_units(sleep):
    """The expected information is inverted on the correlation scale: an absolute eigenvalue
    threshold switched to a pseudo-inverse when the response was in large units."""
    a = _fit("Reaction ~ Days + (Days | Subject)", sleep).coef_table(ddf="kenward-roger")
    b = _fit("Reaction ~ Days + (Days | Subject)", sleep.assign(Reaction=sleep["Reaction"] * 1e4)
             ).coef_table(ddf="kenward-roger")
    assert np.allclose(b["df"], a["df"], rtol=1e-6)
    assert np.allclose(b["se"], 1e4 * a["se"], rtol=1e-6)


@pytest.mark.parametrize("formula", ["cbind(incidence, size - incidence) ~ period + ar1(0 + period | herd)",
                                     "cbind(incidence, size - incidence) ~ period + (1 | herd)"
                                     " + diag(0 + period | herd)"])
def test_laplace_gradient_chains_through_structures(formula):
    from mixedfx.design import build_design
    from mixedfx.families import get_family
    from mixedfx.formula.terms import parse_formula
    from mixedfx.models.glmm import make_glmm_workspace
    fam = get_family("binomial")
    des = build_design(parse_formula(formula), mfx.datasets.load("cbpp"), family=fam)
    gw = make_glmm_workspace(des, fam)
    k = gw.layout.n_theta
    x = np.concatenate([gw.layout.initial() + 0.3, [-1.4, -1.0, -1.1, -1.6]])

    def dev(z):
        return gw.laplace(gw.pirls(z[:k], beta=z[k:], utol=1e-13), phi=1.0)
    g = gw.laplace_gradient(x[:k], gw.pirls(x[:k], beta=x[k:], utol=1e-13))
    h = 1e-6
    fd = np.array([(dev(x + h * e) - dev(x - h * e)) / (2 * h) for e in np.eye(len(x))])
    assert np.max(np.abs(g - fd)) < 1e-7 * np.max(np.abs(fd))


def test_glmm_profile_of_a_structured_term_equals_the_unstructured_one():
    """diag(1 | herd) is (1 | herd): the structured GLMM profiler gives lme4's intervals (the
    unstructured GLMM profile is checked against lme4 elsewhere)."""
    cbpp = mfx.datasets.load("cbpp")
    f = "cbind(incidence, size - incidence) ~ period + {} | herd)"
    a = mfx.glmer(f.format("(1"), cbpp, family="binomial").confint(method="profile")
    b = mfx.glmer(f.format("diag(1"), cbpp, family="binomial").confint(method="profile")
    assert list(a.index) == list(b.index)
    assert np.allclose(a.to_numpy(), b.to_numpy(), rtol=1e-5, atol=1e-6)
    m = mfx.glmer("cbind(incidence, size - incidence) ~ period + ar1(0 + period | herd)", cbpp, family="binomial")
    ci = m.confint(method="profile", parm=["rho_ar1|herd"])
    assert -1 < ci.iloc[0, 0] < m.structure_params["ar1(0 + period | herd)"]["rho"] < ci.iloc[0, 1] < 1


def test_residual_models_fit_with_every_derivative_free_optimizer():
    df = _longitudinal(seed=3)
    fits = mfx.allfit("y ~ t + (1 | id)", df, correlation="ar1(t | id)")
    crit = fits.table["criterion"]
    assert crit.drop("lbfgs").notna().all() and np.isnan(crit["lbfgs"])
    assert np.ptp(crit.dropna().to_numpy()) < 1e-6 * abs(crit["bobyqa"])
