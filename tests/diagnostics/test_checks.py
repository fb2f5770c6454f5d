"""m.check(): each check fires on the problem it is for, and stays quiet on a good fit."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

import mixedfx as mfx


def _fit(formula, df, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mfx.lmer(formula, df, **kw)


def status(report, name):
    return set(report.findings.loc[report.findings["check"] == name, "status"])


def test_good_fit_is_all_ok():
    r = _fit("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy")).check()
    assert r.ok, str(r)
    assert {"singular fit", "convergence", "identifiability", "predictor scaling", "outlying groups"} <= set(
        r.findings["check"])


def test_singular_fit_is_named_and_convergence_is_not_a_false_positive():
    r = _fit("Yield ~ 1 + (1 | Batch)", mfx.datasets.load("dyestuff2")).check()
    assert status(r, "singular fit") == {"warning"}
    detail = r.findings.loc[r.findings["check"] == "singular fit", "detail"].iloc[0]
    assert "(1 | Batch)" in detail and "zero" in detail
    assert status(r, "convergence") == {"ok"}           # a boundary optimum is not a convergence failure


def test_scaling_and_outliers_fire():
    df = mfx.datasets.load("sleepstudy")
    df["big"] = np.random.default_rng(0).normal(size=len(df)) * 1e5      # independent, on a far larger scale
    r = _fit("Reaction ~ Days + big + (1 | Subject)", df).check()
    assert status(r, "predictor scaling") == {"warning"}
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(30), 10)
    y = rng.normal(0, 1, 30)[g] + rng.normal(0, 0.5, 300)
    y[g == 7] += 8.0                                    # one group far outside the distribution of the others
    r2 = _fit("y ~ 1 + (1 | g)", pd.DataFrame({"y": y, "g": g})).check()
    assert status(r2, "outlying groups") == {"warning"}
    assert "g=7" in r2.findings.loc[r2.findings["check"] == "outlying groups", "detail"].iloc[0]
    assert not r2.ok and "!!" in str(r2)
