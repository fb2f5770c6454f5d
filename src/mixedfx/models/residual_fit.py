"""Fitting an LMM with a residual correlation or variance model (``correlation=``, ``disp=``).

The residual covariance is ``sigma^2 S R S`` (:mod:`mixedfx.core.residual`).  For residual
parameters ``phi`` the model is an ordinary LMM on whitened data ``W y``, ``W X``, ``W Z``
(``W' W = (S R S)^{-1}``; ``Z``'s level codes are unchanged because every residual group lies in
one level of each grouping factor), whose profiled criterion plus ``log det(S R S)`` is the
criterion of the data.  theta and phi are optimized jointly by BOBYQA; each evaluation whitens the
standardized copy of the data and factors a fresh PLS workspace (cached per ``phi``).  The
standardization (:mod:`mixedfx.core.scaling`) is linear and commutes with the whitening, so the
estimates map back to the user's units exactly as for an ordinary fit.
"""
from __future__ import annotations

import time
import warnings

import numpy as np

from ..core.optimize import DERIVATIVE_FREE, derivative_free
from ..core.residual import AR1, CAR1, CompSymm, ResidualModel
from ..core.scaling import standardize
from ..core.start import moment_start
from ..core.workspace import FAILED_OBJECTIVE, PLSWorkspace, deviance_from_parts
from ..design import Design
from .layout import block_structures, layout_of

__all__ = ["fit_lmm_residual", "residual_model", "whitened_criterion"]

_CORRELATIONS = {"ar1": AR1, "car1": CAR1, "cs": CompSymm}


def residual_model(design: Design) -> ResidualModel:
    """The :class:`~mixedfx.core.residual.ResidualModel` of a design's ``correlation=`` / ``disp=``."""
    r = design.residual
    corr = None if r.correlation is None else _CORRELATIONS[r.correlation.name]()
    codes = np.zeros(design.n, dtype=np.int64) if r.codes is None else r.codes
    try:
        return ResidualModel(codes, r.times, corr, r.D, disp_names=list(r.D_names) or None)
    except ValueError as exc:
        from ..design.errors import DesignError
        what = f"correlation={r.correlation.text!r}" if r.correlation is not None else f"disp={r.disp_text!r}"
        raise DesignError(f"{what}: {exc}") from None


class _Whitened:
    """The criterion over ``x = (theta_int, phi)`` on the standardized, whitened data."""

    def __init__(self, design: Design, reml: bool, rm: ResidualModel):
        self.reml, self.rm = reml, rm
        self.structures = block_structures(design.blocks)
        y = design.y if design.offset is None else design.y - design.offset
        self.s = standardize(design.X, y, [b.X for b in design.blocks], None,
                             term_kinds=[st.scaling for st in self.structures])
        self.X, self.y = self.s.fixed(design.X), self.s.response(y)
        self.blocks = [(b.codes, self.s.term(k, b.X), b.nlevels) for k, b in enumerate(design.blocks)]
        self.k = layout_of(design.blocks).n_theta
        self._key, self._ws = None, None
        # prior weights: residual covariance sigma^2 W^-1/2 S R S W^-1/2, i.e. rows scaled by sqrt(w)
        # before the whitening, and -sum log w in the log-determinant
        self.sw, self.log_w = None, 0.0
        if design.weights is not None:
            w = np.asarray(design.weights, float)
            if not np.all(w > 0):
                raise ValueError("weights= with correlation= or disp= must be positive (a zero weight would make a "
                                 "row's residual variance infinite inside a correlated group); drop those rows")
            self.sw, self.log_w = np.sqrt(w), float(np.sum(np.log(w)))

    def _whiten(self, phi, M):
        M = np.asarray(M, float)
        if self.sw is not None:
            M = M * (self.sw if M.ndim == 1 else self.sw[:, None])
        return self.rm.whiten(phi, M)

    def workspace(self, phi) -> PLSWorkspace:
        key = tuple(np.asarray(phi, float).tolist())
        if key != self._key:
            w = self._whiten
            self._ws = PLSWorkspace(w(phi, self.X), w(phi, self.y),
                                    [(c, w(phi, Xk), nl) for c, Xk, nl in self.blocks],
                                    reml=self.reml, structures=self.structures)
            self._key = key
        return self._ws

    def log_jacobian(self, phi) -> float:
        """``log det`` of the residual covariance over ``sigma^2``: ``log det(S R S) - sum log w``."""
        return self.rm.log_jacobian(phi) - self.log_w

    def __call__(self, x) -> float:
        x = np.asarray(x, float)
        phi = x[self.k:]
        jac = self.log_jacobian(phi)
        if not np.isfinite(jac):
            return FAILED_OBJECTIVE
        val = self.workspace(phi).objective(x[:self.k])
        return val if val >= FAILED_OBJECTIVE else val + jac


def whitened_criterion(fit) -> _Whitened:
    """A fresh criterion over ``(theta_int, phi)`` for a fitted residual model (for inference that
    evaluates it at other parameters; the fit itself holds no workspace)."""
    return _Whitened(fit.design, fit.reml, residual_model(fit.design))


def fit_lmm_residual(design: Design, reml: bool = True, maxeval: int | None = None, warn: bool = True,
                     optimizer: str = "auto"):
    """Optimize the REML/ML criterion of an LMM with a residual model over ``(theta, phi)``.

    Returns an :class:`~mixedfx.models.lmm.LmmFit` whose ``residual`` holds the residual model's
    parameters (``ResidualFit``).
    """
    from .lmm import ConvergenceWarning, InternalEstimates, LmmFit, ResidualFit, SingularFitWarning, _singular
    t0 = time.perf_counter()
    if optimizer not in ("auto", *DERIVATIVE_FREE):
        raise ValueError(f"optimizer={optimizer!r}: models with correlation= or disp= are fitted by a derivative-free "
                         f"method ({', '.join(DERIVATIVE_FREE)}; 'auto' is 'bobyqa')")
    method = "bobyqa" if optimizer == "auto" else optimizer
    rm = residual_model(design)
    crit = _Whitened(design, reml, rm)
    layout = layout_of(design.blocks)
    k = crit.k
    theta0 = moment_start(crit.X, crit.y, crit.blocks, layout)
    x0 = np.concatenate([theta0, rm.initial()])
    lower = np.concatenate([layout.lower_bounds(), rm.lower_bounds()])
    step = np.where(lower == 0, np.clip(0.25 * np.abs(x0), 0.1, 0.75), 0.25)
    maxeval = maxeval or max(20_000, 1_000 * len(x0))
    opt = derivative_free(crit, x0, lower, method, maxeval=maxeval, step=step,
                          flip=lambda x, j: np.concatenate([layout.flip_column(x[:k], j), x[k:]]))
    theta_int, phi = opt.x[:k], opt.x[k:]
    ws = crit.workspace(phi)
    ws.update(theta_int)
    if ws.objective_value >= FAILED_OBJECTIVE:
        raise FloatingPointError("the model with this residual correlation / variance model could not be factored "
                                 "at any parameters tried; check the data and the residual model")
    s, n, p = crit.s, design.n, design.X.shape[1]
    jac = crit.log_jacobian(phi)
    internal = InternalEstimates(theta=theta_int.copy(), beta=ws.beta(), sigma=float(np.sqrt(ws.sigma2)),
                                 vcov=ws.vcov_beta(), b=tuple(ws.b_blocks()))
    singular = _singular(theta_int, layout.lower_bounds())
    if warn:
        for msg in opt.messages:
            warnings.warn(msg, ConvergenceWarning, stacklevel=3)
        if singular:
            warnings.warn("boundary (singular) fit: a variance component is (nearly) zero or a correlation is "
                          "+/-1; see result.is_singular", SingularFitWarning, stacklevel=3)
    residual = ResidualFit(names=tuple(rm.names()), par=phi.copy(), natural=rm.natural(phi),
                           correlation=design.residual.correlation, disp_names=tuple(rm.disp_names),
                           log_jacobian=float(jac))
    return LmmFit(design=design, reml=reml, theta=s.theta_to_user(theta_int, layout),
                  beta=s.beta_to_user(ws.beta()), sigma=s.sigma_to_user(np.sqrt(ws.sigma2)),
                  vcov=s.vcov_to_user(ws.vcov_beta()), b=tuple(s.b_to_user(ws.b_blocks())),
                  cond_var=tuple(s.cond_var_to_user(ws.cond_var_blocks())),
                  objective=float(ws.objective_value + jac + s.objective_shift(n, p, reml)),
                  deviance_ml=float(deviance_from_parts(ws, reml=False) + jac + s.objective_shift(n, p, False)),
                  pwrss=float(ws.pwrss * s.y_scale ** 2), opt=opt, is_singular=singular,
                  seconds=time.perf_counter() - t0, scaling=s, internal=internal, residual=residual)
