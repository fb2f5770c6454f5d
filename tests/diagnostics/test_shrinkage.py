"""Shrinkage: the closed form on a random intercept, and the general definition."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx


@pytest.fixture(scope="module")
def teams():
    """Seed 000's set-up: 18 support teams of 6 to 230 customers, tau = 6, sigma = 8."""
    from conftest import seed000_teams
    return seed000_teams()


def test_random_intercept_shrinkage_is_the_closed_form(teams):
    m = mfx.lmer("csat ~ wait + (1 | team)", teams)
    s = m.shrinkage()
    assert list(s.columns) == ["group", "term", "n", "raw", "blup", "shrinkage", "closed_form"]
    np.testing.assert_array_equal(s["n"], np.bincount(teams.team))
    np.testing.assert_allclose(s["shrinkage"], s["closed_form"], rtol=1e-10)
    # the BLUP is exactly lambda_j times the team's mean residual from the fixed part
    np.testing.assert_allclose(s["blup"], s["shrinkage"] * s["raw"], rtol=1e-9, atol=1e-12)
    # small teams are shrunk more
    order = np.argsort(s["n"].to_numpy())
    assert s["shrinkage"].iloc[order[0]] < s["shrinkage"].iloc[order[-1]]


def test_slopes_and_glmm_use_conditional_variances():
    sleep = mfx.lmer("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))
    s = sleep.shrinkage("Subject")
    assert set(s["term"]) == {"(Intercept)", "Days"} and "closed_form" not in s
    assert s["shrinkage"].between(0, 1).all() and s["raw"].notna().all()
    cv = sleep.ranef().set_index(["term", "grp"])["condsd"] ** 2
    vc = sleep.varcorr
    tau2 = vc[(vc["var1"] == "Days") & (vc["var2"] == "")]["vcov"].iloc[0]
    days = s[s["term"] == "Days"].set_index("group")
    np.testing.assert_allclose(days["shrinkage"], 1 - cv.loc["Days"].loc[days.index] / tau2, rtol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = mfx.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", mfx.datasets.load("cbpp"))
    gs = g.shrinkage()
    assert gs["raw"].notna().all() and gs["shrinkage"].between(0, 1).all()
    assert (gs["blup"].abs() < gs["raw"].abs()).all()          # every herd pulled toward the mean
    with pytest.raises(KeyError, match="no random-effects term"):
        g.shrinkage("nope")


def test_compare_pooling_shows_the_naive_se_of_a_group_level_predictor(teams):
    rng = np.random.default_rng(5)
    budget = rng.normal(0, 1, 18)                      # a team-level predictor (constant within a team)
    df = teams.assign(budget=budget[teams.team])
    cmp = mfx.compare_pooling("csat ~ wait + budget + (1 | team)", df)
    c = cmp.coefficients
    assert list(c.columns) == ["complete_estimate", "complete_se_naive", "complete_se_cluster", "mixed_estimate",
                               "mixed_se", "se_inflation"]
    # the naive SE of the team-level predictor is several times too small; cluster-robust SEs agree better
    assert c.loc["budget", "se_inflation"] > 3
    assert c.loc["budget", "complete_se_cluster"] > 2 * c.loc["budget", "complete_se_naive"]
    assert c.loc["wait", "se_inflation"] < 1.5         # a within-team predictor is barely affected
    g = cmp.groups
    assert set(g["coefficient"]) == {"(Intercept)", "wait", "budget"}
    assert g.loc[g.coefficient == "budget", "no_pooling"].isna().all()
    assert any("budget" in note for note in cmp.notes)
    # partial-pooling estimates are the mixed model's coef()
    wait = g[g.coefficient == "wait"].set_index("group")["partial_pooling"]
    np.testing.assert_allclose(wait, cmp.model.coef()["team"]["wait"].loc[wait.index])
    tiny = df[df.team == 0].iloc[:2]
    few = pd.concat([df[df.team != 0], tiny])
    cmp2 = mfx.compare_pooling("csat ~ wait + (1 | team)", few)
    assert any("cannot be fitted alone" in note for note in cmp2.notes)


def test_glmm_raw_estimate_is_the_groups_own_mle_and_nan_without_events():
    from scipy.optimize import minimize_scalar
    from scipy.special import expit
    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(12), 40)
    x = rng.normal(size=g.size)
    y = rng.binomial(1, expit(-0.5 + 0.8 * x + rng.normal(0, 1, 12)[g]))
    y[g == 3] = 0                                   # a group without events: no finite MLE
    df = pd.DataFrame({"y": y, "x": x, "g": g})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mfx.glmer("y ~ x + (1 | g)", df, family="binomial")
    s = m.shrinkage().set_index("group")
    assert np.isnan(s.loc["3", "raw"]) and np.isfinite(s.loc["3", "blup"])
    offset = m.fit.design.X @ m.fit.beta
    for level in ["0", "5", "11"]:
        rows = g == int(level)

        def nll(b):
            p = expit(offset[rows] + b)
            return -np.sum(y[rows] * np.log(p) + (1 - y[rows]) * np.log1p(-p))
        mle = minimize_scalar(nll, bounds=(-10, 10), method="bounded", options={"xatol": 1e-10}).x
        assert s.loc[level, "raw"] == pytest.approx(mle, abs=1e-6)
        assert abs(s.loc[level, "blup"]) < abs(s.loc[level, "raw"])        # pulled toward 0
