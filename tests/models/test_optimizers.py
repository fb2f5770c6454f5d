"""Optimizers (models/optimizers.py): every reference model reaches the same optimum with each,
the analytic gradient agrees with central differences at every reference optimum, boundary
faces are left when a step lowers the criterion, and ``allfit`` compares them."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import mixedfx as mfx
from mixedfx.core.covariance import ThetaLayout
from mixedfx.core.gradient import gradient_supported, profiled_gradient
from mixedfx.core.optimize import OptResult, edge_probe, finish
from mixedfx.models.optimizers import choose_optimizer

from conftest import is_reml, load_reference, reference_data, reference_ids

LMM_IDS = [r for r in reference_ids("lmer") if r != "kb07_ml"]
SMALL = [r for r in LMM_IDS if r != "insteval_crossed"]


def _fit(ref, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mfx.lmer(ref["formula"], reference_data(ref), reml=is_reml(ref), **kw)


@pytest.mark.parametrize("optimizer", ["lbfgs", "bobyqa", "newuoa", "nelder_mead", "sbplx"])
@pytest.mark.parametrize("ref_id", SMALL)
def test_every_optimizer_reaches_the_reference_optimum(ref_id, optimizer):
    ref = load_reference(ref_id)
    if optimizer == "newuoa" and len(ref["theta"]) < 2:
        with pytest.raises(ValueError, match="at least two parameters"):
            _fit(ref, optimizer=optimizer)
        return
    m = _fit(ref, optimizer=optimizer)
    assert m.fit.opt.optimizer == optimizer
    assert not m.fit.opt.messages
    # equal to lme4's criterion, or lower
    assert m.objective <= ref["objective"] + 1e-6 * abs(ref["objective"])
    assert m.objective == pytest.approx(ref["objective"], rel=1e-6)
    names = list(ref["fixef"])
    np.testing.assert_allclose(m.fixef[names].to_numpy(), list(ref["fixef"].values()), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(m.sigma, ref["sigma"], rtol=1e-4)


@pytest.mark.parametrize("ref_id", LMM_IDS)
def test_gradient_at_reference_optima_matches_central_differences(ref_id):
    ref = load_reference(ref_id)
    m = _fit(ref, optimizer="bobyqa")
    iws = m.fit.fresh_workspace().internal
    if not gradient_supported(iws):
        pytest.skip("sparse later-terms path: no analytic gradient")
    theta = m.fit.theta_internal.copy()
    # away from the optimum too: the gradient is not ~0 there
    for t in (theta, np.where(ThetaLayout(iws.sizes).lower_bounds() == 0, theta * 1.3 + 0.05, theta + 0.05)):
        iws.update(t)
        g = profiled_gradient(iws)
        h = 1e-5 * np.maximum(np.abs(t), 0.1)
        fd = np.array([(iws.objective(t + h[i] * e) - iws.objective(t - h[i] * e)) / (2 * h[i])
                       for i, e in enumerate(np.eye(len(t)))])
        # rounding in the differences: ~eps |f| / h (InstEval's criterion is 2.4e5)
        noise = 50 * np.finfo(float).eps * abs(iws.objective(t)) / h.min()
        np.testing.assert_allclose(g, fd, rtol=1e-4, atol=max(noise, 1e-7 * np.abs(fd).max()))


def test_auto_uses_the_gradient_for_rich_structures_only():
    d = mfx.datasets.load("sleepstudy")
    small = mfx.lmer("Reaction ~ Days + (Days | Subject)", d)
    assert small.fit.opt.optimizer == "bobyqa"         # 3 theta: derivative-free is faster
    rich = _fit(load_reference("sleep_slopes_reml"), optimizer="auto")
    assert choose_optimizer(rich.fit.fresh_workspace().internal, "lbfgs") == "lbfgs"


def test_newton_polish_pins_theta_on_a_large_dense_crossing():
    from mixedfx.core import PLSWorkspace
    from mixedfx.models import optimizers
    from mixedfx.models.optimizers import polishes
    rng = np.random.default_rng(4)         # a dense crossed block of 600 columns: ~7e7 flops an evaluation
    n = 6000
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    blocks = [(rng.integers(0, 900, n), np.ones((n, 1)), 900), (rng.integers(0, 600, n), np.ones((n, 1)), 600)]
    for codes, _, nl in blocks:
        codes[:nl] = np.arange(nl)
    y = X @ [1.0, 0.5] + rng.normal(size=(900,))[blocks[0][0]] + rng.normal(size=(600,))[blocks[1][0]] \
        + rng.normal(size=n)
    big = PLSWorkspace(X, y, blocks, rest="dense")
    assert polishes(big)                    # however costly: partitioned fits rely on it
    lower = big.layout.lower_bounds()
    opt = optimizers.optimize_theta(big, np.array([0.8, 0.8]), lower, 0.2)
    again = optimizers.newton_polish(big.objective, opt.x, lower, iters=3)     # a fixed point of the polish
    np.testing.assert_allclose(again, opt.x, rtol=1e-9)
    assert big.objective(again) >= opt.fun - 1e-9


def test_unknown_optimizer_is_a_clear_error():
    d = mfx.datasets.load("sleepstudy")
    with pytest.raises(ValueError, match="unknown optimizer 'bfgs'.*lbfgs"):
        mfx.lmer("Reaction ~ Days + (Days | Subject)", d, optimizer="bfgs")


def test_lbfgs_without_a_gradient_is_a_clear_error(monkeypatch):
    import mixedfx.core.gradient as grad_mod
    ref = load_reference("insteval_crossed")
    iws = _fit(ref, optimizer="bobyqa").fit.fresh_workspace().internal
    monkeypatch.setattr(grad_mod, "MAX_DENSE_ENTRIES", 10)
    with pytest.raises(ValueError, match="too large.*bobyqa"):
        choose_optimizer(iws, "lbfgs")
    assert choose_optimizer(iws, "auto") == "bobyqa"


def test_layout_rectify_and_flip_keep_lambda_lambda_t():
    lay = ThetaLayout((3, 1))
    rng = np.random.default_rng(2)
    theta = rng.normal(size=lay.n_theta)
    cov = [lam @ lam.T for lam in lay.lambdas(theta)]
    rect = lay.rectify(theta)
    assert np.all(rect[lay.lower_bounds() == 0] >= 0)
    for a, b in zip(cov, (lam @ lam.T for lam in lay.lambdas(rect))):
        np.testing.assert_allclose(a, b, atol=1e-14)
    for j in np.flatnonzero(lay.lower_bounds() == 0):
        flipped = lay.flip_column(theta, j)
        assert flipped[j] == -theta[j]
        for a, b in zip(cov, (lam @ lam.T for lam in lay.lambdas(flipped))):
            np.testing.assert_allclose(a, b, atol=1e-14)


def test_edge_probe_finds_descent_on_the_other_side_of_a_fold():
    """f depends on (x0, x1) through the column (x0, x1) up to sign, as a Cholesky column does:
    f(x0, x1) = (x0^2 + x1^2 - 1)^2 + (x0 x1 + 0.5)^2 is even under (x0, x1) -> (-x0, -x1).  On the
    face x0 = 0 with x1 = 1 the one-sided step x0 > 0 rises; the flipped point (0, -1) + step
    falls (the minimum has x0 x1 < 0)."""
    def f(x):
        return (x[0] ** 2 + x[1] ** 2 - 1.0) ** 2 + (x[0] * x[1] + 0.5) ** 2

    def flip(x, j):
        return -np.asarray(x, float)
    x = np.array([0.0, 1.0])
    lower = np.array([0.0, -np.inf])
    xb, fb, _ = edge_probe(f, x, f(x), lower)
    assert fb == f(x)          # no descent on this side
    xb, fb, n = edge_probe(f, x, f(x), lower, flip=flip)
    assert fb < f(x) and xb[0] > 0 and xb[1] < 0

    def restart(x0):
        from scipy.optimize import minimize
        r = minimize(f, x0, bounds=[(0, None), (None, None)], method="L-BFGS-B", options=dict(ftol=1e-15))
        return OptResult(r.x, float(r.fun), int(r.nfev), "success")
    res = finish(f, OptResult(x, f(x), 1, "success"), lower, restart, flip=flip)
    assert res.restarts == 1 and res.fun < 1e-6     # the minimum is 0; scipy differences the gradient here


def test_allfit_compares_optimizers():
    d = mfx.datasets.load("sleepstudy")
    af = mfx.allfit("Reaction ~ Days + (Days | Subject)", d, optimizers=["lbfgs", "bobyqa", "nelder_mead"])
    assert list(af.table.index) == ["lbfgs", "bobyqa", "nelder_mead"]
    assert af.table["excess"].max() < 1e-8
    assert af.disagreements() == []
    assert af.fixef.shape == (3, 2)
    assert "all optimizers agree" in repr(af)
    # from a fitted result, on its own data and arguments (ML here)
    m = mfx.lmer("Reaction ~ Days + (Days | Subject)", d, reml=False)
    af2 = mfx.allfit(m, optimizers=["bobyqa", "lbfgs"])
    assert af2.best.objective == pytest.approx(m.objective, rel=1e-10)
    assert not af2.best.fit.reml


def test_allfit_reports_failures_and_disagreements():
    d = mfx.datasets.load("dyestuff")
    af = mfx.allfit("Yield ~ 1 + (1 | Batch)", d, optimizers=["bobyqa", "newuoa"])
    assert np.isnan(af.table.loc["newuoa", "criterion"])
    assert "at least two parameters" in af.table.loc["newuoa", "message"]
    assert any(p.startswith("newuoa: failed") for p in af.disagreements())
    with pytest.raises(ValueError, match="unknown optimizer"):
        mfx.allfit("Yield ~ 1 + (1 | Batch)", d, optimizers=["bobyqa", "bfgs"])
    with pytest.raises(ValueError, match="data is required"):
        mfx.allfit("Yield ~ 1 + (1 | Batch)")
