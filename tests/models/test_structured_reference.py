"""Structured covariances and residual models against glmmTMB 1.1.5 and nlme 3.1.162.

References: ``tests/reference/structured.json`` (``make_structured.R``, glmmTMB) and
``tests/reference/residual.json`` (``make_residual.R``, nlme ``lme`` and glmmTMB ``dispformula``).
Criteria must agree to 1e-4 absolute in log-likelihood or be higher (then verified by evaluating
the reference's parameters with our criterion); fixed effects and variance parameters to 1e-3
relative.  Only records the scripts mark reliable (converged, identified, polished) are used.
"""
import json
import pathlib
import re
import warnings

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import mixedfx as mfx

REF = pathlib.Path(__file__).resolve().parents[1] / "reference"
STRUCT = {f["id"]: f for f in json.loads((REF / "structured.json").read_text())["fits"]}
RESID = {f["id"]: f for f in json.loads((REF / "residual.json").read_text())["fits"]}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with threadpool_limits(1):
        yield


def _data(name):
    d = mfx.datasets.load(name)
    if name == "ovary":
        d = d.assign(pos=d.groupby("Mare", observed=True).cumcount() + 1)
    return d


def _fit(data, formula, reml, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mfx.lmer(formula, _data(data), reml=reml, **kw)


# id (without _ml / _reml): (data, mixedfx formula)
STRUCTURED = {
    "ss_us": ("sleepstudy", "Reaction ~ Days + us(1 + Days | Subject)"),
    "ss_diag": ("sleepstudy", "Reaction ~ Days + diag(1 + Days | Subject)"),
    "orth_us": ("orthodont", "distance ~ age + Sex + us(1 + age | Subject)"),
    "orth_diag": ("orthodont", "distance ~ age + Sex + diag(1 + age | Subject)"),
    "pastes_homcs": ("pastes", "strength ~ 1 + homcs(0 + cask | batch)"),
    "pastes_cs": ("pastes", "strength ~ 1 + cs(0 + cask | batch)"),
    "pastes_ri_diag": ("pastes", "strength ~ 1 + (1 | batch) + diag(0 + cask | batch)"),
    "pastes_ri_homdiag": ("pastes", "strength ~ 1 + (1 | batch) + homdiag(0 + cask | batch)"),
    "ss_ri_ar1": ("sleepstudy", "Reaction ~ Days + (1 | Subject) + ar1(0 + factor(Days) | Subject)"),
    "orth_ar1_resid": ("orthodont", "distance ~ age + Sex + ar1(0 + factor(age) | Subject)"),
    "ov_ri_ar1": ("ovary", "follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time) + (1 | Mare)"
                           " + ar1(0 + factor(pos) | Mare)"),
    "bw_ou_resid": ("bodyweight", "weight ~ Time * Diet + (1 + Time | Rat) + ou(0 + numFactor(Time) | Rat)"),
}
CASES = [(key, suffix) for key in STRUCTURED for suffix in ("ml", "reml")
         if STRUCT.get(f"{key}_{suffix}", {}).get("reliable")]


def test_every_structure_is_covered_by_a_reliable_reference():
    covered = {STRUCT[f"{k}_{s}"]["terms"][-1]["covstruct_as_fitted"] for k, s in CASES}
    names = {n for k, _ in CASES for n in re.findall(r"\b(us|diag|homdiag|cs|homcs|ar1|ou|toep)\(", STRUCTURED[k][1])}
    assert {"us", "diag", "cs", "ar1", "ou"} <= covered
    assert {"us", "diag", "cs", "homcs", "homdiag", "ar1", "ou"} <= names


def _check_terms(m, ref):
    """Per reference term: SDs and correlations to 1e-3 relative (1e-3 absolute for correlations)."""
    blocks = m.fit.design.blocks
    covs = [m.sigma ** 2 * (lam @ lam.T) for lam in m.fit.layout.lambdas(m.fit.theta)]
    for term in ref["terms"]:
        group = term["group"].split(".")[0]                # glmmTMB names a repeated factor batch.1
        ks = [k for k, b in enumerate(blocks) if b.group_label == group and tuple(b.cnames) == tuple(term["columns"])]
        assert ks, term["term"]
        C = covs[ks[0]]
        sd = np.sqrt(np.diag(C))
        assert np.allclose(sd, term["sd"], rtol=1e-3, atol=1e-3 * max(term["sd"])), term["term"]
        if len(sd) > 1:
            corr = C / np.outer(sd, sd)
            assert np.allclose(corr, np.asarray(term["corr"], float), atol=2e-3), term["term"]


def _check_likelihood(m, ref):
    """Parameter count (AIC, BIC, likelihood-ratio tests), log-likelihood (1e-4; a higher one must be
    verified) and fixed effects (1e-3) against a reference record."""
    if "df" in ref:
        assert m.df == ref["df"]
    ll = -m.objective / 2
    assert ll >= ref["logLik"] - 1e-4
    if ll > ref["logLik"] + 1e-4:
        pytest.fail(f"higher log-likelihood than the reference by {ll - ref['logLik']:.3g}: verify and document")
    beta = np.array([ref["fixef"][n] for n in m.fixef.index])
    assert np.allclose(m.fixef.to_numpy(), beta, rtol=1e-3, atol=1e-3 * np.max(np.abs(beta)))


def _check_fit(m, ref):
    """:func:`_check_likelihood`, sigma and each term's SDs and correlations (1e-3) against glmmTMB."""
    _check_likelihood(m, ref)
    assert m.sigma == pytest.approx(ref["sigma"], rel=1e-3)
    _check_terms(m, ref)


@pytest.mark.parametrize("key, suffix", CASES)
def test_structured_term_matches_glmmtmb(key, suffix):
    ref = STRUCT[f"{key}_{suffix}"]
    data, formula = STRUCTURED[key]
    _check_fit(_fit(data, formula, ref["REML"]), ref)


# ----------------------------------------------------------------------------- residual models
RESIDUAL = {   # id stem: (data, formula, correlation, disp)
    "lme_orth_ar1pos": ("orthodont", "distance ~ age + Sex + (1 | Subject)", "ar1(1 | Subject)", None),
    "lme_ovary_ar1pos": ("ovary", "follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time) + (1 | Mare)",
                         "ar1(1 | Mare)", None),
    "lme_bw_ar1pos": ("bodyweight", "weight ~ Time * Diet + (1 + Time | Rat)", "ar1(1 | Rat)", None),
    "lme_orth_ar1age": ("orthodont", "distance ~ age + Sex + (1 | Subject)", "ar1(age | Subject)", None),
    "lme_bw_ar1time": ("bodyweight", "weight ~ Time * Diet + (1 + Time | Rat)", "ar1(Time | Rat)", None),
    "lme_ss_ar1days": ("sleepstudy", "Reaction ~ Days + (1 | Subject)", "ar1(Days | Subject)", None),
    "lme_ls_car1": ("longsim", "y ~ t + group + (1 + t | id)", "car1(t | id)", None),
    "lme_bw_car1": ("bodyweight", "weight ~ Time * Diet + (1 + Time | Rat)", "car1(Time | Rat)", None),
    "lme_pastes_cs": ("pastes", "strength ~ 1 + (1 | batch)", "cs(1 | batch/cask)", None),
    "lme_orth_varident": ("orthodont", "distance ~ age + Sex + (1 | Subject)", None, "~ Sex"),
    "lme_ls_varident": ("longsim", "y ~ t + group + (1 + t | id)", None, "~ group"),
    "lme_bw_varident": ("bodyweight", "weight ~ Time * Diet + (1 + Time | Rat)", None, "~ Diet"),
    "lme_ls_car1_varident": ("longsim", "y ~ t + group + (1 + t | id)", "car1(t | id)", "~ group"),
    "lme_orth_ar1_varident": ("orthodont", "distance ~ age + Sex + (1 | Subject)", "ar1(1 | Subject)", "~ Sex"),
    "lme_bw_car1_varident": ("bodyweight", "weight ~ Time * Diet + (1 + Time | Rat)", "car1(Time | Rat)", "~ Diet"),
    "tmb_orth_disp": ("orthodont", "distance ~ age + Sex + (1 | Subject)", None, "~ Sex"),
    "tmb_ls_disp": ("longsim", "y ~ t + group + (1 + t | id)", None, "~ group"),
    "tmb_bw_disp": ("bodyweight", "weight ~ Time * Diet + (1 + Time | Rat)", None, "~ Diet"),
}
RCASES = [(k, s) for k in RESIDUAL for s in ("ml", "reml")
          if f"{k}_{s}" in RESID and RESID[f"{k}_{s}"].get("converged", True)
          and not RESID[f"{k}_{s}"].get("degenerate")]


@pytest.mark.parametrize("key, suffix", RCASES)
def test_residual_model_matches_nlme_and_glmmtmb(key, suffix):
    ref = RESID[f"{key}_{suffix}"]
    data, formula, corr, disp = RESIDUAL[key]
    m = _fit(data, formula, ref["REML"], correlation=corr, disp=disp)
    _check_likelihood(m, ref)
    nat = m.residual_params
    if corr is not None:
        ours = nat["phi"] if corr.startswith("car1") else nat["rho"]
        theirs = [v for k, v in ref["cor_natural"].items() if k.lower().startswith(("phi", "rho"))][0]
        assert ours == pytest.approx(theirs, rel=1e-3, abs=1e-3)
    if "sigma_by_level" in ref:        # nlme varIdent / glmmTMB dispformula: the residual SD of each level
        for level, sd in ref["sigma_by_level"].items():
            coef = [v for n, v in nat["delta"].items() if n.endswith(str(level))]
            assert m.sigma * np.exp(coef[0] if coef else 0.0) == pytest.approx(sd, rel=1e-3), level


# ------------------------------------------------- every structure with a residual (replicated data)
REP = {f["id"]: f for f in json.loads((REF / "structured_rep.json").read_text())["fits"]}
NAMES = ("us", "diag", "cs", "ar1", "toep", "homcs", "homdiag")
REP_MODELS = {}
for S in NAMES:
    REP_MODELS[f"pst_{S}"] = ("pastes", f"strength ~ 1 + {S}(0 + cask | batch)")
    REP_MODELS[f"mach_{S}"] = ("machines", f"score ~ Machine + {S}(0 + Machine | Worker)")
    REP_MODELS[f"rm_{S}"] = ("repmeas", f"y ~ t + arm + {S}(0 + factor(visit) | id)")
    REP_MODELS[f"mach_ri_{S}"] = ("machines", f"score ~ Machine + (1 | Worker) + {S}(0 + Machine | Worker)")
REP_MODELS["rm_ou"] = ("repmeas", "y ~ t + arm + ou(0 + numFactor(t) | id)")
REP_CASES = [(k, s) for k in REP_MODELS for s in ("ml", "reml") if REP.get(f"{k}_{s}", {}).get("reliable")]


def test_every_structure_has_two_replicated_datasets():
    seen: dict = {}
    for k, _ in REP_CASES:
        S = re.findall(r"\b(us|diag|homdiag|cs|homcs|ar1|ou|toep)\(", REP_MODELS[k][1])[-1]
        seen.setdefault(S, set()).add(REP_MODELS[k][0])
    assert all(len(seen.get(S, ())) >= 2 for S in NAMES), seen
    assert "ou" in seen


@pytest.mark.parametrize("key, suffix", REP_CASES)
def test_structured_term_on_replicated_data_matches_glmmtmb(key, suffix):
    ref = REP[f"{key}_{suffix}"]
    data, formula = REP_MODELS[key]
    _check_fit(_fit(data, formula, ref["REML"]), ref)


@pytest.mark.parametrize("key, formula", [
    ("cbpp_ar1_ml", "cbind(incidence, size - incidence) ~ period + ar1(0 + period | herd)"),
    ("cbpp_homcs_ml", "cbind(incidence, size - incidence) ~ period + homcs(0 + period | herd)"),
])
def test_glmm_structured_term_matches_glmmtmb(key, formula):
    ref = REP[key]
    assert ref["reliable"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mfx.glmer(formula, mfx.datasets.load("cbpp"), family="binomial")
    assert m.loglik >= ref["logLik"] - 1e-4
    assert m.loglik <= ref["logLik"] + 1e-4, "higher than glmmTMB: verify and document"
    beta = np.array([ref["fixef"][n] for n in m.fixef.index])
    assert np.allclose(m.fixef.to_numpy(), beta, rtol=2e-3, atol=2e-3 * np.max(np.abs(beta)))


# ------------------------------------------------------------------ profile intervals (glmmTMB)
PROF = {f["id"]: f for f in json.loads((REF / "structured_profile.json").read_text())["fits"]}
PROF_MODELS = {
    "ss_ri_ar1_ml": ("sleepstudy", "Reaction ~ Days + (1 | Subject) + ar1(0 + factor(Days) | Subject)"),
    "mach_ar1_ml": ("machines", "score ~ Machine + ar1(0 + Machine | Worker)"),
    "mach_cs_ml": ("machines", "score ~ Machine + cs(0 + Machine | Worker)"),
    "pst_ar1_ml": ("pastes", "strength ~ 1 + ar1(0 + cask | batch)"),
    "rm_ou_ml": ("repmeas", "y ~ t + arm + ou(0 + numFactor(t) | id)"),
}


def _our_name(name: str, structure: str, names) -> str | None:
    """Our parameter name for a reference name (``sd|Subject.ar1`` -> ``sd_ar1|Subject``...)."""
    if name == "sigma":
        return "sigma"
    what, group = name.split("|")
    if what == "sd" and "." in group:
        group, struct = group.split(".")
        return f"sd_{struct}|{group}"
    if what in ("rho", "kappa"):
        return f"{what}_{structure}|{group}"
    if what.startswith("sd_"):
        return next((n for n in names if n == name or n.startswith(name + ".")), None)
    return None


@pytest.mark.parametrize("key", sorted(PROF_MODELS))
def test_profile_intervals_match_glmmtmb(key):
    ref = PROF[key]
    data, formula = PROF_MODELS[key]
    m = _fit(data, formula, False)
    assert -m.objective / 2 == pytest.approx(ref["logLik"], abs=1e-6)
    structure = re.findall(r"\b(ar1|cs|ou)\(", formula)[0]
    ci = m.confint(method="profile")
    checked = 0
    for p in ref["params"]:
        for nat in p["natural"]:
            ours = _our_name(nat["name"], structure, list(ci.index))
            if ours is None:
                continue
            scale = max(abs(nat["mle"]), 1e-3)
            for side in ("lower", "upper"):
                assert ci.loc[ours, side] == pytest.approx(nat[f"{side}_exact"], abs=1e-3 * scale), (ours, side)
            checked += 1
    assert checked >= 3
