"""Diagnostics for fitted models: leverages and shrinkage (more to come).

Importing this package registers ``hatvalues`` and ``shrinkage`` with the result classes.
"""
from .leverage import hatvalues
from .shrinkage import shrinkage

__all__ = ["hatvalues", "shrinkage"]
