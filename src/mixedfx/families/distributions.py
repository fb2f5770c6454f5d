"""Response distributions for glmmTMB-style families (issue 11).

The classes live in :mod:`~mixedfx.families.distributions_counts` (the :class:`Distribution` base class,
Poisson, negative binomials, generalized Poisson, binomial, beta-binomial) and
:mod:`~mixedfx.families.distributions_continuous` (beta, Student t, Tweedie, log-normal, Gaussian, Gamma);
this module re-exports them and keeps the registry by glmmTMB family name.
"""
from __future__ import annotations

from .distributions_continuous import Beta, Gamma, Gaussian, Lognormal, StudentT, Tweedie, tweedie_log_series
from .distributions_binomial import BetaBinomial, Binomial
from .distributions_counts import Distribution, GenPois, NBinom1, NBinom2, Poisson

__all__ = ["Distribution", "Poisson", "NBinom2", "NBinom1", "GenPois", "Binomial", "BetaBinomial", "Beta",
           "StudentT", "Tweedie", "Lognormal", "Gaussian", "Gamma", "DISTRIBUTIONS", "get_distribution",
           "tweedie_log_series"]

DISTRIBUTIONS = {cls.name: cls for cls in (Poisson, NBinom2, NBinom1, GenPois, Binomial, BetaBinomial, Beta,
                                           StudentT, Tweedie, Lognormal, Gaussian, Gamma)}

# glmmTMB's function names and lower-case spellings
_ALIASES = {"gamma": "Gamma", "beta_family": "beta", "t_family": "t", "student_t": "t", "genpoisson": "genpois"}


def get_distribution(name, **kwargs) -> Distribution:
    """A distribution from glmmTMB's family name (``"nbinom2"``, ``"t"``, ``"Gamma"``...), options passed on
    (``get_distribution("t", df=4)``, ``get_distribution("tweedie", power=1.6)``); a Distribution instance
    is returned as is."""
    if isinstance(name, Distribution):
        if kwargs:
            raise ValueError("give the options inside the distribution object, not as keyword arguments")
        return name
    key = name.strip() if isinstance(name, str) else name
    key = key if key in DISTRIBUTIONS else _ALIASES.get(key, _ALIASES.get(str(key).lower(), key))
    cls = DISTRIBUTIONS.get(key)
    if cls is None:
        raise ValueError(f"unknown response distribution {name!r}; choose one of {', '.join(DISTRIBUTIONS)}")
    try:
        return cls(**kwargs)
    except TypeError:
        raise ValueError(f"the {key} distribution does not take the option(s) {', '.join(sorted(kwargs))}") from None
