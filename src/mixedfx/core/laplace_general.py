"""The Laplace approximation for any per-observation log-density (glmmTMB's models).

For a conditional model ``eta = X beta + Z Lambda_theta u + offset``, ``u ~ N(0, I)``, and a
log-density ``l_i(eta_i; xi)`` per observation whose other parameters ``xi`` (a zero-inflation
or dispersion linear predictor, a family parameter such as the Student-t df) are collected in
an ``extra`` vector, the Laplace approximation of ``-2 log L`` at ``x = (theta, beta, extra)`` is

    D(x) = -2 sum_i l_i(eta_i) + u'u + log|M| ,   M = I + V' W V ,   V = Z Lambda_theta ,

with ``u = u_hat(x)`` the conditional modes and ``W = -d^2 l / d eta^2`` at them (the
observed information, as glmmTMB's Laplace through TMB: for non-canonical links and
non-exponential-family densities it differs from the IRLS weights lme4 uses).

Modes: Newton steps ``u <- M_+^{-1} V'(W_+ (eta - X beta - offset) + l')`` with ``W_+`` the
observed weights clipped at zero (so ``M_+`` is positive definite even where the log-density
is locally convex, e.g. outliers under a t density or zeros under zero inflation), halved
until ``sum l - u'u / 2`` increases.

Gradient (implicit differentiation, as :mod:`mixedfx.core.laplace_gradient` for
``(theta, beta)``): for an extra parameter ``p`` acting on the observations through
``xi``, with ``h_i = V_i M^{-1} V_i'`` and ``a = M^{-1} V'(h * W')`` (``W' = dW / d eta``),

    dD/dp = sum_i [ -2 dl_i/dp - h_i d(l''_i)/dp + (V a)_i d(l'_i)/dp ] ,

the first two terms the explicit dependence (the modes' drops out by stationarity) and the
third the change of the modes, ``M du/dp = V' d(l')/dp``, in ``log|M|``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .laplace_gradient import LaplaceGradient
from .workspace import FAILED_OBJECTIVE, PLSWorkspace
from .zmap import RandomEffectsMap

__all__ = ["LaplaceWorkspace", "Modes"]


@dataclass
class Modes:
    """Conditional modes at one parameter vector: ``u``, ``eta``, the per-observation
    log-densities ``l`` and derivatives ``l1``, ``l2`` in ``eta``, and ``logdet = log|M|``."""
    u: np.ndarray
    eta: np.ndarray
    l: np.ndarray
    l1: np.ndarray
    l2: np.ndarray
    logdet: float
    iterations: int
    converged: bool

    @property
    def deviance(self) -> float:
        """``-2 sum l + u'u + log|M|``."""
        return float(-2.0 * np.sum(self.l) + self.u @ self.u + self.logdet)


class _Observed:
    """A duck-typed family for :class:`LaplaceGradient`: the observed weights ``W = -l''``,
    ``W' = -l'''`` and the score ``l'`` of the last modes."""

    def __init__(self):
        self.W = self.dW = self.s = None

    def working_derivatives(self, y, eta, mu, w):
        return self.W, self.dW, self.s, self.W


class LaplaceWorkspace:
    """Modes, Laplace deviance and its gradient for one design and conditional likelihood.

    Parameters
    ----------
    X : (n, p) fixed effects of the conditional model.
    blocks : list of ``(codes, Xk, n_levels)`` per random-effects term (as :class:`PLSWorkspace`).
    lik : the conditional likelihood, duck-typed: ``n_extra``; ``state(extra)``;
        ``derivs(eta, state) -> (l, l1, l2)`` (per observation, prior weights applied);
        ``loglik(eta, state)`` (``eta`` of shape (n,) or (k, n)); ``third(eta, state) -> l'''``;
        ``extra_partials(eta, extra) -> (dl/dp, dl'/dp, dl''/dp)``, each (n, n_extra).
    offset : (n,) or None.  structures : per term, a covariance structure (default unstructured).
    """

    def __init__(self, X, blocks, lik, offset=None, structures=None):
        self.X = np.asarray(X, float)
        self.n, self.p = self.X.shape
        self.lik = lik
        self.offset = np.zeros(self.n) if offset is None else np.asarray(offset, float)
        self.blocks = [(np.asarray(c), np.asarray(Xk, float), int(nl)) for c, Xk, nl in blocks]
        self.ws = PLSWorkspace(self.X, np.zeros(self.n), self.blocks, weights=np.ones(self.n), reml=False,
                               structures=structures)
        self.layout = self.ws.layout
        self.zmap = RandomEffectsMap(self.blocks, self.layout)
        self.k = self.layout.n_theta
        self.u = np.zeros(self.zmap.q)
        self._grad = None
        self._obs = _Observed()
        self._u_best, self._best_deviance = None, np.inf
        # one term: its levels' modes are separate problems (step halving per level)
        if len(self.blocks) == 1:
            codes, Xk, nl = self.blocks[0]
            self._groups = (codes, np.repeat(np.arange(nl), Xk.shape[1]), nl)
        else:
            self._groups = None

    def split(self, x):
        """``(theta, beta, extra)`` from the outer vector."""
        x = np.asarray(x, float)
        k, p = self.k, self.p
        return x[:k], x[k:k + p], x[k + p:]

    # ----------------------------------------------------------------- modes
    def modes(self, x, u0=None, utol: float = 1e-10, maxit: int = 200, maxhalf: int = 30,
              u0_alt=None) -> Modes | None:
        """Conditional modes at ``x`` (Newton, see the module docstring), from ``u0`` (default: the
        last modes).  None when the log-density is not finite at the start or the observed
        information at the modes is not positive definite (no Laplace approximation there).
        Floating-point warnings are silenced: an optimizer's trial points may overflow, and
        give ``None`` or a non-finite deviance, which the optimizer treats as a failed point.
        ``u0_alt``: a second start (a first-order prediction of the modes); Newton starts from
        whichever of the two has the larger ``sum l - u'u / 2``."""
        with np.errstate(all="ignore"):
            return self._modes(x, u0, utol, maxit, maxhalf, u0_alt)

    def _modes(self, x, u0, utol, maxit, maxhalf, u0_alt=None):
        theta, beta, extra = self.split(x)
        lik = self.lik
        state = lik.state(extra)
        zb = self.zmap.zb_map(theta)
        fixed = self.X @ beta + self.offset
        u, eta, (l, l1, l2), obj = self._start(
            [(self.u if u0 is None else np.asarray(u0, float)), u0_alt, self._u_best], fixed, zb, state)
        if not np.isfinite(obj):
            u = np.zeros_like(u)
            eta = fixed.copy()
            l, l1, l2 = lik.derivs(eta, state)
            obj = float(np.sum(l))
            if not np.isfinite(obj):
                return None
        converged, it = False, 0
        for it in range(1, maxit + 1):
            # Newton's step with the observed information where I + V'WV is positive definite
            # (quadratic convergence), else with W clipped at 0 (an ascent direction regardless)
            Wp = -l2
            self.ws.reweight_zz(Wp)
            if np.any(Wp < 0) and not self.ws.factor_z(theta):
                Wp = np.maximum(Wp, 0.0)
                self.ws.reweight_zz(Wp)
            if not self.ws.factor_z(theta):
                return None
            u_new = self.ws.solve_u(self.zmap.zt_times(Wp * (eta - fixed) + l1))
            if self._groups is not None:
                accepted, u_t, eta_t, l_t, l1_t, l2_t, obj_t = self._groupwise_step(
                    u, u_new, l, fixed, zb, state, maxhalf)
            else:
                step, accepted = 1.0, False
                for _ in range(maxhalf):
                    u_t = u + step * (u_new - u)
                    eta_t = fixed + zb(u_t)
                    l_t, l1_t, l2_t = lik.derivs(eta_t, state)
                    obj_t = float(np.sum(l_t) - 0.5 * u_t @ u_t)
                    if np.isfinite(obj_t) and obj_t >= obj - 1e-13 * abs(obj):
                        accepted = True
                        break
                    step *= 0.5
            if not accepted:           # no ascent along Newton's direction: at the mode within rounding
                converged = bool(np.all(np.isfinite(u_new)))
                break
            du = float(np.max(np.abs(u_t - u), initial=0.0))
            u, eta, l, l1, l2, obj = u_t, eta_t, l_t, l1_t, l2_t, obj_t
            if du <= utol * (1.0 + float(np.max(np.abs(u), initial=0.0))):
                converged = True
                break
        self.ws.reweight_zz(-l2)            # log|M| at the observed information
        if not converged or not self.ws.factor_z(theta) or not np.isfinite(self.ws.logdet_Z):
            return None
        self.u = u
        modes = Modes(u, eta, l, l1, l2, float(self.ws.logdet_Z), it, converged)
        if np.isfinite(modes.deviance) and modes.deviance < self._best_deviance:
            self._best_deviance, self._u_best = modes.deviance, u.copy()
        return modes

    def _start(self, candidates, fixed, zb, state):
        """The start of Newton's iteration: the best of the candidate vectors (the last modes, a
        first-order prediction, the modes at the lowest deviance seen so far) and zero.  With one
        random-effect term each level takes its own best candidate: the modes are path dependent
        when a level's conditional density is multimodal (a far trial point can move a level into
        another basin, where later Newton searches would stay)."""
        cands, seen = [], []
        for c in candidates + [np.zeros(self.zmap.q)]:
            if c is None or any(c is s_ or np.array_equal(c, s_) for s_ in seen):
                continue
            seen.append(c)
            c = np.array(c, float)
            eta = fixed + zb(c)
            d = self.lik.derivs(eta, state)
            cands.append((c, eta, d, float(np.sum(d[0]) - 0.5 * c @ c)))
        if self._groups is not None and len(cands) > 1:
            codes, ugrp, nl = self._groups
            H = np.array([self._group_objective(d[0], c) for c, _, d, _ in cands])
            H[~np.isfinite(H)] = -np.inf
            pick = np.argmax(H, axis=0)
            if np.any(pick != pick[0]):
                u = np.stack([c for c, _, _, _ in cands])[pick[ugrp], np.arange(self.zmap.q)]
                eta = fixed + zb(u)
                d = self.lik.derivs(eta, state)
                return u, eta, d, float(np.sum(d[0]) - 0.5 * u @ u)
            c, eta, d, obj = cands[int(pick[0])]
            return c, eta, d, obj
        best = max(cands, key=lambda t: t[3] if np.isfinite(t[3]) else -np.inf)
        return best

    def _group_objective(self, l, u):
        """``sum_{i in g} l_i - |u_g|^2 / 2`` per level of the single term."""
        codes, ugrp, nl = self._groups
        return np.bincount(codes, l, minlength=nl) - 0.5 * np.bincount(ugrp, u * u, minlength=nl)

    def _groupwise_step(self, u, u_new, l, fixed, zb, state, maxhalf):
        """One Newton step for a single random-effect term, whose levels are independent given the
        parameters: each level's step is halved until that level's own objective does not
        decrease (a summed objective lets one level step into another basin of a multimodal
        conditional density, such as the lognormal's, while the others gain more)."""
        codes, ugrp, nl = self._groups
        h = self._group_objective(l, u)
        step = np.ones(nl)
        for _ in range(maxhalf):
            u_t = u + step[ugrp] * (u_new - u)
            eta_t = fixed + zb(u_t)
            l_t, l1_t, l2_t = self.lik.derivs(eta_t, state)
            h_t = self._group_objective(l_t, u_t)
            bad = ~(np.isfinite(h_t) & (h_t >= h - 1e-13 * np.abs(h)))
            if not bad.any():
                break
            step[bad] *= 0.5
        else:
            step[bad] = 0.0                  # these levels are at their mode within rounding
            u_t = u + step[ugrp] * (u_new - u)
            eta_t = fixed + zb(u_t)
            l_t, l1_t, l2_t = self.lik.derivs(eta_t, state)
        obj_t = float(np.sum(l_t) - 0.5 * u_t @ u_t)
        return bool(np.any(step > 0) and np.isfinite(obj_t)), u_t, eta_t, l_t, l1_t, l2_t, obj_t

    def deviance(self, x, u0=None, utol: float = 1e-10) -> float:
        """The Laplace ``-2 log L`` at ``x`` (``FAILED_OBJECTIVE`` where it does not exist)."""
        m = self.modes(x, u0=u0, utol=utol)
        if m is None:
            return FAILED_OBJECTIVE
        val = m.deviance
        return val if np.isfinite(val) else FAILED_OBJECTIVE

    # -------------------------------------------------------------- gradient
    def _engine(self):
        if self._grad is None:
            g = LaplaceGradient(self.X, self.blocks, self.layout, self._obs, np.zeros(self.n), np.ones(self.n))
            self._grad = g if g.feasible else False
        return self._grad or None

    def gradient_available(self) -> bool:
        return self._engine() is not None

    def gradient(self, x, m: Modes, mode_derivatives: bool = False):
        """``dD / dx`` at the modes ``m`` of ``x`` (see the module docstring); None if unavailable.

        With ``mode_derivatives``, ``(gradient, du/dx)``: the modes' first-order change, which
        predicts the next modes for the optimizer's next point (fewer Newton steps)."""
        with np.errstate(all="ignore"):
            out = self._gradient(x, m, mode_derivatives)
        if out is None:
            return None
        g = out[0] if mode_derivatives else out
        if not np.all(np.isfinite(g)):
            return None
        return out

    def _gradient(self, x, m, mode_derivatives=False):
        g = self._engine()
        if g is None:
            return None
        theta, beta, extra = self.split(x)
        state = self.lik.state(extra)
        obs = self._obs
        obs.W, obs.s = -m.l2, m.l1
        obs.dW = -self.lik.third(m.eta, state)
        out = g.gradient_with_leverage(theta, m.u, m.eta, None, mode_derivatives)
        if out is None:
            return None
        grad, lev, Va = out[:3]
        du = out[3] if mode_derivatives else None
        if self.layout.structured:             # derivatives in the entries of each lambda -> parameters
            J = self.layout.tril_jacobian(theta)
            nt = J.shape[0]
            grad = np.concatenate([J.T @ grad[:nt], grad[nt:]])
            if du is not None:
                du = np.hstack([du[:, :nt] @ J, du[:, nt:]])
        if self.lik.n_extra:
            Lx, L1x, L2x = self.lik.extra_partials(m.eta, extra)
            grad = np.concatenate([grad, -2.0 * Lx.sum(axis=0) - lev @ L2x + Va @ L1x])
            if du is not None:                 # M du/dp = V' dl'/dp
                du = np.hstack([du, out[4](L1x)])
        return (grad, du) if mode_derivatives else grad

    # ------------------------------------------------------------ quadrature
    def agq(self, x, m: Modes, nagq: int) -> float:
        """``-2 log L`` by adaptive Gauss-Hermite quadrature with ``nagq`` nodes (one scalar term):
        group ``g``'s integral is approximated by the rule centred at its mode with scale
        ``1 / L_g``, ``L_g^2 = 1 + lambda^2 sum_i W_i z_i^2`` (observed information)."""
        if len(self.blocks) != 1 or self.blocks[0][1].shape[1] != 1:
            raise ValueError("adaptive quadrature (nagq > 1) needs a single scalar random-effect term, "
                             "such as (1 | group)")
        with np.errstate(all="ignore"):
            return self._agq(x, m, nagq)

    def _agq(self, x, m: Modes, nagq: int) -> float:
        theta, beta, extra = self.split(x)
        state = self.lik.state(extra)
        codes, Xk, nl = self.blocks[0]
        lam = float(self.layout.lambdas(theta)[0][0, 0])
        z = lam * Xk[:, 0]
        L2 = 1.0 + np.bincount(codes, -m.l2 * z * z, minlength=nl)
        if np.any(L2 <= 0):
            return FAILED_OBJECTIVE
        s = 1.0 / np.sqrt(L2)
        nodes, logw = _hermite(int(nagq))
        eta_fixed = m.eta - z * m.u[codes]
        ug = m.u[None, :] + (np.sqrt(2.0) * nodes)[:, None] * s[None, :]
        ll = self.lik.loglik(eta_fixed[None, :] + z[None, :] * ug[:, codes], state)     # (nodes, n)
        K = len(nodes)
        index = codes[None, :] + nl * np.arange(K)[:, None]
        lg = np.bincount(index.ravel(), ll.ravel(), minlength=K * nl).reshape(K, nl)
        logs = logw[:, None] + lg - 0.5 * ug * ug - 0.5 * np.log(2 * np.pi)
        top = logs.max(axis=0)
        log_int = top + np.log(np.exp(logs - top).sum(axis=0)) + np.log(np.sqrt(2.0) * s)
        val = float(-2.0 * log_int.sum())
        return val if np.isfinite(val) else FAILED_OBJECTIVE

    # ------------------------------------------------------ after the optimum
    def b_blocks(self, theta, u):
        """Random effects ``b = Lambda u`` per term (n_levels, p_k), at the current factor."""
        self.ws.theta = np.asarray(theta, float).copy()
        return self.ws.b_blocks(u)

    def cond_var_blocks(self):
        """Conditional covariances of ``b`` per term and level at the last modes' factor."""
        return self.ws.cond_var_blocks(scale=1.0)


@lru_cache(maxsize=32)
def _hermite(nagq: int):
    x, wq = np.polynomial.hermite.hermgauss(nagq)
    logw = np.log(wq) + x ** 2
    x.flags.writeable = False
    logw.flags.writeable = False
    return x, logw
