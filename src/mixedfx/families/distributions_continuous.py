"""Response distributions (glmmTMB-style): the continuous families and the Tweedie series.

See :mod:`mixedfx.families.distributions_counts` for the conventions (vectorization, ``w``, ``psi``).
"""
from __future__ import annotations

import numpy as np
from scipy import special

from .distributions_counts import Distribution, _f, _log_clip, _raise_rows, _weighted, _wmean
from .specfun import betaln as _betaln
from .family import ResponseError
from .specfun import stack as _stack
from .specfun import trigamma

__all__ = ["Beta", "StudentT", "Tweedie", "Lognormal", "Gaussian", "Gamma", "tweedie_log_series"]

_LOG_2PI = float(np.log(2 * np.pi))


def _gammaln_const(x):
    """``gammaln(x)``, evaluated once when ``x`` is one value repeated (a dispersion without a model)."""
    x = _f(x)
    if x.ndim and x.size > 1 and np.all(x == x.flat[0]):
        return np.full(x.shape, special.gammaln(x.flat[0]))
    return special.gammaln(x)


def _residual_scale(y, mu, w) -> float:
    """Root weighted mean square of ``y - mu``; the spread of ``y`` itself when the residuals vanish
    (e.g. ``mu = y``); 1 when both do."""
    y, mu = np.broadcast_arrays(_f(y), _f(mu))
    w = np.broadcast_to(_f(w), y.shape)
    s = np.sqrt(_wmean((y - mu) ** 2, w))
    if not (np.isfinite(s) and s > 0):
        s = np.sqrt(_wmean((y - _wmean(y, w)) ** 2, w))
    return float(s) if np.isfinite(s) and s > 0 else 1.0


def _positive_check(dist, y, w) -> None:
    Distribution.check_response(dist, y, w)
    y = _f(y)
    bad = y <= 0
    if bad.any():
        _raise_rows(dist.name, "responses must be positive", bad, y,
                    "drop the zeros, model them with a hurdle (zero-inflated) model, or use the tweedie family")


class Gaussian(Distribution):
    r"""Normal: :math:`y \sim N(\mu, \phi^2)`, :math:`y \in \mathbb{R}`.

    .. math:: \log f(y) = -\tfrac12\log(2\pi) - \log\phi - (y-\mu)^2 / (2\phi^2)

    Mean :math:`\mu`, variance :math:`\phi^2`. Here ``phi`` is the standard deviation (the dispersion
    model is for the log SD), as in current glmmTMB; glmmTMB 1.1.5 modelled the log *variance*
    (``dnorm(y, mu, sqrt(phi))``), so its dispersion coefficients are twice ours.
    """
    name = "gaussian"
    links = ("identity", "log", "inverse")
    dispersion_name = "sigma"

    def latent_variance(self, link, null_mean, phi, psi):
        """The residual variance ``sigma^2`` (identity link)."""
        if link != "identity":
            raise NotImplementedError("the residual variance of a gaussian model with a non-identity link is not on "
                                      "the scale of the linear predictor")
        return float(phi) ** 2, "residual variance"

    def logpdf(self, y, mu, phi, psi, w):
        y, mu, phi = _f(y), _f(mu), _f(phi)
        z = (y - mu) / phi
        return _weighted(w, -0.5 * _LOG_2PI - np.log(phi) - 0.5 * z * z)

    def dlogpdf_dmu(self, y, mu, phi, psi, w):
        y, mu, phi = _f(y), _f(mu), _f(phi)
        v = phi * phi
        return _weighted(w, (y - mu) / v, -1.0 / v + 0.0 * y)

    def variance(self, mu, phi, psi, w=1.0):
        return _f(phi) ** 2 + 0.0 * _f(mu)

    def sample(self, mu, phi, psi, w, rng):
        mu, phi = np.broadcast_arrays(_f(mu), _f(phi))
        return rng.normal(mu, phi)

    def initial_log_phi(self, y, mu, w):
        return float(np.log(_residual_scale(y, mu, w)))


class StudentT(Distribution):
    r"""Student t with location :math:`\mu`, scale :math:`\sigma = \phi` and :math:`\nu` degrees of freedom
    (glmmTMB ``t_family``: ``dt((y - mu) / phi, df) - log(phi)``, ``df = exp(psi)``).

    .. math:: \log f(y) = \log\Gamma(\tfrac{\nu+1}{2}) - \log\Gamma(\tfrac{\nu}{2}) - \tfrac12\log(\nu\pi)
              - \log\sigma - \tfrac{\nu+1}{2}\log\left(1 + z^2/\nu\right), \quad z = (y-\mu)/\sigma

    Mean :math:`\mu` (:math:`\nu > 1`), variance :math:`\sigma^2\nu/(\nu-2)` (:math:`\nu > 2`, else
    infinite). ``StudentT()`` estimates :math:`\nu` (``psi = log df``); ``StudentT(df=4)`` fixes it.
    """
    name = "t"
    links = ("identity", "log", "inverse")
    dispersion_name = "sigma"
    psi_names = ("df",)

    def __init__(self, df=None):
        if df is not None and not (np.isfinite(df) and df > 0):
            raise ValueError(f"t family: df must be a positive number (got {df!r})")
        self.df = None if df is None else float(df)

    def __repr__(self) -> str:
        return "StudentT()" if self.df is None else f"StudentT(df={self.df:g})"

    def psi_to_natural(self, psi):
        return np.exp(_f(psi).reshape(-1))

    def psi_from_natural(self, values):
        return np.log(_f(values).reshape(-1))

    def psi_start(self):
        return np.array([np.log(self.df if self.df is not None else 5.0)])

    def fixed_psi(self):
        return None if self.df is None else np.array([np.log(self.df)])

    def _nu(self, psi):
        psi = _f(psi).reshape(-1)
        if psi.size == 0:
            if self.df is None:
                raise ValueError("t family: psi (log df) is needed when df is estimated")
            return self.df
        return float(np.exp(psi[0]))

    def logpdf(self, y, mu, phi, psi, w):
        y, mu, phi, nu = _f(y), _f(mu), _f(phi), self._nu(psi)
        z = (y - mu) / phi
        const = -_betaln(0.5, 0.5 * nu) - 0.5 * np.log(nu)   # = lgamma((nu+1)/2) - lgamma(nu/2) - log(nu pi)/2
        return _weighted(w, const - np.log(phi) - 0.5 * (nu + 1.0) * np.log1p(z * z / nu))

    def dlogpdf_dmu(self, y, mu, phi, psi, w):
        y, mu, phi, nu = _f(y), _f(mu), _f(phi), self._nu(psi)
        z = (y - mu) / phi
        den = nu + z * z
        return _weighted(w, (nu + 1.0) * z / (phi * den), -(nu + 1.0) * (nu - z * z) / (phi * phi * den * den))

    def variance(self, mu, phi, psi, w=1.0):
        nu = self._nu(psi)
        v = _f(phi) ** 2 + 0.0 * _f(mu)
        return v * nu / (nu - 2.0) if nu > 2 else np.full_like(v, np.inf)

    def sample(self, mu, phi, psi, w, rng):
        mu, phi = np.broadcast_arrays(_f(mu), _f(phi))
        return mu + phi * rng.standard_t(self._nu(psi), size=mu.shape)

    def initial_log_phi(self, y, mu, w):
        """``1.4826 * median |y - mu|`` (rows with positive weight), else the residual RMS."""
        y, mu = np.broadcast_arrays(_f(y), _f(mu))
        keep = np.broadcast_to(_f(w), y.shape) > 0
        mad = 1.4826 * float(np.median(np.abs(y - mu)[keep])) if keep.any() else 0.0
        return float(np.log(mad if mad > 0 else _residual_scale(y, mu, w)))


class Beta(Distribution):
    r"""Beta (glmmTMB ``beta_family``, Ferrari & Cribari-Neto 2004): :math:`y \sim \mathrm{Beta}(a, b)`,
    :math:`a = \mu\phi`, :math:`b = (1-\mu)\phi`, :math:`y \in (0, 1)`.

    .. math:: \log f(y) = (a-1)\log y + (b-1)\log(1-y) - \log B(a, b)

    Mean :math:`\mu`, variance :math:`\mu(1-\mu)/(1+\phi)` (``phi`` a precision).
    """
    name = "beta"
    default_link = "logit"
    links = ("logit", "probit", "cloglog", "cauchit")

    def logpdf(self, y, mu, phi, psi, w):
        y, mu, phi = _f(y), _f(mu), _f(phi)
        a, b = mu * phi, (1.0 - mu) * phi
        inside = (y >= 0) & (y <= 1)
        yc = np.clip(y, 0.0, 1.0)
        lf = special.xlogy(a - 1.0, yc) + special.xlog1py(b - 1.0, -yc) - _betaln(a, b)
        return _weighted(w, np.where(inside, lf, -np.inf))

    def dlogpdf_dmu(self, y, mu, phi, psi, w):
        y, mu, phi = _f(y), _f(mu), _f(phi)
        # psi(a) = psi(1 + a) - 1/a and psi1(a) = psi1(1 + a) + 1/a^2, with phi/a = 1/mu (no overflow as phi -> 0)
        x = _stack(1.0 + mu * phi, 1.0 + (1.0 - mu) * phi)
        dg, tg = special.digamma(x), trigamma(x)
        im, im1 = 1.0 / mu, 1.0 / (1.0 - mu)
        d1 = phi * (np.log(y) - np.log1p(-y) - dg[0] + dg[1]) + (im - im1)
        d2 = -phi * (phi * (tg[0] + tg[1])) - (im * im + im1 * im1)
        return _weighted(w, d1, d2)

    def variance(self, mu, phi, psi, w=1.0):
        mu = _f(mu)
        return mu * (1.0 - mu) / (1.0 + _f(phi))

    def sample(self, mu, phi, psi, w, rng):
        mu, phi = np.broadcast_arrays(_f(mu), _f(phi))
        return rng.beta(mu * phi, (1.0 - mu) * phi)

    def initial_log_phi(self, y, mu, w):
        """Moments: ``sum w mu (1 - mu) / sum w (y - mu)^2 - 1``, clipped to [0.5, 1000]."""
        y, mu = np.broadcast_arrays(_f(y), _f(mu))
        w = np.broadcast_to(_f(w), y.shape)
        rss = np.sum(w * (y - mu) ** 2)
        return _log_clip(np.sum(w * mu * (1 - mu)) / rss - 1.0 if rss > 0 else 1000.0, 0.5, 1000.0, 1000.0)

    def check_response(self, y, w) -> None:
        super().check_response(y, w)
        y = _f(y)
        bad = (y < 0) | (y > 1)
        if bad.any():
            _raise_rows(self.name, "responses must be proportions strictly inside (0, 1)", bad, y,
                        "rescale the response to (0, 1), or use a family for the original scale")
        bad = (y == 0) | (y == 1)
        if bad.any():
            n = int(bad.sum())
            first = int(np.flatnonzero(bad)[0])
            raise ResponseError(f"beta family: beta responses must lie strictly inside (0, 1); {n} of {y.size} "
                                f"{'row is' if n == 1 else 'rows are'} exactly 0 or 1 (first: {y[first]:g} at row "
                                f"{first}): transform (e.g. (y (n - 1) + 0.5) / n, Smithson & Verkuilen 2006) or use "
                                "a zero/one-inflated model")


class Gamma(Distribution):
    r"""Gamma as in glmmTMB: shape :math:`\phi`, scale :math:`\mu/\phi` (``src/glmmTMB.cpp``,
    ``case Gamma_family: s1 = phi(i); s2 = mu(i) / phi(i); dgamma(y, s1, s2)``), :math:`y > 0`.

    .. math:: \log f(y) = -\log\Gamma(\phi) + \phi\log(\phi/\mu) + (\phi-1)\log y - \phi y/\mu

    Mean :math:`\mu`, variance :math:`\mu^2/\phi` (``phi`` the shape; glmmTMB's ``sigma()`` reports the
    coefficient of variation :math:`1/\sqrt\phi`, R's ``glm`` dispersion is :math:`1/\phi`).
    """
    name = "Gamma"
    default_link = "inverse"
    links = ("inverse", "log", "identity")

    def latent_variance(self, link, null_mean, phi, psi):
        """``1/shape`` (glmmTMB's ``sigma()^2``, as insight), log link."""
        if link != "log":
            raise NotImplementedError(f"the latent-scale variance of the Gamma family is defined for the log link, "
                                      f"not {link!r}")
        return 1.0 / float(phi), "latent scale (1 / shape)"

    def logpdf(self, y, mu, phi, psi, w):
        y, mu, phi = _f(y), _f(mu), _f(phi)
        lf = (-_gammaln_const(phi) + phi * np.log(phi / mu) + special.xlogy(phi - 1.0, np.maximum(y, 0.0))
              - phi * y / mu)
        return _weighted(w, np.where(y < 0, -np.inf, lf))

    def dlogpdf_dmu(self, y, mu, phi, psi, w):
        y, mu, phi = _f(y), _f(mu), _f(phi)
        return _weighted(w, phi * (y - mu) / (mu * mu), phi * (mu - 2.0 * y) / mu ** 3)

    def variance(self, mu, phi, psi, w=1.0):
        return _f(mu) ** 2 / _f(phi)

    def sample(self, mu, phi, psi, w, rng):
        mu, phi = np.broadcast_arrays(_f(mu), _f(phi))
        return rng.gamma(phi, mu / phi)

    def initial_log_phi(self, y, mu, w):
        """Moments: ``1 / (weighted mean of ((y - mu) / mu)^2)``, clipped to [0.01, 1e4]."""
        y, mu = np.broadcast_arrays(_f(y), _f(mu))
        cv2 = _wmean(((y - mu) / mu) ** 2, np.broadcast_to(_f(w), y.shape))
        return _log_clip(1.0 / cv2 if cv2 > 0 else 1e4, 0.01, 1e4, 1e4)

    def check_response(self, y, w) -> None:
        _positive_check(self, y, w)


class Lognormal(Distribution):
    r"""Log-normal parameterised by the mean :math:`\mu` and the standard deviation :math:`\phi` of ``y``
    on the response scale (glmmTMB ``lognormal``, ``src/glmmTMB.cpp``: ``s1 = log(1 + (phi/mu)^2)``,
    ``s2 = log(mu) - s1/2``, ``dnorm(log y, s2, sqrt(s1)) - log y``): :math:`\log y \sim N(m, s^2)` with

    .. math:: s^2 = \log(1 + \phi^2/\mu^2), \quad m = \log\mu - s^2/2, \quad
              \log f(y) = -\log y - \tfrac12\log(2\pi s^2) - (\log y - m)^2/(2 s^2), \quad y > 0.

    Mean :math:`\mu`, variance :math:`\phi^2`.
    """
    name = "lognormal"
    default_link = "log"
    links = ("log", "identity", "inverse")
    dispersion_name = "sigma"

    @staticmethod
    def _parts(mu, phi):
        u = (phi / mu) ** 2
        s2 = np.log1p(u)
        return u, s2, np.log(mu) - 0.5 * s2

    def logpdf(self, y, mu, phi, psi, w):
        y, mu, phi = _f(y), _f(mu), _f(phi)
        _, s2, m = self._parts(mu, phi)
        ly = np.log(np.where(y > 0, y, 1.0))
        e = ly - m
        return _weighted(w, np.where(y > 0, -ly - 0.5 * (_LOG_2PI + np.log(s2)) - e * e / (2.0 * s2), -np.inf))

    def dlogpdf_dmu(self, y, mu, phi, psi, w):
        y, mu, phi = _f(y), _f(mu), _f(phi)
        u, s, m = self._parts(mu, phi)
        i_s = 1.0 / s
        g = (np.log(y) - m) * i_s                   # (log y - m) / s^2
        im, iu = 1.0 / mu, 1.0 / (1.0 + u)
        s1 = -2.0 * u * im * iu                     # d s^2 / d mu
        s11 = -s1 * (3.0 + u) * im * iu             # d2 s^2 / d mu2
        m1, m11 = im - 0.5 * s1, -im * im - 0.5 * s11
        q = s1 * i_s
        d1 = 0.5 * s1 * (g * g - i_s) + g * m1
        d2 = (i_s * (0.5 * s1 * q - 0.5 * s11 - m1 * m1) + g * (m11 - 2.0 * m1 * q)
              + g * g * (0.5 * s11 - s1 * q))
        return _weighted(w, d1, d2)

    def variance(self, mu, phi, psi, w=1.0):
        return _f(phi) ** 2 + 0.0 * _f(mu)

    def sample(self, mu, phi, psi, w, rng):
        mu, phi = np.broadcast_arrays(_f(mu), _f(phi))
        _, s2, m = self._parts(mu, phi)
        return np.exp(rng.normal(m, np.sqrt(s2)))

    def initial_log_phi(self, y, mu, w):
        return float(np.log(_residual_scale(y, mu, w)))

    def check_response(self, y, w) -> None:
        _positive_check(self, y, w)


def tweedie_log_series(y, phi, power, tol=1e-15, chunk=1 << 20):
    r"""``log a(y, phi, p)`` of the Tweedie density for ``y > 0`` and ``1 < p < 2`` by the series of
    Dunn & Smyth (2005, Statistics and Computing 15:267-280):

    .. math:: a(y) = \frac1y \sum_{j \ge 1} W_j, \quad
              \log W_j = j \log z - \log\Gamma(j+1) - \log\Gamma(-\alpha j), \quad
              \log z = -\alpha \log y + \alpha\log(p-1) - (1-\alpha)\log\phi - \log(2-p)

    with :math:`\alpha = (2-p)/(1-p) < 0`. :math:`\log W_j` is concave in ``j`` with its maximum near
    :math:`j^* = y^{2-p}/(\phi(2-p))` and curvature about :math:`-1/((p-1) j)`; the terms are summed in log
    space around the maximum over a ``j``-range per observation, widened until the geometric bound
    on each omitted tail (valid by concavity) is below ``tol`` relative to the largest term. The range
    is evaluated on a padded grid, observations sorted by range length and taken in chunks of at most
    ``chunk`` grid cells. The absolute error of the result grows like ``1e-16 * j*`` (the terms are of
    that size), so it is about ``1e-9`` for ``j* = 1e7`` (huge ``y``, tiny ``phi``).
    """
    y, phi, p = np.broadcast_arrays(_f(y), _f(phi), _f(power))
    y, phi, p = y.ravel(), phi.ravel(), p.ravel()
    alpha = (2.0 - p) / (1.0 - p)
    logz = -alpha * np.log(y) + alpha * np.log(p - 1.0) - (1.0 - alpha) * np.log(phi) - np.log(2.0 - p)

    jstar = np.maximum(1.0, np.round(np.exp((2.0 - p) * np.log(y) - np.log(phi) - np.log(2.0 - p))))
    sd = np.sqrt((p - 1.0) * jstar) + 1.0
    # one power (the usual case): the two log-gamma values of each whole j >= 1 from tables, bitwise
    # the values computed directly below, up to the largest j the first windows reach
    tab = None
    if y.size and np.all(alpha == alpha[0]):
        top = np.max(np.where(np.isfinite(jstar), jstar + 10.0 * sd, 0.0)) + 2.0
        if top <= max(4096, 4 * y.size):
            jt = np.arange(int(top) + 1, dtype=float)
            tab = (special.gammaln(jt + 1.0), special.gammaln(-alpha[0] * jt))

    def lw(j, i):
        if tab is not None and np.max(j) < tab[0].size:
            k = j.astype(np.intp)
            return j * logz[i] - tab[0][k] - tab[1][k]
        return j * logz[i] - special.gammaln(j + 1.0) - special.gammaln(-alpha[i] * j)

    lmax = lw(jstar, np.arange(y.size))      # at most the largest term: the tail bounds stay conservative
    k = np.full(y.size, 10.0)
    lo, hi = np.ones(y.size), jstar.copy()
    pending = np.isfinite(logz) & np.isfinite(lmax)
    for _ in range(60):
        if not pending.any():
            break
        i = np.flatnonzero(pending)
        lo[i] = np.maximum(1.0, np.floor(jstar[i] - k[i] * sd[i]))
        hi[i] = np.ceil(jstar[i] + k[i] * sd[i])
        lh, lh1 = lw(hi[i], i), lw(hi[i] + 1.0, i)
        ll, ll1 = lw(lo[i], i), lw(np.maximum(lo[i] - 1.0, 1.0), i)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            # concave log-terms: beyond an end the terms fall at least geometrically with the end's ratio
            right = np.exp(lh - lmax[i]) / -np.expm1(lh1 - lh)
            left = np.exp(ll - lmax[i]) / -np.expm1(ll1 - ll)
        ok = (lh1 < lh) & (right < tol) & ((lo[i] == 1) | ((ll1 < ll) & (left < tol)))
        pending[i[ok]] = False
        k[i[~ok]] *= 1.5
    bad = pending | ~np.isfinite(logz) | ~np.isfinite(lmax)
    lo[bad], hi[bad] = 1.0, 1.0
    width = (hi - lo + 1).astype(np.int64)
    order = np.argsort(width, kind="stable")
    ws = width[order]
    out = np.empty(y.size)
    start = 0
    while start < y.size:
        m = np.arange(1, y.size - start + 1)
        stop = start + max(1, int(np.count_nonzero(m * ws[start:] <= chunk)))
        i = order[start:stop]
        j = lo[i][:, None] + np.arange(int(ws[stop - 1]))[None, :]
        top = hi[i][:, None]
        terms = np.where(j <= top, lw(np.minimum(j, top), i[:, None]) - lmax[i][:, None], -np.inf)
        out[i] = lmax[i] + np.log(np.sum(np.exp(terms), axis=1)) - np.log(y[i])
        start = stop
    out[bad] = np.nan
    return out


class Tweedie(Distribution):
    r"""Tweedie compound Poisson-gamma, :math:`1 < p < 2` (glmmTMB ``tweedie``; ``p = 1 + expit(psi)``).
    :math:`Y = \sum_{i=1}^N G_i`, :math:`N \sim \mathrm{Poisson}(\lambda)`, :math:`\lambda = \mu^{2-p}/(\phi(2-p))`,
    :math:`G_i \sim \mathrm{Gamma}(\text{shape } (2-p)/(p-1), \text{ scale } \phi(p-1)\mu^{p-1})`; :math:`y \ge 0`.

    .. math:: \log f(y) = \frac1\phi\left(\frac{y\mu^{1-p}}{1-p} - \frac{\mu^{2-p}}{2-p}\right) + \log a(y, \phi, p)
              \;(y > 0), \qquad \log P(Y = 0) = -\frac{\mu^{2-p}}{\phi(2-p)}

    with :math:`a` the series of :func:`tweedie_log_series`. Mean :math:`\mu`, variance :math:`\phi\mu^p`.
    ``Tweedie(power=1.5)`` fixes the power.
    """
    name = "tweedie"
    default_link = "log"
    links = ("log", "identity", "sqrt")
    psi_names = ("power",)
    zero_mass = True

    def latent_variance(self, link, null_mean, phi, psi):
        """``log(1 + phi mu0^(p - 2))`` (``Var = phi mu^p``; log-normal approximation, as insight)."""
        if link != "log":
            raise NotImplementedError(f"the latent-scale variance of the Tweedie family is defined for the log link, "
                                      f"not {link!r}")
        power = float(self.psi_to_natural(psi)[0])
        return (float(np.log1p(phi * null_mean() ** (power - 2.0))),
                "latent scale (log-normal approximation, null-model mean)")

    def __init__(self, power=None):
        if power is not None and not 1 < power < 2:
            raise ValueError(f"tweedie family: the power must lie strictly between 1 and 2 (got {power!r})")
        self.power = None if power is None else float(power)

    def __repr__(self) -> str:
        return "Tweedie()" if self.power is None else f"Tweedie(power={self.power:g})"

    def psi_to_natural(self, psi):
        return 1.0 + special.expit(_f(psi).reshape(-1))

    def psi_from_natural(self, values):
        return special.logit(_f(values).reshape(-1) - 1.0)

    def psi_start(self):
        return np.array([0.0 if self.power is None else special.logit(self.power - 1.0)])

    def fixed_psi(self):
        return None if self.power is None else np.array([special.logit(self.power - 1.0)])

    def _p(self, psi):
        psi = _f(psi).reshape(-1)
        if psi.size == 0:
            if self.power is None:
                raise ValueError("tweedie family: psi (logit(power - 1)) is needed when the power is estimated")
            return self.power
        return float(1.0 + special.expit(psi[0]))

    def logpdf(self, y, mu, phi, psi, w):
        return self.logpdf_mu(y, mu, phi, psi, w) + self.logpdf_free(y, phi, psi, w)

    def logpdf_mu(self, y, mu, phi, psi, w):
        """The part of :meth:`logpdf` that depends on ``mu``: ``(y mu^(1-p)/(1-p) - mu^(2-p)/(2-p)) / phi``."""
        p = self._p(psi)
        y, mu, phi = np.broadcast_arrays(_f(y), _f(mu), _f(phi))
        m1p = mu ** (1.0 - p)
        return _weighted(w, (y * m1p / (1.0 - p) - mu * m1p / (2.0 - p)) / phi)

    def logpdf_free(self, y, phi, psi, w):
        """The part of :meth:`logpdf` free of ``mu``: ``log a(y, phi, p)`` (the series, 0 at ``y = 0``,
        ``-inf`` for negative ``y``).  A Laplace fit evaluates it once per ``(phi, p)``, not per
        Newton step."""
        p = self._p(psi)
        y, phi = np.broadcast_arrays(_f(y), _f(phi))
        lf = np.zeros(y.shape)
        pos = y > 0
        if pos.any():
            lf[pos] = tweedie_log_series(y[pos], phi[pos], p)
        return _weighted(w, np.where(y < 0, -np.inf, lf))

    def dlogpdf_dmu(self, y, mu, phi, psi, w):
        p = self._p(psi)
        y, mu, phi = _f(y), _f(mu), _f(phi)
        mp = mu ** (-p)
        return _weighted(w, (y - mu) * mp / phi, mp / mu * ((p - 1.0) * mu - p * y) / phi)

    def logp0(self, mu, phi, psi, w):
        p = self._p(psi)
        mu, phi = np.broadcast_arrays(_f(mu), _f(phi))
        m1p = mu ** (1.0 - p) / phi
        return -mu * m1p / (2.0 - p), -m1p, (p - 1.0) * m1p / mu

    def variance(self, mu, phi, psi, w=1.0):
        return _f(phi) * _f(mu) ** self._p(psi)

    def sample(self, mu, phi, psi, w, rng):
        p = self._p(psi)
        mu, phi = np.broadcast_arrays(_f(mu), _f(phi))
        n = rng.poisson(mu ** (2.0 - p) / (phi * (2.0 - p)))
        shape, scale = (2.0 - p) / (p - 1.0), phi * (p - 1.0) * mu ** (p - 1.0)
        return np.where(n > 0, rng.gamma(np.maximum(n, 1) * shape, scale), 0.0)

    def initial_mu(self, y, w):
        y = _f(y)
        return y + 0.1 * (y == 0)

    def initial_log_phi(self, y, mu, w):
        """Moments at the fixed power (1.5 if estimated): weighted mean of ``(y - mu)^2 / mu^p``."""
        y, mu = np.broadcast_arrays(_f(y), _f(mu))
        p = self.power if self.power is not None else 1.5
        return _log_clip(_wmean((y - mu) ** 2 / mu ** p, np.broadcast_to(_f(w), y.shape)), 1e-3, 1e3, 1.0)

    def check_response(self, y, w) -> None:
        super().check_response(y, w)
        y = _f(y)
        bad = y < 0
        if bad.any():
            _raise_rows(self.name, "responses must be >= 0", bad, y,
                        "check the response column, or use a family for real-valued responses (gaussian, t)")
