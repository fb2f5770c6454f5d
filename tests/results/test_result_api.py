"""The user-facing result: accessors, summary text and HTML, JSON, coef, ranef layouts."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest


def test_summary_text_has_lme4_sections(lmm_fit):
    m, ref = lmm_fit("sleep_slopes_reml")
    text = str(m.summary())
    for piece in ["Linear mixed model fit by REML ['lmerMod']", "Formula: Reaction ~ Days + (Days | Subject)",
                  "REML criterion at convergence: 1743.6", "Scaled residuals:", "Random effects:",
                  "Groups   Name        Variance Std.Dev.", "Residual", "Number of obs: 180, groups:  Subject, 18",
                  "Fixed effects:", "Estimate Std. Error     df t value Pr(>|t|)", "Correlation of Fixed Effects:",
                  "Days -0.138"]:
        assert piece in text, piece
    # the fixed-effects lines carry lme4's numbers (251.405, 6.825, 36.84) and lmerTest's df (17.0)
    line = next(line for line in text.splitlines() if line.startswith("(Intercept)"))
    est, se, df, t = map(float, line.split()[1:5])
    assert abs(est - 251.405) < 1e-3 and abs(se - 6.825) < 1e-3 and abs(t - 36.838) < 1e-2
    assert abs(df - 17.0) < 1e-2 and line.split()[-1] == "<2e-16"
    assert "0.07" in next(line for line in text.splitlines() if line.strip().startswith("Days") and "." in line)


def test_ml_summary_shows_information_criteria(lmm_fit):
    m, ref = lmm_fit("sleep_slopes_ml")
    text = str(m.summary())
    assert "fit by maximum likelihood" in text
    assert "AIC" in text and "1763.9" in text and "df.resid" in text


def test_html_summary(lmm_fit):
    m, _ = lmm_fit("penicillin_crossed")
    html = m._repr_html_()
    assert html.startswith("<div") and "<table" in html and "plate" in html and "sample" in html


def test_to_json_round_trip(lmm_fit):
    m, ref = lmm_fit("sleep_slopes_reml")
    d = json.loads(m.to_json())
    assert d["fixef"]["Days"] == pytest.approx(ref["fixef"]["Days"], rel=1e-6)
    assert d["varcorr"][-1]["grp"] == "Residual"
    assert d["nobs"] == 180 and d["reml"] is True and d["is_singular"] is False
    assert set(d["theta"]) == set(ref["theta_names"])


def test_ranef_wide_and_coef(lmm_fit):
    m, _ = lmm_fit("sleep_uncorrelated")
    wide = m.ranef(long=False)
    assert list(wide) == ["Subject"]
    assert list(wide["Subject"].columns) == ["(Intercept)", "Days"]
    coef = m.coef()["Subject"]
    np.testing.assert_allclose(coef["Days"], m.fixef["Days"] + wide["Subject"]["Days"])
    assert coef.index[0] == "308"


def test_coef_for_nested_groups(lmm_fit):
    m, _ = lmm_fit("pastes_nested")
    coef = m.coef()
    assert set(coef) == {"cask:batch", "batch"}
    assert len(coef["cask:batch"]) == 30


def test_fitted_equals_prediction_on_training_rows(lmm_fit):
    m, _ = lmm_fit("cake_factorial")
    df = pd.DataFrame({"recipe": ["A", "B"], "temp": [175, 225], "replicate": ["1", "2"]})
    p = m.predict(df)
    # recompute by hand: X beta + b for level "A:1" / "B:2"
    re = m.ranef().set_index("grp")["condval"]
    fe = m.fixef
    expected0 = fe["(Intercept)"] + fe["temp"] * 175 + re["A:1"]
    expected1 = fe["(Intercept)"] + fe["recipeB"] + (fe["temp"] + fe["recipeB:temp"]) * 225 + re["B:2"]
    np.testing.assert_allclose(p, [expected0, expected1], rtol=1e-12)


def test_predict_handles_missing_rows_and_bad_re_form(lmm_fit):
    m, _ = lmm_fit("sleep_intercept")
    nd = pd.DataFrame({"Days": [1.0, np.nan], "Subject": ["308", "309"]})
    p = m.predict(nd)
    assert np.isfinite(p[0]) and np.isnan(p[1])
    with pytest.raises(ValueError, match="not a random term"):
        m.predict(nd, re_form="~ (1 | Days)")


def test_result_is_frozen(lmm_fit):
    m, _ = lmm_fit("dyestuff")
    with pytest.raises(Exception):
        m.formula = "other"
