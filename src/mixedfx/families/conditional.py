"""The conditional log-density of a glmmTMB-style model, as a function of the linear predictor.

A :class:`ConditionalLikelihood` combines a response distribution
(:mod:`mixedfx.families.distributions`), its link, and optionally

* zero inflation: ``P(y = 0) = p + (1 - p) f(0)``, ``P(y) = (1 - p) f(y)`` for ``y > 0``;
* a hurdle (a truncated distribution with ``zi=``): ``P(0) = p``,
  ``P(y) = (1 - p) f(y) / (1 - f(0))`` for ``y > 0`` (without ``zi=``: zero-truncated);
* a dispersion model: ``log phi_i = x_d,i' beta_d`` (for gaussian, t and lognormal ``phi`` is the
  scale ``sigma``; glmmTMB 1.1.5 models the gaussian log variance instead);

with ``p_i = logit^{-1}(x_zi,i' beta_zi)``.  For ``eta`` the conditional linear predictor it gives
``l_i(eta_i)`` and its first two derivatives (what the Newton steps on the random effects need)
and, for the gradient of the Laplace deviance, the third derivative and the derivatives of
``l, l', l''`` in every other parameter.  With ``a = log f(0 | mu)`` and
``r = (1 - p) e^a / (p + (1 - p) e^a)`` the posterior probability that a zero is not structural,
a zero under zero inflation has ``l = log(p + (1 - p) e^a)``, ``l' = r a'`` and
``l'' = r a'' + r (1 - r) a'^2``; a positive count of a hurdle model has
``l = log(1 - p) + log f(y) - T``, ``T = log(1 - e^{a})``, ``T' = -q a'``,
``T'' = -(q a'' + q (1 + q) a'^2)``, ``q = e^a / (1 - e^a)``.  The derivatives in the
parameters other than ``eta`` are central differences in the per-observation zero-inflation and
dispersion predictors and in the family parameters (step ``1e-5``; error ``~1e-10``), the third
derivative in ``eta`` a central difference of the analytic second.

The outer parameter vector of the model is ``(beta_zi, beta_d, psi)`` after ``(theta, beta)``;
``psi`` holds the family parameters that are estimated (internal scale, e.g. ``log df``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import special

__all__ = ["ConditionalLikelihood"]

_H = 1e-5


@dataclass
class _State:
    zeta: np.ndarray | None       # zero-inflation / hurdle linear predictor per row (None without zi)
    phi: np.ndarray | float       # dispersion per row (1 without one)
    psi: np.ndarray               # family parameters (internal scale), free and fixed together
    #: the distribution's mu-free log-density part at these parameters (``logpdf_free``), once computed
    free: np.ndarray | None = field(default=None, repr=False)


class ConditionalLikelihood:
    """Per-observation log-density in ``eta`` (see the module docstring).

    Parameters
    ----------
    dist : a distribution (``logpdf``, ``dlogpdf_dmu``, ``logp0``, ``psi_names``, ``fixed_psi``...).
    link : a :class:`mixedfx.families.links.Link`.
    y : (n,) response (proportions for binomial-type distributions).
    w : (n,) trials for binomial-type distributions, else prior weights multiplying ``log f``.
    zi_X, zi_offset : the zero-inflation design (n, p_zi) or None.
    disp_X, disp_offset : the dispersion design (n, p_d); None gives an intercept when the
        distribution has a dispersion.
    hurdle : the distribution is truncated at zero (``zi_X`` then gives ``P(y = 0)``).
    """

    def __init__(self, dist, link, y, w=None, zi_X=None, zi_offset=None, disp_X=None, disp_offset=None,
                 hurdle: bool = False):
        self.dist, self.link = dist, link
        self.y = np.asarray(y, float)
        n = len(self.y)
        w = np.ones(n) if w is None else np.asarray(w, float)
        self.binomial_type = bool(getattr(dist, "binomial_type", False))
        self.trials = w if self.binomial_type else np.ones(n)
        self.pw = np.ones(n) if self.binomial_type else w
        self.zero = self.y == 0
        self.hurdle = bool(hurdle)
        self.zi_X = None if zi_X is None else np.asarray(zi_X, float)
        self.zi_offset = np.zeros(n) if zi_offset is None else np.asarray(zi_offset, float)
        if dist.has_dispersion and disp_X is None:
            disp_X = np.ones((n, 1))
        self.disp_X = None if disp_X is None or not dist.has_dispersion else np.asarray(disp_X, float)
        self.disp_offset = np.zeros(n) if disp_offset is None else np.asarray(disp_offset, float)
        self.fixed_psi = dist.fixed_psi()
        self.n_psi = 0 if self.fixed_psi is not None else len(dist.psi_names)
        self.n_zi = 0 if self.zi_X is None else self.zi_X.shape[1]
        self.n_disp = 0 if self.disp_X is None else self.disp_X.shape[1]
        self.n_extra = self.n_zi + self.n_disp + self.n_psi
        self._last_state = None

    # ------------------------------------------------------------ parameters
    def split(self, extra):
        """``(beta_zi, beta_d, psi_free)`` from the extra parameter vector."""
        extra = np.asarray(extra, float)
        a, b = self.n_zi, self.n_zi + self.n_disp
        return extra[:a], extra[a:b], extra[b:]

    def _psi(self, psi_free):
        # a copy: a state outlives the caller's parameter vector, which may be changed in place
        return np.array(self.fixed_psi if self.fixed_psi is not None else psi_free, float)

    def state(self, extra) -> _State:
        """The per-row parameters at ``extra`` (the same object for the same ``extra`` as the last call,
        so parts computed once per parameter value, such as Tweedie's series, are reused)."""
        extra = np.asarray(extra, float)
        last = self._last_state
        if last is not None and last[0].shape == extra.shape and np.array_equal(last[0], extra):
            return last[1]
        st = self._new_state(extra)
        self._last_state = (extra.copy(), st)
        return st

    def _new_state(self, extra) -> _State:
        bzi, bd, psi = self.split(extra)
        zeta = None if self.zi_X is None else self.zi_X @ bzi + self.zi_offset
        phi = 1.0 if self.disp_X is None else np.exp(self.disp_X @ bd + self.disp_offset)
        return _State(zeta, phi, self._psi(psi))

    # ---------------------------------------------------------- log-densities
    def _mu_chain(self, eta):
        mu = self.link.inverse(eta)
        return mu, self.link.mu_eta(eta), self.link.mu_eta_deriv(eta)

    def _base(self, eta, st: _State):
        """``log f(y | mu(eta))`` without prior weights, and its eta-derivatives."""
        mu, m1, m2 = self._mu_chain(eta)
        d = self.dist
        if hasattr(d, "logpdf_derivs"):          # one pass where the distribution shares the work
            f, f1, f2 = d.logpdf_derivs(self.y, mu, st.phi, st.psi, self.trials)
        elif hasattr(d, "logpdf_free"):          # an expensive mu-free part (Tweedie's series): once per state
            if st.free is None:
                st.free = d.logpdf_free(self.y, st.phi, st.psi, self.trials)
            f = d.logpdf_mu(self.y, mu, st.phi, st.psi, self.trials) + st.free
            f1, f2 = d.dlogpdf_dmu(self.y, mu, st.phi, st.psi, self.trials)
        else:
            f = d.logpdf(self.y, mu, st.phi, st.psi, self.trials)
            f1, f2 = d.dlogpdf_dmu(self.y, mu, st.phi, st.psi, self.trials)
        return f, f1 * m1, f2 * m1 * m1 + f1 * m2, (mu, m1, m2)

    def _zero(self, chain, st: _State):
        """``a = log f(0 | mu)`` and its eta-derivatives."""
        mu, m1, m2 = chain
        a, d1, d2 = self.dist.logp0(mu, st.phi, st.psi, self.trials)
        return a, d1 * m1, d2 * m1 * m1 + d1 * m2

    def derivs(self, eta, st: _State):
        """``(l, l', l'')`` per observation (prior weights applied)."""
        f, f1, f2, chain = self._base(eta, st)
        if st.zeta is None and not self.hurdle:
            return self.pw * f, self.pw * f1, self.pw * f2
        z = self.zero
        if self.hurdle:
            a, a1, a2 = self._zero(chain, st)
            ea = np.exp(a)
            T = np.log(-np.expm1(a))
            q = ea / -np.expm1(a)
            l = f - T
            l1 = f1 + q * a1
            l2 = f2 + q * a2 + q * (1.0 + q) * a1 * a1
            if st.zeta is not None:
                l = np.where(z, special.log_expit(st.zeta), l + special.log_expit(-st.zeta))
                l1 = np.where(z, 0.0, l1)
                l2 = np.where(z, 0.0, l2)
            return self.pw * l, self.pw * l1, self.pw * l2
        logp, log1mp = special.log_expit(st.zeta), special.log_expit(-st.zeta)
        a, a1, a2 = self._zero(chain, st)
        lz = np.logaddexp(logp, log1mp + a)
        r = np.exp(log1mp + a - lz)
        l = np.where(z, lz, log1mp + f)
        l1 = np.where(z, r * a1, f1)
        l2 = np.where(z, r * a2 + r * (1.0 - r) * a1 * a1, f2)
        return self.pw * l, self.pw * l1, self.pw * l2

    def loglik(self, eta, st: _State):
        """``l`` per observation; ``eta`` of shape (n,) or (k, n)."""
        eta = np.asarray(eta, float)
        if eta.ndim == 1:
            return self.derivs(eta, st)[0]
        return np.stack([self.derivs(e, st)[0] for e in eta])

    def third(self, eta, st: _State):
        """``l'''`` per observation (central difference of ``l''``)."""
        h = _H * (1.0 + np.abs(eta))
        return (self.derivs(eta + h, st)[2] - self.derivs(eta - h, st)[2]) / (2.0 * h)

    def _zeta_partials(self, eta, st: _State):
        """``(dl, dl', dl'')/d zeta`` analytically (``p = expit(zeta)``, ``dp/dzeta = p (1 - p)``).

        Zero inflation: a zero has ``dl = (1 - r) - p``, ``dr = -r (1 - r)``, so
        ``dl' = -r (1 - r) a'`` and ``dl'' = -r (1 - r) (a'' + (1 - 2 r) a'^2)``; a positive count
        ``dl = -p``.  Hurdle: a zero ``dl = 1 - p``, a positive count ``-p``; ``l'``, ``l''`` do not
        depend on zeta.  (Without prior weights.)"""
        p = special.expit(st.zeta)
        z = self.zero
        zeros = np.zeros_like(p)
        if self.hurdle:
            return np.where(z, 1.0 - p, -p), zeros, zeros
        a, a1, a2 = self._zero(self._mu_chain(eta), st)
        lz = np.logaddexp(special.log_expit(st.zeta), special.log_expit(-st.zeta) + a)
        r = np.exp(special.log_expit(-st.zeta) + a - lz)
        rr = r * (1.0 - r)
        return (np.where(z, (1.0 - r) - p, -p), np.where(z, -rr * a1, 0.0),
                np.where(z, -rr * (a2 + (1.0 - 2.0 * r) * a1 * a1), 0.0))

    def extra_partials(self, eta, extra):
        """``(dl/dp, dl'/dp, dl''/dp)`` for each extra parameter ``p``, each (n, n_extra)."""
        extra = np.asarray(extra, float)
        st = self.state(extra)
        cols = ([], [], [])

        def add(plus, minus, h, X=None):
            for c, (a, b) in enumerate(zip(plus, minus)):
                d = (a - b) / (2.0 * h)
                if X is None:
                    cols[c].append(d[:, None])
                else:
                    cols[c].append(d[:, None] * X)
        if self.n_zi:
            for c, d in enumerate(self._zeta_partials(eta, st)):
                cols[c].append((self.pw * d)[:, None] * self.zi_X)
        if self.n_disp:
            plus = self.derivs(eta, _State(st.zeta, st.phi * np.exp(_H), st.psi))
            minus = self.derivs(eta, _State(st.zeta, st.phi * np.exp(-_H), st.psi))
            add(plus, minus, _H, self.disp_X)
        for j in range(self.n_psi):
            e = np.zeros(len(st.psi))
            e[j] = _H
            plus = self.derivs(eta, _State(st.zeta, st.phi, st.psi + e))
            minus = self.derivs(eta, _State(st.zeta, st.phi, st.psi - e))
            add(plus, minus, _H)
        return tuple(np.hstack(c) for c in cols)
