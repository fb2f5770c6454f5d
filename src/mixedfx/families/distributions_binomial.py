"""Binomial-type response distributions (glmmTMB-style): ``y`` is a proportion of ``w`` trials.

See :mod:`mixedfx.families.distributions_counts` for the conventions shared by every distribution.
"""
from __future__ import annotations

import numpy as np
from scipy import special

from .distributions_counts import Distribution, _f, _lchoose, _raise_rows, _successes
from .specfun import betaln as _betaln
from .specfun import psi_diffs
from .specfun import stack as _stack

__all__ = ["Binomial", "BetaBinomial"]

_LATENT = {"logit": np.pi ** 2 / 3, "probit": 1.0, "cloglog": np.pi ** 2 / 6}


class _BinomialBase(Distribution):
    default_link = "logit"
    links = ("logit", "probit", "cloglog", "cauchit")
    binomial_type = True
    zero_mass = True

    def initial_mu(self, y, w):
        y, w = _f(y), _f(w)
        return (w * y + 0.5) / (w + 1.0)

    def _draw(self, w, p, rng):
        w, p = np.broadcast_arrays(_f(w), _f(p))
        n = np.round(w).astype(np.int64)
        k = rng.binomial(n, p).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, k / np.maximum(n, 1), 0.0)

    def check_response(self, y, w) -> None:
        super().check_response(y, w)
        y = _f(y)
        w = np.broadcast_to(_f(w), y.shape)
        bad = (y < 0) | (y > 1)
        if bad.any():
            _raise_rows(self.name, "responses must be proportions in [0, 1]", bad, y,
                        "give 0/1 outcomes, proportions with the number of trials as weights, "
                        "or cbind(successes, failures)")
        bad = np.abs(w - np.round(w)) > 1e-8 * np.maximum(1.0, w)
        if bad.any():
            _raise_rows(self.name, "the weights are the numbers of trials and must be whole numbers", bad, w,
                        "give the number of trials as weights, or use cbind(successes, failures)")
        k = w * y
        bad = np.abs(k - np.round(k)) > 1e-6 * np.maximum(1.0, k)
        if bad.any():
            _raise_rows(self.name, "successes (proportion x trials) must be whole numbers", bad, y,
                        "give the number of trials as weights, or use cbind(successes, failures)")


class Binomial(_BinomialBase):
    r"""Binomial: ``y`` the proportion of successes :math:`k = wy` in ``w`` trials.

    .. math:: \log f(y) = \log\binom{w}{k} + k \log\mu + (w - k)\log(1-\mu)

    Mean :math:`\mu`, variance (of the proportion) :math:`\mu(1-\mu)/w`; no dispersion;
    :math:`\log P(0) = w \log(1-\mu)`.
    """
    name = "binomial"
    has_dispersion = False

    def latent_variance(self, link, null_mean, phi, psi):
        """The link's distribution variance: ``pi^2/3`` (logit), 1 (probit), ``pi^2/6`` (cloglog)."""
        if link not in _LATENT:
            raise NotImplementedError(f"the latent-scale variance of the binomial family with a {link} link is not "
                                      "defined here")
        return _LATENT[link], f"latent scale ({link}: distribution variance)"

    def logpdf(self, y, mu, phi, psi, w):
        y, mu, w = _f(y), _f(mu), _f(w)
        k = _successes(y, w)
        return _lchoose(w, k) + special.xlogy(k, mu) + special.xlog1py(w - k, -mu)

    def dlogpdf_dmu(self, y, mu, phi, psi, w):
        y, mu, w = _f(y), _f(mu), _f(w)
        k = w * y
        m1 = 1.0 - mu
        return (k - w * mu) / (mu * m1), -k / (mu * mu) - (w - k) / (m1 * m1)

    def logp0(self, mu, phi, psi, w):
        mu, w = np.broadcast_arrays(_f(mu), _f(w))
        return w * np.log1p(-mu), -w / (1.0 - mu), -w / (1.0 - mu) ** 2

    def variance(self, mu, phi, psi, w=1.0):
        mu = _f(mu)
        return mu * (1.0 - mu) / _f(w)

    def sample(self, mu, phi, psi, w, rng):
        return self._draw(w, mu, rng)


class BetaBinomial(_BinomialBase):
    r"""Beta-binomial (glmmTMB ``betabinomial``): :math:`k = wy` successes of ``w`` trials with success
    probability :math:`p \sim \mathrm{Beta}(a, b)`, :math:`a = \mu\phi`, :math:`b = (1-\mu)\phi`.

    .. math:: \log f(y) = \log\binom{w}{k} + \log B(k + a, w - k + b) - \log B(a, b)

    Mean :math:`\mu`; variance of the proportion :math:`\mu(1-\mu)(w + \phi) / (w (1 + \phi))`
    (binomial as :math:`\phi \to \infty`); :math:`\log P(0) = \log B(a, w + b) - \log B(a, b)`.
    """
    name = "betabinomial"

    def logpdf(self, y, mu, phi, psi, w):
        y, mu, phi, w = _f(y), _f(mu), _f(phi), _f(w)
        k, a, b = _successes(y, w), mu * phi, (1.0 - mu) * phi
        x = _stack(k + a, a)
        bl = _betaln(x, _stack(w - k + b, b))
        return _lchoose(w, k) + bl[0] - bl[1]

    def dlogpdf_dmu(self, y, mu, phi, psi, w):
        y, mu, phi, w = _f(y), _f(mu), _f(phi), _f(w)
        k, a, b = _successes(y, w), mu * phi, (1.0 - mu) * phi
        # psi(k + a) - psi(a) = [psi(1 + a + (k - 1)) - psi(1 + a)] + 1/a for k > 0 (as in NBinom1; phi/a = 1/mu)
        f = w - k
        shift = _stack(np.where(k > 0, k - 1.0, 0.0), np.where(f > 0, f - 1.0, 0.0))
        g1, g2 = psi_diffs(_stack(1.0 + a, 1.0 + b), shift)
        ia, ib = np.where(k > 0, 1.0 / mu, 0.0), np.where(f > 0, 1.0 / (1.0 - mu), 0.0)
        d1 = phi * (g1[0] - g1[1]) + (ia - ib)
        d2 = phi * (phi * (g2[0] + g2[1])) - (ia * ia + ib * ib)
        return d1, d2

    def logp0(self, mu, phi, psi, w):
        mu, phi, w = np.broadcast_arrays(_f(mu), _f(phi), _f(w))
        a, b = mu * phi, (1.0 - mu) * phi
        bl = _betaln(_stack(a, a), _stack(w + b, b))
        g1, g2 = psi_diffs(1.0 + b, np.where(w > 0, w - 1.0, 0.0))      # as in dlogpdf_dmu
        ib = np.where(w > 0, 1.0 / (1.0 - mu), 0.0)
        return bl[0] - bl[1], -phi * g1 - ib, phi * (phi * g2) - ib * ib

    def variance(self, mu, phi, psi, w=1.0):
        mu, phi, w = _f(mu), _f(phi), _f(w)
        return mu * (1.0 - mu) * (w + phi) / (w * (1.0 + phi))

    def sample(self, mu, phi, psi, w, rng):
        mu, phi = np.broadcast_arrays(_f(mu), _f(phi))
        return self._draw(w, rng.beta(mu * phi, (1.0 - mu) * phi), rng)

    def initial_log_phi(self, y, mu, w):
        """Moments on rows with more than one trial: the intra-class correlation
        ``rho = 1 / (1 + phi) = sum (w (y - mu)^2 / (mu (1 - mu)) - 1) / sum (w - 1)``, clipped to
        [0.005, 0.9]; ``phi = 10`` without such rows."""
        y, mu, w = np.broadcast_arrays(_f(y), _f(mu), _f(w))
        many = w > 1
        if not many.any():
            return float(np.log(10.0))
        y, mu, w = y[many], mu[many], w[many]
        rho = np.sum(w * (y - mu) ** 2 / (mu * (1.0 - mu)) - 1.0) / np.sum(w - 1.0)
        rho = min(max(float(rho), 0.005), 0.9) if np.isfinite(rho) else 0.1
        return float(np.log(1.0 / rho - 1.0))
