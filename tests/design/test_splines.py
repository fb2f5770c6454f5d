"""poly(), bs(), ns() in formulas against R (tests/reference/splines.json, made by make_splines.R).

Bases on training data and at new values (inside and beyond the boundary knots), R's
column names in model matrices with factors and interactions, lme4 fits with the bases
in fixed and random terms, and predictions on new data from the stored knots/coefficients.
"""
from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx.design import DesignError, build_design
from mixedfx.design.evaluate import AtomState, evaluate_atom
from mixedfx.formula.terms import parse_formula
from mixedfx.inference.terms import term_columns

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "..", "reference", "splines.json")) as _f:
    REF = json.load(_f)

TOL = 1e-10


def _close(actual, expected, tol=TOL):
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    assert actual.shape == expected.shape
    err = np.max(np.abs(actual - expected) / np.maximum(1.0, np.abs(expected))) if actual.size else 0.0
    assert err <= tol, f"largest difference {err:.3g}"


def _vector(value) -> np.ndarray:
    """A numeric JSON value as an array (R writes length-1 vectors as scalars, NULL as {})."""
    if value is None or value == {}:
        return np.zeros(0)
    return np.atleast_1d(np.asarray(value, float))


def _basis(call: str, x, newx):
    node = parse_formula("y ~ " + call).atoms[call]
    state = AtomState()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train = evaluate_atom(node, pd.DataFrame({"x": x}), state, training=True, matrix=True)
        new = evaluate_atom(node, pd.DataFrame({"x": newx}), state, training=False, matrix=True)
    return train, new, state.bases[call]


CASES = REF["cases"]


@pytest.mark.parametrize("case", CASES, ids=[f"{c['set']}-{c['call']}" for c in CASES])
def test_basis_and_its_prediction_match_r(case):
    x = np.asarray(REF["x"][case["set"]], float)
    newx = np.asarray(REF["newx"][case["set"]], float)
    train, new, fitted = _basis(case["call"], x, newx)
    _close(train, case["basis"])
    _close(new, case["predict"])
    if case["call"].startswith("poly"):
        _close(_vector(fitted.alpha), _vector(case["alpha"]))
        _close(_vector(fitted.norm2), _vector(case["norm2"]))
    else:
        _close(_vector(fitted.knots), _vector(case["knots"]))
        _close(_vector(fitted.boundary), _vector(case["boundary"]))


def test_reference_covers_ties_unsorted_values_and_extrapolation():
    unif = np.asarray(REF["x"]["unif"])
    assert len(np.unique(unif)) < len(unif) and np.any(np.diff(unif) < 0)
    for key, x in REF["x"].items():
        newx = np.asarray(REF["newx"][key])
        assert newx.min() < np.min(x) and newx.max() > np.max(x)


def _data():
    d = pd.DataFrame(REF["data"])
    nd = pd.DataFrame(REF["newdata"])
    return d, nd


@pytest.mark.parametrize("mm", REF["model_matrices"], ids=[m["formula"] for m in REF["model_matrices"]])
def test_model_matrix_names_and_values_match_r(mm):
    d, nd = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        design = build_design("y " + mm["formula"] + " + (1 | g)", d)
        new = design.spec.fixed_matrix(nd)
    assert list(design.xnames) == mm["colnames"]
    _close(design.X, mm["X"])
    _close(new, mm["X_new"])


FITS = REF["fits"] + REF["na_fits"]


def _fit_data(fit):
    if fit["id"].startswith("sleep"):
        d = mfx.datasets.load("sleepstudy")
        if fit["id"].startswith("sleep_na"):
            d = d.copy()
            d.loc[d.index[np.asarray(REF["na_rows"]) - 1], "Reaction"] = np.nan
        return d
    return _data()[0]


@pytest.fixture(scope="module")
def fitted_models():
    out = {}
    for fit in FITS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[fit["id"]] = mfx.lmer(fit["formula"], _fit_data(fit), reml=fit["REML"])
    return out


@pytest.mark.parametrize("fit", FITS, ids=[f["id"] for f in FITS])
def test_fit_matches_lme4(fit, fitted_models):
    m = fitted_models[fit["id"]]
    assert m.objective == pytest.approx(fit["objective"], rel=1e-6)
    assert list(m.fixef.index) == fit["fixef_names"]
    np.testing.assert_allclose(m.fixef.to_numpy(), fit["fixef"], rtol=1e-4, atol=1e-4)
    assert m.sigma == pytest.approx(fit["sigma"], rel=1e-4)
    blocks = m.fit.design.blocks
    assert [b.group_label for b in blocks] == list(np.atleast_1d(fit["groups"]))
    assert [list(b.cnames) for b in blocks] == fit["cnames"]
    np.testing.assert_allclose(m.fitted(), fit["fitted"], rtol=1e-4)


@pytest.mark.parametrize("fit", FITS, ids=[f["id"] for f in FITS])
def test_predictions_on_new_data_match_lme4(fit, fitted_models):
    m = fitted_models[fit["id"]]
    newdata = pd.DataFrame(fit["newdata"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cond = m.predict(newdata, allow_new_levels=True)
        marg = m.predict(newdata, re_form="~0")
    np.testing.assert_allclose(cond, fit["predict_newdata"], rtol=1e-4)
    np.testing.assert_allclose(marg, fit["predict_marginal"], rtol=1e-4)


@pytest.mark.parametrize("fit", FITS, ids=[f["id"] for f in FITS])
def test_theta_matches_lme4(fit, fitted_models):
    theta = fitted_models[fit["id"]].theta.to_numpy()
    np.testing.assert_allclose(theta, _vector(fit["theta"]), rtol=1e-3, atol=1e-3)


def test_new_data_equal_to_training_rows_reproduce_the_training_matrices():
    d, _ = _data()
    design = build_design("y ~ poly(x, 3) * f + ns(z, 2):x + bs(z, df = 5) + (poly(x, 2) | g)", d)
    assert design.X.shape[1] == 1 + 3 + 2 + 6 + 2 + 5
    _close(design.spec.fixed_matrix(d), design.X, 1e-12)
    (_, Z), = design.spec.random_parts(d)
    _close(Z, design.blocks[0].X, 1e-12)


def test_bases_are_fitted_on_every_row_where_x_is_known():
    """As R's model frame: knots and coefficients come before dropping incomplete rows."""
    d = mfx.datasets.load("sleepstudy").copy()
    d.loc[d["Days"] >= 7, "Reaction"] = np.nan
    with pytest.warns(mfx.design.MissingDataWarning):
        design = build_design("Reaction ~ ns(Days, df = 3) + (poly(Days, 2) | Subject)", d)
    ns_state = design.spec.state.bases["ns(Days, df = 3)"]
    assert ns_state.knots == (3.0, 6.0) and ns_state.boundary == (0.0, 9.0)
    assert design.spec.state.bases["poly(Days, 2)"].alpha == pytest.approx((4.5, 4.5))


def test_term_columns_group_the_basis_columns_of_a_term():
    d, _ = _data()
    design = build_design("y ~ poly(x, 2) * f + ns(z, df = 3) + (1 | g)", d)
    cols = term_columns(design)
    names = design.xnames
    assert [names[j] for j in cols["poly(x, 2)"]] == ["poly(x, 2)1", "poly(x, 2)2"]
    assert [names[j] for j in cols["ns(z, df = 3)"]] == ["ns(z, df = 3)1", "ns(z, df = 3)2", "ns(z, df = 3)3"]
    assert len(cols["poly(x, 2):f"]) == 4
    direct = build_design("y ~ poly(x, 2) + z:ns(x, 2) + (1 | g)", d)
    cols = term_columns(direct)
    assert [direct.xnames[j] for j in cols["z:ns(x, 2)"]] == ["z:ns(x, 2)1", "z:ns(x, 2)2"]


@pytest.mark.parametrize("ref", REF["anovas"], ids=[a["id"] for a in REF["anovas"]])
def test_anova_tests_a_basis_as_one_term_as_lmertest(ref, fitted_models):
    table = fitted_models[ref["id"]].anova()
    assert list(table.index) == list(np.atleast_1d(ref["terms"]))
    np.testing.assert_array_equal(table["numdf"], _vector(ref["NumDF"]))
    np.testing.assert_allclose(table["F"], _vector(ref["F"]), rtol=1e-4)
    np.testing.assert_allclose(table["dendf"], _vector(ref["DenDF"]), rtol=1e-3)


def test_bs_warns_beyond_the_boundary_knots_and_ns_does_not():
    d = mfx.datasets.load("sleepstudy")
    m = mfx.lmer("Reaction ~ bs(Days, df = 4) + (1 | Subject)", d)
    new = pd.DataFrame({"Days": [2.0, 12.0], "Subject": ["308", "308"]})
    with pytest.warns(UserWarning, match="beyond the boundary knots"):
        m.predict(new)
    m2 = mfx.lmer("Reaction ~ ns(Days, df = 4) + (1 | Subject)", d)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m2.predict(new)


def test_df_too_small_warns_as_r_does():
    d = mfx.datasets.load("sleepstudy")
    with pytest.warns(UserWarning, match="'df' was too small; have used 3"):
        design = build_design("Reaction ~ bs(Days, df = 2) + (1 | Subject)", d)
    assert design.X.shape[1] == 4


@pytest.mark.parametrize("formula, match", [
    ("poly(Days, 2) ~ Days + (1 | Subject)", "several columns"),
    ("Reaction ~ log(poly(Days, 2) + 1) + (1 | Subject)", "term of its own"),
    ("Reaction ~ poly(Days, 10) + (1 | Subject)", "distinct values"),
    ("Reaction ~ poly(Days, Reaction, 2) + (1 | Subject)", "several variables"),
    ("Reaction ~ bs(Days, df = 2.5) + (1 | Subject)", "whole number"),
    ("Reaction ~ bs(Days, d = 3) + (1 | Subject)", "several arguments starting with d="),
    ("Reaction ~ bs(Days, foo = 3) + (1 | Subject)", "no argument foo="),
    ("Reaction ~ poly(Days, 2, coefs = 1) + (1 | Subject)", "coefs= of poly"),
    ("Reaction ~ ns(Days, knots = c(4, 20)) + (1 | Subject)", "between the boundary knots"),
    ("Reaction ~ ns(Days, Boundary.knots = 3) + (1 | Subject)", "two numbers"),
    ("Reaction ~ bs(Days, knots = Days) + (1 | Subject)", "must be a number"),
    ("Reaction ~ poly(Days, 2, raw = 2) + (1 | Subject)", "TRUE or FALSE"),
    ("Reaction ~ ns(Subject, 2) + (1 | Subject)", "categorical"),
    ("Reaction ~ ns(log(Days), 2) + (1 | Subject)", "not finite"),
    ("Reaction ~ Days + offset(poly(Days, 2)) + (1 | Subject)", "several columns"),
])
def test_bad_basis_calls_raise_clear_errors(formula, match):
    with pytest.raises(DesignError, match=match):
        build_design(formula, mfx.datasets.load("sleepstudy"))


def test_partial_and_positional_arguments_follow_r():
    d = mfx.datasets.load("sleepstudy")
    a = build_design("Reaction ~ bs(Days, deg = 2, 5) + (1 | Subject)", d)
    b = build_design("Reaction ~ bs(Days, df = 5, degree = 2) + (1 | Subject)", d)
    _close(a.X, b.X, 0.0)
    assert a.xnames[1] == "bs(Days, deg = 2, 5)1"
    c = build_design("Reaction ~ poly(x = Days, degree = 2) + (1 | Subject)", d)
    e = build_design("Reaction ~ poly(Days, 2) + (1 | Subject)", d)
    _close(c.X, e.X, 0.0)


def test_summary_prints_the_correlation_of_basis_columns():
    """Abbreviated labels of poly(Days, 2)1 and poly(Days, 2)2 must stay distinct."""
    m = mfx.lmer("Reaction ~ poly(Days, 3) + (1 | Subject)", mfx.datasets.load("sleepstudy"))
    summary = m.summary()
    labels = list(summary.corr_fixef.columns)
    assert len(labels) == 4 and len(set(labels)) == 4
    assert "Correlation of Fixed Effects:" in str(summary)
