"""Numerical core on arrays only (never pandas): theta/Lambda, blocked PLS factorization, optimizer."""
from .covariance import ThetaLayout
from .optimize import OptResult, bobyqa
from .workspace import FAILED_OBJECTIVE, PLSWorkspace, random_effects_matrix

__all__ = ["FAILED_OBJECTIVE", "OptResult", "PLSWorkspace", "ThetaLayout", "bobyqa", "random_effects_matrix"]
