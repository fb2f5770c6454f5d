"""A small Gamma(log) GLMM on which the default L-BFGS search once stopped early, reporting success.

54 rows (tests/reference/glmm_gamma.json, made by make_glmm_gamma.R with lme4 and glmmTMB fits).
The default fit ended at -2 log L 174.177 (gradient in beta about (5.5, 10.7)) against BOBYQA's
173.953, for two reasons in ``_quasi_newton``: scipy's projected-gradient test (capped by the
distance to the bound) let stage 1 stop at theta = 1 with a loose tolerance, and a line search
that backtracked from a point with no valid likelihood to an almost-zero step was taken for
convergence (relative decrease below ftol).  The trial points also leaked numpy overflow warnings.
"""
from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx.core.covariance import ThetaLayout
from mixedfx.core.workspace import FAILED_OBJECTIVE
from mixedfx.models.glmm import _quasi_newton, make_glmm_workspace

with open(os.path.join(os.path.dirname(__file__), "..", "reference", "glmm_gamma.json")) as _f:
    REF = json.load(_f)
DATA = pd.DataFrame({"y": [float(v) for v in REF["data"]["y"]], "x": [float(v) for v in REF["data"]["x"]],
                     "g": REF["data"]["g"]})
FORMULA = "y ~ x + (1|g)"


def fit(**control):
    return mfx.glmer(FORMULA, DATA, family="Gamma", link="log", **control)


@pytest.fixture(scope="module")
def fits():
    """The default and the BOBYQA fit, and the numpy warnings they raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fit(), fit(optimizer="bobyqa")
    return out + ([w for w in caught if issubclass(w.category, RuntimeWarning)],)


def at(m, theta, beta, phi=None):
    """Our -2 log L (and its gradient over (theta, beta)) at given parameters, modes converged tightly."""
    gw = make_glmm_workspace(m.fit.design, m.fit.family)
    r = gw.pirls(np.atleast_1d(np.asarray(theta, float)), beta=np.asarray(beta, float), utol=1e-13)
    value = gw.laplace(r, phi)
    return value, gw.laplace_gradient(np.atleast_1d(theta), r), gw, r


def test_trial_points_leak_no_numpy_warnings(fits):
    assert [str(w.message) for w in fits[2]] == []


def test_data_are_the_reported_example():
    assert DATA.shape == (54, 3) and "3" not in set(DATA.g) and DATA.g.nunique() == 9


def test_default_search_reaches_the_bobyqa_optimum(fits):
    lbfgs, bobyqa, _ = fits
    assert lbfgs.fit.opt.optimizer == "lbfgs" and lbfgs.converged
    assert lbfgs.objective <= bobyqa.objective + 1e-6
    np.testing.assert_allclose(lbfgs.fit.beta, bobyqa.fit.beta, atol=2e-5)
    np.testing.assert_allclose(lbfgs.fit.theta, bobyqa.fit.theta, atol=2e-5)


def test_gradient_vanishes_at_the_solution(fits):
    m = fits[0]
    value, grad, _, _ = at(m, m.fit.theta, m.fit.beta)
    assert value == pytest.approx(m.objective, abs=1e-8)
    assert np.max(np.abs(grad)) < 1e-4


def test_optimum_is_below_the_lme4_and_glmmtmb_estimates(fits):
    """Both R fits optimize a different approximation (lme4: dispersion dev/n, u'u unscaled; glmmTMB:
    observed information in the Laplace determinant); at their estimates our criterion is higher, and
    each package's own criterion, evaluated by our code there, reproduces its reported -2 log L."""
    m = fits[0]
    lme4, tmb = REF["lme4"], REF["glmmTMB"]
    beta_l = np.array([lme4["fixef"][k] for k in ("(Intercept)", "x")])
    value, _, gw, r = at(m, lme4["theta"], beta_l)
    assert value > m.objective
    deviance = float(np.sum(gw.family.unit_deviance(gw.y, r.mu)))
    assert deviance == pytest.approx(lme4["deviance"], rel=1e-7)
    own = -2 * gw.family.loglik(gw.y, r.mu, gw.w, deviance / len(gw.y)) + r.u @ r.u + gw.ws.logdet_Z + 2
    assert own == pytest.approx(lme4["minus2loglik"], rel=1e-8)

    beta_t = np.array([tmb["fixef"][k] for k in ("(Intercept)", "x")])
    theta_t = tmb["sd_g"] / tmb["sigma"]
    value, _, gw, r = at(m, theta_t, beta_t)
    assert value > m.objective
    assert gw.phi == pytest.approx(tmb["sigma"] ** 2, rel=1e-7)          # the same ML dispersion
    W, _, _, W_obs = gw.family.working_derivatives(gw.y, r.eta, r.mu, gw.w)
    codes, q = m.fit.design.blocks[0].codes, m.fit.design.blocks[0].nlevels
    fisher = np.sum(np.log1p(theta_t ** 2 * np.bincount(codes, W, minlength=q)))
    observed = np.sum(np.log1p(theta_t ** 2 * np.bincount(codes, W_obs, minlength=q)))
    assert value - fisher + observed == pytest.approx(tmb["minus2loglik"], rel=1e-9)


def test_loose_gradient_tolerance_does_not_stop_at_the_start():
    """Stage 1's rough tolerance (1e-2 |f| = 10 here) exceeded theta's distance to its bound (1):
    scipy's projected gradient min(g, theta) = 1 passed it at the start although g = 20."""
    def evaluate(x, with_gradient):
        return 1000 + 20 * (x[0] - 0.5) ** 2, (np.array([40 * (x[0] - 0.5)]) if with_gradient else None)
    opt = _quasi_newton(evaluate, np.array([1.0]), np.array([0.0]), ThetaLayout((1,)), 1, 1000, 1e-6, 1e-2,
                        lambda: None)
    assert abs(opt.x[0] - 0.5) < 0.25             # where |g| <= 10


def test_backtracking_from_an_invalid_point_is_not_convergence():
    """A long step into a region with no valid likelihood backtracks to an almost-zero step whose
    relative decrease is below ftol; the search must restart there rather than report success."""
    def evaluate(x, with_gradient):
        if x[1] > 1.0:
            return FAILED_OBJECTIVE, None
        f = 1e5 + (x[0] - 0.5) ** 2 + np.exp(3 * x[1]) - 20 * x[1]
        return f, (np.array([2 * (x[0] - 0.5), 3 * np.exp(3 * x[1]) - 20]) if with_gradient else None)
    opt = _quasi_newton(evaluate, np.array([1.0, -3.0]), np.array([0.0, -np.inf]), ThetaLayout((1,)), 1, 1000,
                        1e-13, 1e-8, lambda: None)
    assert opt is not None and opt.status == "success"
    np.testing.assert_allclose(opt.x, [0.5, np.log(20 / 3) / 3], atol=1e-4)


def test_fresh_workspace_carries_the_dispersion(fits):
    """A fit's fresh workspace is at the optimum, dispersion included (it was left at 1)."""
    m = fits[0]
    ws = m.fit.fresh_workspace()
    assert ws.phi == pytest.approx(m.fit.phi, rel=1e-8)
