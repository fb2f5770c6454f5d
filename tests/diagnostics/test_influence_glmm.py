"""Case-deletion influence of GLMMs against lme4's influence.merMod (tests/reference/glmm_influence.json)."""
from __future__ import annotations

import json
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx.diagnostics.influence_glmm import _subset
from mixedfx.inference.bootstrap_glmm import RefitFailureWarning, refit_glmm
from mixedfx.models.glmm import make_glmm_workspace

REF = json.loads((pathlib.Path(__file__).parents[1] / "reference" / "glmm_influence.json").read_text())
CBPP = REF["formula"]


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


@pytest.fixture(scope="module")
def cbpp():
    return mfx.datasets.load("cbpp")


def _deviance(fit, design, theta, beta) -> float:
    """Our -2 log L (Laplace or quadrature) of ``design`` at ``(theta, beta)``, modes by PIRLS."""
    gw = make_glmm_workspace(design, fit.family)
    gw.tol = 1e-12
    theta = np.atleast_1d(np.asarray(theta, float))
    r = gw.pirls(theta, beta=np.asarray(beta, float))
    return gw.laplace(r) if fit.nagq <= 1 else gw.agq(theta, r, fit.nagq, gw.phi)


@pytest.mark.parametrize("key", ["cbpp_herd_tight", "cbpp_herd_agq_tight"])
def test_herd_deletion_matches_tight_lme4_refits(cbpp, key):
    """lme4 refits without each herd at tight tolerances (PIRLS 1e-10, bobyqa rhoend 1e-10):
    Cook's distance, dfbetas and the change in theta agree to ~1e-6."""
    R = REF[key]
    m = quiet(mfx.glmer, CBPP, cbpp, family="binomial", nagq=R["nagq"])
    inf = m.influence(level="herd")
    assert list(inf.index) == R["deleted"] and inf["converged"].all()
    fe, se, th = np.array(R["fixef_deleted"]), np.array(R["se_deleted"]), np.array(R["theta_deleted"])
    diff = fe - np.array(R["fixef"])
    cook = np.einsum("ij,jk,ik->i", diff, np.linalg.inv(np.array(R["vcov"])), diff) / diff.shape[1]
    np.testing.assert_allclose(inf["cooksd"], cook, rtol=1e-4)
    np.testing.assert_allclose(inf.filter(like="dfbetas.").to_numpy(), diff / se, atol=1e-4)
    np.testing.assert_allclose(inf["dtheta.herd.(Intercept)"], th - R["theta"], atol=1e-5)
    np.testing.assert_allclose(inf["rvc.herd.(Intercept)"], th ** 2 / R["theta"] ** 2 - 1, atol=1e-5)
    assert list(inf.columns) == ["leverage", "cooksd", "mdffits", "covtrace", "covratio", "dfbetas.(Intercept)",
                                 "dfbetas.period2", "dfbetas.period3", "dfbetas.period4", "dtheta.herd.(Intercept)",
                                 "rvc.herd.(Intercept)", "converged"]
    if key == "cbpp_herd_tight":      # worker processes share the refits: the same table
        pd.testing.assert_frame_equal(m.influence(level="herd", n_jobs=2), inf)


def test_against_lme4_influence_output(cbpp):
    """lme4's influence(gm, groups = "herd") refits with its default tolerances: its estimates are
    ~5e-4 from the optimum.  Our cooksd times (m - p)/m (lme4's scaling) and its variance ratios
    agree to a few percent, and each of our deletion fits has a lower deviance than lme4's, so
    the difference is lme4's stopping early, not ours."""
    R = REF["cbpp_herd"]
    m = quiet(mfx.glmer, CBPP, cbpp, family="binomial")
    inf = m.influence(level="herd")
    fe, vc = np.array(R["fixef_deleted"]).T, np.array(R["var_cov_comps_deleted"]).T
    M, p = fe.shape
    np.testing.assert_allclose(inf["cooksd"] * (M - p) / M, R["cooks_distance"], rtol=0.03)
    np.testing.assert_allclose(inf["rvc.herd.(Intercept)"], vc[:, 1] / R["var_cov_comps"]["v[(Intercept)]"] - 1,
                               atol=2e-3)
    np.testing.assert_allclose(inf.filter(like="dfbetas.").to_numpy(), np.array(R["dfbetas"]).T, atol=0.02)
    d = m.fit.design
    levels = list(d.blocks[0].levels)
    for i, herd in enumerate(R["deleted"]):
        sub = _subset(d, d.blocks[0].codes != levels.index(herd))
        f = refit_glmm(m.fit, sub)
        ours, theirs = _deviance(m.fit, sub, f.theta, f.beta), _deviance(m.fit, sub, np.sqrt(vc[i, 1]), fe[i])
        assert ours <= theirs + 1e-8
        assert np.max(np.abs(f.beta - fe[i])) < 2e-3


def test_deleting_a_group_equals_refitting_without_it():
    """Gamma (a dispersion: rvc.sigma2) with a log link: the deletion refit is the fit to the data
    without the group (whose level then does not exist).  The reference fits use BOBYQA: without
    group 3 the default (L-BFGS) cold fit stops at -2 log L 174.177, a point where the gradient is
    not zero, where BOBYQA and the warm-started deletion refit reach 173.953."""
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(10), 6)
    x = rng.standard_normal(60)
    mu = np.exp(1 + 0.5 * x + rng.normal(0, 0.4, 10)[g])
    df = pd.DataFrame({"y": rng.gamma(4, mu / 4), "x": x, "g": g.astype(str)})
    m = quiet(mfx.glmer, "y ~ x + (1 | g)", df, family="Gamma", link="log")
    inf = m.influence(level="g")
    assert "rvc.sigma2" in inf.columns
    for lev in ["3", "7"]:
        r = quiet(mfx.glmer, "y ~ x + (1 | g)", df[df.g != lev], family="Gamma", link="log", optimizer="bobyqa")
        diff = r.fit.beta - m.fit.beta
        np.testing.assert_allclose(inf.loc[lev].filter(like="dfbetas.").to_numpy(float), diff / r.se, atol=1e-5)
        # BOBYQA's reference stops ~1e-6 from the optimum in beta (ours is at least as low: below)
        assert inf.loc[lev, "cooksd"] == pytest.approx(diff @ np.linalg.solve(m.fit.vcov, diff) / 2, abs=2e-6)
        assert inf.loc[lev, "rvc.sigma2"] == pytest.approx(r.fit.phi / m.fit.phi - 1, abs=1e-6)
        assert inf.loc[lev, "covratio"] == pytest.approx(np.linalg.det(r.fit.vcov) / np.linalg.det(m.fit.vcov),
                                                         rel=1e-4)
        d = m.fit.design
        sub = _subset(d, d.blocks[0].codes != list(d.blocks[0].levels).index(lev))
        f = refit_glmm(m.fit, sub)
        assert _deviance(m.fit, sub, f.theta, f.beta) <= _deviance(m.fit, sub, r.fit.theta, r.fit.beta) + 1e-9
        assert _deviance(m.fit, sub, r.fit.theta, r.fit.beta) == pytest.approx(r.objective, abs=1e-8)


def test_failed_deletions_are_nan_and_counted(cbpp):
    """Deleting herd 1 leaves a covariate that is non-zero only there all zero: that refit fails
    (NaN measures, converged False, one warning); the others are unaffected."""
    df = cbpp.assign(h1=np.where(cbpp["herd"].astype(str) == "1", np.arange(len(cbpp)) % 2 + 0.5, 0.0))
    m = quiet(mfx.glmer, CBPP + " + h1", df, family="binomial")
    with pytest.warns(RefitFailureWarning, match="1 of 15 case-deletion refits failed.*h1 all zero"):
        inf = m.influence(level="herd")
    assert not inf.loc["1", "converged"] and inf["converged"].sum() == 14
    assert inf.loc["1", "cooksd":"rvc.herd.(Intercept)"].isna().all()
    assert inf.drop(index="1")["cooksd"].notna().all() and inf.loc["1", "leverage"] > 0


def test_one_step_approximation_tracks_the_exact_refits(cbpp):
    m = quiet(mfx.glmer, CBPP, cbpp, family="binomial")
    exact, approx = m.influence(level="herd"), m.influence(level="herd", method="approx")
    assert approx.attrs["method"] == "approx"
    assert (approx["dtheta.herd.(Intercept)"] == 0).all()
    # theta held fixed: Cook's distances within 25% and in nearly the same order
    np.testing.assert_allclose(approx["cooksd"], exact["cooksd"], rtol=0.25)
    assert np.corrcoef(approx["cooksd"].rank(), exact["cooksd"].rank())[0, 1] > 0.9


@pytest.mark.slow
def test_observation_deletion_against_lme4(cbpp):
    R, T = REF["cbpp_obs"], REF["cbpp_herd_agq"]
    m = quiet(mfx.glmer, CBPP, cbpp, family="binomial")
    inf = m.influence()
    assert len(inf) == 56 and inf["converged"].all()
    fe = np.array(R["fixef_deleted"]).T
    M, p = fe.shape
    cook = inf["cooksd"].to_numpy() * (M - p) / M
    # lme4 stops early (~7e-4 in beta); small distances carry that error relative to their size
    np.testing.assert_allclose(cook, R["cooks_distance"], rtol=0.15, atol=2e-4)
    d = m.fit.design
    for i in range(0, 56, 5):
        keep = np.ones(d.n, bool)
        keep[i] = False
        sub = _subset(d, keep)
        f = refit_glmm(m.fit, sub)
        vc = np.array(R["var_cov_comps_deleted"]).T[i, 1]
        assert _deviance(m.fit, sub, f.theta, f.beta) <= _deviance(m.fit, sub, np.sqrt(vc), fe[i]) + 1e-8
    # quadrature (nAGQ = 10): lme4's default stopping is close here
    ma = quiet(mfx.glmer, CBPP, cbpp, family="binomial", nagq=10)
    ia = ma.influence(level="herd")
    fe = np.array(T["fixef_deleted"]).T
    np.testing.assert_allclose(ia["cooksd"] * (15 - 4) / 15, T["cooks_distance"], rtol=2e-3)


@pytest.mark.slow
def test_negative_binomial_deletion_re_estimates_the_shape():
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(10), 8)
    x = rng.standard_normal(80)
    mu = np.exp(1 + 0.5 * x + rng.normal(0, 0.4, 10)[g])
    df = pd.DataFrame({"y": rng.negative_binomial(2, 2 / (2 + mu)), "x": x, "g": g.astype(str)})
    m = quiet(mfx.glmer, "y ~ x + (1 | g)", df, family="negbin")
    inf = m.influence(level="g")
    r = quiet(mfx.glmer, "y ~ x + (1 | g)", df[df.g != "4"], family="negbin")
    diff = r.fit.beta - m.fit.beta
    np.testing.assert_allclose(inf.loc["4"].filter(like="dfbetas.").to_numpy(float), diff / r.se, atol=1e-3)


def test_crossed_model_deleting_a_level_of_the_outer_factor():
    """grouseticks: BROOD is nested in LOCATION, so deleting a LOCATION leaves broods without rows.
    Those levels broke the crossed model's sparse cross-product plan (every one of the 63 refits
    failed with ZeroDivisionError); they are now dropped, and a deletion equals the fit to the data
    without the location."""
    gt = mfx.datasets.load("grouseticks")
    form = "TICKS ~ YEAR + (1 | BROOD) + (1 | LOCATION)"
    m = quiet(mfx.glmer, form, gt, family="poisson")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RefitFailureWarning)
        inf = m.influence(level="LOCATION")
        approx = m.influence(level="LOCATION", method="approx")
    assert len(inf) == 63 and inf["converged"].all() and approx["converged"].all()
    loc = inf["cooksd"].idxmax()
    r = quiet(mfx.glmer, form, gt[gt["LOCATION"].astype(str) != str(loc)], family="poisson")
    diff = r.fit.beta - m.fit.beta
    assert inf.loc[loc, "cooksd"] == pytest.approx(diff @ np.linalg.solve(m.fit.vcov, diff) / 3, rel=1e-4)
    dtheta = inf.loc[loc, ["dtheta.BROOD.(Intercept)", "dtheta.LOCATION.(Intercept)"]].to_numpy(float)
    np.testing.assert_allclose(dtheta, r.fit.theta - m.fit.theta, atol=1e-5)
