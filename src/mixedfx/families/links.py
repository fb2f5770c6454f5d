"""Link functions ``eta = g(mu)`` with their inverses and derivatives.

Each link provides ``link(mu)``, ``inverse(eta)`` and ``mu_eta(eta) = d mu / d eta``
(the quantity IRLS weights are built from: ``w = mu_eta^2 / V(mu)``).  Inverses
clip to the open range of valid means so that PIRLS never produces a mean of
exactly 0 or 1 from a finite ``eta``.
"""
from __future__ import annotations

import numpy as np
from scipy import special, stats

__all__ = ["Link", "LINKS", "get_link"]

_EPS = np.finfo(float).eps
_TINY = 1e-300


class Link:
    """Base class.  ``name`` is R's link name."""
    name = ""

    def link(self, mu):
        raise NotImplementedError

    def inverse(self, eta):
        raise NotImplementedError

    def mu_eta(self, eta):
        raise NotImplementedError

    def mu_eta_deriv(self, eta):
        """``d^2 mu / d eta^2`` (derivatives of the working weights, for analytic gradients)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))


class Logit(Link):
    """``eta = log(mu / (1 - mu))``; ``mu = 1 / (1 + exp(-eta))``; ``dmu/deta = mu (1 - mu)``."""
    name = "logit"

    def link(self, mu):
        return special.logit(mu)

    @staticmethod
    def _expit(eta):
        """``1 / (1 + exp(-eta))``: the same numbers as ``scipy.special.expit`` to rounding, in
        a third of its time; ``-eta`` is capped at 709 so that ``exp`` never overflows (the
        mean there, ~1e-308, is clipped to machine epsilon anyway)."""
        return 1.0 / (1.0 + np.exp(np.minimum(-np.asarray(eta, float), 709.0)))

    def inverse(self, eta):
        return np.clip(self._expit(eta), _EPS, 1 - _EPS)

    def mu_eta(self, eta):
        mu = self._expit(eta)
        return np.maximum(mu * (1 - mu), _EPS)

    def mu_eta_deriv(self, eta):
        mu = self._expit(eta)
        me = mu * (1 - mu)
        return np.where(me > _EPS, me * (1 - 2 * mu), 0.0)


class Probit(Link):
    """``eta = Phi^{-1}(mu)``; ``dmu/deta = phi(eta)``."""
    name = "probit"

    def link(self, mu):
        return special.ndtri(mu)

    def inverse(self, eta):
        return np.clip(special.ndtr(eta), _EPS, 1 - _EPS)

    def mu_eta(self, eta):
        return np.maximum(np.exp(-0.5 * eta * eta) / np.sqrt(2 * np.pi), _EPS)

    def mu_eta_deriv(self, eta):
        d = np.exp(-0.5 * eta * eta) / np.sqrt(2 * np.pi)
        return np.where(d > _EPS, -eta * d, 0.0)


class Cloglog(Link):
    """``eta = log(-log(1 - mu))``; ``mu = 1 - exp(-exp(eta))``; ``dmu/deta = exp(eta - exp(eta))``."""
    name = "cloglog"

    def link(self, mu):
        return np.log(-np.log1p(-mu))

    def inverse(self, eta):
        return np.clip(-np.expm1(-np.exp(eta)), _EPS, 1 - _EPS)

    def mu_eta(self, eta):
        eta = np.minimum(eta, 700.0)
        return np.maximum(np.exp(eta - np.exp(eta)), _EPS)

    def mu_eta_deriv(self, eta):
        eta = np.minimum(eta, 700.0)
        ee = np.exp(eta)
        me = np.exp(eta - ee)
        return np.where(me > _EPS, me * (1 - ee), 0.0)


class Cauchit(Link):
    """``eta = tan(pi (mu - 1/2))``; ``dmu/deta = 1 / (pi (1 + eta^2))``."""
    name = "cauchit"

    def link(self, mu):
        return stats.cauchy.ppf(mu)

    def inverse(self, eta):
        return np.clip(stats.cauchy.cdf(eta), _EPS, 1 - _EPS)

    def mu_eta(self, eta):
        return np.maximum(1.0 / (np.pi * (1.0 + eta * eta)), _EPS)

    def mu_eta_deriv(self, eta):
        return np.where(1.0 / (np.pi * (1.0 + eta * eta)) > _EPS, -2.0 * eta / (np.pi * (1.0 + eta * eta) ** 2), 0.0)


class Log(Link):
    """``eta = log(mu)``; ``mu = exp(eta)``; ``dmu/deta = exp(eta)``."""
    name = "log"

    def link(self, mu):
        return np.log(mu)

    def inverse(self, eta):
        return np.maximum(np.exp(np.minimum(eta, 700.0)), _TINY)

    def mu_eta(self, eta):
        return np.maximum(np.exp(np.minimum(eta, 700.0)), _TINY)

    def mu_eta_deriv(self, eta):
        return np.where(eta < 700.0, np.maximum(np.exp(np.minimum(eta, 700.0)), _TINY), 0.0)


class Identity(Link):
    """``eta = mu``."""
    name = "identity"

    def link(self, mu):
        return np.asarray(mu, float)

    def inverse(self, eta):
        return np.asarray(eta, float)

    def mu_eta(self, eta):
        return np.ones_like(np.asarray(eta, float))

    def mu_eta_deriv(self, eta):
        return np.zeros_like(np.asarray(eta, float))


class Sqrt(Link):
    """``eta = sqrt(mu)``; ``mu = eta^2``; ``dmu/deta = 2 eta``."""
    name = "sqrt"

    def link(self, mu):
        return np.sqrt(mu)

    def inverse(self, eta):
        return np.asarray(eta, float) ** 2

    def mu_eta(self, eta):
        return 2.0 * np.asarray(eta, float)

    def mu_eta_deriv(self, eta):
        return np.full_like(np.asarray(eta, float), 2.0)


class Inverse(Link):
    """``eta = 1 / mu``; ``dmu/deta = -1 / eta^2``."""
    name = "inverse"

    def link(self, mu):
        return 1.0 / np.asarray(mu, float)

    def inverse(self, eta):
        return 1.0 / np.asarray(eta, float)

    def mu_eta(self, eta):
        return -1.0 / np.asarray(eta, float) ** 2

    def mu_eta_deriv(self, eta):
        return 2.0 / np.asarray(eta, float) ** 3


class InverseSquared(Link):
    """``eta = 1 / mu^2``; ``mu = eta^{-1/2}``; ``dmu/deta = -1 / (2 eta^{3/2})``."""
    name = "1/mu^2"

    def link(self, mu):
        return 1.0 / np.asarray(mu, float) ** 2

    def inverse(self, eta):
        return 1.0 / np.sqrt(eta)

    def mu_eta(self, eta):
        return -1.0 / (2.0 * np.asarray(eta, float) ** 1.5)

    def mu_eta_deriv(self, eta):
        return 0.75 / np.asarray(eta, float) ** 2.5


LINKS = {cls.name: cls for cls in (Logit, Probit, Cloglog, Cauchit, Log, Identity, Sqrt, Inverse, InverseSquared)}
LINKS["inverse_squared"] = InverseSquared


def get_link(link) -> Link:
    """A Link from a name (R's: ``"logit"``, ``"log"``, ``"1/mu^2"``...) or a Link instance."""
    if isinstance(link, Link):
        return link
    if isinstance(link, str) and link in LINKS:
        return LINKS[link]()
    raise ValueError(f"unknown link {link!r}; choose one of {', '.join(sorted(LINKS))}")
