"""Exponential-family distributions for GLMMs.

A family gives, for a response ``y``, mean ``mu``, prior weight ``w`` and dispersion
``phi`` (fixed at 1 for binomial and Poisson):

* ``variance(mu)``: ``V(mu)`` with ``Var(y) = phi V(mu) / w``;
* ``unit_deviance(y, mu)``: ``d(y, mu)``, so the deviance is ``sum w d(y, mu)``;
* ``loglik(y, mu, w, phi)``: the full log-likelihood, all normalizing constants included
  (this is what ``loglik``, AIC and BIC report, on one scale for Laplace and quadrature);
* ``initial_mu(y, w)``: R's ``mustart``;
* ``check_response(y, w)``: a clear error for impossible responses.

Binomial responses are proportions with ``w`` trials (``cbind(s, f)`` gives
``y = s / (s + f)``, ``w = s + f``), as in R.
"""
from __future__ import annotations

import numpy as np
from scipy import special

from .links import Link, get_link

__all__ = ["Family", "Binomial", "Poisson", "Gamma", "InverseGaussian", "Gaussian", "NegativeBinomial",
           "get_family", "ResponseError"]


class ResponseError(ValueError):
    """The response is impossible for the family (negative counts, proportions outside [0, 1]...)."""


def _xlogy_ratio(y, mu):
    """``y log(y / mu)`` with ``0 log 0 = 0``."""
    return special.xlogy(y, y) - special.xlogy(y, mu)


def _closed_form_dispersion(family, y, mu, w, uu: float) -> float:
    """``(sum w d(y, mu) + uu) / n``: the minimizer of ``-2 log f + uu / phi`` when ``-2 log f`` is
    ``n log phi + sum w d / phi`` plus terms free of ``phi`` (gaussian, inverse Gaussian)."""
    n = int(np.count_nonzero(w > 0))
    return float((np.dot(w, family.unit_deviance(y, mu)) + uu) / max(n, 1))


def _newton_log_dispersion(derivs, psi: float, maxit: int = 100) -> float:
    """Root of ``f'(psi) = 0`` for ``derivs(psi) -> (f', f'')``, with ``f'`` negative left of the
    root and positive right of it: Newton steps (at most 2 long), bisection of the bracket found
    so far when a step leaves it or ``f''`` is not positive."""
    lo, hi = -np.inf, np.inf
    for _ in range(maxit):
        d1, d2 = derivs(psi)
        if d1 < 0:
            lo = psi
        elif d1 > 0:
            hi = psi
        else:
            break
        new = psi - d1 / d2 if d2 > 0 else psi + (2.0 if d1 < 0 else -2.0)
        new = min(max(new, psi - 2.0), psi + 2.0)
        if abs(new - psi) <= 1e-12 * max(1.0, abs(psi)):
            psi = new
            break
        if not lo < new < hi:
            new = 0.5 * (lo + hi)
        if abs(new) > 700:
            break
        psi = new
    return float(np.exp(min(psi, 700.0)))


class Family:
    """Base class: ``name`` (R's), default ``link``, whether a dispersion is estimated."""
    name = ""
    default_link = "identity"
    links: tuple[str, ...] = ()
    has_dispersion = True

    def __init__(self, link=None):
        self.link: Link = get_link(link if link is not None else self.default_link)
        if self.links and self.link.name not in self.links:
            raise ValueError(f"link {self.link.name!r} is not available for the {self.name} family; "
                             f"use one of {', '.join(self.links)}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(link={self.link.name!r})"

    # distribution-specific pieces ------------------------------------------
    def variance(self, mu):
        raise NotImplementedError

    def unit_deviance(self, y, mu):
        raise NotImplementedError

    def loglik_terms(self, y, mu, w, phi=1.0):
        """Per-observation log-likelihood contributions (array)."""
        raise NotImplementedError

    def loglik(self, y, mu, w, phi=1.0) -> float:
        """Full log-likelihood, all normalizing constants included."""
        return float(np.sum(self.loglik_terms(y, mu, w, phi)))

    def loglik_kernel_terms(self, y, mu, w, phi=1.0):
        """The ``mu``-dependent part of :meth:`loglik_terms` per observation (``loglik_terms`` minus
        terms free of ``mu``; broadcasts ``mu`` of shape (k, n) against ``y`` and ``w`` of shape (n,)).
        This default returns the full terms."""
        return self.loglik_terms(y, mu, w, phi)

    def initial_mu(self, y, w):
        return np.asarray(y, float).copy()

    def check_response(self, y, w) -> None:
        pass

    def mu_kernel(self, y, mu, w) -> float:
        """The part of ``sum w log f`` that depends on ``mu`` (``-1/2`` the deviance up to a constant).

        PIRLS compares penalized deviances at the same ``y``, so this cheaper kernel suffices.
        """
        return -0.5 * float(np.sum(w * self.unit_deviance(y, mu)))

    def sample(self, mu, w, phi, rng) -> np.ndarray:
        """One response per row at means ``mu`` (prior weights ``w`` or None, dispersion ``phi``)."""
        raise NotImplementedError(f"simulation for the {self.name} family is not available")

    def latent_variance(self, null_mean, phi):
        """``(sigma2_e, description)``: the residual variance on the latent scale for the ICC and R2
        (``null_mean()`` gives ``exp(b0)`` of the null model where the family needs it)."""
        raise NotImplementedError(
            f"ICC and R2 for the {self.name} family with a {self.link.name} link are not available; "
            "they cover LMMs, binomial (logit, probit, cloglog), and log-link Poisson, negative binomial and Gamma")

    # shared ----------------------------------------------------------------
    def deviance(self, y, mu, w) -> float:
        return float(np.sum(w * self.unit_deviance(y, mu)))

    def irls_weights(self, eta, mu, w):
        """Working weights ``w mu_eta^2 / V(mu)`` and ``mu_eta`` for IRLS."""
        me = self.link.mu_eta(eta)
        return w * me * me / self.variance(mu), me

    def variance_deriv(self, mu):
        """``dV / dmu``."""
        raise NotImplementedError

    def working_derivatives(self, y, eta, mu, w):
        """What the analytic gradient of the Laplace deviance needs, per observation.

        Returns ``(W, dW, s, W_obs)``: the IRLS (Fisher) weights ``W = w mu_eta^2 / V``, their
        derivative ``dW / d eta``, the score ``s = w (y - mu) mu_eta / V`` (``d log f / d eta``
        times ``phi``) and the observed information ``W_obs = -ds / d eta``
        ``= W - w (y - mu) (mu_eta' / V - mu_eta^2 V' / V^2)`` (equal to ``W`` for canonical links).
        """
        me, me2 = self.link.mu_eta(eta), self.link.mu_eta_deriv(eta)
        V, dV = self.variance(mu), self.variance_deriv(mu)
        W = w * me * me / V
        r = w * (y - mu)
        dW = W * (2.0 * me2 / me - me * dV / V)
        return W, dW, r * me / V, W - r * (me2 / V - me * me * dV / (V * V))

    def profile_dispersion(self, y, mu, w, uu: float) -> float:
        """The dispersion minimizing ``-2 log f(y | mu, phi) + uu / phi`` (1 without a dispersion).

        This generic version searches ``log phi`` numerically (Brent); families with a closed
        form or a Newton iteration override it.
        """
        if not self.has_dispersion:
            return 1.0
        from scipy.optimize import minimize_scalar

        def crit(logphi):
            phi = np.exp(logphi)
            return -2 * self.loglik(y, mu, w, phi) + uu / phi
        start = np.log(max(float(np.sum(w * self.unit_deviance(y, mu)) + uu) / len(y), 1e-12))
        res = minimize_scalar(crit, bracket=(start - 1.0, start + 1.0), tol=1e-12)
        return float(np.exp(res.x))


class Binomial(Family):
    """``y`` a proportion of ``w`` trials.  ``V = mu (1 - mu)``;
    ``d = 2 [y log(y/mu) + (1-y) log((1-y)/(1-mu))]``;
    ``log f = log C(w, wy) + wy log mu + w(1-y) log(1-mu)``."""
    name = "binomial"
    default_link = "logit"
    links = ("logit", "probit", "cloglog", "cauchit", "log")
    has_dispersion = False

    def variance(self, mu):
        return mu * (1 - mu)

    def variance_deriv(self, mu):
        return 1 - 2 * mu

    def unit_deviance(self, y, mu):
        return 2 * (_xlogy_ratio(y, mu) + _xlogy_ratio(1 - y, 1 - mu))

    def loglik_terms(self, y, mu, w, phi=1.0):
        k, m = np.round(w * y), np.round(w)
        comb = special.gammaln(m + 1) - special.gammaln(k + 1) - special.gammaln(m - k + 1)
        return comb + special.xlogy(k, mu) + special.xlog1py(m - k, -mu)

    def initial_mu(self, y, w):
        return (w * y + 0.5) / (w + 1)

    def mu_kernel(self, y, mu, w) -> float:
        return float(np.dot(w * y, np.log(mu)) + np.dot(w * (1 - y), np.log1p(-mu)))

    def loglik_kernel_terms(self, y, mu, w, phi=1.0):
        k, m = np.round(w * y), np.round(w)
        return special.xlogy(k, mu) + special.xlog1py(m - k, -mu)

    def check_response(self, y, w) -> None:
        if np.any((y < 0) | (y > 1)):
            raise ResponseError("binomial responses must be 0/1, proportions in [0, 1] with weights= trials, "
                                "or cbind(successes, failures)")
        k = w * y
        if np.any(np.abs(k - np.round(k)) > 1e-6 * np.maximum(1, np.abs(k))):
            raise ResponseError("binomial: successes (proportion x weights) must be whole numbers; "
                                "give the number of trials as weights= or use cbind(successes, failures)")


    def sample(self, mu, w, phi, rng):
        """Proportions of ``round(w)`` trials (one trial without weights)."""
        trials = np.round(w).astype(int) if w is not None else np.ones(len(mu), int)
        return rng.binomial(trials, mu) / np.maximum(trials, 1)

    def latent_variance(self, null_mean, phi):
        """The link's distribution variance: ``pi^2/3`` (logit), 1 (probit), ``pi^2/6`` (cloglog)."""
        value = {"logit": np.pi ** 2 / 3, "probit": 1.0, "cloglog": np.pi ** 2 / 6}.get(self.link.name)
        if value is None:
            return super().latent_variance(null_mean, phi)
        return value, f"latent scale ({self.link.name}: distribution variance)"

class Poisson(Family):
    """Counts.  ``V = mu``; ``d = 2 [y log(y/mu) - (y - mu)]``; ``log f = y log mu - mu - log y!``."""
    name = "poisson"
    default_link = "log"
    links = ("log", "sqrt", "identity")
    has_dispersion = False

    def variance(self, mu):
        return mu

    def variance_deriv(self, mu):
        return np.ones_like(mu)

    def unit_deviance(self, y, mu):
        return 2 * (_xlogy_ratio(y, mu) - (y - mu))

    def loglik_terms(self, y, mu, w, phi=1.0):
        return w * (special.xlogy(y, mu) - mu - special.gammaln(y + 1))

    def initial_mu(self, y, w):
        return y + 0.1

    def mu_kernel(self, y, mu, w) -> float:
        return float(np.dot(w * y, np.log(mu)) - np.dot(w, mu))

    def loglik_kernel_terms(self, y, mu, w, phi=1.0):
        return w * (special.xlogy(y, mu) - mu)

    def check_response(self, y, w) -> None:
        if np.any(y < 0):
            raise ResponseError(f"poisson responses must be non-negative counts ({int((y < 0).sum())} negative)")
        if np.any(np.abs(y - np.round(y)) > 1e-8):
            raise ResponseError("poisson responses must be whole-number counts")


    def sample(self, mu, w, phi, rng):
        return rng.poisson(mu).astype(float)

    def latent_variance(self, null_mean, phi):
        """``log(1 + 1/lambda)`` (log link; Nakagawa et al.'s log-normal approximation)."""
        if self.link.name != "log":
            return super().latent_variance(null_mean, phi)
        return (float(np.log1p(1.0 / null_mean())),
                "latent scale (log-normal approximation, Nakagawa et al. 2017; null-model intercept)")

class Gamma(Family):
    """Positive reals, shape ``1/phi`` and mean ``mu``.  ``V = mu^2``;
    ``d = 2 [(y - mu)/mu - log(y/mu)]``;
    ``log f = -lgamma(1/phi) - (1/phi) log(mu phi) + (1/phi - 1) log y - y / (mu phi)``."""
    name = "Gamma"
    default_link = "inverse"
    links = ("inverse", "log", "identity")

    def variance(self, mu):
        return mu * mu

    def variance_deriv(self, mu):
        return 2 * mu

    def unit_deviance(self, y, mu):
        return 2 * ((y - mu) / mu - np.log(y / mu))

    def loglik_terms(self, y, mu, w, phi=1.0):
        shape = w / phi
        return shape * np.log(shape * y / mu) - shape * y / mu - np.log(y) - special.gammaln(shape)

    def mu_kernel(self, y, mu, w) -> float:
        return -float(np.dot(w, y / mu + np.log(mu)))

    def loglik_kernel_terms(self, y, mu, w, phi=1.0):
        return -(w / phi) * (np.log(mu) + y / mu)

    def profile_dispersion(self, y, mu, w, uu: float) -> float:
        """Safeguarded Newton iteration on ``log phi`` for ``-2 log f + uu / phi``.

        With ``nu = w / phi`` and ``a = log(y / mu) - y / mu``, the derivatives in ``psi = log phi`` are
        ``f' = 2 sum nu (log nu + 1 + a - digamma(nu)) - uu / phi`` and
        ``f'' = -2 sum nu (log nu + 2 + a - digamma(nu) - nu trigamma(nu)) + uu / phi``; ``f'`` goes from
        negative (``phi -> 0``) to ``2 n`` (``phi -> inf``), and the root is kept bracketed.
        """
        pos = w > 0
        y, mu, w = y[pos], mu[pos], w[pos]
        a = np.log(y / mu) - y / mu
        # the sums group by distinct weight (digamma and trigamma once per weight, not per row)
        wv, inv = np.unique(w, return_inverse=True)
        count, asum = np.bincount(inv).astype(float), np.bincount(inv, a)

        def derivs(psi):
            nu = wv * np.exp(-psi)
            base = np.log(nu) + 1.0 - special.digamma(nu)
            e = uu * np.exp(-psi)
            return (2.0 * float(np.dot(nu, count * base + asum)) - e,
                    -2.0 * float(np.dot(nu, count * (base + 1.0 - nu * special.zeta(2.0, nu)) + asum)) + e)
        return _newton_log_dispersion(derivs, np.log(max((float(np.dot(w, self.unit_deviance(y, mu))) + uu)
                                                         / max(len(y), 1), 1e-300)))

    def check_response(self, y, w) -> None:
        if np.any(y <= 0):
            raise ResponseError(f"Gamma responses must be positive ({int((y <= 0).sum())} values <= 0)")


    def sample(self, mu, w, phi, rng):
        """Shape ``w / phi`` (prior weights multiply the shape, as lme4's simulate), mean ``mu``."""
        shape = (1.0 if w is None else np.asarray(w, float)) / phi
        return rng.gamma(shape, mu / shape)

    def latent_variance(self, null_mean, phi):
        """``log(1 + phi)`` (log link; log-normal approximation)."""
        if self.link.name != "log":
            return super().latent_variance(null_mean, phi)
        return float(np.log1p(phi)), "latent scale (log-normal approximation: log(1 + phi))"

class InverseGaussian(Family):
    """Positive reals.  ``V = mu^3``; ``d = (y - mu)^2 / (mu^2 y)``;
    ``log f = -1/2 log(2 pi phi y^3) - (y - mu)^2 / (2 phi mu^2 y)``."""
    name = "inverse.gaussian"
    default_link = "1/mu^2"
    links = ("1/mu^2", "log", "inverse", "identity")

    def variance(self, mu):
        return mu ** 3

    def variance_deriv(self, mu):
        return 3 * mu * mu

    def unit_deviance(self, y, mu):
        return (y - mu) ** 2 / (mu * mu * y)

    def profile_dispersion(self, y, mu, w, uu: float) -> float:
        """Closed form: ``phi = (sum w d(y, mu) + uu) / n`` (rows with positive weight)."""
        return _closed_form_dispersion(self, y, mu, w, uu)

    def loglik_terms(self, y, mu, w, phi=1.0):
        d = phi / w
        return -0.5 * np.log(2 * np.pi * d * y ** 3) - (y - mu) ** 2 / (2 * d * mu * mu * y)

    def check_response(self, y, w) -> None:
        if np.any(y <= 0):
            raise ResponseError(f"inverse Gaussian responses must be positive ({int((y <= 0).sum())} values <= 0)")


    def sample(self, mu, w, phi, rng):
        """Inverse Gaussian with mean ``mu`` and shape ``w / phi`` (prior weights as in lme4)."""
        return rng.wald(mu, (1.0 if w is None else np.asarray(w, float)) / phi)

class Gaussian(Family):
    """Normal errors with a (possibly non-identity) link.  ``V = 1``; ``d = (y - mu)^2``;
    ``log f = -1/2 log(2 pi phi / w) - w (y - mu)^2 / (2 phi)``."""
    name = "gaussian"
    default_link = "identity"
    links = ("identity", "log", "inverse")

    def variance(self, mu):
        return np.ones_like(mu)

    def variance_deriv(self, mu):
        return np.zeros_like(mu)

    def unit_deviance(self, y, mu):
        return (y - mu) ** 2

    def loglik_terms(self, y, mu, w, phi=1.0):
        return -0.5 * np.log(2 * np.pi * phi / w) - w * (y - mu) ** 2 / (2 * phi)

    def profile_dispersion(self, y, mu, w, uu: float) -> float:
        """Closed form: ``phi = (sum w (y - mu)^2 + uu) / n`` (rows with positive weight)."""
        return _closed_form_dispersion(self, y, mu, w, uu)


    def sample(self, mu, w, phi, rng):
        """Normal with mean ``mu`` and variance ``phi / w``."""
        return mu + np.sqrt(phi / (1.0 if w is None else np.asarray(w, float))) * rng.standard_normal(len(mu))

class NegativeBinomial(Family):
    """Counts with ``V = mu + mu^2 / theta`` (``theta`` the shape, estimated by ``glmer(family="negbin")``);
    ``d = 2 [y log(y/mu) - (y + theta) log((y + theta)/(mu + theta))]``;
    ``log f = lgamma(y + theta) - lgamma(theta) - log y! + theta log(theta/(theta + mu)) + y log(mu/(theta + mu))``."""
    name = "negative.binomial"
    default_link = "log"
    links = ("log", "sqrt", "identity")
    has_dispersion = False

    def __init__(self, theta: float = 1.0, link=None, estimated: bool = False):
        super().__init__(link)
        if not theta > 0:
            raise ValueError("the negative binomial shape theta must be positive")
        self.theta = float(theta)
        self.estimated = estimated      # True when theta was estimated (one more parameter)

    def __repr__(self) -> str:
        return f"NegativeBinomial(theta={self.theta:g}, link={self.link.name!r})"

    def variance(self, mu):
        return mu + mu * mu / self.theta

    def variance_deriv(self, mu):
        return 1 + 2 * mu / self.theta

    def unit_deviance(self, y, mu):
        t = self.theta
        return 2 * (_xlogy_ratio(y, mu) - (y + t) * np.log((y + t) / (mu + t)))

    def loglik_terms(self, y, mu, w, phi=1.0):
        t = self.theta
        ll = (special.gammaln(y + t) - special.gammaln(t) - special.gammaln(y + 1)
              + t * np.log(t / (t + mu)) + special.xlogy(y, mu / (t + mu)))
        return w * ll

    def initial_mu(self, y, w):
        return y + 1.0 / 6.0

    def check_response(self, y, w) -> None:
        Poisson.check_response(self, y, w)


    def sample(self, mu, w, phi, rng):
        t = self.theta
        return rng.negative_binomial(t, t / (t + mu)).astype(float)

    def latent_variance(self, null_mean, phi):
        """``log(1 + 1/lambda + 1/theta)`` (log link; log-normal approximation)."""
        if self.link.name != "log":
            return super().latent_variance(null_mean, phi)
        return (float(np.log1p(1.0 / null_mean() + 1.0 / self.theta)),
                "latent scale (log-normal approximation, Nakagawa et al. 2017; null-model intercept)")

_FAMILIES = {"binomial": Binomial, "poisson": Poisson, "gamma": Gamma, "Gamma": Gamma,
             "inverse_gaussian": InverseGaussian, "inverse.gaussian": InverseGaussian,
             "gaussian": Gaussian, "negbin": NegativeBinomial, "negative_binomial": NegativeBinomial,
             "negative.binomial": NegativeBinomial}


def get_family(family, link=None) -> Family:
    """A Family from a name (``"binomial"``, ``"poisson"``, ``"gamma"``, ``"inverse_gaussian"``,
    ``"gaussian"``, ``"negbin"``) and optional link name, or a Family instance."""
    if isinstance(family, Family):
        if link is not None and get_link(link) != family.link:
            raise ValueError("give the link inside the family object or as link=, not both")
        return family
    if isinstance(family, str):
        key = family.strip()
        parts = key.split()
        if len(parts) == 2 and link is None:     # "Gamma log" as in the reference files
            key, link = parts
        cls = _FAMILIES.get(key) or _FAMILIES.get(key.lower())
        if cls is not None:
            return cls(link=link)
    raise ValueError(f"unknown family {family!r}; choose one of binomial, poisson, gamma, inverse_gaussian, "
                     "gaussian, negbin")
