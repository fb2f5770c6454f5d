"""Design stage: a :class:`~mixedfx.formula.ModelFormula` and a DataFrame -> arrays (:class:`Design`)."""
from .design import Design, DesignSpec, MissingDataWarning, build_design
from .evaluate import DesignError
from .matrices import RankDeficiencyWarning
from .random import IdentifiabilityWarning, ReBlock

__all__ = ["Design", "DesignSpec", "DesignError", "IdentifiabilityWarning", "MissingDataWarning",
           "RankDeficiencyWarning", "ReBlock", "build_design"]
