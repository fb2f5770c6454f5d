"""GLMM profile intervals against lme4's confint(method = "profile") (tests/reference/make_glmm_profile.R)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import mixedfx as mfx

with open(os.path.join(os.path.dirname(__file__), "..", "reference", "glmm_profile.json")) as f:
    REF = json.load(f)


@pytest.mark.parametrize("key", ["cbpp", "cbpp_agq"])
def test_glmm_profile_confint_matches_lme4(key):
    r = REF[key]
    m = mfx.glmer(r["formula"], mfx.datasets.load("cbpp"), family="binomial", nagq=r["nagq"])
    before = m.predict()
    ci = m.confint(method="profile")
    assert list(ci.index) == r["ci"]["param"]
    expected = np.column_stack([r["ci"]["lower"], r["ci"]["upper"]])
    np.testing.assert_allclose(ci.to_numpy(), expected, rtol=1e-3)
    # profile intervals of the fixed effects are wider than Wald's on the low side for a logit GLMM here
    wald = m.confint(method="wald")
    assert np.all(ci.loc[wald.index, "lower"] < wald["lower"])
    np.testing.assert_array_equal(m.predict(), before)         # the fit is left as it was


def test_glmm_profile_zeta_and_dispersion_error():
    m = mfx.glmer(REF["cbpp"]["formula"], mfx.datasets.load("cbpp"), family="binomial")
    z = m.profile(parm="period2", points=3)
    assert z["zeta"].is_monotonic_increasing and (z["zeta"] == 0).sum() == 1
    assert z["zeta"].min() < -2.9 and z["zeta"].max() > 2.9
    sleep = mfx.datasets.load("sleepstudy")
    g = mfx.glmer("Reaction ~ Days + (1 | Subject)", sleep, family="gamma", link="log")
    with pytest.raises(NotImplementedError, match="dispersion"):
        g.confint(method="profile")
