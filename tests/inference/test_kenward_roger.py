"""Kenward-Roger adjusted covariance and df against pbkrtest / lmerTest and a dense oracle."""
from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from conftest import load_reference, reference_ids
from mixedfx.core.workspace import random_effects_matrix
from mixedfx.inference.kenward_roger import KenwardRoger

KR = [i for i in reference_ids("lmer") if load_reference(i).get("kenward_roger")]
with open(os.path.join(os.path.dirname(__file__), "..", "reference", "kenward_roger.json")) as f:
    EXTRA = json.load(f)        # tests/reference/make_kenward_roger.R


@pytest.mark.parametrize("ref_id", KR)
def test_kenward_roger_matches_pbkrtest(lmm_fit, ref_id):
    m, ref = lmm_fit(ref_id)
    k = ref["kenward_roger"]
    ct = m.coef_table(ddf="kenward-roger")
    assert list(ct.index) == k["term"]
    np.testing.assert_allclose(ct["se"], k["se"], rtol=1e-4)
    np.testing.assert_allclose(ct["df"], k["df"], rtol=1e-3)
    np.testing.assert_allclose(ct["p"], k["p"], rtol=1e-3, atol=1e-12)


def test_kenward_roger_anova_matches_lmertest():
    r = EXTRA["cake"]
    m = mfx.lmer(r["formula"], mfx.datasets.load("cake"))
    a = m.anova(ddf="kenward-roger")
    assert list(a.index) == r["anova"]["term"]
    for col in ("F", "numdf", "dendf", "p"):
        np.testing.assert_allclose(a[col], r["anova"][col], rtol=1e-3)


def _sleep_group():
    df = mfx.datasets.load("sleepstudy")
    idx = pd.Categorical(df["Subject"].astype(str)).codes + 1        # R's as.integer(factor)
    return df.assign(grp=np.where(idx % 2 == 0, "a", "b"))


def test_kenward_roger_contrast_and_vcov_match_pbkrtest():
    r = EXTRA["sleep_group"]
    m = mfx.lmer(r["formula"], _sleep_group())
    kr = KenwardRoger(m.fit)
    Va = np.array(r["vcov_adj"])
    np.testing.assert_allclose(kr.Phi_A, Va, rtol=1e-4, atol=1e-4 * np.abs(Va).max())
    F, ndf, ddf, scale = kr.ftest(np.array(r["contrast"]["L"]))
    c = r["contrast"]
    assert ndf == c["ndf"]
    np.testing.assert_allclose([F, ddf, scale], [c["F"], c["ddf"], c["scaling"]], rtol=1e-4)


def dense_phi_a(fit):
    """Kenward-Roger's Phi_A from the explicit n x n Sigma (small problems only)."""
    d = fit.design
    X = d.X
    n = X.shape[0]
    w = np.ones(n) if d.weights is None else d.weights
    s2 = fit.sigma ** 2
    Sigma = s2 * np.diag(1 / w)
    derivs = []
    for b, lam in zip(d.blocks, fit.layout.lambdas(fit.theta)):
        pk = b.X.shape[1]
        Zr = random_effects_matrix(b.codes, b.X, b.nlevels).toarray().reshape(n, b.nlevels, pk)
        Sigma = Sigma + np.einsum("nja,ab,mjb->nm", Zr, s2 * lam @ lam.T, Zr)
        for c in range(pk):
            for a in range(c, pk):
                E = np.zeros((pk, pk))
                E[a, c] = E[c, a] = 1
                derivs.append(np.einsum("nja,ab,mjb->nm", Zr, E, Zr))
    derivs.append(np.diag(1 / w))
    Si = np.linalg.inv(Sigma)
    Phi = np.linalg.inv(X.T @ Si @ X)
    P = [-X.T @ Si @ G @ Si @ X for G in derivs]
    m = len(derivs)
    Q = [[X.T @ Si @ derivs[i] @ Si @ derivs[j] @ Si @ X for j in range(m)] for i in range(m)]
    info = np.array([[np.trace(Si @ derivs[i] @ Si @ derivs[j]) - 2 * np.trace(Phi @ Q[i][j])
                      + np.trace(Phi @ P[i] @ Phi @ P[j]) for j in range(m)] for i in range(m)]) / 2
    W = np.linalg.inv(info)
    U = sum(W[i, j] * (Q[i][j] - P[i] @ Phi @ P[j]) for i in range(m) for j in range(m))
    return Phi, Phi + 2 * Phi @ U @ Phi


def test_kenward_roger_equals_dense_oracle_crossed_slopes_weights():
    rng = np.random.default_rng(3)
    n = 160
    g = rng.integers(0, 9, n)
    h = rng.integers(0, 6, n)
    x = rng.normal(size=n)
    y = 1 + 0.5 * x + rng.normal(0, 1, 9)[g] + rng.normal(0, 0.5, 9)[g] * x + rng.normal(0, 0.7, 6)[h] \
        + rng.normal(size=n)
    df = pd.DataFrame({"y": y, "x": x, "g": g, "h": h, "w": rng.uniform(0.5, 2, n)})
    m = mfx.lmer("y ~ x + (x | g) + (1 | h)", df, weights="w")
    Phi, Phi_A = dense_phi_a(m.fit)
    kr = KenwardRoger(m.fit)
    np.testing.assert_allclose(kr.Phi, Phi, rtol=1e-8)
    np.testing.assert_allclose(kr.Phi_A, Phi_A, rtol=1e-7)
    assert np.all(np.diag(kr.Phi_A) > np.diag(kr.Phi))


def test_kenward_roger_weighted_differs_from_pbkrtest_by_design():
    """pbkrtest builds Sigma without the prior weights (while its Phi uses them); ours uses
    Sigma = Z G Z' + sigma^2 W^{-1}.  The two agree without weights and differ with them."""
    r = EXTRA["sleep_weighted"]
    df = mfx.datasets.load("sleepstudy").assign(w=r["weights"])
    m = mfx.lmer(r["formula"], df, weights="w")
    Phi, Phi_A = dense_phi_a(m.fit)
    ct = m.coef_table(ddf="kenward-roger")
    np.testing.assert_allclose(ct["se"], np.sqrt(np.diag(Phi_A)), rtol=1e-7)
    assert np.all(np.abs(ct["se"] / np.array(r["coef"]["se"]) - 1) > 5e-3)


def test_kenward_roger_needs_reml(lmm_fit):
    m = mfx.lmer("Reaction ~ Days + (1 | Subject)", mfx.datasets.load("sleepstudy"), reml=False)
    with pytest.raises(ValueError, match="REML fits"):
        m.coef_table(ddf="kenward-roger")
