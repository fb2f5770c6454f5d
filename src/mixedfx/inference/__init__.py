"""Inference for fitted models: degrees of freedom, F tests, intervals, model comparison.

The functions take a fitted result (duck-typed: ``result.fit`` and lme4's accessors); the
result classes in :mod:`mixedfx.results` import them explicitly to expose them as methods.
"""
from .bootstrap import bootstrap
from .compare import anova
from .fixed import anova_type3, coef_table, confint
from .hausman import hausman
from .profile import profile, profile_confint
from .rlrt import exact_rlrt
from .simulate import simulate

__all__ = ["anova", "anova_type3", "bootstrap", "coef_table", "confint", "exact_rlrt", "hausman", "profile",
           "profile_confint", "simulate"]
