"""Results stage: frozen, user-facing views of fitted models (tables, predictions, summaries)."""
from .glmm_result import GeneralizedLinearMixedModelResult
from .lmm_result import LinearMixedModelResult, MixedModelResultBase
from .summary import Summary

__all__ = ["GeneralizedLinearMixedModelResult", "LinearMixedModelResult", "MixedModelResultBase", "Summary"]
