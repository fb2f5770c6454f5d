"""A fit is frozen numbers: inference, diagnostics and plots never change it.

Code that needs the criterion at other parameters asks the fit for a fresh workspace
(``fit.fresh_workspace()``); the fit itself holds none, so it also pickles small.
"""
from __future__ import annotations

import pickle
import warnings

import numpy as np

import mixedfx as mfx


def _snapshot(fit) -> bytes:
    return pickle.dumps(fit)


def test_lmm_fit_unchanged_by_every_method():
    df = mfx.datasets.load("sleepstudy")
    m = mfx.lmer("Reaction ~ Days + (Days | Subject)", df)
    assert not hasattr(m.fit, "workspace")
    before = _snapshot(m.fit)
    m.coef_table(), m.anova(), m.coef_table(ddf="kenward-roger")
    m.confint(method="profile", parm=["sigma"])
    m.hatvalues(), m.check(), m.shrinkage()
    m.influence(level="Subject", method="approx")
    m.bootstrap(nsim=3, seed=1)
    m.simulate(nsim=2, seed=1)
    m.predict(re_form="~0")
    assert _snapshot(m.fit) == before


def test_glmm_fit_unchanged_by_every_method():
    cbpp = mfx.datasets.load("cbpp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = mfx.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial")
    assert not hasattr(g.fit, "workspace")
    before = _snapshot(g.fit)
    g.hatvalues(), g.shrinkage(), g.check()
    g.confint(method="profile", parm=["sd_(Intercept)|herd"])
    g.predict(type="response", marginal=True)
    assert _snapshot(g.fit) == before


def test_pickle_has_no_n_sized_workspace():
    rng = np.random.default_rng(0)
    import pandas as pd
    n = 20_000
    df = pd.DataFrame({"x": rng.normal(size=n), "g": rng.integers(0, 200, n)})
    df["y"] = df.x + rng.normal(size=200)[df.g] + rng.normal(size=n)
    m = mfx.lmer("y ~ x + (x | g)", df)
    size = len(pickle.dumps(m))
    # the data the result needs (y, X, Z columns, codes: ~6 arrays of n floats) and no more
    assert size < 8 * n * 8, size
