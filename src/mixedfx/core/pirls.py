"""Penalized iteratively re-weighted least squares and the Laplace / quadrature deviance.

For a GLMM with ``eta = X beta + Z Lambda_theta u + offset``, ``u ~ N(0, phi I)`` and a
family with variance ``V`` and link ``g``, the conditional modes ``u_hat`` minimize the
penalized deviance ``sum_i w_i d(y_i, mu_i) + ||u||^2``.  PIRLS iterates the weighted PLS
problem of the LMM workspace with working weights ``W = w mu_eta^2 / V(mu)`` and working
response ``z = eta - offset + (y - mu) / mu_eta``, halving steps that do not decrease the
penalized deviance (as lme4's ``pwrssUpdate``).  ``beta`` is either held fixed (u-only,
lme4's second stage) or updated jointly (lme4's ``nAGQ = 0`` first stage).

At the modes the Laplace approximation of the marginal log-likelihood is

    -2 log L = -2 sum_i log f(y_i | mu_i, phi) + ||u||^2 / phi + log |L_theta|^2 ,

with ``L_theta L_theta' = Lambda' Z' W Z Lambda + I`` at the final weights; all
normalizing constants are included, so the value is on the scale of the true
log-likelihood.  For one scalar random-effect term, adaptive Gauss-Hermite quadrature
replaces each group's Gaussian approximation by a k-point rule centred at the mode with
the conditional standard deviation ``sqrt(phi) / L_g``; one node reproduces Laplace.

The Laplace deviance's gradient over ``(theta, beta)`` is analytic (implicit
differentiation of the modes, :mod:`mixedfx.core.laplace_gradient`); its Hessian is the
central difference of that gradient (:meth:`GlmmWorkspace.deviance_hessian`); the same
holds for the quadrature deviance of families without a dispersion.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .laplace_gradient import LaplaceGradient, agq_gradient, differenced_hessian
from .workspace import FAILED_OBJECTIVE, PLSWorkspace
from .zmap import RandomEffectsMap

__all__ = ["GlmmWorkspace", "PirlsResult"]


@dataclass
class PirlsResult:
    u: np.ndarray
    beta: np.ndarray
    eta: np.ndarray
    mu: np.ndarray
    pdev: float
    iterations: int
    converged: bool


class _ChainedGradient:
    """A :class:`LaplaceGradient` for structured layouts: its derivatives with respect to the entries
    of each ``lambda_k`` (and ``du`` with respect to them) chained through the structures
    (:meth:`~mixedfx.core.covariance.ThetaLayout.tril_jacobian`)."""

    def __init__(self, inner, layout):
        self.inner, self.layout = inner, layout

    @property
    def feasible(self) -> bool:
        return self.inner.feasible

    def _chain(self, theta, g, du=None):
        J = self.layout.tril_jacobian(theta)
        n = J.shape[0]
        g = np.concatenate([J.T @ g[:n], g[n:]])
        if du is None:
            return g
        return g, np.hstack([du[:, :n] @ J, du[:, n:]])

    def gradient(self, theta, u, eta, mu, phi=1.0, mode_derivatives=False):
        out = self.inner.gradient(theta, u, eta, mu, phi, mode_derivatives=mode_derivatives)
        if out is None:
            return None
        return self._chain(theta, *out) if mode_derivatives else self._chain(theta, out)

    def profiled_gradient(self, theta, u, eta, mu, phi=1.0):
        out = self.inner.profiled_gradient(theta, u, eta, mu, phi)
        return None if out is None else self._chain(theta, out)


class GlmmWorkspace:
    """An LMM-style PLS workspace plus a family (composition), with PIRLS on top.

    Parameters
    ----------
    X : (n, p).  y : (n,) response (proportions for binomial).  blocks : as PLSWorkspace.
    family : a :class:`mixedfx.families.Family` (duck-typed: link, variance, loglik_terms, ...).
    prior_weights : (n,) or None.  offset : (n,) or None.
    structures : per term, a :class:`~mixedfx.core.structures.CovStructure` (default: unstructured).
    """

    def __init__(self, X, y, blocks, family, prior_weights=None, offset=None, rest="auto", structures=None):
        self.X = np.asarray(X, float)
        self.y = np.asarray(y, float)
        self.n, self.p = self.X.shape
        self.family = family
        self.w = np.ones(self.n) if prior_weights is None else np.asarray(prior_weights, float)
        self.offset = np.zeros(self.n) if offset is None else np.asarray(offset, float)
        self.blocks = [(np.asarray(c), np.asarray(Xk, float), int(nl)) for c, Xk, nl in blocks]
        mu0 = family.initial_mu(self.y, self.w)
        self.eta_start = family.link.link(mu0)
        # deviance = const - 2 * kernel(mu): fix the constant once
        self._dev_const = float(np.sum(self.w * family.unit_deviance(self.y, mu0))
                                + 2.0 * family.mu_kernel(self.y, mu0, self.w))
        # log-likelihood = kernel + constant for families without a dispersion
        self._ll_const = None if family.has_dispersion else float(
            family.loglik(self.y, mu0, self.w) - family.mu_kernel(self.y, mu0, self.w))
        W0, me0 = family.irls_weights(self.eta_start, mu0, self.w)
        z0 = self.eta_start - self.offset + (self.y - mu0) / me0
        self.ws = PLSWorkspace(self.X, z0, self.blocks, weights=W0, reml=False, rest=rest, structures=structures)
        self.layout = self.ws.layout
        self.zmap = RandomEffectsMap(self.blocks, self.layout)
        self._Z = self.zmap.Z
        self.u = np.zeros(self.zmap.q)
        self.beta = np.zeros(self.p)
        self.phi = 1.0
        self.last: PirlsResult | None = None
        #: relative change of the penalized deviance at which PIRLS stops (see fit_glmm)
        self.tol = 1e-10
        self._grad = None          # LaplaceGradient, built on first use (False: unavailable)
        # canonical link (IRLS weights = observed information whatever y): PIRLS steps are Newton
        # steps.  Checked away from y (at y the two agree for any link).
        try:
            W, _, _, Wo = family.working_derivatives(mu0 + 0.25 * (1.0 - mu0), self.eta_start, mu0, self.w)
            self._newton = bool(np.all(np.abs(Wo - W) <= 1e-10 * np.abs(W)))
        except (AttributeError, NotImplementedError):
            self._newton = False

    # ------------------------------------------------------------ linear predictor
    def zb(self, theta: np.ndarray, u: np.ndarray) -> np.ndarray:
        """``Z Lambda_theta u`` (n,)."""
        return self._zb_map(theta)(u)

    def _zb_map(self, theta):
        """The map ``u -> Z Lambda_theta u`` (:meth:`RandomEffectsMap.zb_map`)."""
        return self.zmap.zb_map(theta)

    def _zt_times(self, v: np.ndarray) -> np.ndarray:
        """``Z' v`` (q,)."""
        return self.zmap.zt_times(v)

    def _lambda_times(self, theta):
        """The map ``u -> Lambda_theta u`` for one theta."""
        return self.zmap.lambda_times(theta)

    def loglik(self, mu, phi: float = 1.0) -> float:
        """Conditional log-likelihood ``sum log f(y | mu, phi)`` (kernel + constant when phi = 1)."""
        if self._ll_const is not None:
            return self._ll_const + self.family.mu_kernel(self.y, mu, self.w)
        return self.family.loglik(self.y, mu, self.w, phi)

    def penalized_deviance(self, y_mu_w, u) -> float:
        """``sum w d(y, mu) + ||u||^2``, from the family's mu-kernel plus a constant fixed at start."""
        y, mu, w = y_mu_w
        return float(self._dev_const - 2.0 * self.family.mu_kernel(y, mu, w) + u @ u)

    # ------------------------------------------------------------------ PIRLS
    def pirls(self, theta, beta=None, u0=None, joint=False, tol=None, maxit=100, maxhalf=20, utol=None,
              refactor=True, u0_alt=None) -> PirlsResult:
        """Conditional modes for ``theta`` (and ``beta`` unless ``joint``).

        ``u0_alt``: a second starting point for a u-only solve (e.g. a first-order prediction
        of the modes); PIRLS starts from whichever has the lower penalized deviance.

        Stops when an accepted step changes the penalized deviance by less than ``tol``
        (relative), or, with ``utol`` given, when it moves no ``u`` (nor ``beta`` when
        ``joint``) by more than ``utol`` (relative): the u-step is ``M^{-1}`` times the score
        residual ``V's - u``, a direct measure of how stationary the modes are, where the
        deviance change is only its square; with a canonical link a full step below
        ``0.1 sqrt(utol)`` also stops (Newton's error after it is of its square).  With
        ``refactor=False`` the factor is not refreshed at the final weights (then
        :meth:`laplace` must not be used before another solve).
        """
        tol = self.tol if tol is None else tol
        theta = np.asarray(theta, float)
        fam, link = self.family, self.family.link
        zb = self._zb_map(theta)
        u = np.zeros_like(self.u) if u0 is None else np.asarray(u0, float).copy()
        if joint:
            beta = self.beta.copy() if beta is None else np.asarray(beta, float).copy()
            if self.last is None and u0 is None:
                eta = self.eta_start.copy()          # first call: start from mustart, as glm does
                beta = None
            else:
                eta = self.X @ beta + zb(u) + self.offset
        else:
            beta = np.asarray(beta, float)
            fixed = self.X @ beta + self.offset          # constant during a u-only solve
            eta = fixed + zb(u)
        mu = link.inverse(eta)
        pdev = self.penalized_deviance((self.y, mu, self.w), u) if beta is not None else np.inf
        if u0_alt is not None and not joint:
            u_a = np.asarray(u0_alt, float)
            eta_a = fixed + zb(u_a)
            with _trial_point():
                mu_a = link.inverse(eta_a)
                pdev_a = self.penalized_deviance((self.y, mu_a, self.w), u_a)
            if pdev_a < pdev:
                u, eta, mu, pdev = u_a.copy(), eta_a, mu_a, pdev_a
        converged = False
        for it in range(1, maxit + 1):
            W, me = fam.irls_weights(eta, mu, self.w)
            if joint:
                z = eta - self.offset + (self.y - mu) / me
                self.ws.reweight(W, z)
                self.ws.update(theta)
                if self.ws.objective_value >= FAILED_OBJECTIVE:     # the weighted system did not factor
                    if beta is None:
                        raise FloatingPointError(
                            "the weighted least-squares system of the first PIRLS step could not be factored: the "
                            "working weights or response are not finite (check the offset and the response)")
                    break
                beta_new = self.ws.beta()
                u_new = self.ws.u()
            else:   # u-only: only L_Z and Lambda' Z' W (z - X beta) are needed
                r = eta - fixed + (self.y - mu) / me
                self.ws.reweight_zz(W)
                if not self.ws.factor_z(theta):
                    break
                beta_new = beta
                u_new = self.ws.solve_u(self._zt_times(W * r))
            if beta is None:          # first joint step from mustart: take it whole
                beta, u = beta_new, u_new
                eta = self.X @ beta + zb(u) + self.offset
                mu = link.inverse(eta)
                pdev = self.penalized_deviance((self.y, mu, self.w), u)
                continue
            step, accepted = 1.0, False
            for _ in range(maxhalf):
                u_t = u + step * (u_new - u)
                if joint:
                    b_t = beta + step * (beta_new - beta)
                    eta_t = self.X @ b_t + zb(u_t) + self.offset
                else:
                    b_t = beta
                    eta_t = fixed + zb(u_t)
                with _trial_point():
                    mu_t = link.inverse(eta_t)
                    pdev_t = self.penalized_deviance((self.y, mu_t, self.w), u_t)
                if np.isfinite(pdev_t) and pdev_t <= pdev + 1e-12 * abs(pdev):
                    accepted = True
                    break
                step *= 0.5
            if not accepted:
                converged = True        # no step lowers the penalized deviance: at the mode within noise
                break
            change = pdev - pdev_t
            if utol is not None:      # the largest move of the modes (and of beta when joint)
                du = float(np.max(np.abs(u_t - u), initial=0.0))
                size = float(np.max(np.abs(u_t), initial=0.0))
                if joint:
                    du = max(du, float(np.max(np.abs(b_t - beta), initial=0.0)))
                    size = max(size, float(np.max(np.abs(b_t), initial=0.0)))
            u, beta, eta, mu, pdev = u_t, b_t, eta_t, mu_t, pdev_t
            if utol is not None:
                # a full Newton step (canonical link: PIRLS is Newton's method) leaves an error of
                # order its square: a step below 0.1 sqrt(utol) needs no confirming iteration
                small = utol if not (self._newton and step == 1.0) else max(utol, 0.1 * np.sqrt(utol))
                done = du <= small * (1.0 + size)
            else:
                done = change < tol * (abs(pdev) + 0.1)
            if done:
                converged = True
                break
        if refactor:        # the factor at the final weights (for log|L|^2 and conditional variances)
            W, me = fam.irls_weights(eta, mu, self.w)
            if joint:
                self.ws.reweight(W, eta - self.offset + (self.y - mu) / me)
                self.ws.update(theta)
            else:
                self.ws.reweight_zz(W)
                self.ws.factor_z(theta)
        self.u, self.beta = u, beta
        self.last = PirlsResult(u, beta, eta, mu, pdev, it, converged)
        return self.last

    def full_update(self, theta) -> None:
        """Form the complete factor (fixed-effects block included) at the current modes, e.g.
        for ``phi (R_X R_X')^{-1}``; u-only PIRLS leaves that block stale."""
        res = self.last
        W, me = self.family.irls_weights(res.eta, res.mu, self.w)
        self.ws.reweight(W, res.eta - self.offset + (self.y - res.mu) / me)
        self.ws.update(theta)

    # ------------------------------------------------------- derivatives of the deviance
    def laplace_gradient(self, theta, res: PirlsResult, phi: float | None = None,
                         profile_beta: bool = False, mode_derivatives: bool = False):
        """Analytic gradient of :meth:`laplace` over ``(theta, beta)`` at the PIRLS solution ``res``
        (:mod:`mixedfx.core.laplace_gradient`), or with ``profile_beta`` (``res`` from a joint
        solve) over theta with ``beta`` following the joint PIRLS solution (stage 1).  With
        ``mode_derivatives``, ``(gradient, du/d(theta, beta))``.  None when the family lacks the
        derivatives or the later-terms block is too large."""
        g = self._gradient_engine()
        if g is None:
            return None
        phi = self.phi if phi is None else phi
        try:
            if profile_beta:
                return g.profiled_gradient(theta, res.u, res.eta, res.mu, phi)
            return g.gradient(theta, res.u, res.eta, res.mu, phi, mode_derivatives=mode_derivatives)
        except NotImplementedError:
            return None

    def deviance_hessian(self, x, nagq: int = 1, h: float = 1e-4,
                         utol: float = 1e-12) -> tuple[np.ndarray, float] | None:
        """Hessian over ``x = (theta, beta)`` of the Laplace (``nagq = 1``) or quadrature deviance:
        central differences of :meth:`laplace_gradient` or :meth:`agq_gradient` with step ``h``
        for theta and ``h / rms(X_j)`` for ``beta_j`` (the same change of the linear predictor
        whatever the units of ``X_j``).  At each of the ``2 m`` points PIRLS starts from the
        first-order prediction of the modes (implicit differentiation) and runs until its
        u-steps are below ``utol`` (relative); the dispersion is re-profiled there.  Returns
        ``(H, err)``, ``err`` the largest asymmetry of the differenced matrix (its error
        estimate), or None when the gradient is unavailable.  Leaves the workspace at the last
        point evaluated, its factor not refreshed: solve again before :meth:`laplace`."""
        g = self._gradient_engine()
        if g is None or (nagq > 1 and self.family.has_dispersion):
            return None
        x = np.asarray(x, float)
        k = self.layout.n_theta
        res = self.pirls(x[:k], beta=x[k:], u0=self.u, utol=utol, refactor=False)
        self.phi = self.profile_phi(res.mu, res.u)
        try:
            out = g.gradient(x[:k], res.u, res.eta, res.mu, self.phi, mode_derivatives=True)
        except NotImplementedError:
            return None
        if out is None:
            return None
        u_hat, du = res.u.copy(), out[1]

        def gradient_at(z, pred):
            r = self.pirls(z[:k], beta=z[k:], u0=u_hat + pred, utol=utol, refactor=False)
            self.phi = self.profile_phi(r.mu, r.u)
            return self.laplace_gradient(z[:k], r) if nagq <= 1 else self.agq_gradient(z[:k], r, nagq)
        rms = np.sqrt(np.mean(self.X ** 2, axis=0))
        steps = np.concatenate([np.full(k, h), h / np.where(rms > 0, rms, 1.0)])
        return differenced_hessian(gradient_at, x, steps, du)

    def agq_gradient(self, theta, res: PirlsResult, nagq: int) -> np.ndarray | None:
        """Analytic gradient of :meth:`agq` over ``(theta, beta)`` at the PIRLS solution ``res``
        (:func:`mixedfx.core.laplace_gradient.agq_gradient`); None for families with a
        dispersion (profiled on the Laplace likelihood, so not stationary for quadrature) or
        without the working derivatives."""
        if self.family.has_dispersion or len(self.blocks) != 1 or self.blocks[0][1].shape[1] != 1 \
                or self.layout.structured:
            return None
        codes, Xk, nl = self.blocks[0]
        x, logw = _hermite_rule(int(nagq))
        try:
            return agq_gradient(self.family, self.y, self.w, self.X, codes, Xk[:, 0], nl,
                                float(np.asarray(theta, float)[0]), res.u, res.eta, res.mu, x, logw)
        except (AttributeError, NotImplementedError):
            return None

    def laplace_gradient_available(self) -> bool:
        """Whether :meth:`laplace_gradient` can be computed for this family and design."""
        return self._gradient_engine() is not None

    def _gradient_engine(self):
        if self._grad is None:
            try:
                eta = self.eta_start[:1]           # does the family provide the derivatives?
                self.family.working_derivatives(self.y[:1], eta, self.family.link.inverse(eta), self.w[:1])
                self._grad = LaplaceGradient(self.X, self.blocks, self.layout, self.family, self.y, self.w)
                if self.layout.structured:         # its derivatives are wrt the entries of each lambda
                    self._grad = _ChainedGradient(self._grad, self.layout)
            except (AttributeError, NotImplementedError):
                self._grad = False
        return self._grad if self._grad is not False and self._grad.feasible else None

    # ---------------------------------------------------------------- criteria
    def profile_phi(self, mu, u) -> float:
        """Dispersion maximizing the Laplace log-likelihood at fixed modes (1 if none): the
        minimizer of ``-2 log f(y | mu, phi) + u'u / phi`` (the family's
        ``profile_dispersion``: closed form or Newton)."""
        if not self.family.has_dispersion:
            return 1.0
        return self.family.profile_dispersion(self.y, mu, self.w, float(u @ u))

    def laplace(self, res: PirlsResult, phi: float | None = None) -> float:
        """-2 log L by the Laplace approximation at the PIRLS solution (uses the current factor)."""
        phi = self.profile_phi(res.mu, res.u) if phi is None else phi
        self.phi = phi
        return float(-2 * self.loglik(res.mu, phi) + res.u @ res.u / phi + self.ws.logdet_Z)

    def agq(self, theta, res: PirlsResult, nagq: int, phi: float = 1.0) -> float:
        """-2 log L by adaptive Gauss-Hermite quadrature (one scalar random-effect term).

        Group ``g``'s integral over ``u_g`` is approximated by the rule centred at the mode
        ``u_hat_g`` with scale ``s_g = sqrt(phi) / L_g`` (``L_g`` the factor at the modes):
        ``sqrt(2) s_g sum_k w_k exp(x_k^2) f(y_g | u_k) phi(u_k; 0, phi)`` with
        ``u_k = u_hat_g + sqrt(2) s_g x_k``, evaluated for all nodes at once (arrays of nodes by
        observations); terms of the log-likelihood free of ``mu`` are summed once per group.
        """
        if len(self.blocks) != 1 or self.blocks[0][1].shape[1] != 1:
            raise ValueError("adaptive quadrature (nagq > 1) needs a single scalar random-effect term, "
                             "such as (1 | group)")
        codes, Xk, nl = self.blocks[0]
        fam = self.family
        lam = float(self.layout.lambdas(theta)[0][0, 0])
        x, logw = _hermite_rule(int(nagq))
        s = np.sqrt(phi) / self.ws.L00                     # conditional SD of u_g
        uhat = res.u
        z = lam * Xk[:, 0]
        eta_fixed = res.eta - z * uhat[codes]
        ug = uhat[None, :] + (np.sqrt(2.0) * x)[:, None] * s[None, :]            # (nodes, groups)
        mu = fam.link.inverse(eta_fixed[None, :] + z[None, :] * ug[:, codes])   # (nodes, n)
        const = np.bincount(codes, fam.loglik_terms(self.y, res.mu, self.w, phi)
                            - fam.loglik_kernel_terms(self.y, res.mu, self.w, phi), minlength=nl)
        kern = fam.loglik_kernel_terms(self.y, mu, self.w, phi)
        index = codes[None, :] + nl * np.arange(len(x))[:, None]
        ll = np.bincount(index.ravel(), kern.ravel(), minlength=len(x) * nl).reshape(len(x), nl)
        logs = logw[:, None] + (ll + const[None, :]) - 0.5 * ug * ug / phi - 0.5 * np.log(2 * np.pi * phi)
        top = logs.max(axis=0)
        log_int = top + np.log(np.exp(logs - top).sum(axis=0)) + np.log(np.sqrt(2.0) * s)
        return float(-2 * log_int.sum())


def _trial_point():
    """A PIRLS step (or a predicted start) may leave the range of the family (e.g. ``mu * mu`` beyond
    the floating-point range, a negative mean from an identity or inverse link): its deviance is not
    finite and the step is halved or the start dropped, so numpy's warnings are not reported."""
    return np.errstate(over="ignore", divide="ignore", invalid="ignore")


@lru_cache(maxsize=32)
def _hermite_rule(nagq: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Hermite nodes ``x`` and ``log(w) + x^2`` (read-only arrays, cached)."""
    x, wq = np.polynomial.hermite.hermgauss(nagq)
    logw = np.log(wq) + x ** 2
    x.flags.writeable = False
    logw.flags.writeable = False
    return x, logw
