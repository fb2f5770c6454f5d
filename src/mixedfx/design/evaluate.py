"""Evaluate formula atoms (``log(x)``, ``scale(x)``, ``I(x^2)``, ``factor(g)``) on a DataFrame.

An atom evaluates to a float vector (a covariate) or a :class:`pandas.Categorical`
(a factor), following R: numeric columns are covariates; strings, categoricals and
booleans are factors.  Data-dependent transforms keep their state (``scale``'s
centre and scale, a factor's levels) in an :class:`AtomState` so that new data are
encoded exactly as the data the model was fitted to.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..formula.ast import Arg, BinOp, Call, Name, Node, Number, Paren, String, UnaryOp, deparse

__all__ = ["AtomState", "DesignError", "evaluate_atom", "to_factor", "level_labels", "check_columns"]


class DesignError(ValueError):
    """The data do not fit the formula (missing column, wrong type, bad values)."""


@dataclass
class AtomState:
    """Per-atom state learned from the training data (mutable only while building a design)."""
    scale: dict = field(default_factory=dict)    # call label -> (center or None, scale or None)
    levels: dict = field(default_factory=dict)   # atom/variable label -> list of level labels


def check_columns(names, data: pd.DataFrame, what: str = "formula") -> None:
    """Raise a DesignError naming every missing column, with close matches."""
    missing = [n for n in names if n not in data.columns and n not in _CONSTANTS]
    if not missing:
        return
    msgs = []
    for n in missing:
        close = difflib.get_close_matches(n, [str(c) for c in data.columns], n=3, cutoff=0.6)
        if not close:
            close = [str(c) for c in data.columns if str(c).lower() == n.lower()]
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        msgs.append(f"{n!r}{hint}")
    raise DesignError(f"the {what} refers to column(s) not in the data: {'; '.join(msgs)}. "
                      f"Available columns: {', '.join(map(str, list(data.columns)[:20]))}"
                      + (" ..." if len(data.columns) > 20 else ""))


_CONSTANTS = {"TRUE": True, "FALSE": False, "T": True, "F": False, "pi": np.pi}


def level_labels(values) -> list[str]:
    """R's labels for factor levels: integers print without a decimal point."""
    out = []
    for v in values:
        if isinstance(v, (bool, np.bool_)):
            out.append("TRUE" if v else "FALSE")
        elif isinstance(v, (float, np.floating)) and float(v).is_integer():
            out.append(str(int(v)))
        elif isinstance(v, (float, np.floating)):
            out.append(f"{v:.15g}")
        else:
            out.append(str(v))
    return out


def to_factor(values, name: str, levels: list[str] | None = None) -> pd.Categorical:
    """Convert a column to a factor with R's level order.

    Categoricals keep their category order (unused levels dropped); strings and
    numbers are sorted; booleans become ``FALSE``/``TRUE``.  With ``levels``
    given (new data), values outside them raise a :class:`DesignError`.
    """
    if isinstance(values, pd.Series):
        values = values.array
    if isinstance(values, pd.Categorical) or isinstance(getattr(values, "dtype", None), pd.CategoricalDtype):
        cat = pd.Categorical(values)
        labels = level_labels(cat.categories)
        codes = cat.codes
        if levels is None and not (codes < 0).any():
            # fast path: remap codes onto the used categories, keeping their order
            present = np.zeros(len(labels), bool)
            present[codes] = True
            remap = np.cumsum(present) - 1
            used = [lab for lab, p in zip(labels, present) if p]
            return pd.Categorical.from_codes(remap[codes], categories=pd.Index(used, dtype=object))
        present = np.zeros(len(labels), bool)
        present[codes[codes >= 0]] = True
        if levels is None:
            levels = [lab for lab, p in zip(labels, present) if p]
        strings = np.asarray(labels, dtype=object)[codes]
    else:
        arr = np.asarray(values)
        if arr.dtype == bool:
            uniq_vals, inv = np.unique(arr, return_inverse=True)
        elif arr.dtype.kind in "iuf":
            uniq_vals, inv = np.unique(arr, return_inverse=True)
        else:   # strings / objects: hash-based factorization, then R's sorted level order
            inv, uniq_vals = pd.factorize(pd.Series(arr, dtype=object).map(str), sort=True)
            uniq_vals = np.asarray(uniq_vals, dtype=object)
        uniq = level_labels(uniq_vals)
        if levels is None:
            return pd.Categorical.from_codes(np.asarray(inv, dtype=np.int64).ravel(),
                                             categories=pd.Index(uniq, dtype=object))
        strings = np.asarray(uniq, dtype=object)[np.asarray(inv).ravel()]
    codes = pd.Index(levels, dtype=object).get_indexer(np.asarray(strings, dtype=object))
    bad = codes < 0
    if bad.any():
        unknown = sorted(set(np.asarray(strings, dtype=object)[bad]))[:5]
        raise DesignError(f"column {name!r} has level(s) not seen when the model was fitted: "
                          f"{', '.join(map(repr, unknown))}")
    return pd.Categorical.from_codes(codes, categories=pd.Index(levels, dtype=object))


def _is_numeric(v) -> bool:
    return isinstance(v, (int, float, np.number, bool, np.bool_)) or (
        isinstance(v, np.ndarray) and v.dtype.kind in "iufb")


class _Evaluator:
    def __init__(self, data: pd.DataFrame, state: AtomState, training: bool):
        self.data = data
        self.state = state
        self.training = training

    def column(self, name: str):
        if name in self.data.columns:
            s = self.data[name]
            if isinstance(s.dtype, pd.CategoricalDtype):
                return pd.Categorical(s)
            if s.dtype == bool or s.dtype.kind in "iuf":
                return s.to_numpy()
            if str(s.dtype) == "boolean":
                return s.to_numpy(dtype=bool)
            if pd.api.types.is_numeric_dtype(s.dtype):
                return s.to_numpy(dtype=float)
            return s.to_numpy(dtype=object)
        if name in _CONSTANTS:
            return _CONSTANTS[name]
        check_columns([name], self.data)

    def numeric(self, node: Node, context: str):
        v = self.eval(node)
        if isinstance(v, pd.Categorical) or (isinstance(v, np.ndarray) and v.dtype == object):
            raise DesignError(f"{deparse(node)!r} is categorical and cannot be used in {context!r}")
        return np.asarray(v, dtype=float) if isinstance(v, np.ndarray) else v

    def eval(self, node: Node):
        if isinstance(node, Name):
            return self.column(node.id)
        if isinstance(node, Number):
            return node.value
        if isinstance(node, String):
            return node.value
        if isinstance(node, Paren):
            return self.eval(node.inner)
        if isinstance(node, UnaryOp):
            v = self.numeric(node.operand, deparse(node))
            return -v if node.op == "-" else v
        if isinstance(node, BinOp):
            ctx = deparse(node)
            a, b = self.numeric(node.left, ctx), self.numeric(node.right, ctx)
            op = node.op
            with np.errstate(all="ignore"):
                if op == "+":
                    return a + b
                if op == "-":
                    return a - b
                if op == "*":
                    return a * b
                if op == "/":
                    return a / b
                if op == "^":
                    return np.power(a, b)
                if op in ("==", "!=", "<", ">", "<=", ">="):
                    return np.asarray({"==": np.equal, "!=": np.not_equal, "<": np.less, ">": np.greater,
                                       "<=": np.less_equal, ">=": np.greater_equal}[op](a, b))
            raise DesignError(f"operator {op!r} is not supported inside {ctx!r}")
        if isinstance(node, Call):
            return self.call(node)
        raise DesignError(f"cannot evaluate {deparse(node)!r}")

    def call(self, node: Call):
        f = node.func
        label = deparse(node)
        pos = [a.value for a in node.args if a.name is None]
        kw = {a.name: a.value for a in node.args if a.name is not None}
        if f in _UNARY and not (f == "log" and (len(pos) > 1 or "base" in kw)):
            if len(pos) != 1:
                raise DesignError(f"{f}() takes one argument in {label!r}")
            x = self.numeric(pos[0], label)
            with np.errstate(all="ignore"):
                return _UNARY[f](x)
        if f == "log":
            x = self.numeric(pos[0], label)
            base = self.numeric(pos[1] if len(pos) > 1 else kw["base"], label)
            with np.errstate(all="ignore"):
                return np.log(x) / np.log(base)
        if f == "I":
            return self.eval(pos[0])
        if f in ("factor", "as.factor", "ordered"):
            return self.factor(pos[0], label)
        if f in ("as.numeric", "as.double", "as.integer"):
            return self.numeric(pos[0], label)
        if f == "scale":
            return self.scale(node, pos, kw, label)
        if f in ("pmin", "pmax"):
            vals = [self.numeric(p, label) for p in pos]
            fn = np.minimum if f == "pmin" else np.maximum
            out = vals[0]
            for v in vals[1:]:
                out = fn(out, v)
            return out
        raise DesignError(f"function {f}() in {label!r} is not supported; supported: "
                          f"{', '.join(sorted(list(_UNARY) + ['I', 'factor', 'scale', 'as.numeric', 'pmin', 'pmax']))}")

    def factor(self, node: Node, label: str) -> pd.Categorical:
        v = self.eval(node)
        return to_factor(v, label, self.state.levels.get(label) if not self.training else None)

    def scale(self, node: Call, pos, kw, label):
        x = self.numeric(pos[0], label)
        def flag(name, idx):
            arg = kw.get(name, pos[idx] if len(pos) > idx else None)
            return True if arg is None else bool(self.eval(arg))
        if self.training:
            do_center, do_scale = flag("center", 1), flag("scale", 2)
            center = float(np.mean(x)) if do_center else None
            xc = x - center if do_center else x
            scl = float(np.sqrt(np.sum(xc ** 2) / max(len(xc) - 1, 1))) if do_scale else None
            self.state.scale[label] = (center, scl)
        center, scl = self.state.scale[label]
        out = x - center if center is not None else x
        return out / scl if scl is not None else out


_UNARY = {"log": np.log, "log10": np.log10, "log2": np.log2, "log1p": np.log1p, "exp": np.exp,
          "expm1": np.expm1, "sqrt": np.sqrt, "abs": np.abs, "sin": np.sin, "cos": np.cos,
          "tan": np.tan, "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan}


def evaluate_atom(node: Node, data: pd.DataFrame, state: AtomState, training: bool):
    """Evaluate one atom to a float vector (covariate) or a Categorical (factor).

    In training mode factor levels and ``scale`` parameters are learned into ``state``;
    otherwise they are read from it.  Non-finite covariate values raise a DesignError
    naming the atom and the first offending row.
    """
    label = deparse(node)
    value = _Evaluator(data, state, training).eval(node)
    n = len(data)
    if isinstance(value, pd.Categorical):
        state.levels.setdefault(label, list(value.categories))
        return value
    arr = np.asarray(value)
    if arr.ndim == 0:
        arr = np.full(n, arr.item())
    if arr.dtype == bool or arr.dtype == object:
        levels = None if training else state.levels.get(label)
        cat = to_factor(arr, label, levels)
        if training:
            state.levels[label] = list(cat.categories)
        return cat
    arr = arr.astype(float)
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DesignError(f"{label!r} is not finite in {int(bad.sum())} row(s) (first: row {data.index[i]!r}, "
                          f"value {arr[i]}); check the transform or remove those rows")
    return arr
