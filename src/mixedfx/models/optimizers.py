"""Optimizing an LMM's profiled criterion over theta: the optimizers and how one is chosen.

Every optimizer works on the standardized internal problem
(:class:`~mixedfx.core.scaled_workspace.ScaledWorkspace.internal`).  Available by name:

* ``"lbfgs"``: quasi-Newton with the analytic gradient (:mod:`mixedfx.core.gradient`), searching
  unbounded theta and rectifying column signs afterwards (:func:`mixedfx.core.optimize.lbfgs`);
* ``"bobyqa"``, ``"newuoa"``, ``"nelder_mead"``, ``"sbplx"``: nlopt's derivative-free methods
  on the bounded problem (:func:`mixedfx.core.optimize.derivative_free`);
* ``"auto"`` (default): ``"lbfgs"`` when the gradient is available and predicted to pay for
  itself (with twice BOBYQA's usual evaluation count for models with a correlation structure such as
  ``ar1()``, measured), else ``"bobyqa"``
  (:func:`choose_optimizer`).

Whichever runs, the result then passes :func:`mixedfx.core.optimize.finish`: components within
1e-6 of zero go onto the boundary, and each boundary face is probed with finite inward steps;
when one lowers the criterion the optimizer restarts there, so a fit is never reported as
converged where a lower criterion is one step off the face.  Small problems (at most
:data:`POLISH_MAX_THETA` parameters) end with Newton steps that pin theta to ~1e-10.

With numba installed, small models' criterion values come from one compiled call
(:func:`mixedfx.core.fused.compiled_criterion`); the gradient and the final factorization at the
optimum always use the workspace.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..core.fused import compiled_criterion
from ..core.gradient import evaluation_cost, gradient_cost, gradient_supported, profiled_gradient
from ..core.optimize import (DERIVATIVE_FREE, OptResult, derivative_free, lbfgs, newton_polish,
                             newton_polish_grad)
from ..core.workspace import FAILED_OBJECTIVE
from .threads import adaptive

__all__ = ["OPTIMIZERS", "choose_optimizer", "optimize_theta", "POLISH_MAX_THETA", "polishes",
           "GRADIENT_MIN_THETA", "expected_evaluations"]

#: optimizer names accepted by ``optimizer=``
OPTIMIZERS = ("auto", "lbfgs", *DERIVATIVE_FREE)

#: largest number of theta parameters for which the optimum is refined by Newton steps
POLISH_MAX_THETA = 8

#: "auto" uses the gradient from this many theta parameters on (measured: below it BOBYQA
#: needs few evaluations and a gradient costs about as much as it saves)
GRADIENT_MIN_THETA = 4


def polishes(iws) -> bool:
    """Whether the optimum of the internal workspace ``iws`` is refined by Newton steps: at most
    :data:`POLISH_MAX_THETA` parameters.  Always, however costly an evaluation: the polish is what
    makes a fit from partition sums (Dask) equal the in-memory fit to rounding (without it BOBYQA's
    stopping point differs by ~1e-6 between the two)."""
    return 0 < iws.layout.n_theta <= POLISH_MAX_THETA


def expected_evaluations(k: int) -> tuple[float, float]:
    """Rough evaluation counts of BOBYQA (with the Newton polish's ``1 + k + k^2`` for ``k <= 8``)
    and of L-BFGS for ``k`` theta parameters, from the fits in benchmarks/ (BOBYQA ~25 k, L-BFGS
    ~30 + 1.5 k criterion-and-gradient evaluations)."""
    polish = 1.0 + k + k * k if k <= POLISH_MAX_THETA else 0.0
    return 25.0 * k + polish, 30.0 + 1.5 * k


def choose_optimizer(iws, optimizer: str = "auto") -> str:
    """The optimizer to run on the internal workspace ``iws`` for ``optimizer``.

    ``"auto"`` takes L-BFGS when the model has at least :data:`GRADIENT_MIN_THETA` parameters
    and the predicted time (:func:`expected_evaluations` times the costs of
    :func:`~mixedfx.core.gradient.evaluation_cost` and
    :func:`~mixedfx.core.gradient.gradient_cost`) is below BOBYQA's.  The choice depends on the
    model's dimensions only, never on timings: the same data give the same fit on any machine.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    if optimizer == "lbfgs" and not gradient_supported(iws):
        raise ValueError("optimizer='lbfgs' needs the analytic gradient, and this model's later-terms block is "
                         f"too large to invert densely ({iws.qr} columns); use optimizer='bobyqa'")
    if optimizer != "auto":
        return optimizer
    k = iws.layout.n_theta
    if not gradient_supported(iws):
        return "bobyqa"
    correlated = any(getattr(st, "n_cor", 0) for st in iws.layout.structures)
    if k < GRADIENT_MIN_THETA and not correlated:
        return "bobyqa"
    n_bobyqa, n_lbfgs = expected_evaluations(k)
    if correlated:      # correlation structures: BOBYQA needs about twice its usual evaluations (measured)
        n_bobyqa *= 2.0
    e, g = evaluation_cost(iws), gradient_cost(iws)
    return "lbfgs" if n_lbfgs * (e + g) < n_bobyqa * e else "bobyqa"


def _value_and_gradient(iws):
    def fg(theta):
        val = iws.objective(theta)
        if val >= FAILED_OBJECTIVE:
            return val, np.zeros(len(theta))
        return val, profiled_gradient(iws)
    return fg


def optimize_theta(iws, x0, lower, step, optimizer: str = "auto", maxeval: int = 20_000) -> OptResult:
    """Minimize the internal workspace's criterion over theta from ``x0`` (see the module notes).

    ``step`` is the derivative-free methods' initial trust region (ignored by ``"lbfgs"``).
    """
    name = choose_optimizer(iws, optimizer)
    polish = polishes(iws)
    criterion = compiled_criterion(iws) or iws.objective      # small models: one compiled call (numba)
    fun = adaptive(criterion)
    if name == "lbfgs":
        fg = adaptive(_value_and_gradient(iws))
        opt = lbfgs(fun, fg, x0, lower, rectify=iws.layout.rectify, maxeval=maxeval, flip=iws.layout.flip_column)
        if opt.status.startswith("failure"):       # the line search gave up (flat or kinked criterion):
            more = derivative_free(fun, opt.x, lower, "bobyqa", maxeval=maxeval, step=0.05,   # finish without it
                                   flip=iws.layout.flip_column)
            opt = replace(more, nfev=opt.nfev + more.nfev, optimizer="lbfgs+bobyqa") if more.fun <= opt.fun \
                else replace(opt, status="success", messages=(), nfev=opt.nfev + more.nfev) if not more.messages \
                else opt
        if not opt.messages and polish:
            x, count = newton_polish_grad(fg, opt.x, lower)
            opt = _keep_if_lower(criterion, opt, x, count)
        return opt
    opt = derivative_free(fun, x0, lower, name, maxeval=maxeval, step=step, flip=iws.layout.flip_column)
    if not opt.messages and polish:
        count = [0]

        def f(t):
            count[0] += 1
            return criterion(t)
        x = newton_polish(f, opt.x, lower, iters=3)
        opt = _keep_if_lower(criterion, opt, x, count[0])
    return opt


def _keep_if_lower(criterion, opt: OptResult, x, count: int) -> OptResult:
    """``opt`` moved to the polished ``x`` unless that raised the ``criterion`` beyond rounding."""
    val = criterion(x)
    if not val <= opt.fun + 1e-12 * abs(opt.fun):
        return replace(opt, nfev=opt.nfev + count + 1)
    return replace(opt, x=np.asarray(x, float), fun=float(val), nfev=opt.nfev + count + 1)
