"""Standard errors and intervals from ``predict`` (issue 12, part 3).

Analytic checks: known-group confidence SEs against a dense brute-force inverse of Henderson's
mixed-model equations (sleepstudy and a crossed model, REML and ML); new-subject and
population-level SEs against ``x'V_beta x + z'Gz + sigma^2`` from the reported estimates.
The coverage simulation is ``test_predict_coverage.py`` (slow) and
``benchmarks/coverage_prediction.py``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import mixedfx as mf
from mixedfx.core import condvar
from mixedfx.core.condvar import ConditionalCovariance


@pytest.fixture(scope="module")
def sleep():
    return mf.datasets.load("sleepstudy")


@pytest.fixture(scope="module", params=[True, False], ids=["REML", "ML"])
def sleep_fit(request, sleep):
    return mf.lmer("Reaction ~ Days + (Days | Subject)", sleep, reml=request.param)


@pytest.fixture(scope="module")
def penicillin():
    return mf.datasets.load("penicillin")


def _dense_z(result):
    """Dense Z (n, q) in lme4's column order (per term, level-major) and G (q, q) in user units."""
    fit = result.fit
    cols, Gs = [], []
    for k, b in enumerate(fit.design.blocks):
        p = b.X.shape[1]
        Zk = np.zeros((fit.design.n, b.nlevels * p))
        for j in range(p):
            Zk[np.arange(fit.design.n), b.codes * p + j] = b.X[:, j]
        cols.append(Zk)
        lam = fit.layout.lambdas(fit.theta)[k]
        Gs.append(np.kron(np.eye(b.nlevels), result._scale ** 2 * lam @ lam.T))
    q = sum(G.shape[0] for G in Gs)
    G = np.zeros((q, q))
    s = 0
    for Gk in Gs:
        G[s:s + len(Gk), s:s + len(Gk)] = Gk
        s += len(Gk)
    return np.hstack(cols), G


def _henderson_se(result, rows_X, rows_Z):
    """Brute force: ``sigma^2 C^{-1}`` with ``C = [X'WX X'WZ; Z'WX Z'WZ + sigma^2 G^{-1}]`` (G invertible here)."""
    X = result.fit.design.X
    Z, G = _dense_z(result)
    w = result.fit.design.weights
    w = np.ones(len(X)) if w is None else w
    s2 = result.sigma ** 2
    WX, WZ = w[:, None] * X, w[:, None] * Z
    C = np.block([[X.T @ WX, X.T @ WZ], [Z.T @ WX, Z.T @ WZ + s2 * np.linalg.inv(G)]])
    V = s2 * np.linalg.inv(C)
    L = np.hstack([rows_X, rows_Z])
    return np.sqrt(np.einsum("ij,jk,ik->i", L, V, L))


def _z_rows(result, frame):
    """Dense Z rows for new data at fitted levels."""
    spec = result.fit.design.spec
    parts = spec.random_parts(frame)
    out = []
    for (codes, Xk), b in zip(parts, result.fit.design.blocks):
        p = Xk.shape[1]
        Zk = np.zeros((len(frame), b.nlevels * p))
        for j in range(p):
            Zk[np.arange(len(frame)), codes * p + j] = Xk[:, j]
        out.append(Zk)
    return np.hstack(out)


def test_known_group_confidence_se_equals_henderson_sleepstudy(sleep_fit, sleep):
    nd = pd.DataFrame({"Days": [0.0, 4.5, 9.0, 12.0], "Subject": pd.Categorical(["308", "309", "372", "308"])})
    got = sleep_fit.predict(nd, interval="confidence")
    X = sleep_fit.fit.design.spec.fixed_matrix(nd)
    want = _henderson_se(sleep_fit, X, _z_rows(sleep_fit, nd))
    np.testing.assert_allclose(got["se_fit"].to_numpy(), want, rtol=1e-6)
    np.testing.assert_allclose(got["fit"].to_numpy(), sleep_fit.predict(nd), rtol=1e-12)
    # the Henderson inverse includes the fixed effects' uncertainty: larger than condVar alone
    cv = sleep_fit.fit.cond_var[0]
    z_only = np.array([[1.0, d] for d in nd["Days"]])
    lev = sleep_fit.fit.design.spec.random_parts(nd)[0][0]
    condvar_only = np.einsum("ij,ijk,ik->i", z_only, cv[lev], z_only)
    assert np.all(got["se_fit"].to_numpy() ** 2 > condvar_only)


@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
def test_known_group_confidence_se_equals_henderson_crossed(penicillin, reml):
    m = mf.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", penicillin, reml=reml)
    nd = penicillin.iloc[[0, 7, 50, 143]].copy()
    got = m.predict(nd, se_fit=True)
    assert list(got.columns) == ["fit", "se_fit"]
    want = _henderson_se(m, m.fit.design.spec.fixed_matrix(nd), _z_rows(m, nd))
    np.testing.assert_allclose(got["se_fit"].to_numpy(), want, rtol=1e-6)
    # one factor new, the other known: the new one adds its variance, independent of the rest
    nd2 = nd.copy()
    nd2["plate"] = "zz"
    both = m.predict(nd2, se_fit=True, allow_new_levels=True, re_form=None)
    only_sample = m.predict(nd, se_fit=True, re_form="~ (1 | sample)")
    tau2_plate = m.varcorr.set_index("grp").loc["plate", "vcov"]
    np.testing.assert_allclose(both["se_fit"] ** 2, only_sample["se_fit"] ** 2 + tau2_plate, rtol=1e-8)


def test_new_subject_prediction_se_is_analytic(sleep_fit):
    nd = pd.DataFrame({"Days": [0.0, 3.0, 8.0], "Subject": ["new1", "new2", "new1"]})
    got = sleep_fit.predict(nd, interval="prediction", level=0.9, allow_new_levels=True)
    X = np.column_stack([np.ones(3), nd["Days"]])
    lam = sleep_fit.fit.layout.lambdas(sleep_fit.fit.theta)[0]
    G = sleep_fit.sigma ** 2 * lam @ lam.T
    V = sleep_fit.vcov().to_numpy()
    want = np.sqrt(np.einsum("ij,jk,ik->i", X, V + G, X) + sleep_fit.sigma ** 2)
    np.testing.assert_allclose(got["se_fit"].to_numpy(), want, rtol=1e-8)
    z = stats.norm.ppf(0.95)
    np.testing.assert_allclose(got["lower"], got["fit"] - z * got["se_fit"], rtol=1e-12)
    np.testing.assert_allclose(got["upper"], got["fit"] + z * got["se_fit"], rtol=1e-12)
    # G from varcorr agrees with the factor
    vc = sleep_fit.varcorr
    assert np.isclose(G[0, 0], vc.loc[(vc.var1 == "(Intercept)") & (vc.var2 == ""), "vcov"].iloc[0])
    # the confidence interval of a new subject's mean: the same without sigma^2
    conf = sleep_fit.predict(nd, interval="confidence", allow_new_levels=True)
    np.testing.assert_allclose(conf["se_fit"] ** 2, want ** 2 - sleep_fit.sigma ** 2, rtol=1e-8)


def test_population_level_confidence_and_prediction(sleep_fit):
    nd = pd.DataFrame({"Days": [1.0, 6.0]}, index=["a", "b"])          # no Subject column needed
    conf = sleep_fit.predict(nd, re_form="~0", interval="confidence")
    pred = sleep_fit.predict(nd, re_form="~0", interval="prediction")
    assert list(conf.index) == ["a", "b"] and list(conf.columns) == ["fit", "se_fit", "lower", "upper"]
    X = np.column_stack([np.ones(2), nd["Days"]])
    V = sleep_fit.vcov().to_numpy()
    lam = sleep_fit.fit.layout.lambdas(sleep_fit.fit.theta)[0]
    G = sleep_fit.sigma ** 2 * lam @ lam.T
    np.testing.assert_allclose(conf["se_fit"] ** 2, np.einsum("ij,jk,ik->i", X, V, X), rtol=1e-8)
    np.testing.assert_allclose(pred["se_fit"] ** 2, np.einsum("ij,jk,ik->i", X, V + G, X) + sleep_fit.sigma ** 2,
                               rtol=1e-8)


def test_fitted_rows_and_backwards_compatibility(sleep_fit, sleep):
    plain = sleep_fit.predict()
    assert isinstance(plain, np.ndarray)
    framed = sleep_fit.predict(se_fit=True)
    np.testing.assert_allclose(framed["fit"].to_numpy(), plain)
    assert framed.index.equals(sleep.index)
    assert np.all(framed["se_fit"] > 0)
    # a larger level gives a wider interval
    a = sleep_fit.predict(sleep.head(3), interval="confidence", level=0.8)
    b = sleep_fit.predict(sleep.head(3), interval="confidence", level=0.99)
    assert np.all(b["upper"] - b["lower"] > a["upper"] - a["lower"])


def test_missing_rows_give_nan(sleep_fit):
    nd = pd.DataFrame({"Days": [1.0, np.nan], "Subject": ["308", "308"]})
    out = sleep_fit.predict(nd, interval="prediction")
    assert np.isfinite(out.iloc[0]).all() and out.iloc[1].isna().all()


def test_sparse_path_agrees_with_dense(penicillin, monkeypatch):
    m = mf.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", penicillin)
    nd = penicillin.iloc[[3, 90]]
    dense = m.predict(nd, se_fit=True)
    monkeypatch.setattr(condvar, "DENSE_MAX_Q", 1)
    m2 = mf.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", penicillin)     # a new fit: no cached factor
    sparse = m2.predict(nd, se_fit=True)
    np.testing.assert_allclose(sparse["se_fit"], dense["se_fit"], rtol=1e-10)
    # more rows than random effects: A^{-1} by blocks of columns
    np.testing.assert_allclose(m2.predict(se_fit=True)["se_fit"], m.predict(se_fit=True)["se_fit"], rtol=1e-10)


@pytest.mark.parametrize("kwargs, match", [
    (dict(interval="tolerance"), "interval must be"),
    (dict(interval="confidence", level=1.5), "level must be"),
    (dict(interval="confidence", level=0), "level must be"),
    (dict(se_fit=True, level="95%"), "level must be"),
])
def test_bad_arguments(sleep_fit, sleep, kwargs, match):
    with pytest.raises(ValueError, match=match):
        sleep_fit.predict(sleep.head(2), **kwargs)


def test_new_levels_need_allow_new_levels(sleep_fit):
    nd = pd.DataFrame({"Days": [1.0], "Subject": ["new"]})
    with pytest.raises(ValueError, match="allow_new_levels=True"):
        sleep_fit.predict(nd, interval="prediction")


def test_weighted_lmm_confidence_and_refused_prediction(sleep):
    w = np.where(sleep["Days"] > 4, 2.0, 1.0)
    m = mf.lmer("Reaction ~ Days + (Days | Subject)", sleep, weights=w)
    nd = sleep.iloc[[0, 15, 99]]
    got = m.predict(nd, interval="confidence")["se_fit"].to_numpy()
    want = _henderson_se(m, m.fit.design.spec.fixed_matrix(nd), _z_rows(m, nd))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    with pytest.raises(ValueError, match="prior weights"):
        m.predict(sleep.head(2), interval="prediction")


def test_residual_model_refused(sleep):
    m = mf.lmer("Reaction ~ Days + (1 | Subject)", sleep, correlation="ar1(Days | Subject)")
    with pytest.raises(NotImplementedError, match="correlation= or disp="):
        m.predict(sleep.head(2), se_fit=True)


def test_loaded_result_population_level_only(sleep_fit, sleep, tmp_path):
    path = tmp_path / "fit.json"
    sleep_fit.save(path)
    loaded = mf.load(path)
    nd = pd.DataFrame({"Days": [2.0], "Subject": ["new"]})
    a = loaded.predict(nd, interval="prediction", allow_new_levels=True)
    b = sleep_fit.predict(nd, interval="prediction", allow_new_levels=True)
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="loaded result"):
        loaded.predict(sleep.head(1), se_fit=True)


# ------------------------------------------------------------------ GLMMs
@pytest.fixture(scope="module")
def cbpp_fit():
    cbpp = mf.datasets.load("cbpp")
    return mf.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial"), cbpp


def test_glmm_henderson_matches_dense_pirls(cbpp_fit):
    m, cbpp = cbpp_fit
    fit = m.fit
    X = fit.design.X
    Z, _ = _dense_z(m)
    lam = np.kron(np.eye(fit.design.blocks[0].nlevels), fit.layout.lambdas(fit.theta)[0])
    W = fit.design.weights * m.family.link.mu_eta(fit.eta) ** 2 / m.family.variance(fit.mu)
    ZL = Z @ lam
    C = np.block([[X.T @ (W[:, None] * X), X.T @ (W[:, None] * ZL)],
                  [ZL.T @ (W[:, None] * X), ZL.T @ (W[:, None] * ZL) + np.eye(ZL.shape[1])]])
    Cinv = np.linalg.inv(C)
    p = X.shape[1]
    cc = ConditionalCovariance(X, [(b.codes, b.X, b.nlevels) for b in fit.design.blocks], W,
                               fit.layout.lambdas(fit.theta), 1.0, Cinv[:p, :p])
    rows = [0, 10, 40]
    parts = [(0, fit.design.blocks[0].codes[rows], fit.design.blocks[0].X[rows])]
    L = np.hstack([X[rows], ZL[rows]])
    np.testing.assert_allclose(cc.variance(X[rows], parts), np.einsum("ij,jk,ik->i", L, Cinv, L), rtol=1e-8)
    # with the fixed effects known, the random-effect part is lme4's condVar
    cv = ConditionalCovariance(X, [(b.codes, b.X, b.nlevels) for b in fit.design.blocks], W,
                               fit.layout.lambdas(fit.theta), 1.0, np.zeros((p, p)))
    codes = fit.design.blocks[0].codes[rows]
    np.testing.assert_allclose(cv.variance(np.zeros((3, p)), [(0, codes, np.ones((3, 1)))]),
                               fit.cond_var[0][codes, 0, 0], rtol=1e-5)


def test_glmm_link_and_response_scales(cbpp_fit):
    m, cbpp = cbpp_fit
    nd = cbpp.iloc[[0, 5, 20]]
    link = m.predict(nd, interval="confidence", level=0.9)
    resp = m.predict(nd, type="response", interval="confidence", level=0.9)
    inv = m.family.link.inverse
    np.testing.assert_allclose(resp["fit"], inv(link["fit"].to_numpy()), rtol=1e-12)
    np.testing.assert_allclose(resp["lower"], inv(link["lower"].to_numpy()), rtol=1e-12)
    np.testing.assert_allclose(resp["upper"], inv(link["upper"].to_numpy()), rtol=1e-12)
    np.testing.assert_allclose(resp["se_fit"], m.family.link.mu_eta(link["fit"].to_numpy()) * link["se_fit"],
                               rtol=1e-12)
    pop = m.predict(nd, re_form="~0", se_fit=True)
    X = m.fit.design.spec.fixed_matrix(nd)
    np.testing.assert_allclose(pop["se_fit"] ** 2, np.einsum("ij,jk,ik->i", X, m.vcov().to_numpy(), X), rtol=1e-8)
    # prediction on the link scale: a new herd adds tau^2, no residual term
    new = nd.assign(herd="new")
    pn = m.predict(new, interval="prediction", allow_new_levels=True)
    tau2 = m.varcorr["vcov"].iloc[0]
    np.testing.assert_allclose(pn["se_fit"] ** 2, pop["se_fit"] ** 2 + tau2, rtol=1e-8)
    with pytest.raises(ValueError, match="type='link'"):
        m.predict(nd, type="response", interval="prediction")
    with pytest.raises(NotImplementedError, match="marginal=True"):
        m.predict(nd, marginal=True, se_fit=True)


def test_loaded_glmm_population_level_only(cbpp_fit, tmp_path):
    m, cbpp = cbpp_fit
    m.save(tmp_path / "g.json")
    loaded = mf.load(tmp_path / "g.json")
    nd = cbpp.head(2)
    np.testing.assert_allclose(loaded.predict(nd, re_form="~0", se_fit=True).to_numpy(),
                               m.predict(nd, re_form="~0", se_fit=True).to_numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="loaded result"):
        loaded.predict(nd, se_fit=True)


def test_extended_population_level_only():
    owls = mf.datasets.load("salamanders")
    m = mf.glmer("count ~ mined + (1 | site)", owls, family="nbinom2")
    nd = owls.head(3)
    out = m.predict(nd, re_form="~0", interval="confidence")
    X = m.fit.design.spec.fixed_matrix(nd)
    np.testing.assert_allclose(out["se_fit"] ** 2, np.einsum("ij,jk,ik->i", X, m.fit.vcov, X), rtol=1e-8)
    with pytest.raises(NotImplementedError, match="groups seen in fitting"):
        m.predict(nd, se_fit=True)
    with pytest.raises(NotImplementedError, match="link scale"):
        m.predict(nd, re_form="~0", type="response", se_fit=True)


def test_units_do_not_matter(sleep):
    """A covariate in other units and far from 0 (computed on the standardized problem): the same SEs."""
    a = mf.lmer("Reaction ~ Days + (Days | Subject)", sleep)
    far = sleep.assign(Days=sleep["Days"] * 1000.0 + 1e6)
    b = mf.lmer("Reaction ~ Days + (Days | Subject)", far)
    nd = sleep.iloc[[0, 33, 120]]
    for kw in (dict(interval="prediction"), dict(interval="confidence", re_form="~0")):
        sa = a.predict(nd, **kw)
        sb = b.predict(nd.assign(Days=nd["Days"] * 1000.0 + 1e6), **kw)
        np.testing.assert_allclose(sb["se_fit"], sa["se_fit"], rtol=1e-5)
        np.testing.assert_allclose(sb["fit"], sa["fit"], rtol=1e-7)


# ------------------------------------------------------------ review of issue 12 (regressions)
def test_offset_argument_is_refused_for_newdata_not_dropped(tmp_path):
    """An offset given as offset= cannot be rebuilt for newdata: predicting newdata used to leave it
    out silently (every row the same prediction); now it raises, naming offset=.  The fitted rows
    keep it, and an offset in the formula is read from newdata."""
    gt = mf.datasets.load("grouseticks")
    gt = gt.assign(logexp=np.log1p(np.arange(len(gt)) % 3))
    arg = mf.glmer("TICKS ~ YEAR + (1 | BROOD)", gt, family="poisson", offset=gt["logexp"].to_numpy())
    form = mf.glmer("TICKS ~ YEAR + offset(logexp) + (1 | BROOD)", gt, family="poisson")
    new = gt.head(3)
    for call in (lambda: arg.predict(new), lambda: arg.predict(new, interval="confidence"),
                 lambda: arg.predict_link(new), lambda: arg.simulate(newdata=new)):
        with pytest.raises(ValueError, match=r"offset=.*offset\(log_exposure\)"):
            call()
    fitted = arg.predict(interval="confidence")["fit"].to_numpy()
    np.testing.assert_allclose(fitted[:3] - fitted[0], new["logexp"].to_numpy(), atol=1e-10)
    np.testing.assert_allclose(form.predict(new, re_form="~0") - form.predict(new, re_form="~0")[0],
                               new["logexp"].to_numpy(), atol=1e-10)
    # offset="column": read from newdata's column, as the formula's offset() (also after save/load)
    col = mf.glmer("TICKS ~ YEAR + (1 | BROOD)", gt, family="poisson", offset="logexp")
    np.testing.assert_allclose(col.predict(new), form.predict(new), rtol=1e-6)
    pd.testing.assert_frame_equal(col.predict(new, interval="confidence"), form.predict(new, interval="confidence"),
                                  rtol=1e-6)
    with pytest.raises(mf.DesignError, match="no column 'logexp', the model's offset= column"):
        col.predict(new.drop(columns="logexp"))
    assert col.simulate(nsim=2, seed=1, newdata=new).shape == (3, 2)
    path = tmp_path / "col.json"
    col.save(path)
    np.testing.assert_allclose(mf.load(path).predict(new, re_form="~0"), col.predict(new, re_form="~0"), rtol=1e-12)
    arg.save(tmp_path / "arg.json")
    with pytest.raises(ValueError, match="offset=<array>"):
        mf.load(tmp_path / "arg.json").predict(new, re_form="~0")


def test_prediction_interval_row_missing_a_left_out_slope_variable(sleep):
    """re_form='~0' with interval='prediction' adds z'Gz of the left-out (Days | Subject) term; a row
    whose Days is missing used to fail the whole call (a design error), although the point
    prediction does not need Days.  Now that row keeps its fit with NaN se_fit/lower/upper, and
    the others are unchanged: se^2 = x'V x + z'G z + sigma^2."""
    m = mf.lmer("Reaction ~ 1 + (Days | Subject)", sleep)
    new = pd.DataFrame({"Days": [np.nan, 3.0], "Subject": ["308", "308"]})
    out = m.predict(new, re_form="~0", interval="prediction")
    assert np.isfinite(out["fit"]).all()
    assert out.loc[0, ["se_fit", "lower", "upper"]].isna().all()
    lam = m.fit.layout.lambdas(m.fit.theta)[0]
    G = m.sigma ** 2 * lam @ lam.T
    z = np.array([1.0, 3.0])
    want = np.sqrt(m.fit.vcov[0, 0] + z @ G @ z + m.sigma ** 2)
    assert out.loc[1, "se_fit"] == pytest.approx(want, rel=1e-8)
    pd.testing.assert_frame_equal(new, pd.DataFrame({"Days": [np.nan, 3.0], "Subject": ["308", "308"]}))
