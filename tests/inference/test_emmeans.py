"""Estimated marginal means and contrasts against R's emmeans 1.8.4-1 (tests/reference/emmeans.json,
made by tests/reference/make_emmeans.R), plus checks by hand of the grid, weights and SEs."""
from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx.inference.contrasts import adjust_pvalues, contrast_matrix, p_adjust
from mixedfx.inference.emmeans import emmeans

with open(os.path.join(os.path.dirname(__file__), "..", "reference", "emmeans.json")) as _f:
    REF = json.load(_f)
RESULTS = {r["id"]: r for r in REF["results"]}
_MODELS: dict = {}


def model(name):
    if name not in _MODELS:
        cake, cbpp, owls = (mfx.datasets.load(n) for n in ("cake", "cbpp", "owls"))
        fits = {
            "cake_num": lambda: mfx.lmer("angle ~ recipe * temp + (1 | recipe:replicate)", cake),
            "cake_fac": lambda: mfx.lmer("angle ~ recipe * factor(temp) + (1 | recipe:replicate)", cake),
            "cbpp": lambda: mfx.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
                                      family="binomial"),
            "owls_lmm": lambda: mfx.lmer("ArrivalTime ~ FoodTreatment * SexParent + BroodSize + (1 | Nest)", owls),
            "owls_pois": lambda: mfx.glmer("SiblingNegotiation ~ FoodTreatment * SexParent + (1 | Nest)", owls,
                                           family="poisson"),
            "owls_nb": lambda: mfx.glmer("SiblingNegotiation ~ FoodTreatment * SexParent + (1 | Nest)", owls,
                                         family="nbinom2"),
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _MODELS[name] = fits[name]()
    return _MODELS[name]


SAT, KR, AS = "satterthwaite", "kenward-roger", "asymptotic"
TEMPS = {"temp": [175, 185, 195, 205, 215, 225]}


def E(name, specs, **kw):
    kw.setdefault("lmer_df", SAT)        # the "satt" references; the default is tested below
    return emmeans(model(name), specs, **kw)


def test_default_df_follows_emmeans():
    """R's emmeans: Kenward-Roger for a REML lmer fit (up to 3,000 rows); Satterthwaite for ML."""
    m = model("cake_fac")
    assert emmeans(m, "recipe").summary().messages == E("cake_fac", "recipe", lmer_df=KR).summary().messages
    np.testing.assert_allclose(emmeans(m, "recipe").table["df"], E("cake_fac", "recipe", lmer_df=KR).table["df"])
    ml = m.update(reml=False)
    assert "Degrees-of-freedom method: satterthwaite" in emmeans(ml, "recipe").summary().messages


# each reference id -> the same call in mixedfx (returns a summary or an EMMeans)
CALLS = {}
for _nm in ("cake_num", "cake_fac"):
    for _df, _tag in ((SAT, "satt"), (KR, "kr")):
        CALLS[f"{_nm}_{_tag}_recipe"] = (lambda n=_nm, d=_df: E(n, "recipe", lmer_df=d))
        CALLS[f"{_nm}_{_tag}_recipe_by_temp"] = (
            lambda n=_nm, d=_df: E(n, "recipe", by="temp", lmer_df=d, at=TEMPS if n == "cake_num" else None))
        CALLS[f"{_nm}_{_tag}_recipe_pairs_tukey"] = (
            lambda n=_nm, d=_df: E(n, "recipe", lmer_df=d).pairs(adjust="tukey"))
CALLS.update({
    "cbpp_period_link": lambda: E("cbpp", "period"),
    "cbpp_period_response": lambda: E("cbpp", "period", type="response"),
    "cbpp_period_pairs_holm_link": lambda: E("cbpp", "period").pairs(adjust="holm"),
    "cbpp_period_pairs_holm_response": lambda: E("cbpp", "period", type="response").pairs(adjust="holm"),
    "cake_fac_satt_recipe_by_temp_pairs": lambda: E("cake_fac", "recipe", by="temp").pairs(),
    "cake_fac_kr_recipe_by_temp_pairs": lambda: E("cake_fac", "recipe", by="temp", lmer_df=KR).pairs(),
    "cake_fac_satt_recipe_by_temp_pairs_bonferroni":
        lambda: E("cake_fac", "recipe", by="temp").pairs(adjust="bonferroni"),
    "cake_fac_satt_recipe_pairs_sidak": lambda: E("cake_fac", "recipe").pairs(adjust="sidak"),
    "cake_fac_satt_recipe_revpairs": lambda: E("cake_fac", "recipe").contrast("revpairwise"),
    "cake_fac_satt_recipe_custom_tukey":
        lambda: E("cake_fac", "recipe").contrast({"AvsBC": [1, -0.5, -0.5], "BvsC": [0, 1, -1]}, adjust="tukey"),
    "cake_fac_satt_recipe_custom_none":
        lambda: E("cake_fac", "recipe").contrast({"AvsBC": [1, -0.5, -0.5], "BvsC": [0, 1, -1]}),
    "cake_fac_satt_recipe_trt_vs_ctrl": lambda: E("cake_fac", "recipe").contrast("trt.vs.ctrl"),
    "cake_fac_satt_recipe_trt_vs_ctrl_holm": lambda: E("cake_fac", "recipe").contrast("trt.vs.ctrl", adjust="holm"),
    "cake_fac_satt_temp_poly": lambda: E("cake_fac", "temp").contrast("poly"),
    "cake_fac_satt_temp_pairs_tukey": lambda: E("cake_fac", "temp").pairs(),
    "cake_fac_satt_recipe_pairs_confint": lambda: E("cake_fac", "recipe").pairs().confint(),
    "cake_fac_kr_recipe_by_temp_pairs_confint":
        lambda: E("cake_fac", "recipe", by="temp", lmer_df=KR).pairs().confint(),
    "cake_fac_satt_recipe_confint_tukey": lambda: E("cake_fac", "recipe").confint(adjust="tukey"),
    "cake_fac_satt_recipe_confint_bonferroni_90":
        lambda: E("cake_fac", "recipe").confint(adjust="bonferroni", level=0.9),
    "cake_fac_satt_recipe_at_temp": lambda: E("cake_fac", "recipe", at={"temp": [175, 225]}),
    "cake_fac_asymp_recipe": lambda: E("cake_fac", "recipe", lmer_df=AS),
    "cake_fac_asymp_recipe_pairs": lambda: E("cake_fac", "recipe", lmer_df=AS).pairs(),
    "cake_num_satt_recipe_at_two": lambda: E("cake_num", "recipe", at={"temp": [180, 220]}),
    "cake_num_satt_recipe_at_one": lambda: E("cake_num", "recipe", at={"temp": 190}),
    "cake_num_kr_recipe_at_one_pairs": lambda: E("cake_num", "recipe", at={"temp": 190}, lmer_df=KR).pairs(),
    "owls_lmm_satt_food_equal": lambda: E("owls_lmm", "FoodTreatment"),
    "owls_lmm_satt_food_prop": lambda: E("owls_lmm", "FoodTreatment", weights="proportional"),
    "owls_lmm_kr_food_prop": lambda: E("owls_lmm", "FoodTreatment", weights="proportional", lmer_df=KR),
    "owls_lmm_satt_sex_prop_pairs": lambda: E("owls_lmm", "SexParent", weights="proportional").pairs(),
    "owls_lmm_satt_two": lambda: E("owls_lmm", ["FoodTreatment", "SexParent"]),
    "owls_lmm_satt_two_formula": lambda: E("owls_lmm", "~ FoodTreatment * SexParent"),
    "owls_lmm_satt_two_pairs_bonferroni":
        lambda: E("owls_lmm", ["FoodTreatment", "SexParent"]).pairs(adjust="bonferroni"),
    "owls_lmm_satt_two_pairs_tukey": lambda: E("owls_lmm", ["FoodTreatment", "SexParent"]).pairs(),
    "owls_lmm_satt_food_by_sex_pairs": lambda: E("owls_lmm", "FoodTreatment", by="SexParent").pairs(),
    "owls_pois_food_response": lambda: E("owls_pois", "FoodTreatment", type="response"),
    "owls_pois_food_link": lambda: E("owls_pois", "FoodTreatment"),
    "owls_pois_food_prop_response":
        lambda: E("owls_pois", "FoodTreatment", weights="proportional", type="response"),
    "owls_pois_food_pairs_response": lambda: E("owls_pois", "FoodTreatment", type="response").pairs(),
    "owls_pois_food_pairs_link": lambda: E("owls_pois", "FoodTreatment").pairs(),
    "owls_pois_food_by_sex_pairs_response":
        lambda: E("owls_pois", "FoodTreatment", by="SexParent", type="response").pairs(),
    "owls_pois_two_pairs_response_sidak":
        lambda: E("owls_pois", ["FoodTreatment", "SexParent"], type="response").pairs(adjust="sidak"),
    "owls_pois_two_pairs_response_confint":
        lambda: E("owls_pois", ["FoodTreatment", "SexParent"], type="response").pairs().confint(),
    "cbpp_period_trt_vs_ctrl_response":
        lambda: E("cbpp", "period", type="response").contrast("trt.vs.ctrl", adjust="bonferroni"),
    "cbpp_period_pairs_response_confint": lambda: E("cbpp", "period", type="response").pairs().confint(adjust="holm"),
    "owls_nb_food_response": lambda: E("owls_nb", "FoodTreatment", type="response"),
    "owls_nb_food_pairs_response": lambda: E("owls_nb", "FoodTreatment", type="response").pairs(),
})
# Relative tolerances.  The LMM fits agree with lme4's to ~1e-11.  The GLMM fits agree with lme4 run with
# tolPwrss = 1e-12 to ~1e-6, but lme4's GLMM covariance comes from a finite-difference Hessian (cbpp:
# within 1e-4 of the exact one; owls_pois: 1.5e-3 off, so its reference uses glmmTMB's exact covariance,
# see make_emmeans.R); glmmTMB's nbinom2 optimum and ours differ by ~1e-4.  df and p values: 1e-4
# (lmerTest's Satterthwaite derivatives are numDeriv's, ours Richardson's).
RTOL = {"cake": 1e-5, "owls_lmm": 1e-5, "cbpp": 1e-4, "owls_pois": 1e-4, "owls_nb": 1e-4}


def _rtol(rid):
    return next(v for k, v in RTOL.items() if rid.startswith(k))


@pytest.mark.parametrize("rid", list(RESULTS))
def test_against_emmeans(rid):
    ref = RESULTS[rid]
    got = CALLS[rid]()
    summ = got if not hasattr(got, "summary") else got.summary()
    tab = summ.table
    assert list(tab.columns) == ref["columns"], (list(tab.columns), ref["columns"])
    rtol = _rtol(rid)
    for col in ref["columns"]:
        want = ref["table"][col]
        have = tab[col]
        if isinstance(want[0], str):
            assert [str(x) for x in have] == want, col
            continue
        want = np.array([np.inf if w is None else w for w in want], float)
        have = have.to_numpy(float)
        if col == "p.value":
            np.testing.assert_allclose(have, want, rtol=max(rtol, 1e-4), atol=1e-6, err_msg=col)
        elif col == "df":
            np.testing.assert_allclose(have, want, rtol=max(rtol, 1e-4), err_msg=col)
        else:
            np.testing.assert_allclose(have, want, rtol=rtol, atol=1e-10, err_msg=col)
    assert list(summ.messages) == ref["mesg"]
    r_notes = [n for n in ref.get("notes", []) if n.startswith("Note: adjust")]
    assert [n for n in summ.notes if n.startswith("Note: adjust")] == r_notes


def test_interaction_note_as_emmeans():
    assert E("cake_fac", "recipe").notes == ("NOTE: Results may be misleading due to involvement in interactions",)
    assert E("owls_lmm", ["FoodTreatment", "SexParent"]).notes == ()


# ------------------------------------------------------------------ by hand
def test_emmean_is_grid_average_by_hand():
    m = model("owls_lmm")
    owls = mfx.datasets.load("owls")
    beta = m.fixef
    bs = owls["BroodSize"].mean()
    rows = []
    for food in ("Deprived", "Satiated"):
        vals = []
        for sex in ("Female", "Male"):
            x = {"(Intercept)": 1.0, "FoodTreatmentSatiated": food == "Satiated", "SexParentMale": sex == "Male",
                 "BroodSize": bs, "FoodTreatmentSatiated:SexParentMale": food == "Satiated" and sex == "Male"}
            vals.append(sum(float(x[k]) * beta[k] for k in beta.index))
        rows.append(vals)
    e = E("owls_lmm", "FoodTreatment")
    np.testing.assert_allclose(e.table["emmean"], np.mean(rows, axis=1), rtol=1e-12)
    # proportional weights: the data's frequencies of SexParent (over all FoodTreatment levels)
    n = owls["SexParent"].value_counts()[["Female", "Male"]].to_numpy(float)
    ep = E("owls_lmm", "FoodTreatment", weights="proportional")
    np.testing.assert_allclose(ep.table["emmean"], np.array(rows) @ (n / n.sum()), rtol=1e-12)
    # cells: each FoodTreatment's own frequencies
    ec = E("owls_lmm", "FoodTreatment", weights="cells")
    tab = pd.crosstab(owls["FoodTreatment"], owls["SexParent"]).to_numpy(float)
    np.testing.assert_allclose(ec.table["emmean"], np.sum(np.array(rows) * tab, axis=1) / tab.sum(axis=1), rtol=1e-12)


def test_contrast_se_is_quadratic_form():
    e = E("cake_fac", "recipe", by="temp")
    c = e.pairs(adjust="none")
    V = model("cake_fac").vcov().to_numpy()
    L = c.linfct
    np.testing.assert_allclose(c.table["SE"], np.sqrt(np.einsum("ij,jk,ik->i", L, V, L)), rtol=1e-12)
    # each contrast's linear function is the difference of the two means' functions
    np.testing.assert_allclose(L[0], e.linfct[0] - e.linfct[1], atol=1e-14)
    np.testing.assert_allclose(c.table["estimate"], L @ model("cake_fac").fixef.to_numpy(), rtol=1e-10)


def test_response_scale_delta_method():
    link = E("owls_pois", "FoodTreatment").table
    resp = E("owls_pois", "FoodTreatment", type="response").table
    np.testing.assert_allclose(resp["rate"], np.exp(link["emmean"]), rtol=1e-12)
    np.testing.assert_allclose(resp["SE"], np.exp(link["emmean"]) * link["SE"], rtol=1e-12)
    np.testing.assert_allclose(resp["asymp.LCL"], np.exp(link["asymp.LCL"]), rtol=1e-12)


def test_non_estimable_cells_are_nan():
    owls = mfx.datasets.load("owls")
    d = owls.loc[~((owls.FoodTreatment == "Satiated") & (owls.SexParent == "Male"))].reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mfx.lmer("ArrivalTime ~ FoodTreatment * SexParent + (1 | Nest)", d)
    e = emmeans(m, ["FoodTreatment", "SexParent"])
    tab = e.table
    bad = (tab.FoodTreatment == "Satiated") & (tab.SexParent == "Male")
    assert tab.loc[bad, "emmean"].isna().all() and tab.loc[~bad, "emmean"].notna().all()
    assert any(msg.startswith("Non-estimable") for msg in e.summary().messages)
    p = e.pairs().table
    touched = p["contrast"].astype(str).str.contains("Satiated Male")
    assert p.loc[touched, "estimate"].isna().all() and p.loc[~touched, "estimate"].notna().all()
    # the estimable cells are the cell means' model predictions
    cell = d.groupby(["FoodTreatment", "SexParent"], observed=True).size()
    assert len(cell) == 3


# ------------------------------------------------------------------ pieces
def test_p_adjust_matches_r():
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.2])
    # R: p.adjust(c(0.01,0.04,0.03,0.005,0.2), "holm") etc.
    np.testing.assert_allclose(p_adjust(p, "holm"), [0.04, 0.09, 0.09, 0.025, 0.2])
    np.testing.assert_allclose(p_adjust(p, "hochberg"), [0.04, 0.08, 0.08, 0.025, 0.2])
    np.testing.assert_allclose(p_adjust(p, "BY"), [0.05708333, 0.1141667, 0.1141667, 0.05708333, 0.4566667],
                               rtol=1e-6)
    np.testing.assert_allclose(p_adjust(p, "BH"), [0.025, 0.05, 0.05, 0.025, 0.2])
    np.testing.assert_allclose(p_adjust(p, "bonferroni"), [0.05, 0.2, 0.15, 0.025, 1.0])


def test_tukey_p_is_ptukey():
    # R: ptukey(sqrt(2) * 2.5, 4, 30, lower.tail = FALSE) = 0.0803358151427
    t = np.array([2.5, 0.1, -1.0, 3.0, 0.5, 2.0])
    p, mesg, adj, _ = adjust_pvalues(t, np.full(6, 30.0), "tukey", [np.arange(6)], 4, "pairs")
    assert adj == "tukey" and mesg.endswith("family of 4 estimates")
    np.testing.assert_allclose(p[0], 0.0803358151427, rtol=1e-8)
    # outside one set of pairwise comparisons Tukey becomes Sidak, with emmeans' note
    p2, mesg2, adj2, notes = adjust_pvalues(t, np.full(6, 30.0), "tukey", [np.arange(6)], 4, "contrast")
    assert adj2 == "sidak" and mesg2 == "P value adjustment: sidak method for 6 tests" and "sidak" in notes[0]


def test_poly_contrasts_as_emmeans():
    C, names, _ = contrast_matrix("poly", list("abcdef"))
    assert names == ["linear", "quadratic", "cubic", "quartic", "degree 5"]
    np.testing.assert_array_equal(C[:3], [[-5, -3, -1, 1, 3, 5], [5, -1, -4, -4, -1, 5], [-5, 7, 4, -4, -7, 5]])


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("call, match", [
    (lambda: E("cake_fac", "recip"), "the model's factors are recipe, temp"),
    (lambda: E("cake_num", "temp"), "numeric covariate"),
    (lambda: E("cake_num", "recipe", by="temp"), r"at=\{'temp'"),
    (lambda: E("cake_fac", "recipe", at={"temp": [176]}), "not among the levels"),
    (lambda: E("cake_fac", "recipe", weights="prop"), "weights="),
    (lambda: E("cake_fac", "recipe", lmer_df="bogus"), "lmer_df="),
    (lambda: E("cake_fac", "recipe").pairs(adjust="tukeyx"), "adjust="),
    (lambda: E("cake_fac", "recipe").contrast({"x": [1, -1]}), "3 means"),
    (lambda: E("cake_fac", "recipe", at={"angle": [1]}), "not a predictor"),
])
def test_errors(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_needs_data_without_origin():
    import pickle
    m = pickle.loads(pickle.dumps(model("cake_fac")))
    with pytest.raises(ValueError, match="data="):
        emmeans(m, "recipe")
    e = emmeans(m, "recipe", data=mfx.datasets.load("cake"))
    np.testing.assert_allclose(e.table["emmean"], E("cake_fac", "recipe").table["emmean"], rtol=1e-12)


def test_frozen_and_repr():
    e = E("cake_fac", "recipe")
    with pytest.raises(Exception):
        e.level = 0.9
    text = repr(e.pairs())
    assert "A - B" in text and "P value adjustment: tukey method for comparing a family of 3 estimates" in text
    assert isinstance(e.to_frame(), pd.DataFrame)


def test_exported():
    assert mfx.emmeans is emmeans


# ---------------------------------------------------------------- review fixes (issue 12)
with open(os.path.join(os.path.dirname(__file__), "..", "reference", "emmeans_covkeep.json")) as _f:
    COVKEEP = {r["id"]: r for r in json.load(_f)["results"]}


@pytest.fixture(scope="module")
def seizure_lmm():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mfx.lmer("y ~ trt * x + age + (1 | id)", mfx.datasets.load("seizure"))


@pytest.mark.parametrize("rid", list(COVKEEP))
def test_two_valued_covariates_are_kept_as_emmeans_cov_keep(seizure_lmm, rid):
    # emmeans' cov.keep = "2": the 0/1 numeric trt and x are grid factors (averaged over 0 and 1), not
    # held at their means; trt is a valid specs variable (R: "trt0 - trt1")
    m = seizure_lmm
    got = {"trt": lambda: emmeans(m, "trt"), "trt_by_x": lambda: emmeans(m, "trt", by="x"),
           "trt_pairs": lambda: emmeans(m, "trt").pairs(),
           "trt_prop": lambda: emmeans(m, "trt", weights="proportional"),
           "trt_at_x": lambda: emmeans(m, "trt", at={"x": 0.3})}[rid]().summary()
    ref = COVKEEP[rid]
    assert list(got.table.columns) == ref["columns"] and list(got.messages) == ref["mesg"]
    for col in ref["columns"]:
        want = ref["table"][col]
        if isinstance(want[0], str):
            assert [str(v) for v in got.table[col]] == want
        else:
            np.testing.assert_allclose(got.table[col].to_numpy(float), want, rtol=1e-5, err_msg=col)


def test_results_pickle_and_show_in_notebooks(seizure_lmm):
    import pickle
    cbpp = mfx.datasets.load("cbpp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = mfx.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial")
    for e in (emmeans(seizure_lmm, "trt", lmer_df="satterthwaite"), emmeans(seizure_lmm, "trt", lmer_df="asymptotic"),
              emmeans(g, "period", type="response")):
        back = pickle.loads(pickle.dumps(e))
        pd.testing.assert_frame_equal(back.pairs().table, e.pairs().table)
        for html in (e._repr_html_(), e.pairs()._repr_html_(), e.summary()._repr_html_()):
            assert html.startswith("<pre>") and html.endswith("</pre>") and "<" not in html[5:-6] and "SE" in html


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"specs": 3}, TypeError, "specs must be a variable name"),
    ({"specs": "recipe", "by": 2}, TypeError, "by= must be a variable name"),
    ({"specs": "recipe", "at": [175]}, TypeError, r"at= must be a dict \{variable: values\}"),
    ({"specs": "recipe", "at": {"temp": [np.nan]}}, ValueError, r"at=\{'temp'.*finite numbers"),
])
def test_bad_arguments_name_the_argument(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        emmeans(model("cake_num"), **kwargs)


def test_dunnett_and_scheffe_with_infinite_df_are_finite():
    """Regression: scipy's F(r, inf) is NaN; with z tests (GLMMs) Dunnett and Scheffe used it."""
    g = model("cbpp")
    ctl = emmeans(g, "period").contrast("trt.vs.ctrl")
    p = ctl.summary().table["p.value"].to_numpy()
    assert np.all(np.isfinite(p)) and np.all((p > 0) & (p <= 1))
    ci = ctl.confint().table
    assert np.all(np.isfinite(ci["asymp.LCL"])) and np.all(np.isfinite(ci["asymp.UCL"]))
    sch = emmeans(g, "period").pairs(adjust="scheffe").summary().table["p.value"].to_numpy()
    assert np.all(np.isfinite(sch))
