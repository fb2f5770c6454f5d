"""Further linear predictors of a model on the same rows: zero inflation (``zi=``) and dispersion
(``disp=``) formulas of glmmTMB-style GLMMs.

Each is a one-sided formula of fixed terms (``"~ mined"``, ``"~ 1"``, ``"~ 0"`` for none), with
an intercept unless removed, and ``offset(...)`` allowed.  Its variables take part in the
missing-value filter of the whole model (rows missing any of them are dropped with the rest).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..formula.ast import deparse
from ..formula.terms import ModelFormula, parse_formula
from .columns import string_columns
from .errors import DesignError
from .evaluate import AtomState, check_columns, evaluate_atom
from .matrices import TermMatrixSpec, build_term_matrix, drop_aliased_columns

__all__ = ["ModelPart", "part_formula", "part_variables", "build_part"]

_WHAT = {"zi": "zi= (the zero-inflation formula)", "disp": "disp= (the dispersion formula)"}


def part_formula(name: str, text) -> ModelFormula:
    """Parse a part's one-sided formula, with a clear error for anything else."""
    what = _WHAT.get(name, name + "=")
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a one-sided formula string such as '~ x', got {type(text).__name__}")
    f = parse_formula(text if "~" in text else "~ " + text)
    if f.response is not None:
        raise DesignError(f"{what}: {text!r} has a response; write it one-sided, such as '~ x'")
    if f.random:
        raise DesignError(f"{what}: {text!r} has a random-effects term; random effects are supported in the "
                          "conditional formula only (move the term there or drop it)")
    return f


def part_variables(name: str, text) -> list[str]:
    return list(part_formula(name, text).variables)


@dataclass(frozen=True)
class ModelPart:
    """One further linear predictor: ``X @ coef + offset``.

    Attributes
    ----------
    name : ``"zi"`` or ``"disp"``.  text : the formula as given.  X : (n, p) its model matrix
    with column ``names`` (R's).  offset : (n,) or None.
    """
    name: str
    text: str
    formula: ModelFormula
    state: AtomState
    spec: TermMatrixSpec
    X: np.ndarray
    names: tuple[str, ...]
    offset: np.ndarray | None

    @property
    def p(self) -> int:
        return self.X.shape[1]

    def matrix(self, data: pd.DataFrame) -> np.ndarray:
        """The part's model matrix for new data (the fit's columns, contrasts and levels)."""
        data = string_columns(data)
        check_columns(sorted(self.formula.variables), data, "newdata")
        atoms = {lab: evaluate_atom(node, data, self.state, training=False, matrix=True)
                 for lab, node in self.formula.atoms.items()}
        return self.spec.matrix(atoms, len(data))

    def offset_for(self, data: pd.DataFrame) -> np.ndarray:
        data = string_columns(data)
        out = np.zeros(len(data))
        for node in self.formula.offsets:
            out += evaluate_atom(node, data, self.state, training=False)
        return out


def build_part(name: str, text: str, data) -> ModelPart:
    """The part's arrays on the model's rows (``data``: the filtered model frame)."""
    f = part_formula(name, text)
    state = AtomState()
    n = len(data)
    atoms = {lab: evaluate_atom(node, data, state, training=True, matrix=True) for lab, node in f.atoms.items()}
    X, spec = build_term_matrix(f.fixed, atoms, n)
    X, spec = drop_aliased_columns(X, spec)
    if not np.all(np.isfinite(X)):
        raise DesignError(f"{_WHAT.get(name, name)}: {text!r} gives non-finite values")
    off = None
    for node in f.offsets:
        val = evaluate_atom(node, data, state, training=True)
        if not isinstance(val, np.ndarray) or not np.all(np.isfinite(val)):
            raise DesignError(f"{_WHAT.get(name, name)}: offset({deparse(node)}) must be numeric and finite")
        off = val if off is None else off + val
    return ModelPart(name, text, f, state, spec, np.asarray(X, float), tuple(spec.names), off)
