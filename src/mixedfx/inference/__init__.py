"""Inference for fitted models: degrees of freedom, F tests, intervals, model comparison.

Importing this package registers ``coef_table``, ``anova`` and ``confint`` with the result
classes (see :mod:`mixedfx.results.extensions`).
"""
from .bootstrap import bootstrap
from .compare import anova
from .fixed import anova_type3, coef_table, confint
from .profile import profile, profile_confint
from .simulate import simulate

__all__ = ["anova", "anova_type3", "bootstrap", "coef_table", "confint", "profile", "profile_confint", "simulate"]
