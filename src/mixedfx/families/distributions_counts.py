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
from .specfun import lfactorial, psi_diffs
from .specfun import stack as _stack
from .specfun import lgamma_ratio as _lgamma_ratio

__all__ = ["Distribution", "Poisson", "NBinom2", "NBinom1", "GenPois"]


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
    lf = lfactorial(_stack(n, k, n - k))
    return lf[0] - lf[1] - lf[2]


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


def _marginal_index(y, w):
    """``(mean, variance / mean)`` of ``y`` weighted by ``w`` (rows of weight 0 ignored; index 1 when it is
    not a finite number)."""
    y, w = np.broadcast_arrays(_f(y), _f(w))
    keep = w > 0
    y, w = y[keep], w[keep]
    ybar = _wmean(y, w) if y.size else 0.0
    D = _wmean((y - ybar) ** 2, w) / ybar if ybar > 0 else 1.0
    return ybar, (D if np.isfinite(D) else 1.0)


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

    def _log_link(self, link):
        if link != "log":
            raise NotImplementedError(f"the latent-scale variance of the {self.name} family is defined for the log "
                                      f"link (Nakagawa et al. 2017), not {link!r}")

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

    def latent_variance(self, link, null_mean, phi, psi):
        """``log(1 + 1/mu0)`` (Nakagawa et al.'s log-normal approximation; ``mu0`` the null model's mean)."""
        self._log_link(link)
        return float(np.log1p(1.0 / null_mean())), "latent scale (log-normal approximation, null-model mean)"

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

    def latent_variance(self, link, null_mean, phi, psi):
        """``log(1 + 1/mu0 + 1/phi)`` (log-normal approximation, as insight)."""
        self._log_link(link)
        return (float(np.log1p(1.0 / null_mean() + 1.0 / phi)),
                "latent scale (log-normal approximation, null-model mean)")

    def logpdf(self, y, mu, phi, psi, w):
        y, mu, phi = _f(y), _f(mu), _f(phi)
        s = phi + mu
        lf = _lgamma_ratio(y, phi) - phi * np.log1p(mu / phi) + special.xlogy(y, mu / s)
        return _weighted(w, lf)

    def dlogpdf_dmu(self, y, mu, phi, psi, w):
        y, mu, phi = _f(y), _f(mu), _f(phi)
        s = phi + mu
        q, g = phi / s, y / mu                  # no overflow of mu^2 s^2 for huge phi (Poisson limit)
        d1 = q * (g - 1.0)
        d2 = -(d1 / s + q * g / mu)
        return _weighted(w, d1, d2)

    def logp0(self, mu, phi, psi, w):
        mu, phi = np.broadcast_arrays(_f(mu), _f(phi))
        q = phi / (phi + mu)
        return -phi * np.log1p(mu / phi), -q, q / (phi + mu)

    def variance(self, mu, phi, psi, w=1.0):
        mu = _f(mu)
        return mu + mu * mu / _f(phi)

    def sample(self, mu, phi, psi, w, rng):
        mu, phi = np.broadcast_arrays(_f(mu), _f(phi))
        return rng.negative_binomial(phi, phi / (phi + mu)).astype(float)

    def initial_log_phi(self, y, mu, w):
        """Moments: ``sum w mu^2 / sum w ((y - mu)^2 - mu)``, at least the marginal
        ``mean(y)^2 / (var(y) - mean(y))`` (a lower bound up to noise: covariates and random effects only
        add variance); when the residuals show no overdispersion (as at the family's own start
        ``mu ~ y``) the marginal value, or glmmTMB's start ``phi = 1`` if that is larger; clipped to
        [0.01, 100] (100: near Poisson)."""
        y, mu, w = _f(y), _f(mu), _f(w) + 0 * _f(y)
        ybar, D = _marginal_index(y, w)
        marg = ybar / (D - 1.0) if D > 1.0 else 100.0
        den = np.sum(w * ((y - mu) ** 2 - mu))
        value = max(np.sum(w * mu * mu) / den, marg) if den > 0 else max(marg, 1.0)
        return _log_clip(value, 0.01, 100.0, 100.0)


class NBinom1(_CountBase):
    r"""Negative binomial, linear parameterisation (glmmTMB ``nbinom1``): NB with size
    :math:`r = \mu/\phi` and success probability :math:`1/(1+\phi)`.

    .. math:: \log f(y) = \log\frac{\Gamma(y+r)}{\Gamma(r)\, y!} - r \log(1+\phi)
              + y \log\frac{\phi}{1+\phi}, \quad y = 0, 1, \dots

    Mean :math:`\mu`, variance :math:`\mu(1+\phi)` (Poisson as :math:`\phi \to 0`);
    :math:`\log P(0) = -(\mu/\phi) \log(1+\phi)`.
    """
    name = "nbinom1"

    def latent_variance(self, link, null_mean, phi, psi):
        """``log(1 + (1 + phi)/mu0)`` (log-normal approximation, as insight)."""
        self._log_link(link)
        return float(np.log1p((1.0 + phi) / null_mean())), "latent scale (log-normal approximation, null-model mean)"

    def logpdf(self, y, mu, phi, psi, w):
        y, mu, phi = _f(y), _f(mu), _f(phi)
        r, l1p = mu / phi, np.log1p(phi)
        lf = _lgamma_ratio(y, r) - r * l1p + y * (np.log(phi) - l1p)
        return _weighted(w, lf)

    def dlogpdf_dmu(self, y, mu, phi, psi, w):
        y, mu, phi = _f(y), _f(mu), _f(phi)
        # psi(y + r) - psi(r) = [psi(1 + r + (y - 1)) - psi(1 + r)] + 1/r for y > 0 (0 for y = 0), likewise
        # psi1 with -1/r^2: the 1/r terms are 1/mu after the division by phi (no overflow for huge phi),
        # and the differences keep their digits for huge r (phi -> 0, the Poisson limit)
        pos = y > 0
        g1, g2 = psi_diffs(1.0 + mu / phi, np.where(pos, y - 1.0, 0.0))
        im = np.where(pos, 1.0 / mu, 0.0)
        d1 = (g1 - np.log1p(phi)) / phi + im
        d2 = g2 / phi / phi - im * im
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
        """Moments: ``sum w ((y - mu)^2 - mu) / sum w mu``, at most the marginal ``var(y) / mean(y) - 1``
        (an upper bound up to noise: covariates and random effects only add variance); when the residuals
        show no overdispersion (as at the family's own start ``mu ~ y``) the marginal value but at most
        glmmTMB's start ``phi = 1``; clipped to [0.01, 100]."""
        y, mu, w = _f(y), _f(mu), _f(w) + 0 * _f(y)
        marg = _marginal_index(y, w)[1] - 1.0
        resid = np.sum(w * ((y - mu) ** 2 - mu)) / np.sum(w * mu)
        return _log_clip(min(resid, marg) if resid > 0 else min(marg, 1.0), 0.01, 100.0, 0.01)


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

    def latent_variance(self, link, null_mean, phi, psi):
        """``log(1 + phi/mu0)`` (``Var = phi mu``; log-normal approximation, as insight)."""
        self._log_link(link)
        return float(np.log1p(phi / null_mean())), "latent scale (log-normal approximation, null-model mean)"

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
        """Moments, never below the Poisson ``phi = 1`` (glmmTMB's start) unless the data are clearly
        underdispersed.

        The residual index ``sum w (y - mu)^2 / sum w mu`` (informative for fitted means, about 0 at the
        family's own start ``mu ~ y``) is clipped to ``[1, D]``, ``D`` the marginal index of dispersion
        ``var(y) / mean(y)`` (an upper bound up to noise: covariates and random effects only add variance),
        and to 100. Clearly underdispersed data (``D < 1 - 3 sqrt(2 / n)``, three standard errors of
        ``D`` below 1 for Poisson data) start at ``phi = D`` (at least 0.1), raised where needed to keep
        every row inside the truncated support at ``mu`` (``sqrt(phi) > 1 - mu / y``): the log density at
        the start is finite.
        """
        y, mu = np.broadcast_arrays(_f(y), _f(mu))
        w = np.broadcast_to(_f(w), y.shape)
        keep = w > 0
        y, mu, w = y[keep], mu[keep], w[keep]
        if y.size == 0:
            return 0.0
        D = _marginal_index(y, w)[1]
        resid = np.sum(w * (y - mu) ** 2) / np.sum(w * mu)
        if D >= 1.0 - 3.0 * np.sqrt(2.0 / y.size):
            return _log_clip(min(resid, D) if np.isfinite(resid) else 1.0, 1.0, max(1.0, min(D, 100.0)), 1.0)
        phi = max(D, 0.1)
        pos = y > 0
        if pos.any():                       # theta + lambda y > 0 <=> sqrt(phi) > 1 - mu / y
            need = float(np.max(1.0 - mu[pos] / y[pos]))
            if np.sqrt(phi) <= need:
                phi = (0.5 * (1.0 + need)) ** 2
        return float(np.log(phi))
