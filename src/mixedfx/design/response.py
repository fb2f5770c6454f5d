"""GLMM responses as users write them, turned into ``(y, trials)``.

* ``cbind(successes, failures)``: ``y = s / (s + f)`` with ``s + f`` trials (binomial);
* a proportion with ``weights=`` trials (binomial);
* 0/1 numbers, booleans, a two-level factor or strings: the first level is failure, as in R;
* counts and positive reals as numbers.

Impossible values (negative or fractional successes, proportions outside [0, 1]...) raise a
:class:`~mixedfx.design.DesignError` naming the problem.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..formula.ast import Call, Node, deparse
from .evaluate import AtomState, DesignError, evaluate_atom

__all__ = ["glmm_response"]


def _numeric(node: Node, data: pd.DataFrame, state: AtomState, what: str) -> np.ndarray:
    v = evaluate_atom(node, data, state, training=True)
    if not isinstance(v, np.ndarray):
        raise DesignError(f"{what} {deparse(node)!r} must be numeric")
    return v


def glmm_response(node: Node, data: pd.DataFrame, state: AtomState,
                  binomial: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Evaluate a GLMM response; returns ``(y, trials or None)``."""
    if isinstance(node, Call) and node.func == "cbind":
        if not binomial:
            raise DesignError("cbind(successes, failures) is a binomial response; use family='binomial'")
        if len(node.args) != 2:
            raise DesignError("cbind() takes two columns: cbind(successes, failures)")
        s = _numeric(node.args[0].value, data, state, "successes")
        f = _numeric(node.args[1].value, data, state, "failures")
        for v, name in ((s, "successes"), (f, "failures")):
            if np.any(v < 0):
                raise DesignError(f"cbind(): {name} must be non-negative ({int((v < 0).sum())} negative values)")
            if np.any(np.abs(v - np.round(v)) > 1e-8):
                raise DesignError(f"cbind(): {name} must be whole numbers")
        n = s + f
        if np.any(n == 0):
            raise DesignError(f"cbind(): {int((n == 0).sum())} row(s) have no trials (successes + failures = 0)")
        return s / n, n
    from ..formula.ast import Name
    if isinstance(node, Name) and node.id in data.columns and data[node.id].dtype == bool:
        return data[node.id].to_numpy(dtype=float), None      # TRUE = success
    value = evaluate_atom(node, data, state, training=True)
    label = deparse(node)
    if isinstance(value, pd.Categorical):
        if not binomial:
            raise DesignError(f"the response {label!r} is categorical; only the binomial family takes a "
                              "factor response (first level = failure)")
        levels = list(value.categories)
        if len(levels) != 2:
            raise DesignError(f"the binomial response {label!r} has {len(levels)} levels "
                              f"({', '.join(map(repr, levels[:5]))}); it needs exactly two (first = failure)")
        return (value.codes == 1).astype(float), None
    return value, None
