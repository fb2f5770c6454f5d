"""glmmTMB-style models and cumulative link mixed models against glmmTMB 1.1.5 and ordinal 2022.11.

References: ``tests/reference/glmmtmb_families.json`` (``make_glmmtmb_families.R``: the glmmTMB
vignette's Salamanders and Owls models, beta-binomial cbpp, Student-t and dispersion models on
sleepstudy, beta, Tweedie, Gamma, zero-inflated binomial, genpois; every fit polished to
``max |gradient| < 1e-6``) and ``tests/reference/clmm.json`` (``make_clmm.R``: wine).

Tolerances are tighter than the issue's (-2 log L 1e-3 absolute, fixed effects 2e-3, family
parameters 5e-3): ``-2 log L`` within 1e-6 relative (or lower), coefficients within 1e-4 (relative
to ``max(1, |b|)``), standard errors 1e-3 relative, family parameters 1e-4 relative.
"""
from __future__ import annotations

import json
import pathlib
import warnings

import numpy as np
import pytest

import mixedfx as mfx
from mixedfx.families.distributions import Gamma

REF = pathlib.Path(__file__).parents[1] / "reference"
TMB = {r["id"]: r for r in json.loads((REF / "glmmtmb_families.json").read_text())["fits"]}
CLMM = {r["id"]: r for r in json.loads((REF / "clmm.json").read_text())["fits"]}
#: zero inflation with a random effect is not supported (refused with a clear error, tested below)
SKIP = {"sal_zip_zire"}
#: zi coefficients drift to -+inf (zi probabilities 0): only the likelihood and the conditional part
BOUNDARY = {"sal_zinb2"}


def _fit(rec):
    data = mfx.datasets.load(rec["data"])
    zi = None if rec["ziformula"] == "~0" else rec["ziformula"]
    disp = None if rec["dispformula"] == "~1" else rec["dispformula"]
    family = Gamma() if rec["family"] == "Gamma" else rec["family"]
    kw = {"df": 4.0} if rec["id"] == "ss_t_df4" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mfx.SingularFitWarning)
        if rec["id"] in BOUNDARY:
            warnings.simplefilter("ignore", mfx.ConvergenceWarning)
        return mfx.glmer(rec["formula"], data, family=family, link=rec["link"], zi=zi, disp=disp, **kw)


_CACHE: dict = {}


def fitted(rid):
    if rid not in _CACHE:
        _CACHE[rid] = _fit(TMB[rid])
    return _CACHE[rid]


IDS = [rid for rid in TMB if rid not in SKIP]


def _close(ours, ref, tol, what):
    ours, ref = np.asarray(ours, float), np.asarray(ref, float)
    err = np.max(np.abs(ours - ref) / np.maximum(1.0, np.abs(ref)))
    assert err < tol, f"{what}: ours {ours}, reference {ref} (max scaled error {err:.2e})"


def _disp_scale(rec) -> float:
    """glmmTMB 1.1.5's Gaussian dispersion predictor is the log variance; ours the log SD."""
    return 0.5 if rec["family"] == "gaussian" else 1.0


@pytest.mark.parametrize("rid", IDS)
def test_likelihood_and_df(rid):
    rec, m = TMB[rid], fitted(rid)
    assert m.objective == pytest.approx(rec["objective"], rel=1e-6)
    assert m.df == rec["df"]
    assert m.aic == pytest.approx(rec["AIC"], rel=1e-6)


@pytest.mark.parametrize("rid", IDS)
def test_coefficients(rid):
    rec, m = TMB[rid], fitted(rid)
    _close(m.fixef.to_numpy(), list(rec["fixef"]["cond"].values()), 1e-4, "conditional coefficients")
    assert list(m.fixef.index) == list(rec["fixef"]["cond"])
    if rec["fixef"]["zi"] and rid not in BOUNDARY:
        _close(m.fixef_zi.to_numpy(), list(rec["fixef"]["zi"].values()), 1e-4, "zero-inflation coefficients")
        assert list(m.fixef_zi.index) == list(rec["fixef"]["zi"])
    if rec["fixef"]["disp"]:
        ref = np.array(list(rec["fixef"]["disp"].values())) * _disp_scale(rec)
        _close(m.fixef_disp.to_numpy(), ref, 1e-4, "dispersion coefficients")


@pytest.mark.parametrize("rid", [r for r in IDS if r not in BOUNDARY])
def test_standard_errors(rid):
    rec, m = TMB[rid], fitted(rid)
    se = np.sqrt(np.diag(m.vcov_all.to_numpy()))
    names = list(m.vcov_all.index)
    ref = dict(rec["fixef_se"]["cond"])
    ours = {n: s for n, s in zip(names, se) if "~" not in n}
    for part in ("zi", "disp"):
        for k, v in (rec["fixef_se"][part] or {}).items():
            ref[f"{part}~{k}"] = v * (_disp_scale(rec) if part == "disp" else 1.0)
        ours.update({n: s for n, s in zip(names, se) if n.startswith(part + "~")})
    assert set(ref) <= set(ours)          # glmmTMB's vcov() leaves out an intercept-only dispersion
    for k in ref:
        assert ours[k] == pytest.approx(ref[k], rel=1e-3), k


@pytest.mark.parametrize("rid", IDS)
def test_variance_components_and_family_parameters(rid):
    rec, m = TMB[rid], fitted(rid)
    vc = m.varcorr
    sd = vc.loc[(vc["var2"] == "") & (vc["grp"] != "Residual"), "sdcor"].to_numpy()
    ref_sd = np.concatenate([t["sd"] for t in rec["varcorr"]["cond"]])
    boundary = ref_sd < 1e-3                  # a variance at zero: glmmTMB stops at ~1e-5, ours on the bound
    np.testing.assert_allclose(sd[~boundary], ref_sd[~boundary], rtol=1e-4)
    assert np.all(sd[boundary] < 1e-3)
    fp = rec["family_params"]
    if "df" in fp:
        assert m.family_params["df"] == pytest.approx(fp["df"], rel=1e-4)
    if "power" in fp:
        assert m.family_params["power"] == pytest.approx(fp["power"], rel=1e-4)
    if rec["fixef"]["disp"] and len(rec["fixef"]["disp"]) == 1:
        phi = np.exp(list(rec["fixef"]["disp"].values())[0] * _disp_scale(rec))
        assert m.sigma == pytest.approx(phi, rel=1e-4)


@pytest.mark.parametrize("rid", IDS)
def test_predictions(rid):
    rec, m = TMB[rid], fitted(rid)
    np.testing.assert_allclose(m.predict(type="link")[:10], rec["predict_link_head"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(m.fitted().to_numpy()[:10], rec["fitted_head"], rtol=1e-4, atol=1e-8)
    np.testing.assert_allclose(m.predict(type="conditional")[:10], rec["predict_conditional_head"], rtol=1e-4,
                               atol=1e-8)
    if rec.get("predict_zprob_head") and rid not in BOUNDARY:
        np.testing.assert_allclose(m.predict(type="zprob")[:10], rec["predict_zprob_head"], rtol=1e-4, atol=1e-8)
        np.testing.assert_allclose(m.predict(type="zlink")[:10], rec["predict_zlink_head"], rtol=1e-4, atol=1e-6)
    if rec.get("predict_disp_head") and m.family.has_dispersion and rec["family"] != "Gamma":
        np.testing.assert_allclose(m.predict(type="disp")[:10], rec["predict_disp_head"], rtol=1e-4)


def test_gamma_dispersion_is_glmmtmb_shape():
    """glmmTMB's Gamma: shape = exp(betad), sigma() = 1 / sqrt(shape); ours reports the shape."""
    rec, m = TMB["ss_gamma"], fitted("ss_gamma")
    assert m.sigma == pytest.approx(rec["family_params"]["shape"], rel=1e-4)
    np.testing.assert_allclose(1.0 / np.sqrt(m.predict(type="disp")[:10]), rec["predict_disp_head"], rtol=1e-4)


def test_boundary_zero_inflation_is_reported():
    """sal_zinb2: two zero-inflation probabilities go to 0; glmmTMB's Hessian is not positive definite
    and so is ours: no standard errors, a note in the summary, the conditional part still matches."""
    m = fitted("sal_zinb2")
    assert m.fit.vcov_method != "hessian"
    assert "standard errors are not available" in str(m.summary())
    assert m.fixef_zi["(Intercept)"] < -10


def test_zero_inflation_random_effect_is_refused():
    with pytest.raises(mfx.DesignError, match="random effects are supported in the conditional formula only"):
        mfx.glmer("count ~ spp + mined + (1 | site)", mfx.datasets.load("salamanders"), family="poisson",
                  zi="~ mined + (1 | site)")


# --------------------------------------------------------------------------- clmm
CLMM_IDS = [rid for rid in CLMM if rid != "wine_cloglog_laplace_ordinal_default"]   # ordinal's loglog mix-up


def _clmm(rec):
    formula = rec["call"].split("clmm(")[1].split(", data")[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mfx.SingularFitWarning)
        return mfx.clmm(formula, mfx.datasets.load("wine"), link=rec["link"], nagq=rec["nAGQ"])


@pytest.mark.parametrize("rid", CLMM_IDS)
def test_clmm_against_ordinal(rid):
    rec = CLMM[rid]
    m = _clmm(rec)
    # ordinal's single-term Laplace fitter (the compiled path) reports a log-likelihood 3.5e-6 above the
    # Laplace value its general fitter (and ours) gives at the same optimum (wine_two_re: bottle SD 0 gives
    # the single-term model through the general fitter: -81.56541278, equal to ours to 1e-9)
    tol = 1e-5 if rec["nAGQ"] == 1 and "bottle" not in rec["call"] else 1e-8
    assert m.loglik == pytest.approx(rec["logLik"], abs=tol)
    _close(m.thresholds.to_numpy(), list(rec["alpha"].values()), 1e-4, "thresholds")
    _close(m.fixef.to_numpy(), list(rec["beta"].values()), 1e-4, "coefficients")
    assert list(m.thresholds.index) == list(rec["alpha"])
    se = np.sqrt(np.diag(m.vcov_all.to_numpy()))
    ref_se = np.array(list(rec["alpha_se"].values()) + list(rec["beta_se"].values()))
    np.testing.assert_allclose(se, ref_se, rtol=1e-3)
    sd = m.varcorr.loc[m.varcorr["var2"] == "", "sdcor"].to_numpy()
    np.testing.assert_allclose(sd, list(rec["re_sd"].values()), rtol=1e-4, atol=1e-4)
    assert m.df == rec["df"]


def test_clmm_probabilities_for_a_typical_judge():
    rec = CLMM["wine_logit_laplace"]
    m = _clmm(rec)
    P = m.predict(type="prob", re_form="~0").to_numpy()
    np.testing.assert_allclose(P[:len(rec["probs_re0_head"])], rec["probs_re0_head"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-12)
