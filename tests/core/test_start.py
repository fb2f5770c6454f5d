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
