"""Diagnostics for fitted models: leverages and shrinkage (more to come).

The result classes in :mod:`mixedfx.results` import these functions to expose them as methods.
"""
from .checks import CheckReport, check
from .influence import influence
from .leverage import hatvalues
from .pooling import PoolingComparison, compare_pooling
from .shrinkage import shrinkage

__all__ = ["CheckReport", "check", "PoolingComparison", "compare_pooling", "hatvalues", "influence", "shrinkage"]
