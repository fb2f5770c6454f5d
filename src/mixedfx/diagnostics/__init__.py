"""Diagnostics for fitted models: checks, leverages, influence, shrinkage and simulation-based residuals.

The result classes in :mod:`mixedfx.results` import these functions to expose them as methods.
"""
from .checks import CheckReport, check
from .influence import influence
from .leverage import hatvalues
from .pooling import PoolingComparison, compare_pooling
from .shrinkage import shrinkage
from .simulated_residuals import SimulatedResiduals, SimulationTest, simulated_residuals

__all__ = ["CheckReport", "check", "PoolingComparison", "compare_pooling", "hatvalues", "influence", "shrinkage",
           "SimulatedResiduals", "SimulationTest", "simulated_residuals"]
