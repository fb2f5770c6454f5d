"""Moment starts (core/start.py): several scalar intercept terms are estimated together by
backfitting, so a crossed design's start is not biased by the other factor's variance."""
from __future__ import annotations

import warnings

import numpy as np

import mixedfx as mfx
from mixedfx.core.start import moment_start
from mixedfx.design import build_design
from mixedfx.formula import parse_formula
from mixedfx.models.lmm import make_workspace


def _start_and_fit(dataset, formula):
    d = mfx.datasets.load(dataset)
    design = build_design(parse_formula(formula), d, lmm=True)
    ws = make_workspace(design)
    x0 = moment_start(ws.X, ws.scaling.response(design.y), ws.blocks, ws.layout, ws.weights)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mfx.lmer(formula, d)
    return x0, m


def test_balanced_crossed_start_is_the_reml_estimate():
    """Penicillin is balanced (24 plates x 6 samples, one row each): the ANOVA moments of the
    crossed model are its REML estimates, so the start is the optimum (one-way moments gave
    0.31 for plate, 5x too small)."""
    x0, m = _start_and_fit("penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)")
    np.testing.assert_allclose(x0, m.fit.theta_internal, rtol=1e-6)
    assert m.fit.opt.nfev < 50


def test_nested_and_unbalanced_starts_stay_near_the_optimum():
    for dataset, formula in (("pastes", "strength ~ 1 + (1 | batch/cask)"),
                             ("insteval", "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept)")):
        x0, m = _start_and_fit(dataset, formula)
        theta = m.fit.theta_internal
        assert np.all(x0 > 0)
        assert np.all(np.abs(np.log(x0 / np.maximum(theta, 1e-3))) < np.log(3.0)), (dataset, x0, theta)


def test_random_slope_start_from_per_group_fits():
    """sleepstudy: 18 subjects with 10 days each; the per-subject least-squares moments (Swamy)
    land on the REML optimum of (Days | Subject) to ~1e-3 (lme4's start is the identity)."""
    x0, m = _start_and_fit("sleepstudy", "Reaction ~ Days + (Days | Subject)")
    np.testing.assert_allclose(x0, m.fit.theta_internal, rtol=2e-2, atol=2e-2)
    assert m.fit.opt.nfev < 60


def test_random_slope_start_falls_back_when_groups_cannot_be_fitted():
    from mixedfx.core.covariance import ThetaLayout
    rng = np.random.default_rng(0)
    n = 40
    codes = np.arange(n) % 20                    # 2 rows per group: a 3-column term cannot be fitted
    Xk = np.column_stack([np.ones(n), rng.normal(size=n), rng.normal(size=n)])
    lay = ThetaLayout((3,))
    x0 = moment_start(np.ones((n, 1)), rng.normal(size=n), [(codes, Xk, 20)], lay)
    assert np.all(np.isfinite(x0)) and np.all(x0[lay.lower_bounds() == 0] > 0)
