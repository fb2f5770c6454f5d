"""Response distributions (glmmTMB-style): the shared base class and the discrete families.

Every method is vectorized over observations: ``y``, ``mu`` and ``w`` are arrays of shape (n,),
``phi`` a scalar or an (n,) array, ``psi`` a 1-D array of the family's extra parameters (empty
for most). ``w`` is the number of trials for binomial-type families (``y`` a proportion) and a
prior weight multiplying the log density for all others.

Parameterisations follow glmmTMB (``src/glmmTMB.cpp``, the ``switch (family)`` of the observation
likelihood; ``R/family.R`` for the variance functions), with ``phi = exp(eta_disp)``.
"""
from __future__ import annotations

import numpy as np
from scipy import special

from .family import ResponseError
from .specfun import betaln as _betaln
from .specfun import lfactorial, trigamma
from .specfun import lgamma_ratio as _lgamma_ratio

__all__ = ["Distribution", "Poisson", "NBinom2", "NBinom1", "GenPois", "Binomial", "BetaBinomial"]


def _f(x):
    return np.asarray(x, dtype=float)


def _weighted(w, *values):
    """``w * v`` for each value, with rows of zero weight contributing exactly 0 (even if ``v`` is infinite)."""
    w = _f(w)
    if w.ndim and np.all(w == 1.0) and all(np.shape(v) == w.shape for v in values):
        out = values                            # unit weights (the common case): nothing to do
    elif np.all(w != 0.0):
        out = tuple(w * v for v in values)
    else:
        with np.errstate(invalid="ignore"):
            out = tuple(np.where(w == 0, 0.0, w * v) for v in values)
    return out if len(out) > 1 else out[0]


def _lchoose(n, k):
    return lfactorial(n) - lfactorial(k) - lfactorial(n - k)


def _successes(y, w):
    """``k = w y`` (successes of ``w`` trials), whole numbers snapped to exact integers (``0.3 * 10`` is
    ``3.0000000000000004`` in floating point)."""
    k = w * y
    kr = np.rint(k)
    return np.where(np.abs(k - kr) <= 1e-9 * kr, kr, k)


def _wmean(v, w):
    w = _f(w)
    sw = float(np.sum(w))
    return float(np.sum(w * v) / sw) if sw > 0 else float(np.mean(v))


def _log_clip(value, lo, hi, fallback):
    """``log`` of a moment estimate clipped to ``[lo, hi]`` (``fallback`` if it is not a positive number)."""
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        value = fallback
    return float(np.log(min(max(value, lo), hi)))


def _raise_rows(name, problem, mask, values, advice):
    """A ResponseError naming the family, the problem, how many rows and the first offending one."""
    idx = np.flatnonzero(mask)
    n, first = len(idx), int(idx[0])
    rows = "row" if n == 1 else "rows"
    raise ResponseError(f"{name} family: {problem}; {n} of {len(mask)} {rows} "
                        f"{'is' if n == 1 else 'are'} not (first: {values[first]:g} at row {first}): {advice}")


class Distribution:
    """A response distribution for a GLMM with a Laplace engine.

    Attributes
    ----------
    name : str
        glmmTMB's family name (``"nbinom2"``...).
    default_link, links : str, tuple of str
        The default and the allowed links (names as in :func:`mixedfx.families.links.get_link`).
    has_dispersion : bool
        Whether a dispersion ``phi > 0`` (``phi = exp(eta_disp)``) is estimated.
    dispersion_name : str
        How ``phi`` is reported: ``"phi"`` or ``"sigma"`` (a scale on the response scale).
    count : bool
        The response must be whole numbers ``>= 0``.
    binomial_type : bool
        ``y`` is a proportion of ``w`` trials.
    psi_names : tuple of str
        Natural names of the extra family parameters (``psi`` holds them unconstrained).
    zero_mass : bool
        ``P(Y = 0) > 0``, so :meth:`logp0` is available (hurdles, truncation).
    """
    name = ""
    default_link = "identity"
    links: tuple[str, ...] = ()
    has_dispersion = True
    dispersion_name = "phi"
    count = False
    binomial_type = False
    psi_names: tuple[str, ...] = ()
    zero_mass = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # extra parameters ------------------------------------------------------
    def psi_to_natural(self, psi) -> np.ndarray:
        """Unconstrained internal ``psi`` -> natural values (identity when there are none)."""
        return _f(psi).reshape(-1)

    def psi_from_natural(self, values) -> np.ndarray:
        """Natural values -> unconstrained internal ``psi``."""
        return _f(values).reshape(-1)

    def psi_start(self) -> np.ndarray:
        """Internal start values (the fixed value when fixed)."""
        return np.zeros(len(self.psi_names))

    def fixed_psi(self):
        """The internal value of ``psi`` when the user fixed it, else ``None``."""
        return None

    # density ---------------------------------------------------------------
    def logpdf(self, y, mu, phi, psi, w) -> np.ndarray:
        """Per-observation log density, all normalizing constants included: ``w log f(y)`` (``w`` a prior
        weight; rows of weight 0 give exactly 0), or ``log f(y | w trials)`` for binomial-type families.
        Values outside the support give ``-inf``."""
        raise NotImplementedError

    def dlogpdf_dmu(self, y, mu, phi, psi, w):
        """``(d/dmu, d2/dmu2)`` of :meth:`logpdf` at fixed ``phi`` and ``psi`` (analytic)."""
        raise NotImplementedError

    def logp0(self, mu, phi, psi, w):
        """``log P(Y = 0)`` and its first and second ``mu``-derivatives (not multiplied by a prior weight;
        for binomial-type families ``w`` is the number of trials)."""
        raise NotImplementedError(f"the {self.name} family has no probability mass at zero")

    # moments, simulation, starts -------------------------------------------
    def mean(self, mu, phi, psi) -> np.ndarray:
        """``E y``: ``mu`` for every family here (for binomial types, of the proportion)."""
        return _f(mu) + 0.0 * _f(phi)

    def variance(self, mu, phi, psi, w=1.0) -> np.ndarray:
        """``Var y`` (of the proportion ``y`` for binomial types, which use ``w`` as the number of trials;
        a prior weight multiplies the log density and does not enter the variance)."""
        raise NotImplementedError

    def sample(self, mu, phi, psi, w, rng) -> np.ndarray:
        """One draw per observation from ``rng`` (a numpy Generator); proportions for binomial types."""
        raise NotImplementedError

    def initial_mu(self, y, w) -> np.ndarray:
        """A start for ``mu`` strictly inside the support (R's ``mustart``)."""
        return _f(y).copy()

    def initial_log_phi(self, y, mu, w) -> float:
        """A moment start for ``log phi`` given fitted means ``mu`` (0 without a dispersion)."""
        return 0.0

    # response checks ---------------------------------------------------------
    def check_response(self, y, w) -> None:
        """Raise :class:`~mixedfx.families.ResponseError` for responses impossible under the family."""
        y, w = _f(y), _f(w)
        if y.shape != w.shape and w.ndim > 0:
            raise ResponseError(f"{self.name} family: the response has {y.size} rows but the weights have {w.size}")
        bad = ~np.isfinite(y)
        if bad.any():
            _raise_rows(self.name, "responses must be finite", bad, y,
                        "drop or impute the missing/infinite responses before fitting")
        wb = np.broadcast_to(w, y.shape)
        bad = ~np.isfinite(wb) | (wb < 0)
        if bad.any():
            _raise_rows(self.name, "weights must be finite and non-negative", bad, wb, "fix the weights column")

    def _check_counts(self, y) -> None:
        bad = y < 0
        if bad.any():
            _raise_rows(self.name, "responses must be counts >= 0", bad, y,
                        "check the response column, or use a family for real-valued responses (gaussian, t)")
        bad = np.abs(y - np.round(y)) > 1e-8 * np.maximum(1.0, np.abs(y))
        if bad.any():
            _raise_rows(self.name, "responses must be whole-number counts", bad, y,
                        "round them if they are counts stored as decimals, or use a continuous family "
                        "(tweedie for non-negative values with zeros, Gamma or lognormal for positive ones)")


class _CountBase(Distribution):
    default_link = "log"
    links = ("log", "identity", "sqrt")
    count = True
    zero_mass = True

    def initial_mu(self, y, w):
        y = _f(y)
        return y + (y == 0) / 6.0

    def check_response(self, y, w) -> None:
        super().check_response(y, w)
        self._check_counts(_f(y))


class Poisson(_CountBase):
    r"""Poisson counts.

    .. math:: \log f(y) = y \log\mu - \mu - \log y!, \quad y = 0, 1, \dots

    Mean :math:`\mu`, variance :math:`\mu`; no dispersion; :math:`\log P(0) = -\mu`.
    """
    name = "poisson"
    has_dispersion = False

    def logpdf(self, y, mu, phi, psi, w):
        y, mu = _f(y), _f(mu)
        return _weighted(w, special.xlogy(y, mu) - mu - lfactorial(y))

    def dlogpdf_dmu(self, y, mu, phi, psi, w):
        y, mu = _f(y), _f(mu)
        return _weighted(w, y / mu - 1.0, -y / (mu * mu))

    def logp0(self, mu, phi, psi, w):
        mu = _f(mu)
        return -mu, -np.ones_like(mu), np.zeros_like(mu)

    def variance(self, mu, phi, psi, w=1.0):
        return _f(mu).copy()

    def sample(self, mu, phi, psi, w, rng):
        return rng.poisson(_f(mu)).astype(float)

    def initial_mu(self, y, w):
        return _f(y) + 0.1


class NBinom2(_CountBase):
    r"""Negative binomial, quadratic parameterisation (glmmTMB ``nbinom2``; ``phi`` the NB size).

    .. math:: \log f(y) = \log\frac{\Gamma(y+\phi)}{\Gamma(\phi)\, y!} + \phi \log\frac{\phi}{\phi+\mu}
              + y \log\frac{\mu}{\phi+\mu}, \quad y = 0, 1, \dots

    Mean :math:`\mu`, variance :math:`\mu + \mu^2/\phi` (Poisson as :math:`\phi \to \infty`);
    :math:`\log P(0) = \phi \log(\phi/(\phi+\mu))`.
    """
    name = "nbinom2"

    def logpdf(self, y, mu, phi, psi, w):
        y, mu, phi = _f(y), _f(mu), _f(phi)
        s = phi + mu
        lf = _lgamma_ratio(y, phi) - phi * np.log1p(mu / phi) + special.xlogy(y, mu / s)
        return _weighted(w, lf)

    def dlogpdf_dmu(self, y, mu, phi, psi, w):
        y, mu, phi = _f(y), _f(mu), _f(phi)
        s = phi + mu
        ms = mu * s
        d1 = phi * (y - mu) / ms
        d2 = phi * (mu * mu - y * (s + mu)) / (ms * ms)
        return _weighted(w, d1, d2)

    def logp0(self, mu, phi, psi, w):
        mu, phi = np.broadcast_arrays(_f(mu), _f(phi))
        s = phi + mu
        return -phi * np.log1p(mu / phi), -phi / s, phi / (s * s)

    def variance(self, mu, phi, psi, w=1.0):
        mu = _f(mu)
        return mu + mu * mu / _f(phi)

    def sample(self, mu, phi, psi, w, rng):
        mu, phi = np.broadcast_arrays(_f(mu), _f(phi))
        return rng.negative_binomial(phi, phi / (phi + mu)).astype(float)

    def initial_log_phi(self, y, mu, w):
        """Moments: ``sum w mu^2 / sum w ((y - mu)^2 - mu)``, clipped to [0.01, 100] (100, near Poisson,
        when the residuals show no overdispersion, e.g. for ``mu = y``)."""
        y, mu, w = _f(y), _f(mu), _f(w) + 0 * _f(y)
        den = np.sum(w * ((y - mu) ** 2 - mu))
        return _log_clip(np.sum(w * mu * mu) / den if den > 0 else 100.0, 0.01, 100.0, 100.0)


class NBinom1(_CountBase):
    r"""Negative binomial, linear parameterisation (glmmTMB ``nbinom1``): NB with size
    :math:`r = \mu/\phi` and success probability :math:`1/(1+\phi)`.

    .. math:: \log f(y) = \log\frac{\Gamma(y+r)}{\Gamma(r)\, y!} - r \log(1+\phi)
              + y \log\frac{\phi}{1+\phi}, \quad y = 0, 1, \dots

    Mean :math:`\mu`, variance :math:`\mu(1+\phi)` (Poisson as :math:`\phi \to 0`);
    :math:`\log P(0) = -(\mu/\phi) \log(1+\phi)`.
    """
    name = "nbinom1"

    def logpdf(self, y, mu, phi, psi, w):
        y, mu, phi = _f(y), _f(mu), _f(phi)
        r, l1p = mu / phi, np.log1p(phi)
        lf = _lgamma_ratio(y, r) - r * l1p + y * (np.log(phi) - l1p)
        return _weighted(w, lf)

    def dlogpdf_dmu(self, y, mu, phi, psi, w):
        y, mu, phi = _f(y), _f(mu), _f(phi)
        r = mu / phi
        x = np.stack(np.broadcast_arrays(y + r, r))      # one call per special function
        dg, tg = special.digamma(x), trigamma(x)
        d1 = (dg[0] - dg[1] - np.log1p(phi)) / phi
        d2 = (tg[0] - tg[1]) / (phi * phi)
        return _weighted(w, d1, d2)

    def logp0(self, mu, phi, psi, w):
        mu, phi = np.broadcast_arrays(_f(mu), _f(phi))
        c = np.log1p(phi) / phi
        return -mu * c, -c, np.zeros_like(mu)

    def variance(self, mu, phi, psi, w=1.0):
        return _f(mu) * (1.0 + _f(phi))

    def sample(self, mu, phi, psi, w, rng):
        mu, phi = np.broadcast_arrays(_f(mu), _f(phi))
        return rng.negative_binomial(mu / phi, 1.0 / (1.0 + phi)).astype(float)

    def initial_log_phi(self, y, mu, w):
        """Moments: ``sum w ((y - mu)^2 - mu) / sum w mu``, clipped to [0.01, 100]."""
        y, mu, w = _f(y), _f(mu), _f(w) + 0 * _f(y)
        return _log_clip(np.sum(w * ((y - mu) ** 2 - mu)) / np.sum(w * mu), 0.01, 100.0, 0.01)


class GenPois(_CountBase):
    r"""Generalized Poisson (Consul), as glmmTMB ``genpois``: :math:`\theta = \mu/\sqrt\phi`,
    :math:`\lambda = 1 - 1/\sqrt\phi` (``glmmtmb::dgenpois`` in ``src/glmmTMB.cpp``).

    .. math:: \log f(y) = \log\theta + (y-1)\log(\theta + \lambda y) - \theta - \lambda y - \log y!,
              \quad y = 0, 1, \dots

    Mean :math:`\mu`, variance :math:`\mu\phi` (``phi`` is the index of dispersion);
    :math:`\log P(0) = -\mu/\sqrt\phi`. For :math:`\phi < 1` (underdispersion, :math:`\lambda < 0`)
    the support ends where :math:`\theta + \lambda y \le 0` (log density ``-inf`` there) and, as in
    glmmTMB, the truncated probabilities are not renormalized (mean and variance are then approximate).
    """
    name = "genpois"

    @staticmethod
    def _q(y, mu, phi):
        s = np.sqrt(phi)
        return s, mu + (s - 1.0) * y          # q = s (theta + lambda y)

    def logpdf(self, y, mu, phi, psi, w):
        y, mu, phi = _f(y), _f(mu), _f(phi)
        s, q = self._q(y, mu, phi)
        ok = (q > 0) | (y == 0)
        lq = np.log(np.where(q > 0, q, 1.0))
        lf = np.log(mu) + (y - 1.0) * lq - y * np.log(s) - q / s - lfactorial(y)
        return _weighted(w, np.where(ok, lf, -np.inf))

    def dlogpdf_dmu(self, y, mu, phi, psi, w):
        y, mu, phi = _f(y), _f(mu), _f(phi)
        s, q = self._q(y, mu, phi)
        q = np.where(q > 0, q, np.nan)
        return _weighted(w, 1.0 / mu + (y - 1.0) / q - 1.0 / s, -1.0 / (mu * mu) - (y - 1.0) / (q * q))

    def logp0(self, mu, phi, psi, w):
        mu, phi = np.broadcast_arrays(_f(mu), _f(phi))
        s = np.sqrt(phi)
        return -mu / s, -1.0 / s, np.zeros_like(mu)

    def variance(self, mu, phi, psi, w=1.0):
        return _f(mu) * _f(phi)

    def sample(self, mu, phi, psi, w, rng):
        """``phi >= 1``: the total progeny of a Poisson(``theta``) ancestry with Poisson(``lambda``)
        offspring (a branching process, exactly GP(theta, lambda)); ``phi < 1``: inversion of the
        (renormalized, truncated) probabilities."""
        mu, phi = np.broadcast_arrays(_f(mu), _f(phi))
        s = np.sqrt(phi)
        theta, lam = mu / s, 1.0 - 1.0 / s
        out = np.zeros(mu.shape)
        over = lam >= 0
        cur = rng.poisson(theta[over]).astype(float)
        total, lo = cur.copy(), lam[over]
        live = np.flatnonzero(cur > 0)
        while live.size:
            cur[live] = rng.poisson(lo[live] * cur[live])
            total[live] += cur[live]
            live = live[cur[live] > 0]
        out[over] = total
        under = np.flatnonzero(~over)
        if under.size:      # inversion, k by k over all rows at once (memory O(n))
            m, p = mu[under], phi[under]
            kmax = np.minimum(np.ceil(m / (1.0 - s[under])), np.ceil(m + 40 * np.sqrt(m * p) + 40))
            pk = lambda k: np.where(k <= kmax, np.exp(self.logpdf(np.full(m.shape, k), m, p, psi, 1.0)), 0.0)
            total = sum(pk(k) for k in range(int(kmax.max()) + 1))
            u, cum = rng.random(under.size) * total, np.zeros(under.size)
            draw = kmax.copy()
            for k in range(int(kmax.max()) + 1):
                cum += pk(k)
                hit = (cum >= u) & (draw == kmax) & (k < kmax)
                draw[hit] = k
            out[under] = draw
        return out

    def initial_log_phi(self, y, mu, w):
        """Moments: ``sum w (y - mu)^2 / sum w mu``, clipped to [0.1, 100]."""
        y, mu, w = _f(y), _f(mu), _f(w) + 0 * _f(y)
        return _log_clip(np.sum(w * (y - mu) ** 2) / np.sum(w * mu), 0.1, 100.0, 1.0)


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

    def logpdf(self, y, mu, phi, psi, w):
        y, mu, w = _f(y), _f(mu), _f(w)
        k = _successes(y, w)
        return _lchoose(w, k) + special.xlogy(k, mu) + special.xlog1py(w - k, -mu)

    def dlogpdf_dmu(self, y, mu, phi, psi, w):
        y, mu, w = _f(y), _f(mu), _f(w)
        k = _successes(y, w)
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
        x = np.stack(np.broadcast_arrays(k + a, a))
        bl = _betaln(x, np.stack(np.broadcast_arrays(w - k + b, b)))
        return _lchoose(w, k) + bl[0] - bl[1]

    def dlogpdf_dmu(self, y, mu, phi, psi, w):
        y, mu, phi, w = _f(y), _f(mu), _f(phi), _f(w)
        k, a, b = _successes(y, w), mu * phi, (1.0 - mu) * phi
        x = np.stack(np.broadcast_arrays(k + a, a, w - k + b, b))
        dg, tg = special.digamma(x), trigamma(x)
        d1 = phi * ((dg[0] - dg[1]) - (dg[2] - dg[3]))
        d2 = phi * phi * ((tg[0] - tg[1]) + (tg[2] - tg[3]))
        return d1, d2

    def logp0(self, mu, phi, psi, w):
        mu, phi, w = np.broadcast_arrays(_f(mu), _f(phi), _f(w))
        a, b = mu * phi, (1.0 - mu) * phi
        wb = w + b
        bl = _betaln(np.stack((a, a)), np.stack((wb, b)))
        x = np.stack((b, wb))
        dg, tg = special.digamma(x), trigamma(x)
        return bl[0] - bl[1], phi * (dg[0] - dg[1]), phi * phi * (tg[1] - tg[0])

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
