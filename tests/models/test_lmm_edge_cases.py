"""Edge cases of fitting: degenerate slopes, singular fits, tiny data, start values, warnings."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx


@pytest.mark.parametrize("kind", ["varies between groups", "constant everywhere"])
def test_slope_constant_within_groups_warns_and_fits(kind):
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(12), 8)
    x = g % 3 * 1.0 if kind == "varies between groups" else np.full(96, 2.0)
    y = 1 + 0.5 * x + rng.normal(size=12)[g] + rng.normal(size=96)
    df = pd.DataFrame({"y": y, "x": x, "g": g})
    match = "within every level" if kind == "varies between groups" else "not identifiable"
    with pytest.warns(mfx.IdentifiabilityWarning, match=match):
        m = mfx.lmer("y ~ (x | g)" if kind == "constant everywhere" else "y ~ x + (x | g)", df)
    assert np.all(np.isfinite(m.fixef)) and np.isfinite(m.objective) and np.all(np.isfinite(m.theta))
    # the fit reaches the same optimum from lme4's start (lme4 1.1-31 gave 273.9756 / 274.8665 here)
    with pytest.warns(mfx.IdentifiabilityWarning):
        again = mfx.lmer(m.formula, df, start="lme4")
    assert again.objective == pytest.approx(m.objective, rel=1e-9)


def test_two_observations_are_not_enough():
    df = pd.DataFrame({"y": [1.0, 2.0, 3.0], "g": ["a", "b", "b"]})
    df.loc[0, "y"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(mfx.DesignError):
            mfx.lmer("y ~ 1 + (1 | g)", df)


def test_start_from_lme4_or_given_reaches_same_optimum(lmm_fit):
    m, ref = lmm_fit("sleep_slopes_reml")
    df = mfx.datasets.load("sleepstudy")
    a = mfx.lmer(ref["formula"], df, start="lme4")
    b = mfx.lmer(ref["formula"], df, start=m.fit.theta)
    assert a.objective == pytest.approx(m.objective, rel=1e-10)
    assert b.objective == pytest.approx(m.objective, rel=1e-10)
    assert b.fit.opt.nfev < a.fit.opt.nfev
    with pytest.raises(ValueError, match="3 theta"):
        mfx.lmer(ref["formula"], df, start=[1.0])


def test_missing_rows_are_reported_in_result_and_summary():
    df = mfx.datasets.load("sleepstudy")
    df.loc[[0, 5], "Reaction"] = np.nan
    with pytest.warns(mfx.MissingDataWarning, match="2 row"):
        m = mfx.lmer("Reaction ~ Days + (1 | Subject)", df)
    assert m.nobs == 178 and m.n_dropped == 2
    assert "2 observation(s) deleted due to missingness" in str(m.summary())


def test_ml_and_reml_agree_on_fixed_effects_for_balanced_data(lmm_fit):
    reml, _ = lmm_fit("sleep_slopes_reml")
    ml, _ = lmm_fit("sleep_slopes_ml")
    np.testing.assert_allclose(reml.fixef, ml.fixef, rtol=1e-6)
    assert reml.sigma > 0 and ml.sigma > 0 and ml.aic > 0
