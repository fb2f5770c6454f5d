"""Results stage: frozen, user-facing views of fitted models (tables, predictions, summaries)."""
from .lmm_result import LinearMixedModelResult
from .summary import Summary

__all__ = ["LinearMixedModelResult", "Summary"]
