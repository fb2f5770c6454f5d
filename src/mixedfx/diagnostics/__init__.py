"""Diagnostics for fitted models (leverages; more to come).

Importing this package registers ``hatvalues`` with the result classes.
"""
from .leverage import hatvalues

__all__ = ["hatvalues"]
