"""GLMM optimizers: L-BFGS with the analytic gradient against lme4's derivative-free BOBYQA,
the stationarity stopping rule of PIRLS, and the optimizer argument's errors."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx.core.laplace_gradient import LaplaceGradient


def _quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **k)


CBPP = ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp", "binomial")
GROUSE = ("TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)", "grouseticks", "poisson")
GAMMA = ("Reaction ~ Days + (1 | Subject)", "sleepstudy", "Gamma log")


@pytest.mark.parametrize("formula, data, family", [CBPP, GROUSE, GAMMA], ids=["cbpp", "grouseticks", "gamma"])
def test_lbfgs_reaches_bobyqas_optimum_in_fewer_evaluations(formula, data, family):
    df = mfx.datasets.load(data)
    a = _quiet(mfx.glmer, formula, df, family=family)
    b = _quiet(mfx.glmer, formula, df, family=family, optimizer="bobyqa")
    assert a.fit.opt.optimizer == "lbfgs" and b.fit.opt.optimizer == "bobyqa"
    assert a.objective <= b.objective + 1e-8
    assert a.objective == pytest.approx(b.objective, abs=1e-6)
    np.testing.assert_allclose(a.fixef, b.fixef, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(a.se, b.se, rtol=1e-4)
    assert a.fit.opt.nfev < b.fit.opt.nfev
    assert a.fit.opt_stage1.nfev < b.fit.opt_stage1.nfev


def _simulated_slopes(seed):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(25), 8)
    h = rng.integers(0, 6, g.size)
    x = rng.normal(size=g.size)
    eta = 0.3 + 0.5 * x + rng.normal(0, 0.5, 25)[g] + 0.4 * rng.normal(size=25)[g] * x + rng.normal(0, 0.3, 6)[h]
    y = (rng.random(g.size) < 1 / (1 + np.exp(-eta))).astype(float)
    return pd.DataFrame({"y": y, "x": x, "g": g.astype(str), "h": h.astype(str)})


@pytest.mark.parametrize("seed", [1, 3])
def test_lbfgs_never_worse_on_random_slopes_and_boundary_fits(seed):
    """A binomial model with a correlated random slope and a crossed term (singular or nearly):
    the gradient search ends at the same or a lower -2 log L than BOBYQA."""
    df = _simulated_slopes(seed)
    a = _quiet(mfx.glmer, "y ~ x + (x | g) + (1 | h)", df)
    b = _quiet(mfx.glmer, "y ~ x + (x | g) + (1 | h)", df, optimizer="bobyqa")
    assert a.objective <= b.objective + 1e-7
    # our own deviance at the reported optimum, with modes solved to stationarity
    gw = a.fit.fresh_workspace()
    r = gw.pirls(a.fit.theta, beta=a.fit.beta, utol=1e-13)
    assert gw.laplace(r) == pytest.approx(a.objective, abs=1e-7)


def test_nagq0_stage_one_matches_bobyqa():
    df = mfx.datasets.load("cbpp")
    a = _quiet(mfx.glmer, CBPP[0], df, nagq=0)
    b = _quiet(mfx.glmer, CBPP[0], df, nagq=0, optimizer="bobyqa")
    assert a.objective <= b.objective + 1e-8
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-3)


def test_optimizer_argument_errors():
    df = mfx.datasets.load("cbpp")
    with pytest.raises(ValueError, match="unknown optimizer 'newton'"):
        mfx.glmer(CBPP[0], df, optimizer="newton")


def test_quadrature_lbfgs_against_bobyqa():
    df = mfx.datasets.load("cbpp")
    a = _quiet(mfx.glmer, CBPP[0], df, nagq=25)
    b = _quiet(mfx.glmer, CBPP[0], df, nagq=25, optimizer="bobyqa")
    assert a.fit.opt.optimizer == "lbfgs" and b.fit.opt.optimizer == "bobyqa"
    assert a.objective <= b.objective + 1e-8
    np.testing.assert_allclose(a.se, b.se, rtol=1e-4)
    assert a.fit.opt.nfev < b.fit.opt.nfev


def test_pirls_utol_gives_stationary_modes_for_a_non_canonical_link():
    """Fisher scoring converges linearly for non-canonical links: the deviance-change rule stops
    with a score residual ~1e-8, the step rule drives it to rounding."""
    m = _quiet(mfx.glmer, CBPP[0], mfx.datasets.load("cbpp"), family="binomial", link="probit")
    gw = m.fit.fresh_workspace()
    g = LaplaceGradient(gw.X, gw.blocks, gw.layout, gw.family, gw.y, gw.w)
    theta, beta = m.fit.theta * 1.3, m.fit.beta + 0.05

    def residual(r):
        s = gw.family.working_derivatives(gw.y, r.eta, r.mu, gw.w)[2]
        return np.max(np.abs(g._vt_times(g._values(theta), s) - r.u))
    loose = gw.pirls(theta, beta=beta, tol=1e-10)
    tight = gw.pirls(theta, beta=beta, utol=1e-13)
    assert residual(tight) < 1e-11
    assert residual(loose) > 100 * residual(tight)
    assert tight.converged


def test_without_the_gradient_the_derivative_free_path_is_used(monkeypatch):
    """A family without working derivatives, or a later-terms block above the dense Schur size:
    BOBYQA and the second-difference Hessian, as before the gradient existed."""
    from mixedfx.core import laplace_gradient
    from mixedfx.families import Poisson

    class NoDerivatives(Poisson):
        def variance_deriv(self, mu):
            raise NotImplementedError

    df = mfx.datasets.load("grouseticks")
    ref = _quiet(mfx.glmer, GROUSE[0], df, family="poisson")
    a = _quiet(mfx.glmer, GROUSE[0], df, family=NoDerivatives())
    monkeypatch.setattr(laplace_gradient, "MAX_REST", 10)
    b = _quiet(mfx.glmer, GROUSE[0], df, family="poisson")
    for m in (a, b):
        assert m.fit.opt.optimizer == "bobyqa" and m.fit.vcov_method == "hessian"
        assert m.objective == pytest.approx(ref.objective, abs=1e-6)
        np.testing.assert_allclose(m.se, ref.se, rtol=1e-4)
    with pytest.raises(ValueError, match="working_derivatives"):
        mfx.glmer(GROUSE[0], df, family=NoDerivatives(), optimizer="lbfgs")
