"""GLMM families and links: variance, unit deviance, full log-likelihood, IRLS weights."""
from .family import (Binomial, Family, Gamma, Gaussian, InverseGaussian, NegativeBinomial, Poisson,
                     ResponseError, get_family)
from .links import LINKS, Link, get_link

__all__ = ["Binomial", "Family", "Gamma", "Gaussian", "InverseGaussian", "NegativeBinomial", "Poisson",
           "ResponseError", "get_family", "LINKS", "Link", "get_link"]
