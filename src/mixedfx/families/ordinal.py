"""The cumulative link model for ordered categories (ordinal's ``clm`` / ``clmm``).

For categories ``1 < 2 < ... < K`` and thresholds ``theta_1 < ... < theta_{K-1}``,
``P(Y <= j | eta) = F(theta_j - eta)`` with ``F`` the inverse link (logistic, standard normal,
or ``1 - exp(-exp(x))`` for cloglog), so ``P(Y = j) = F(theta_j - eta) - F(theta_{j-1} - eta)``
with ``theta_0 = -inf`` and ``theta_K = inf``; a larger ``eta`` shifts the response to higher
categories.  The model's linear predictor has no intercept (the thresholds take its place).

The thresholds are the family parameters (``psi``), unconstrained internally as
``psi_1 = theta_1`` and ``psi_j = log(theta_j - theta_{j-1})``, which keeps them ordered.
With ``a = theta_{y-1} - eta``, ``b = theta_y - eta`` and ``P = F(b) - F(a)``:

    d log P / d eta = -(f(b) - f(a)) / P ,
    d^2 log P / d eta^2 = (f'(b) - f'(a)) / P - (d log P / d eta)^2 ,

``f`` the density and ``f'`` its derivative (zero at infinite thresholds).
"""
from __future__ import annotations

import numpy as np
from scipy import special, stats

from .family import ResponseError

__all__ = ["CumulativeLink", "ORDINAL_LINKS"]

ORDINAL_LINKS = ("logit", "probit", "cloglog")


def _cdf_parts(link: str, x):
    """``(log F(x), log(1 - F(x)), f(x), f'(x))``, finite-safe at +-inf."""
    x = np.asarray(x, float)
    with np.errstate(over="ignore", invalid="ignore"):
        if link == "logit":
            logF, logS = special.log_expit(x), special.log_expit(-x)
            F = special.expit(x)
            f = F * (1.0 - F)
            fp = f * (1.0 - 2.0 * F)
        elif link == "probit":
            logF, logS = special.log_ndtr(x), special.log_ndtr(-x)
            f = stats.norm.pdf(x)
            fp = -np.where(np.isfinite(x), x, 0.0) * f
        else:                                     # cloglog: F = 1 - exp(-exp(x))
            ex = np.exp(np.minimum(x, 700.0))
            logS = -ex
            logF = np.log(-np.expm1(-ex))
            f = np.where(np.isfinite(x), np.exp(np.minimum(x, 700.0) - ex), 0.0)
            fp = f * (1.0 - ex)
    f = np.where(np.isfinite(x), f, 0.0)
    fp = np.where(np.isfinite(x), fp, 0.0)
    return logF, logS, f, fp


class CumulativeLink:
    """Cumulative link distribution for ``K`` ordered categories (see the module docstring).

    Parameters
    ----------
    K : number of categories.  link : ``"logit"``, ``"probit"`` or ``"cloglog"``.
    levels : category labels (for the threshold names ``"1|2"``...).
    """
    has_dispersion = False
    dispersion_name = "phi"
    count = False
    binomial_type = False
    zero_mass = False
    default_link = "identity"
    links = ("identity",)

    def __init__(self, K: int, link: str = "logit", levels=None):
        if link not in ORDINAL_LINKS:
            raise ValueError(f"link must be one of {', '.join(ORDINAL_LINKS)} for an ordinal model, got {link!r}")
        if K < 2:
            raise ValueError("an ordinal response needs at least two categories")
        self.K, self.cdf_link = int(K), link
        self.levels = tuple(str(v) for v in (levels if levels is not None else range(1, K + 1)))
        self.name = f"cumulative {link}"
        self.psi_names = tuple(f"{self.levels[j]}|{self.levels[j + 1]}" for j in range(K - 1))

    def __repr__(self) -> str:
        return f"CumulativeLink(K={self.K}, link={self.cdf_link!r})"

    # ----------------------------------------------------------- thresholds
    def psi_to_natural(self, psi) -> np.ndarray:
        """Thresholds ``theta`` from the internal ``psi``."""
        psi = np.asarray(psi, float).reshape(-1)
        return np.cumsum(np.concatenate([psi[:1], np.exp(psi[1:])]))

    def psi_from_natural(self, values) -> np.ndarray:
        t = np.asarray(values, float).reshape(-1)
        d = np.diff(t)
        if np.any(d <= 0):
            raise ValueError("thresholds must be strictly increasing")
        return np.concatenate([t[:1], np.log(d)])

    def threshold_jacobian(self, psi) -> np.ndarray:
        """``d theta / d psi`` (K-1, K-1): lower triangular, column ``j > 0`` is ``exp(psi_j)``."""
        psi = np.asarray(psi, float).reshape(-1)
        scale = np.concatenate([[1.0], np.exp(psi[1:])])
        return np.tril(np.ones((len(psi), len(psi)))) * scale[None, :]

    def psi_start(self) -> np.ndarray:
        return self._start

    def set_start(self, y, w=None) -> None:
        """Thresholds from the cumulative proportions of the categories (``eta = 0``)."""
        y = np.asarray(y, float)
        counts = np.bincount(y.astype(int), minlength=self.K + 1)[1:].astype(float)
        cum = np.cumsum(counts)[:-1] / counts.sum()
        cum = np.clip(cum, 1e-3, 1 - 1e-3)
        x = np.linspace(-1, 1, self.K - 1) if self.K > 2 else np.zeros(1)
        theta = {"logit": special.logit, "probit": special.ndtri,
                 "cloglog": lambda p: np.log(-np.log1p(-p))}[self.cdf_link](cum)
        theta = np.maximum.accumulate(theta + 1e-3 * x)
        self._start = self.psi_from_natural(theta + 1e-6 * np.arange(len(theta)))

    def fixed_psi(self):
        return None

    def _bounds(self, y, psi):
        theta = self.psi_to_natural(psi)
        full = np.concatenate([[-np.inf], theta, [np.inf]])
        k = np.asarray(y, float).astype(int)
        return full[k - 1], full[k]

    # -------------------------------------------------------------- density
    def _parts(self, y, mu, psi):
        lo, hi = self._bounds(y, psi)
        a, b = lo - mu, hi - mu
        lFa, lSa, fa, fpa = _cdf_parts(self.cdf_link, a)
        lFb, lSb, fb, fpb = _cdf_parts(self.cdf_link, b)
        # log(F(b) - F(a)): from the upper tail where both are large, from the lower tail elsewhere
        with np.errstate(divide="ignore", invalid="ignore"):
            upper = lSa + np.log1p(-np.exp(lSb - lSa))
            lower = lFb + np.log1p(-np.exp(lFa - lFb))
        logP = np.where(a > 0, upper, lower)
        return logP, fa, fpa, fb, fpb

    def logpdf(self, y, mu, phi, psi, w) -> np.ndarray:
        """``w log P(Y = y | eta = mu)``."""
        return np.asarray(w, float) * self._parts(y, mu, psi)[0]

    def dlogpdf_dmu(self, y, mu, phi, psi, w):
        return self.logpdf_derivs(y, mu, phi, psi, w)[1:]

    def logpdf_derivs(self, y, mu, phi, psi, w):
        """``(logpdf, d/dmu, d2/dmu2)`` in one pass (what the Laplace engine asks for each step)."""
        logP, fa, fpa, fb, fpb = self._parts(y, mu, psi)
        P = np.exp(logP)
        d1 = -(fb - fa) / P
        d2 = (fpb - fpa) / P - d1 * d1
        w = np.asarray(w, float)
        return w * logP, w * d1, w * d2

    def latent_variance(self, link: str, null_mean, phi, psi):
        """The residual variance on the latent scale (for the ICC and R2): the variance of the
        standard logistic (``pi^2 / 3``), normal (1) or Gumbel (``pi^2 / 6``) distribution."""
        value = {"logit": np.pi ** 2 / 3, "probit": 1.0, "cloglog": np.pi ** 2 / 6}[self.cdf_link]
        return value, f"latent scale ({self.cdf_link}: distribution variance)"

    def probabilities(self, eta, psi) -> np.ndarray:
        """Category probabilities (n, K) at linear predictors ``eta``."""
        theta = self.psi_to_natural(psi)
        eta = np.asarray(eta, float)
        F = np.exp(_cdf_parts(self.cdf_link, theta[None, :] - eta[:, None])[0])
        F = np.hstack([np.zeros((len(eta), 1)), F, np.ones((len(eta), 1))])
        return np.diff(F, axis=1)

    def mean(self, mu, phi, psi) -> np.ndarray:
        """Expected category number ``sum_j j P(Y = j)``."""
        return self.probabilities(mu, psi) @ np.arange(1, self.K + 1)

    def variance(self, mu, phi, psi, w=1.0) -> np.ndarray:
        P = self.probabilities(mu, psi)
        j = np.arange(1, self.K + 1)
        m = P @ j
        return P @ (j * j) - m * m

    def sample(self, mu, phi, psi, w, rng) -> np.ndarray:
        """Category numbers ``1..K``: the first ``j`` with ``U <= P(Y <= j)``."""
        P = self.probabilities(mu, psi)
        cum = np.cumsum(P, axis=1)
        u = rng.random(len(P))
        return 1.0 + np.minimum(np.sum(u[:, None] > cum[:, :-1], axis=1), self.K - 1)

    def initial_mu(self, y, w) -> np.ndarray:
        return np.zeros(len(y))

    def initial_log_phi(self, y, mu, w) -> float:
        return 0.0

    def check_response(self, y, w) -> None:
        y = np.asarray(y, float)
        if np.any((y < 1) | (y > self.K) | (y != np.round(y))):
            raise ResponseError(f"ordinal responses must be category numbers 1..{self.K}")
