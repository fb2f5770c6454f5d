"""Estimated marginal means of GEE fits (mfx.gee) against R's emmeans 1.8.4-1 on geepack::geeglm fits
(tests/reference/emmeans_gee.json, made by tests/reference/make_emmeans_gee.R), plus checks by hand of the
covariance choice (vcov=), the delta method and the errors."""
from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx.api_gee import gee
from mixedfx.inference.emmeans import emmeans

with open(os.path.join(os.path.dirname(__file__), "..", "reference", "emmeans_gee.json")) as _f:
    REF = json.load(_f)
RESULTS = {r["id"]: r for r in REF["results"]}
_DATA: dict = {}
_MODELS: dict = {}
# model id -> (formula, data set, groups, family, corstr), the calls of make_emmeans_gee.R
SPECS = {
    "ohio_exch": ("resp ~ age + smoke", "ohio", "id", "binomial", "exchangeable"),
    "dietox_ar1": ("Weight ~ Time + Cu", "dietox", "Pig", "gaussian", "ar1"),
    "dietox_exch_int": ("Weight ~ Time * Cu", "dietox", "Pig", "gaussian", "exchangeable"),
    "seizure_exch": ("y ~ x * trt + offset(log(t))", "seizure", "id", "poisson", "exchangeable"),
    "seizure_ar1": ("y ~ x * trt + offset(log(t))", "seizure", "id", "poisson", "ar1"),
}


def data(name):
    if name not in _DATA:
        _DATA[name] = mfx.datasets.load(name)
    return _DATA[name]


def model(name):
    if name not in _MODELS:
        formula, ds, groups, family, corstr = SPECS[name]
        _MODELS[name] = gee(formula, data(ds), groups=groups, family=family, corstr=corstr, tol=1e-10)
    return _MODELS[name]


def E(name, specs, **kw):
    return emmeans(model(name), specs, data=data(SPECS[name][1]), **kw)


AGE2 = {"age": [-2, 1]}
TIMES = {"Time": [2, 7, 12]}
CALLS = {
    "ohio_exch_smoke_response": lambda: E("ohio_exch", "smoke", type="response"),
    "ohio_exch_smoke_link": lambda: E("ohio_exch", "smoke"),
    "ohio_exch_smoke_naive": lambda: E("ohio_exch", "smoke", vcov="vbeta.naiv"),
    "ohio_exch_smoke_pairs_response": lambda: E("ohio_exch", "smoke", type="response").pairs(),
    "ohio_exch_smoke_pairs_link": lambda: E("ohio_exch", "smoke").pairs(),
    "ohio_exch_smoke_pairs_response_confint": lambda: E("ohio_exch", "smoke", type="response").pairs().confint(),
    "ohio_exch_smoke_by_age_response": lambda: E("ohio_exch", "~ smoke | age", at=AGE2, type="response"),
    "ohio_exch_age_pairs_response_holm":
        lambda: E("ohio_exch", "age", at={"age": [-2, -1, 0, 1]}, type="response").pairs(adjust="holm"),
    "dietox_ar1_Cu": lambda: E("dietox_ar1", "Cu"),
    "dietox_ar1_Cu_pairs": lambda: E("dietox_ar1", "Cu").pairs(),
    "dietox_ar1_Cu_naive_pairs_holm": lambda: E("dietox_ar1", "Cu", vcov="naive").pairs(adjust="holm"),
    "dietox_ar1_Cu_trt_vs_ctrl": lambda: E("dietox_ar1", "Cu").contrast("trt.vs.ctrl"),
    "dietox_ar1_Cu_at_time": lambda: E("dietox_ar1", "Cu", at={"Time": 12}),
    "dietox_exch_int_Cu": lambda: E("dietox_exch_int", "Cu"),
    "dietox_exch_int_Cu_by_time": lambda: E("dietox_exch_int", "Cu", by="Time", at=TIMES),
    "dietox_exch_int_Cu_by_time_pairs": lambda: E("dietox_exch_int", "Cu", by="Time", at=TIMES).pairs(),
    "seizure_exch_trt_response": lambda: E("seizure_exch", "trt", type="response"),
    "seizure_exch_trt_by_x_response": lambda: E("seizure_exch", "~ trt | x", type="response"),
    "seizure_exch_trt_by_x_pairs_response": lambda: E("seizure_exch", "~ trt | x", type="response").pairs(),
    # emmeans' offset = 0 (rates per week): the grid's t at 1
    "seizure_exch_trt_by_x_offset0_response": lambda: E("seizure_exch", "~ trt | x", at={"t": 1}, type="response"),
    "seizure_ar1_x_trt_link": lambda: E("seizure_ar1", ["x", "trt"]),
    "seizure_ar1_x_trt_pairs_response":
        lambda: E("seizure_ar1", ["x", "trt"], type="response").pairs(adjust="bonferroni"),
}


def _r_messages(rid, mesg):
    """R's messages as mixedfx gives them.  emmeans adds a grid variable ".offset." for a formula
    offset (mixedfx evaluates the offset from the grid's own t) and lists it among the variables
    averaged over; with offset = 0 it still lists t, which mixedfx holds at 1 (at = {"t": 1})."""
    out = []
    for m in mesg:
        if m.startswith("Results are averaged over the levels of: "):
            names = [v for v in m.split(": ", 1)[1].split(", ") if v != ".offset."]
            if rid == "seizure_exch_trt_by_x_offset0_response":
                names = [v for v in names if v != "t"]
            if not names:
                continue
            m = "Results are averaged over the levels of: " + ", ".join(names)
        out.append(m)
    return out


def test_every_reference_has_a_call():
    assert set(CALLS) == set(RESULTS)


@pytest.mark.parametrize("name", list(SPECS))
def test_fits_match_geepack(name):
    ref = REF["models"][name]
    g = model(name)
    assert list(g.coef.index) == ref["coef_names"]
    np.testing.assert_allclose(g.coef, ref["coefficients"], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(g.vcov("robust"), np.array(ref["vcov_robust"]), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(g.vcov("naive"), np.array(ref["vcov_naive"]), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("rid", list(RESULTS))   # trt_vs_ctrl: Dunnett at df = inf (F(1, inf) = chi2(1))
def test_against_emmeans(rid):
    ref = RESULTS[rid]
    got = CALLS[rid]()
    summ = got if not hasattr(got, "summary") else got.summary()
    tab = summ.table
    assert list(tab.columns) == ref["columns"], (list(tab.columns), ref["columns"])
    for col in ref["columns"]:
        want = ref["table"][col]
        have = tab[col]
        if isinstance(want[0], str):              # R's labels (a kept 0/1 covariate's values: "0", "1")
            assert [f"{x:g}" if isinstance(x, float) else str(x) for x in have] == want, col
            continue
        want = np.array([np.inf if w is None else w for w in want], float)
        have = have.to_numpy(float)
        if col == "df":
            assert np.all(np.isinf(have)) and np.all(np.isinf(want))
        elif col == "p.value":
            np.testing.assert_allclose(have, want, rtol=1e-6, atol=1e-10, err_msg=col)
        else:
            np.testing.assert_allclose(have, want, rtol=1e-6, atol=1e-10, err_msg=col)
    assert list(summ.messages) == _r_messages(rid, ref["mesg"])


# ------------------------------------------------------------------ by hand
def test_covariance_choice_is_the_fits():
    g = model("ohio_exch")
    for kind in ("robust", "naive", "mancl-derouen", "kauermann-carroll"):
        e = E("ohio_exch", "smoke", vcov=kind)
        V = g.vcov(kind).to_numpy()
        L = e.linfct
        np.testing.assert_allclose(e.table["SE"], np.sqrt(np.einsum("ij,jk,ik->i", L, V, L)), rtol=1e-12)
        np.testing.assert_allclose(e.vcov(), L @ V @ L.T, rtol=1e-12)
    # the bias-corrected sandwiches inflate the robust one; the aliases are the same covariance
    se = {k: E("ohio_exch", "smoke", vcov=k).table["SE"].to_numpy() for k in ("robust", "md", "kc", "vbeta")}
    assert np.all(se["md"] > se["robust"]) and np.all(se["kc"] > se["robust"])
    np.testing.assert_array_equal(se["vbeta"], se["robust"])
    assert E("ohio_exch", "smoke", vcov="md").summary().messages[0] == "Covariance estimate used: mancl-derouen"
    # a user-supplied matrix
    V = g.vcov("naive")
    e = E("ohio_exch", "smoke", vcov=V * 4.0)
    np.testing.assert_allclose(e.table["SE"], 2 * E("ohio_exch", "smoke", vcov="naive").table["SE"], rtol=1e-12)
    assert e.summary().messages[0] == "Covariance estimate used: user-supplied"


def test_default_covariance_follows_the_fits_std_err():
    o = data("ohio")
    g_md = gee("resp ~ age + smoke", o, groups="id", family="binomial", corstr="exchangeable", std_err="md",
               tol=1e-10)
    np.testing.assert_allclose(emmeans(g_md, "smoke", data=o).table["SE"],
                               E("ohio_exch", "smoke", vcov="mancl-derouen").table["SE"], rtol=1e-10)


def test_response_scale_is_delta_method_of_predictions():
    g = model("seizure_exch")
    s = data("seizure")
    link = E("seizure_exch", "~ trt | x", at={"t": 1}).table
    resp = E("seizure_exch", "~ trt | x", at={"t": 1}, type="response").table
    np.testing.assert_allclose(resp["rate"], np.exp(link["emmean"]), rtol=1e-12)
    np.testing.assert_allclose(resp["SE"], np.exp(link["emmean"]) * link["SE"], rtol=1e-12)
    np.testing.assert_allclose(resp["asymp.UCL"], np.exp(link["asymp.UCL"]), rtol=1e-12)
    # with nothing averaged over, a mean is the model's population-averaged prediction
    grid = pd.DataFrame({"x": link["x"].astype(int), "trt": link["trt"].astype(int), "t": 1})
    np.testing.assert_allclose(link["emmean"], g.predict(grid), rtol=1e-12)
    # averaging over the kept t (2 and 8 weeks) adds the mean of their logs to the link-scale mean
    avg = E("seizure_exch", "~ trt | x").table
    np.testing.assert_allclose(avg["emmean"], link["emmean"] + np.log(4.0), rtol=1e-12)
    np.testing.assert_allclose(avg["SE"], link["SE"], rtol=1e-12)
    assert s["t"].nunique() == 2


def test_data_as_given_to_gee_with_dropped_rows_and_other_index():
    d = data("dietox").copy()
    d.index = [f"r{i}" for i in range(len(d))]
    d.loc[d.index[[3, 50]], "Weight"] = np.nan            # two rows dropped (a MissingDataWarning)
    with pytest.warns(mfx.MissingDataWarning):
        g = gee("Weight ~ Time + Cu", d, groups="Pig", corstr="ar1")
    e = emmeans(g, "Cu", data=d)
    # the rows used: Time is held at its mean over them
    kept = d.dropna(subset=["Weight"])
    L = e.linfct
    assert L[0, list(g.coef.index).index("Time")] == pytest.approx(kept["Time"].mean(), rel=1e-12)
    # the same data re-ordered: found by label
    e2 = emmeans(g, "Cu", data=d.iloc[::-1])
    np.testing.assert_allclose(e2.table["emmean"], e.table["emmean"], rtol=1e-12)
    # a frame with repeated index labels (gee() accepts it): the rows are found by position
    dup = d.copy()
    dup.index = np.repeat(np.arange(len(d) // 2 + 1), 2)[:len(d)]
    with pytest.warns(mfx.MissingDataWarning):
        gd = gee("Weight ~ Time + Cu", dup, groups="Pig", corstr="ar1")
    np.testing.assert_allclose(emmeans(gd, "Cu", data=dup).table["emmean"], e.table["emmean"], rtol=1e-10)
    # a frame that lacks the rows used
    with pytest.raises(ValueError, match="do not contain the rows the model was fitted to"):
        emmeans(g, "Cu", data=d.iloc[:100])


def test_pickles():
    e = E("ohio_exch", "smoke", type="response")
    e2 = pickle.loads(pickle.dumps(e))
    pd.testing.assert_frame_equal(e2.table, e.table)
    assert e2.summary().messages == e.summary().messages


# ------------------------------------------------------------------ errors
def test_clear_errors():
    g = model("ohio_exch")
    # the fit keeps a reference to its data; an unpickled one does not and asks for data=
    np.testing.assert_allclose(emmeans(g, "smoke").table["emmean"],
                               emmeans(g, "smoke", data=data(SPECS["ohio_exch"][1])).table["emmean"], rtol=1e-14)
    with pytest.raises(ValueError, match="needs the data it was fitted to.*data="):
        emmeans(pickle.loads(pickle.dumps(g)), "smoke")
    with pytest.raises(ValueError, match="vcov='jack'.*'robust'.*'naive'.*3 x 3"):
        E("ohio_exch", "smoke", vcov="jack")
    with pytest.raises(ValueError, match="jackknife covariances are not available"):
        E("ohio_exch", "smoke", vcov="vbeta.j1s")
    with pytest.raises(ValueError, match="finite symmetric 3 x 3"):
        E("ohio_exch", "smoke", vcov=np.eye(2))
    with pytest.raises(TypeError, match="vcov= must be a covariance type name or a 3 x 3 matrix"):
        E("ohio_exch", "smoke", vcov=object())
    with pytest.raises(ValueError, match="lmer_df='kenward-roger' does not apply to a GEE fit"):
        E("ohio_exch", "smoke", lmer_df="kenward-roger")
    assert E("ohio_exch", "smoke", lmer_df="asymptotic").table["df"].tolist() == [np.inf, np.inf]
    with pytest.raises(ValueError, match="not a variable of the fixed effects"):
        E("ohio_exch", "id")
    cbpp = mfx.datasets.load("cbpp")
    m = mfx.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial")
    with pytest.raises(ValueError, match="vcov= chooses the covariance of a GEE fit"):
        emmeans(m, "period", vcov="robust")
