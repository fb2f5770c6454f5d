"""Bounded derivative-free minimization of a profiled deviance (nlopt's LN_BOBYQA).

Tolerances are a little tighter than MixedModels.jl's (absolute objective change
1e-10, relative 1e-14, absolute theta change 1e-10, initial step 0.75): measured on
the lme4 reference fits, they reach an objective equal to or below lme4's on every
model for a few more evaluations.  After BOBYQA stops, components
sitting on the boundary are re-checked: when nudging one off zero lowers the
objective the optimizer restarts from there (lme4's ``restart_edge``).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .finite_diff import central_derivatives, gradient_hessian

__all__ = ["OptResult", "bobyqa", "derivative_free", "lbfgs", "newton_polish", "newton_polish_grad", "finish",
           "edge_probe", "snap_to_bounds", "DERIVATIVE_FREE"]


@dataclass(frozen=True)
class OptResult:
    x: np.ndarray
    fun: float
    nfev: int
    status: str
    messages: tuple[str, ...] = field(default=())
    restarts: int = 0
    optimizer: str = "bobyqa"

    @property
    def converged(self) -> bool:
        return not self.messages


_NLOPT_STATUS = {1: "success", 2: "stopval reached", 3: "ftol reached", 4: "xtol reached",
                 5: "maxeval reached", 6: "maxtime reached", -1: "failure", -2: "invalid arguments",
                 -3: "out of memory", -4: "roundoff limited", -5: "forced stop"}


def _run(fun, x0, lower, upper, maxeval, ftol_rel, ftol_abs, xtol_abs, step, algorithm="LN_BOBYQA",
         fg=None):
    """One nlopt run; ``fg(x) -> (f, gradient)`` for the gradient-based (``LD_*``) algorithms.
    Returns the best point seen, its value, the number of evaluations and the status."""
    import nlopt

    k = len(x0)
    count = [0]
    best = [np.inf, np.array(x0, float)]

    raised = []

    def f(x, grad):
        count[0] += 1
        try:
            if grad.size:
                val, g = fg(x)
                grad[:] = g
                val = float(val)
            else:
                val = float(fun(x))
        except Exception as exc:        # the criterion's own error: stop and re-raise it below
            raised.append(exc)
            raise nlopt.ForcedStop from exc
        if val < best[0]:
            best[0], best[1] = val, np.array(x, float)
        return val

    opt = nlopt.opt(getattr(nlopt, algorithm), k)
    opt.set_min_objective(f)
    opt.set_lower_bounds(lower)
    opt.set_upper_bounds(upper)
    opt.set_ftol_rel(ftol_rel)
    opt.set_ftol_abs(ftol_abs)
    opt.set_xtol_abs(xtol_abs)
    opt.set_maxeval(maxeval)
    if step is not None:
        opt.set_initial_step(np.broadcast_to(np.asarray(step, float), (k,)).copy())
    if algorithm == "LD_LBFGS":
        opt.set_vector_storage(min(k, 20))
    start = np.clip(np.asarray(x0, float), lower, upper)
    try:
        opt.optimize(start)
        status = _NLOPT_STATUS.get(opt.last_optimize_result(), "unknown")
    except nlopt.RoundoffLimited:
        status = "roundoff limited"
    except Exception as exc:  # nlopt failure (its own runtime_error too): keep the best point seen
        status = f"failure ({exc})"
    if raised:
        raise raised[0]
    return best[1], best[0], count[0], status


def bobyqa(fun, x0, lower, upper=None, maxeval: int = 100_000, ftol_rel: float = 1e-14,
           ftol_abs: float = 1e-10, xtol_abs: float = 1e-10, step: float = 0.75) -> OptResult:
    """Minimize ``fun`` over the box ``[lower, upper]`` starting from ``x0``.

    ``step`` is BOBYQA's initial trust-region step, a scalar or one per coordinate.

    Returns the best point seen (BOBYQA may stop after evaluating a worse one).
    """
    return derivative_free(fun, x0, lower, "bobyqa", maxeval, ftol_rel, ftol_abs, xtol_abs, step, upper=upper)


def snap_to_bounds(fun, res: OptResult, lower, tol: float = 1e-6) -> OptResult:
    """Put components that stopped within ``tol`` above their lower bound onto it, when that is
    no worse than rounding (the criterion is flat there: it depends on theta^2)."""
    x, val = res.x, res.fun
    near = np.flatnonzero(np.isfinite(lower) & (x > lower) & (x - lower < tol))
    if not near.size:
        return res
    trial = x.copy()
    trial[near] = lower[near]
    tv = float(fun(trial))
    if tv <= val + 1e-12 * max(1.0, abs(val)):
        return replace(res, x=trial, fun=tv, nfev=res.nfev + 1)
    return replace(res, nfev=res.nfev + 1)


#: inward steps tried from each component on its bound (the standardized problem's theta is of
#: order 0.01 to 1; at a face where the criterion is even in the component, the gradient is zero
#: and only a finite step shows a descent)
EDGE_STEPS = (1e-3, 1e-2, 0.1, 0.3)


def edge_probe(fun, x, val, lower, steps=EDGE_STEPS, flip=None):
    """Best point one inward step away from the boundary face ``x`` lies on.

    For every component ``j`` on its lower bound, the criterion is evaluated at ``x_j = lower_j
    + step`` for each of ``steps``, and, when ``flip(x, j)`` is given (the equivalent point on
    the other side of the face: for theta, the column of ``lambda`` negated), at the same steps
    from the flipped point: a face of a Cholesky parameterisation is a fold, and the descent
    may lie on either side.  Returns ``(x_best, f_best, n_evaluations)``; ``x_best`` is ``x``
    itself when no probe is lower by more than ``1e-10 (1 + |f|)``.
    """
    lower = np.asarray(lower, float)
    on_edge = np.flatnonzero(np.isfinite(lower) & (x - lower < 1e-6))
    best_x, best_f, count = x, val, 0
    for j in on_edge:
        bases = [x] if flip is None else [x, flip(x, j)]
        if len(bases) == 2 and np.array_equal(bases[0], bases[1]):
            bases = bases[:1]
        for base in bases:
            for h in steps:
                trial = base.copy()
                trial[j] = lower[j] + h
                tv = float(fun(trial))
                count += 1
                if tv < best_f - 1e-10 * (1.0 + abs(val)):
                    best_x, best_f = trial, tv
    return best_x, best_f, count


def finish(fun, res: OptResult, lower, restart, rounds: int = 3, flip=None) -> OptResult:
    """Snap to the bounds, then leave any boundary face from which a step lowers the criterion
    (lme4's ``restart_edge``, with finite steps: see :func:`edge_probe`) by restarting the
    optimizer there (``restart(x) -> OptResult``), at most ``rounds`` times.  Adds the
    non-convergence messages."""
    lower = np.asarray(lower, float)
    res = snap_to_bounds(fun, res, lower)
    nfev, restarts = res.nfev, 0
    for _ in range(rounds):
        x_try, f_try, k = edge_probe(fun, res.x, res.fun, lower, flip=flip)
        nfev += k
        if f_try >= res.fun:
            break
        new = snap_to_bounds(fun, restart(x_try), lower)
        nfev += new.nfev
        restarts += 1
        if new.fun < res.fun:
            res = new
        else:
            res = replace(res, x=x_try, fun=f_try)
    res = replace(res, nfev=nfev, restarts=res.restarts + restarts)
    msgs = list(res.messages)
    if res.status == "maxeval reached":
        msgs.append(f"the optimizer stopped after {nfev} evaluations without converging (maxeval)")
    elif res.status.startswith("failure"):
        msgs.append(f"the optimizer reported {res.status}")
    return replace(res, messages=tuple(msgs))


#: derivative-free nlopt algorithms by mixedfx name (all bounded)
DERIVATIVE_FREE = {"bobyqa": "LN_BOBYQA", "newuoa": "LN_NEWUOA_BOUND", "nelder_mead": "LN_NELDERMEAD",
                   "sbplx": "LN_SBPLX"}


def derivative_free(fun, x0, lower, algorithm: str = "bobyqa", maxeval: int = 100_000, ftol_rel: float = 1e-14,
                    ftol_abs: float = 1e-10, xtol_abs: float = 1e-10, step=0.75, flip=None,
                    upper=None) -> OptResult:
    """Bounded derivative-free minimization with one of :data:`DERIVATIVE_FREE` over
    ``[lower, upper]`` (``upper`` default +inf), then :func:`finish` (snap to bounds, leave
    improvable boundary faces; ``flip`` as for :func:`edge_probe`)."""
    x0 = np.asarray(x0, float)
    lower = np.asarray(lower, float)
    upper = np.full_like(x0, np.inf) if upper is None else np.asarray(upper, float)
    alg = DERIVATIVE_FREE[algorithm]
    if algorithm == "newuoa" and len(x0) < 2:
        raise ValueError(f"optimizer 'newuoa' needs at least two parameters (this model has {len(x0)}); "
                         "use 'bobyqa'")
    if len(x0) == 0:
        return OptResult(x0, float(fun(x0)), 1, "success", optimizer=algorithm)

    def run(x_start, st):
        return OptResult(*_run(fun, x_start, lower, upper, maxeval, ftol_rel, ftol_abs, xtol_abs, st, alg),
                         optimizer=algorithm)
    return finish(fun, run(x0, step), lower, lambda x: run(x, 0.05), flip=flip)


def lbfgs(fun, fg, x0, lower, rectify=None, maxeval: int = 100_000, ftol_rel: float = 1e-13,
          xtol_abs: float = 1e-10, flip=None) -> OptResult:
    """Quasi-Newton minimization with an analytic gradient (nlopt's LD_LBFGS).

    The search is unbounded, as in MixedModels.jl 5: the criterion depends on theta through
    ``lambda lambda'``, which does not change when a column of ``lambda`` changes sign, so no
    boundary face can trap the search (a bounded quasi-Newton method can stop on a face where the
    criterion is even in a component and its gradient is zero).  ``rectify(x)`` maps the answer
    to the equivalent point with non-negative bounded components; components then within
    ``1e-6`` of zero go onto it and :func:`finish` probes the faces.

    Parameters
    ----------
    fun : x -> f.   fg : x -> (f, gradient).   x0 : start.   lower : bounds of the reported point.
    """
    x0 = np.asarray(x0, float)
    lower = np.asarray(lower, float)
    free = np.full_like(x0, -np.inf)
    if len(x0) == 0:
        return OptResult(x0, float(fun(x0)), 1, "success", optimizer="lbfgs")
    rectify = (lambda x: x) if rectify is None else rectify

    def run(x_start):
        # The first quasi-Newton step is -gradient: with a gradient of 3e3 it would throw a correlation
        # parameter deep into its flat tail (rho ~ 1), where the search stalls.  Dividing the criterion
        # by the start's gradient norm makes that step of length ~1 (tolerances are relative).
        f0, g0 = fg(x_start)
        scale = max(1.0, float(np.max(np.abs(g0)))) if np.all(np.isfinite(g0)) and f0 < 1e14 else 1.0

        def fg_scaled(x):
            val, g = fg(x)
            return val / scale, np.asarray(g) / scale
        x, val, nfev, status = _run(lambda x: fun(x) / scale, x_start, free, -free, maxeval, ftol_rel, 0.0, xtol_abs,
                                    None, "LD_LBFGS", fg_scaled)
        if status == "roundoff limited":     # stopped at the limit of precision: converged
            status = "success"
        return OptResult(rectify(x), val * scale, nfev + 1, status, optimizer="lbfgs")
    return finish(fun, run(x0), lower, run, flip=flip)


def newton_polish(fun, x, lower, iters: int = 4, rel_step: float = 1e-4):
    """Refine an interior optimum by Newton steps on central-difference derivatives.

    Near a smooth optimum the criterion is flat to ~1e-12 relative, so a derivative-free
    optimizer locates ``x`` only to ~1e-6; the gradient is not flat there, and a few Newton steps
    ``x - H^{-1} g`` (``g``, ``H`` by central differences with step ``1e-4 max(|x|, 0.1)``; the
    Hessian's off-diagonal entries with two extra points each, ``1 + k + k^2`` evaluations)
    locate the root of the gradient to ~1e-10 (one step usually: the iteration stops after a
    relative step below 1e-5).  Coordinates at their lower bound stay fixed.
    A step is kept only if the criterion does not rise by more than 1e-12 relative, and the
    iteration stops as soon as ``H`` is not positive definite.
    """
    x = np.asarray(x, float).copy()
    lower = np.asarray(lower, float)
    free = np.flatnonzero(~(x <= lower + 1e-6))
    if free.size == 0:
        return x
    f0 = fun(x)
    for _ in range(iters):
        h = rel_step * np.maximum(np.abs(x[free]), 0.1)

        def sub(z):
            y = x.copy()
            y[free] = z
            return fun(y)
        g, H = central_derivatives(sub, x[free], h, f0, pairs=2)
        try:
            c = np.linalg.cholesky(H)
        except np.linalg.LinAlgError:
            break
        step = np.linalg.solve(c.T, np.linalg.solve(c, g))
        x_new = x.copy()
        x_new[free] = np.maximum(x[free] - step, lower[free])
        f_new = fun(x_new)
        if not f_new <= f0 + 1e-12 * abs(f0):
            break
        x, f0 = x_new, f_new
        # quadratic convergence: after a step of relative size s the error is ~s^2
        if np.max(np.abs(step) / np.maximum(np.abs(x[free]), 0.1)) < 1e-5:
            break
    return x


def newton_polish_grad(fg, x, lower, iters: int = 3, rel_step: float = 1e-5):
    """Refine an interior optimum by Newton steps with an analytic gradient.

    The Hessian of the free components (those off their lower bound) is the central difference
    of the gradient (``2 k`` gradient evaluations, error ``O(h^2)`` with ``h = 1e-5 max(|x|,
    0.1)``); a step is kept only if the criterion does not rise by more than 1e-12 relative, and
    the iteration stops after a relative step below 1e-7 or when the Hessian is not positive
    definite.  Returns ``(x, n_evaluations)``.
    """
    x = np.asarray(x, float).copy()
    lower = np.asarray(lower, float)
    free = np.flatnonzero(~(x <= lower + 1e-6))
    if free.size == 0:
        return x, 0
    f0, g0 = fg(x)
    count = 1
    for _ in range(iters):
        h = rel_step * np.maximum(np.abs(x[free]), 0.1)

        def grad(z):
            y = x.copy()
            y[free] = z
            return fg(y)[1][free]
        H = gradient_hessian(grad, x[free], h)[0]
        count += 2 * free.size
        try:
            c = np.linalg.cholesky(H)
        except np.linalg.LinAlgError:
            break
        step = np.linalg.solve(c.T, np.linalg.solve(c, g0[free]))
        x_new = x.copy()
        x_new[free] = np.maximum(x[free] - step, lower[free])
        f_new, g_new = fg(x_new)
        count += 1
        if not f_new <= f0 + 1e-12 * abs(f0):
            break
        x, f0, g0 = x_new, f_new, g_new
        if np.max(np.abs(step) / np.maximum(np.abs(x[free]), 0.1)) < 1e-7:
            break
    return x, count
