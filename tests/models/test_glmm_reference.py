"""glmer parity: lme4 1.1-31 (tests/reference/lme4), converged lme4 and glmmTMB (tests/reference/glmm_converged.json).

lme4's default PIRLS tolerance (1e-7) leaves its Laplace deviance ~5e-4 high and its
finite-difference standard errors up to ~1% off (cbpp); the same lme4 with tolPwrss = 1e-12
agrees with us to 1e-9 in -2 log L.  Standard errors are therefore compared with the converged
lme4 fits.  lme4's Gamma GLMM is known to be off (lme4 issues #643, #936): that model is
compared with glmmTMB (exact Laplace, dispersion by maximum likelihood), as the issue asks.
"""
from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from conftest import load_reference, reference_data, reference_ids

GLMM_IDS = reference_ids("glmer")
with open(os.path.join(os.path.dirname(__file__), "..", "reference", "glmm_converged.json")) as _f:
    CONVERGED = json.load(_f)["models"]
_CACHE: dict = {}


def fitted(ref_id):
    if ref_id not in _CACHE:
        ref = load_reference(ref_id)
        args = ref["args"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _CACHE[ref_id] = mfx.glmer(ref["formula"], reference_data(ref), family=args["family"],
                                       nagq=args.get("nAGQ", 1))
    return _CACHE[ref_id], load_reference(ref_id)


def close(ours, ref, rtol, atol=0.0):
    np.testing.assert_allclose(np.asarray(ours, float), np.asarray(ref, float), rtol=rtol, atol=atol)


def lme4_params(m, ref):
    names = list(m.theta.index)
    return (np.array([ref["theta"][ref["theta_names"].index(n)] for n in names]),
            np.array([ref["fixef"][k] for k in ref["fixef_names"]]))


def test_all_reference_glmms_are_covered():
    assert set(GLMM_IDS) == {"cbpp_binomial", "cbpp_binomial_agq", "grouseticks_poisson", "verbagg_binomial",
                             "sleep_gamma_log"}


@pytest.mark.parametrize("ref_id", ["cbpp_binomial", "grouseticks_poisson", "verbagg_binomial"])
def test_laplace_minus2loglik_equal_or_verified_lower(ref_id):
    m, ref = fitted(ref_id)
    theirs = ref["laplace_deviance"]
    assert m.objective <= theirs + 2e-3
    if m.objective < theirs - 2e-3:
        pytest.fail("lower by more than the tolerance: inspect")
    # verification with our own objective at lme4's parameters: not below our optimum
    theta, beta = lme4_params(m, ref)
    gw = m.fit.fresh_workspace()
    at_lme4 = gw.laplace(gw.pirls(theta, beta=beta))
    assert at_lme4 >= m.objective - 1e-7
    assert at_lme4 == pytest.approx(CONVERGED[ref_id]["minus2loglik"], abs=2e-3) or at_lme4 <= theirs
    # and the converged lme4 reaches our value
    assert m.objective == pytest.approx(CONVERGED[ref_id]["minus2loglik"], abs=2e-4)


@pytest.mark.parametrize("ref_id", ["cbpp_binomial", "cbpp_binomial_agq", "grouseticks_poisson", "verbagg_binomial"])
def test_fixed_effects_se_and_sd(ref_id):
    m, ref = fitted(ref_id)
    assert list(m.fixef.index) == ref["fixef_names"]
    close(m.fixef, [ref["fixef"][k] for k in ref["fixef_names"]], rtol=2e-3)
    conv = CONVERGED[ref_id]
    close(m.se, [conv["se"][k] for k in ref["fixef_names"]], rtol=2e-3)
    vc = pd.DataFrame(ref["varcorr"])
    assert m.varcorr[["grp", "var1", "var2"]].values.tolist() == vc[["grp", "var1", "var2"]].values.tolist()
    close(m.varcorr["sdcor"], vc["sdcor"], rtol=5e-3)
    assert m.ngroups == ref["ngrps"] and m.nobs == ref["nobs"]


@pytest.mark.parametrize("ref_id", ["cbpp_binomial", "grouseticks_poisson", "verbagg_binomial"])
def test_conditional_modes_fitted_and_residuals(ref_id):
    m, ref = fitted(ref_id)
    theirs = pd.DataFrame(ref["ranef"])
    merged = theirs.merge(m.ranef(), on=["grpvar", "term", "grp"], suffixes=("_r", ""), validate="one_to_one")
    assert len(merged) == len(theirs)
    scale = np.abs(merged["condval_r"]).max()
    close(merged["condval"], merged["condval_r"], rtol=0, atol=5e-3 * scale)
    close(merged["condsd"], merged["condsd_r"], rtol=5e-3, atol=5e-3 * merged["condsd_r"].max())
    close(m.fitted(), ref["fitted"], rtol=5e-3, atol=1e-6)
    close(m.residuals("pearson"), ref["resid_pearson"], rtol=0, atol=5e-3 * np.abs(ref["resid_pearson"]).max())
    eta = np.asarray(ref["predict_marginal_link"])
    close(m.predict(re_form="~0"), eta, rtol=2e-3, atol=2e-3 * np.abs(eta).max())
    assert m.deviance == pytest.approx(ref["deviance"], rel=2e-3)


def test_quadrature_loglik_is_on_the_laplace_scale():
    agq, ref = fitted("cbpp_binomial_agq")
    lap, _ = fitted("cbpp_binomial")
    assert agq.nagq == 25
    # lme4 1.1-31 reports -50.0 (nAGQ = 25) against -92.0 (Laplace); ours are comparable
    assert abs(agq.loglik - lap.loglik) < 0.2
    assert agq.loglik > lap.loglik - 0.2
    assert ref["logLik"] == pytest.approx(-50.005, abs=1e-3)


def test_gamma_log_matches_glmmtmb():
    m, ref = fitted("sleep_gamma_log")
    tmb = CONVERGED["sleep_gamma_log_glmmTMB"]
    assert m.objective == pytest.approx(tmb["minus2loglik"], abs=2e-3)
    close(m.fixef, [tmb["fixef"][k] for k in ref["fixef_names"]], rtol=2e-3)
    close(m.se, [tmb["se"][k] for k in ref["fixef_names"]], rtol=2e-2)
    assert m.sigma == pytest.approx(tmb["sigma"], rel=5e-3)
    sd = m.varcorr.set_index("grp").loc["Subject", "sdcor"]
    assert sd == pytest.approx(tmb["sd_subject"], rel=5e-3)
    # lme4's own estimate of the dispersion is the deviance-based one (sigma 0.1054); ours is the ML one
    assert m.sigma < ref["sigma"]
