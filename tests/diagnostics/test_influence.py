"""Influence measures against brute-force refits with the case deleted."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import mixedfx as mfx
from mixedfx.core.optimize import bobyqa, newton_polish
from mixedfx.models import make_workspace


def polished(model):
    """Brute-force refit driven to its optimum (the default stopping rule leaves ~1e-5 in theta).

    Near the optimum the REML criterion is flat to ~1e-12, so BOBYQA alone finds theta only to
    ~1e-6 (two equally optimal fits differ by ~2e-6 in Cook's distance).  Newton steps on the
    gradient, which is not flat, locate it to ~1e-9 (:func:`mixedfx.core.optimize.newton_polish`).
    Here they start from a different point and a different BOBYQA run than ``influence()``'s.
    """
    ws = model.fit.fresh_workspace()
    lower = ws.layout.lower_bounds()
    iws = ws.internal             # the standardized problem, as every optimizer of the package
    x = bobyqa(iws.objective, model.fit.internal.theta, lower, step=0.01, ftol_rel=0.0, ftol_abs=0.0,
               xtol_abs=1e-12).x
    x = newton_polish(iws.objective, x, lower)
    ws.update_internal(x)
    return ws.beta(), ws.vcov_beta(), ws.sigma2


@pytest.fixture(scope="module")
def sleep():
    df = mfx.datasets.load("sleepstudy")
    return df, mfx.lmer("Reaction ~ Days + (Days | Subject)", df)


def test_group_deletion_matches_brute_force_refits(sleep):
    df, m = sleep
    inf = m.influence(level="Subject", method="exact")
    assert list(inf.index) == list(m.fit.design.blocks[0].levels)
    V = m.fit.vcov
    for subject in ["308", "309", "332", "372"]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            refit = mfx.lmer("Reaction ~ Days + (Days | Subject)", df[df.Subject != subject])
        beta_i, V_i, s2_i = polished(refit)
        diff = m.fit.beta - beta_i
        cook = diff @ np.linalg.solve(V, diff) / 2
        assert inf.loc[subject, "cooksd"] == pytest.approx(cook, rel=1e-6)
        assert inf.loc[subject, "mdffits"] == pytest.approx(diff @ np.linalg.solve(V_i, diff) / 2, rel=1e-6)
        assert inf.loc[subject, "covratio"] == pytest.approx(np.linalg.det(V_i) / np.linalg.det(V), rel=1e-6)
        assert inf.loc[subject, "rvc.sigma2"] == pytest.approx(s2_i / m.sigma ** 2 - 1, rel=1e-6, abs=1e-9)
    # our deletion refit (zero weights on one workspace) is exactly a refit without the subject:
    # the criterion of the reduced data at our theta equals the brute-force optimum
    ws = make_workspace(m.fit.design, True)
    d = m.fit.design
    w = np.ones(d.n)
    drop = d.blocks[0].codes == list(d.blocks[0].levels).index("309")
    w[drop] = 0
    ws.reweight(w, d.y)
    ws.n = d.n - int(drop.sum())
    refit = mfx.lmer("Reaction ~ Days + (Days | Subject)", df[df.Subject != "309"])
    theta_ref = refit.fit.theta
    assert ws.objective(theta_ref) == pytest.approx(refit.objective, rel=1e-12)
    # leverage of a group is the sum of its rows' hat values
    h = m.hatvalues()
    codes = m.fit.design.blocks[0].codes
    np.testing.assert_allclose(inf["leverage"].to_numpy(), np.bincount(codes, h), rtol=1e-12)


def test_observation_deletion_exact_and_approximate(sleep):
    df, m = sleep
    exact = m.influence(method="exact")
    approx = m.influence(method="approx")
    assert len(exact) == 180 and list(exact.columns[:5]) == ["leverage", "cooksd", "mdffits", "covtrace", "covratio"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        refit = mfx.lmer("Reaction ~ Days + (Days | Subject)", df.drop(index=exact.index[exact["cooksd"].argmax()]))
    diff = m.fit.beta - polished(refit)[0]
    assert exact["cooksd"].max() == pytest.approx(diff @ np.linalg.solve(m.fit.vcov, diff) / 2, rel=1e-6)
    # the one-step approximation ranks cases nearly the same and is close in size
    assert np.corrcoef(exact["cooksd"], approx["cooksd"])[0, 1] > 0.99
    np.testing.assert_allclose(approx["leverage"], exact["leverage"])
    with pytest.raises(ValueError, match="exact"):
        m.influence(method="other")
    with pytest.raises(KeyError, match="grouping factor"):
        m.influence(level="Days")
