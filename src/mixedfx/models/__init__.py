"""Model stage: fit the deviance function of a Design (LMM now; GLMM composes a workspace and a family)."""
from .glmm import GlmmFit, fit_glmm
from .lmm import ConvergenceWarning, LmmFit, SingularFitWarning, fit_lmm, make_workspace

__all__ = ["GlmmFit", "fit_glmm", "ConvergenceWarning", "LmmFit", "SingularFitWarning", "fit_lmm", "make_workspace"]
