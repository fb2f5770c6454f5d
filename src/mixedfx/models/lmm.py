"""Fit a linear mixed model: Design -> PLS workspace -> optimizer -> frozen :class:`LmmFit`.

The stages mirror lme4's ``lFormula -> mkLmerDevfun -> optimizeLmer -> mkMerMod``:
:func:`make_workspace` builds the deviance function's workspace, :func:`fit_lmm`
optimizes it and freezes the numbers at the optimum.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field, fields

import numpy as np

from ..core.optimize import OptResult
from ..core.covariance import ThetaLayout
from .layout import block_structures, layout_of
from ..core.scaled_workspace import ScaledWorkspace
from ..core.scaling import Standardization
from ..core.blocksum import BlockSums
from ..core.start import StartStats, moment_start_from_stats, ols_rows, start_residuals
from ..core.workspace import FAILED_OBJECTIVE
from .optimizers import OPTIMIZERS, POLISH_MAX_THETA, optimize_theta  # noqa: F401 (re-exported)
from .threads import blas_policy
from ..design import Design

__all__ = ["LmmFit", "LmmOptimum", "ConvergenceWarning", "SingularFitWarning", "make_workspace", "fit_lmm",
           "fit_lmm_from_blocks", "SINGULAR_TOL"]

#: lme4's ``isSingular`` tolerance on the bounded components of theta.
SINGULAR_TOL = 1e-4


class ConvergenceWarning(UserWarning):
    """The optimizer did not converge cleanly."""


class SingularFitWarning(UserWarning):
    """A variance component or correlation is estimated on the boundary."""


@dataclass(frozen=True)
class LmmOptimum:
    """Numbers at the optimum of an LMM, without its data (arrays only; presentation lives in ``results``).

    Attributes
    ----------
    reml : whether the REML criterion was optimized.
    theta : (n_theta,) relative covariance parameters.  beta : (p,) fixed effects.
    sigma : residual standard deviation.  vcov : (p, p) covariance of beta.
    b : per term, (n_levels, p_k) conditional modes of the random effects.
    cond_var : per term, (n_levels, p_k, p_k) conditional covariances of b.
    objective : the optimized criterion (REML criterion or ML deviance).
    deviance_ml : ML deviance at the optimum (lme4's ``deviance()`` of a REML fit).
    opt : optimizer report (on the internal, standardized problem: ``opt.fun`` is the internal
    criterion).
    scaling : the change of units between the data and the standardized problem.
    internal : theta, beta, sigma, vcov and b of the standardized problem
    (:mod:`mixedfx.core.scaling`); ``scaling`` maps them to the user's units.
    """
    reml: bool
    theta: np.ndarray
    beta: np.ndarray
    sigma: float
    vcov: np.ndarray
    b: tuple
    cond_var: tuple
    objective: float
    deviance_ml: float
    pwrss: float
    opt: OptResult
    is_singular: bool
    scaling: Standardization = field(repr=False, compare=False)
    internal: "InternalEstimates" = field(repr=False, compare=False)

    def fields(self) -> dict:
        """The optimum's fields by name (shallow: the arrays are shared)."""
        return {f.name: getattr(self, f.name) for f in fields(LmmOptimum)}


@dataclass(frozen=True)
class LmmFit(LmmOptimum):
    """An :class:`LmmOptimum` with the Design it was fitted to.

    Attributes (besides the optimum's)
    ----------------------------------
    design : the Design the model was fitted to.  seconds : wall time of the fit.
    residual : the residual correlation / variance model's estimates, or None.
    """
    design: Design = field(kw_only=True)
    seconds: float = field(kw_only=True)
    residual: "ResidualFit | None" = None

    @property
    def layout(self) -> ThetaLayout:
        """Where each term's entries live in theta."""
        return layout_of(self.design.blocks)

    def fresh_workspace(self, reml: bool | None = None) -> ScaledWorkspace:
        """A new workspace for this model, factored at the optimum.

        A fit holds no mutable state: code that evaluates the criterion at other parameters
        (Satterthwaite, profiles, leverages, checks) asks for its own workspace, as lme4 copies
        its state for profiling.  ``reml`` defaults to the fit's criterion.
        """
        if self.residual is not None:
            raise NotImplementedError(
                "this method (leverages, influence) is not yet available for models with correlation= or disp= "
                "(estimates, summary, Satterthwaite and Kenward-Roger tests, ranef, predict, simulate, check(), "
                "Wald, profile and bootstrap intervals and likelihood-ratio tests are)")
        ws = make_workspace(self.design, self.reml if reml is None else reml, scaling=self.scaling)
        return ws.update_internal(self.internal.theta)

    @property
    def theta_internal(self) -> np.ndarray:
        """theta of the standardized problem (singularity is judged there: invariant to units)."""
        return self.internal.theta


@dataclass(frozen=True)
class ResidualFit:
    """Estimates of a residual correlation / variance model (``correlation=``, ``disp=``).

    Attributes
    ----------
    names : parameter names.  par : (m,) unconstrained parameters (:mod:`mixedfx.core.residual`).
    natural : ``{"rho" | "phi": value, "delta": (m_disp,)}``; ``delta`` are the coefficients of the
        residual log-SD on the ``disp=`` columns ``disp_names`` (the intercept is ``log sigma``).
    correlation : the parsed ``correlation=`` or None.  log_jacobian : ``log det(S R S)`` at ``par``.
    """
    names: tuple
    par: np.ndarray
    natural: dict
    correlation: object
    disp_names: tuple
    log_jacobian: float


@dataclass(frozen=True)
class InternalEstimates:
    """The optimum in the standardized units the optimizer works in."""
    theta: np.ndarray
    beta: np.ndarray
    sigma: float
    vcov: np.ndarray
    b: tuple


def make_workspace(design: Design, reml: bool = True, scaling=None) -> ScaledWorkspace:
    """The deviance function's workspace: user's units outside, standardized data inside."""
    y = design.y if design.offset is None else design.y - design.offset
    return ScaledWorkspace(design.X, y, [(b.codes, b.X, b.nlevels) for b in design.blocks],
                           weights=design.weights, reml=reml, scaling=scaling,
                           structures=block_structures(design.blocks))


def _singular(theta: np.ndarray, lower: np.ndarray) -> bool:
    bounded = np.isfinite(lower)
    return bool(np.any(theta[bounded] < SINGULAR_TOL))


def fit_lmm(design: Design, reml: bool = True, start="moments", maxeval: int | None = None,
            blas_threads="auto", warn: bool = True, optimizer: str = "auto") -> LmmFit:
    """Optimize the profiled REML/ML criterion over theta and freeze the solution.

    Parameters
    ----------
    design : output of :func:`mixedfx.design.build_design`.
    reml : optimize the REML criterion (default) or the ML deviance.
    start : initial theta; ``"moments"`` (default) for ANOVA-type moment estimates
        (:func:`mixedfx.core.start.moment_start`), ``"lme4"`` for lme4's start (identity
        factors of the standardized problem), or the user's theta (e.g. a previous fit's).

    The optimizer works on the standardized copy of the data (:mod:`mixedfx.core.scaling`), so
    the fit does not depend on the units or origin of the response and covariates; the frozen
    numbers are mapped back exactly.
    maxeval : cap on criterion evaluations (default ``max(20000, 1000 n_theta)``; reaching it
        gives a ConvergenceWarning).
    optimizer : ``"auto"`` (default), ``"lbfgs"`` (analytic gradient), ``"bobyqa"``, ``"newuoa"``,
        ``"nelder_mead"`` or ``"sbplx"`` (:mod:`mixedfx.models.optimizers`).
    blas_threads : BLAS threads while fitting: ``"auto"`` (default) is the adaptive policy of
        :mod:`mixedfx.models.threads` (one thread unless a core is measurably idle and more
        threads pay); an int caps the threads; None leaves the library's default.
    """
    if design.residual is not None:
        if not (isinstance(start, str) and start == "moments"):
            raise ValueError("start= is not used with correlation= or disp=; leave it out")
        from .residual_fit import fit_lmm_residual
        return fit_lmm_residual(design, reml, maxeval=maxeval, warn=warn, optimizer=optimizer)
    t0 = time.perf_counter()
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    ws = make_workspace(design, reml)
    y = design.y if design.offset is None else design.y - design.offset

    def moments() -> StartStats:   # the in-memory rows' start statistics (fit_lmm_from_blocks: merged ones)
        y_int = ws.scaling.response(y)
        return StartStats.of(start_residuals(ws.X, y_int, ols_rows(ws.X, y_int, ws.weights)), ws.blocks)
    opt = _optimize_and_freeze(ws, start, moments, maxeval, blas_threads, warn, optimizer, stacklevel=4)
    return LmmFit(design=design, **opt.fields(), seconds=time.perf_counter() - t0)


def _initial_point(ws: ScaledWorkspace, start, moments):
    """``(x0, step)``: internal start and BOBYQA's initial trust region for ``start`` (see :func:`fit_lmm`);
    ``moments()`` gives the :class:`StartStats` of ``start="moments"``."""
    layout = ws.layout
    lower = layout.lower_bounds()
    if isinstance(start, str) and start == "moments":
        x0 = moment_start_from_stats(moments(), layout)
        # trust region on the scale of the start (insteval: 40 instead of 81 evaluations)
        return x0, np.where(lower == 0, np.clip(0.25 * np.abs(x0), 0.1, 0.75), 0.25)
    if start is None or (isinstance(start, str) and start == "lme4"):
        return layout.initial(), 0.75
    x0 = np.asarray(start, float).ravel()
    if len(x0) != layout.n_theta:
        raise ValueError(f"start has {len(x0)} values; this model has {layout.n_theta} theta parameters")
    # a warm start needs a small trust region (31 vs 80 evaluations from the optimum)
    return ws.theta_to_internal(np.maximum(x0, lower)), 0.05


def _optimize_and_freeze(ws: ScaledWorkspace, start, moments, maxeval, blas_threads, warn, optimizer,
                         stacklevel: int = 3) -> LmmOptimum:
    """Optimize the criterion of a workspace (from rows or from summed blocks) and freeze the optimum.

    The shared part of :func:`fit_lmm` and :func:`fit_lmm_from_blocks`: start, optimizer, the
    failure check, the estimates, the singular check and the warnings (``stacklevel`` for the
    warnings, counted from this function).
    """
    iws = ws.internal
    layout = ws.layout
    lower = layout.lower_bounds()
    x0, step = _initial_point(ws, start, moments)
    with blas_policy(0 if ws.internal.rest_sparse else ws.qr, blas_threads):   # sparse path: no dense block
        if maxeval is None:     # a cap with a ConvergenceWarning, not minutes on a degenerate model
            maxeval = max(20_000, 1_000 * layout.n_theta)
        opt = optimize_theta(iws, x0, lower, step, optimizer, maxeval)
        theta_int = opt.x
        iws.update(theta_int)
        if iws.objective_value >= FAILED_OBJECTIVE:
            raise FloatingPointError(
                "the penalized least-squares system could not be factored at any theta tried; the fixed-effects "
                "matrix may be numerically singular or the response degenerate (check for huge or constant columns)")
        beta = ws.beta()
        b = tuple(ws.b_blocks())
        vcov = ws.vcov_beta()
        internal = InternalEstimates(theta=theta_int.copy(), beta=iws.beta(), sigma=float(np.sqrt(iws.sigma2)),
                                     vcov=iws.vcov_beta(), b=tuple(iws.b_blocks()))
        dev_ml = ws.deviance(reml=False)         # lme4's deviance() of a REML fit: ML, profiled
        sigma, pwrss = float(np.sqrt(ws.sigma2)), ws.pwrss
        cond_var = tuple(ws.cond_var_blocks(last_use=True))     # last: may reuse the factor's memory
    theta = ws.theta_to_user(theta_int)
    singular = _singular(theta_int, lower)     # on the standardized scale: invariant to units
    if warn:
        for msg in opt.messages:
            warnings.warn(msg, ConvergenceWarning, stacklevel=stacklevel)
        if singular:
            warnings.warn("boundary (singular) fit: a variance component is (nearly) zero or a correlation is "
                          "+/-1; see result.is_singular and consider simplifying the random effects",
                          SingularFitWarning, stacklevel=stacklevel)
    return LmmOptimum(reml=ws.reml, theta=theta, beta=beta, sigma=sigma, vcov=vcov, b=b,
                      cond_var=cond_var, objective=float(opt.fun + ws.shift), deviance_ml=float(dev_ml),
                      pwrss=pwrss, opt=opt, is_singular=singular, scaling=ws.scaling, internal=internal)


def fit_lmm_from_blocks(sums: BlockSums, scaling: Standardization, sizes, nlevels, structures=None,
                        start_stats: StartStats | None = None, reml: bool = True, start="moments",
                        maxeval: int | None = None, blas_threads="auto", warn: bool = True,
                        optimizer: str = "auto") -> LmmOptimum:
    """Fit an LMM from cross-products summed over row partitions (no rows on the caller's side).

    Parameters
    ----------
    sums : the blocks of ``A`` over all rows in the internal units of ``scaling``
        (:func:`mixedfx.core.blocksum.sum_blocks`); ``n`` and ``p`` come from it.
    scaling : the data's :class:`Standardization` (:func:`mixedfx.core.moments.standardize_from_moments`).
    sizes, nlevels : per term (term 0 first, as in the design), its columns ``p_k`` and levels.
    structures : per term, its covariance structure (:func:`mixedfx.models.layout.block_structures`);
        None for unstructured.
    start_stats : for ``start="moments"``, the merged :class:`StartStats` of the partitions'
        residuals ``start_residuals(X_int, y_int, ols_coefficients(sums.AFF))`` (with, when ``p == 0``,
        the mean of ``y_int`` over all rows as ``centre``): the statistics the in-memory fit computes
        on all rows, so both fits start at the same theta.
    reml, start, maxeval, blas_threads, warn, optimizer : as for :func:`fit_lmm`.

    Returns
    -------
    LmmOptimum
        :class:`LmmFit`'s numbers without ``design`` and ``seconds``.  An ``LmmFit`` also needs the
        ``Design`` (names, levels, spec, and the per-row y, X, codes, weights, offset that
        ``fresh_workspace`` and the per-row results read): a data-free design is for the caller
        (issue 13: ``PartitionedDesign``).
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    if isinstance(start, str) and start == "moments" and start_stats is None:
        raise ValueError('start="moments" needs start_stats (the merged StartStats of the partitions); '
                         'pass them, or start="lme4" or a theta')
    ws = ScaledWorkspace.from_blocks(sums, scaling, sizes, nlevels, reml=reml, structures=structures)
    return _optimize_and_freeze(ws, start, lambda: start_stats, maxeval, blas_threads, warn, optimizer)
