"""mixedfx: linear and generalized linear mixed-effects models with lme4's formulas and answers, fast.

>>> import mixedfx as mfx
>>> m = mfx.lmer("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))
"""
from . import datasets
from . import families
from . import diagnostics, inference, plots
from .api import glmer, lmer
from .api_ordinal import clmm
from .api_gee import gee
from .core.gee import GEENumericalError
from .allfit import allfit
from .diagnostics import compare_pooling
from .plots.explorer import explore
from .inference import anova, exact_rlrt, hausman
from .inference.emmeans import emmeans
from .design.within_between import within_between
from .results.power_result import power
from .results.io import load
from .design import DesignError, IdentifiabilityWarning, MissingDataWarning, RankDeficiencyWarning
from .formula import FormulaSyntaxError
from .families import ResponseError
from .models import ConvergenceWarning, SingularFitWarning
from .models.glmm import SeparationWarning

__version__ = "0.1.0"
__all__ = ["lmer", "glmer", "clmm", "gee", "allfit", "anova", "emmeans", "power", "hausman", "within_between",
           "exact_rlrt", "load", "compare_pooling", "explore", "inference", "diagnostics", "plots",
           "families", "datasets", "DesignError", "FormulaSyntaxError", "MissingDataWarning", "RankDeficiencyWarning",
           "IdentifiabilityWarning", "ConvergenceWarning", "ResponseError", "SeparationWarning", "SingularFitWarning",
           "GEENumericalError", "__version__"]
