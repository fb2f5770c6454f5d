"""Formula stage: lme4 formula text -> :class:`ModelFormula` (text only, no numpy)."""
from .parser import FormulaSyntaxError, parse
from .terms import ModelFormula, RandomTerm, TermList, parse_formula

__all__ = ["FormulaSyntaxError", "ModelFormula", "RandomTerm", "TermList", "parse", "parse_formula"]
