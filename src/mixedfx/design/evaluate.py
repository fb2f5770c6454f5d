"""Evaluate formula atoms (``log(x)``, ``scale(x)``, ``I(x^2)``, ``factor(g)``, ``poly(x, 2)``) on a DataFrame.

An atom evaluates to a float vector (a covariate), a float matrix (the bases ``poly()``,
``bs()``, ``ns()``: one column per basis function) or a :class:`pandas.Categorical` (a
factor), following R: numeric columns are covariates; strings, categoricals and
booleans are factors.  Data-dependent transforms keep their state (``scale``'s
centre and scale, a factor's levels, a basis' knots or polynomial coefficients) in an
:class:`AtomState` so that new data are encoded exactly as the data the model was fitted to.
"""
from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..formula.ast import Bar, BinOp, Call, Name, Node, Number, Paren, String, UnaryOp, deparse, postorder
from .columns import column_values, require_finite_rows
from .errors import DesignError
from .bases import BASES as _BASES, fit_basis as _fit_basis, match_basis_args as _match_basis_args

__all__ = ["AtomState", "DesignError", "evaluate_atom", "learn_bases", "to_factor", "factor_codes", "level_labels",
           "check_columns"]


@dataclass
class AtomState:
    """Per-atom state learned from the training data (mutable only while building a design)."""
    scale: dict = field(default_factory=dict)    # call label -> (center or None, scale or None)
    levels: dict = field(default_factory=dict)   # atom/variable label -> list of level labels
    bases: dict = field(default_factory=dict)    # call label -> fitted PolyBasis / SplineBasis


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
        if type(v) is str:      # the common case first
            out.append(v)
        elif isinstance(v, (bool, np.bool_)):
            out.append("TRUE" if v else "FALSE")
        elif isinstance(v, (float, np.floating)) and float(v).is_integer():
            out.append(str(int(v)))
        elif isinstance(v, (float, np.floating)):
            out.append(f"{v:.15g}")
        else:
            out.append(str(v))
    return out


def _merge_equal_labels(labels: list[str]) -> tuple[list[str], np.ndarray]:
    """Distinct labels (first appearance order) and the map old index -> new index.

    Values that print alike (``0.1`` and ``0.1 + 1e-17`` at 15 digits) share a level, as
    R's ``factor()`` merges levels with duplicated labels.
    """
    codes, uniq = pd.factorize(pd.Index(labels, dtype=object))
    return [str(u) for u in uniq], np.asarray(codes, dtype=np.int64)


def to_factor(values, name: str, levels: list[str] | None = None) -> pd.Categorical:
    """Convert a column to a factor with R's level order.

    Categoricals keep their category order (unused levels dropped); strings and
    numbers are sorted; booleans become ``FALSE``/``TRUE``.  With ``levels``
    given (new data), values outside them raise a :class:`DesignError`.
    """
    codes, labels = factor_codes(values, name, levels)
    return pd.Categorical.from_codes(codes, categories=pd.Index(labels, dtype=object))


def factor_codes(values, name: str, levels: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """:func:`to_factor` as ``(codes, level labels)``: int64 codes into the list of labels.

    The same factor without building a Categorical (grouping factors need only the codes
    and labels, and ``Categorical.from_codes`` costs more than the rest on small data).
    """
    if isinstance(values, pd.Series):
        values = values.array
    if isinstance(values, pd.Categorical) or isinstance(getattr(values, "dtype", None), pd.CategoricalDtype):
        cat = values if type(values) is pd.Categorical else pd.Categorical(values)
        labels = level_labels(cat.categories.tolist())
        codes = cat.codes
        if len(set(labels)) < len(labels):
            labels, merge = _merge_equal_labels(labels)
            codes = np.where(codes >= 0, merge[np.maximum(codes, 0)], -1)
        if levels is None and not (codes < 0).any():
            # fast path: remap codes onto the used categories, keeping their order
            present = np.zeros(len(labels), bool)
            present[codes] = True
            if present.all():
                return codes.astype(np.int64), labels
            remap = np.cumsum(present) - 1
            return remap[codes].astype(np.int64), [lab for lab, p in zip(labels, present) if p]
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
        if len(set(uniq)) < len(uniq):
            uniq, merge = _merge_equal_labels(uniq)
            inv = merge[np.asarray(inv).ravel()]
        if levels is None:
            return np.asarray(inv, dtype=np.int64).ravel(), uniq
        strings = np.asarray(uniq, dtype=object)[np.asarray(inv).ravel()]
    codes = pd.Index(levels, dtype=object).get_indexer(np.asarray(strings, dtype=object))
    bad = codes < 0
    if bad.any():
        unknown = sorted(set(np.asarray(strings, dtype=object)[bad]))[:5]
        raise DesignError(f"column {name!r} has level(s) not seen when the model was fitted: "
                          f"{', '.join(map(repr, unknown))}")
    return np.asarray(codes, dtype=np.int64), list(levels)


class _Text:
    """An expression's R text, deparsed only when a message needs it (deep trees stay linear)."""
    __slots__ = ("node",)

    def __init__(self, node: Node):
        self.node = node

    def __str__(self) -> str:
        return deparse(self.node)

    def __repr__(self) -> str:
        return repr(deparse(self.node))


_FACTOR_FUNCS = ("factor", "as.factor", "ordered", "numFactor")   # numFactor: glmmTMB's, for ou()
_NUMERIC_FUNCS = ("as.numeric", "as.double", "as.integer")


def _signature(f: str):
    """(min positional, max positional or None, keywords) of a supported function, or None."""
    if f == "log":
        return 1, 2, ("base",)
    if f in _UNARY or f == "I" or f in _FACTOR_FUNCS or f in _NUMERIC_FUNCS:
        return 1, 1, ()
    if f == "scale":
        return 1, 3, ("center", "scale")
    if f in ("pmin", "pmax"):
        return 1, None, ()
    return None


def _supported() -> str:
    return ", ".join(sorted(list(_UNARY) + ["I", "factor", "scale", "as.numeric", "pmin", "pmax"] + list(_BASES)))



class _Evaluator:
    def __init__(self, data: pd.DataFrame, state: AtomState, training: bool):
        self.data = data
        self.state = state
        self.training = training
        self.memo: dict[int, object] = {}
        self.root: Node | None = None

    def column(self, name: str, as_factor: bool = False):
        if name in self.data.columns:
            return column_values(self.data[name], name, as_factor)
        if name in _CONSTANTS:
            return _CONSTANTS[name]
        check_columns([name], self.data)

    def numeric(self, node: Node, context: str):
        v = self.eval(node)
        if isinstance(v, np.ndarray) and v.ndim > 1:
            raise DesignError(f"{deparse(node)!r} has several columns and cannot be used in {context!r}")
        if isinstance(v, pd.Categorical) or (isinstance(v, np.ndarray) and v.dtype.kind in "OUS"):
            raise DesignError(f"{deparse(node)!r} is categorical and cannot be used in {context!r}")
        if isinstance(v, str):
            raise DesignError(f"the string {deparse(node)} cannot be used in {context!r}")
        return np.asarray(v, dtype=float) if isinstance(v, np.ndarray) else v

    def children(self, node: Node) -> tuple[Node, ...]:
        """Sub-expressions :meth:`eval` evaluates (evaluated first, bottom-up, by :meth:`evaluate`)."""
        if isinstance(node, (BinOp, UnaryOp, Paren)):
            return (node.left, node.right) if isinstance(node, BinOp) else \
                ((node.operand,) if isinstance(node, UnaryOp) else (node.inner,))
        if isinstance(node, Call) and node.func in _BASES:
            try:
                return (_match_basis_args(node, deparse(node))["x"],)
            except DesignError:     # reported by basis()
                return ()
        if isinstance(node, Call) and _signature(node.func) is not None:
            return tuple(a.value for a in node.args
                         if not (node.func in _FACTOR_FUNCS and isinstance(a.value, Name)))
        return ()

    def evaluate(self, root: Node):
        """Evaluate without recursion: sub-expressions first, each memoized for its parent."""
        def combine(node, _parts):
            value = self.eval(node)
            self.memo[id(node)] = value
            return None
        self.root = root
        postorder(root, combine, self.children)
        return self.memo[id(root)]

    def eval(self, node: Node):
        key = id(node)
        if key in self.memo:
            return self.memo[key]
        if isinstance(node, Name):
            return self.column(node.id)
        if isinstance(node, Number):
            return node.value
        if isinstance(node, String):
            return node.value
        if isinstance(node, Paren):
            return self.eval(node.inner)
        if isinstance(node, UnaryOp):
            v = self.numeric(node.operand, _Text(node))
            return -v if node.op == "-" else v
        if isinstance(node, BinOp):
            ctx = _Text(node)
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
        if isinstance(node, Bar):
            raise DesignError(f"a random-effects term ({deparse(node)}) cannot be used inside an expression")
        raise DesignError(f"cannot evaluate {deparse(node)!r}")

    def arguments(self, node: Call, label: str) -> tuple[list[Node], dict]:
        """Positional and keyword arguments of a supported call, checked against its signature."""
        f = node.func
        sig = _signature(f)
        if sig is None:
            raise DesignError(f"function {f}() in {label!r} is not supported; supported: {_supported()}")
        lo, hi, keywords = sig
        pos = [a.value for a in node.args if a.name is None]
        kw: dict = {}
        for a in node.args:
            if a.name is None:
                continue
            if a.name == "x" and "x" not in kw:
                kw["x"] = a.value
                continue
            if a.name not in keywords:
                raise DesignError(f"{f}() has no argument {a.name}= (in {label!r})"
                                  + (f"; its arguments are x, {', '.join(keywords)}" if keywords else ""))
            if a.name in kw:
                raise DesignError(f"argument {a.name}= is given twice in {label!r}")
            kw[a.name] = a.value
        if "x" in kw:
            pos.insert(0, kw.pop("x"))
        if len(pos) < lo:
            raise DesignError(f"{f}() needs an argument, as in {f}(x); {label!r} has none")
        if hi is not None and len(pos) > hi:
            raise DesignError(f"{f}() takes {'one argument' if hi == 1 else f'at most {hi} arguments'}; "
                              f"{label!r} has {len(pos)}")
        for i, name in enumerate(keywords, start=1):
            if name in kw and len(pos) > i:
                raise DesignError(f"argument {name}= of {f}() is given twice in {label!r}")
        return pos, kw

    def call(self, node: Call):
        f = node.func
        label = _Text(node)
        if f in _BASES:
            return self.basis(node, str(label))
        pos, kw = self.arguments(node, label)
        if f in _UNARY and not (f == "log" and (len(pos) > 1 or "base" in kw)):
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
        if f == "numFactor":
            return self.num_factor(pos[0], str(label))
        if f in _FACTOR_FUNCS:
            return self.factor(pos[0], str(label))
        if f in _NUMERIC_FUNCS:
            return self.numeric(pos[0], label)
        if f == "scale":
            return self.scale(pos, kw, str(label))
        vals = [self.numeric(p, label) for p in pos]     # pmin / pmax
        fn = np.minimum if f == "pmin" else np.maximum
        out = vals[0]
        for v in vals[1:]:
            out = fn(out, v)
        return out

    def factor(self, node: Node, label: str) -> pd.Categorical:
        if isinstance(node, Name) and node.id in self.data.columns:
            v = self.column(node.id, as_factor=True)
        else:
            v = self.eval(node)
        return to_factor(v, label, self.state.levels.get(label) if not self.training else None)

    def num_factor(self, node: Node, label: str) -> pd.Categorical:
        """glmmTMB's ``numFactor(t)``: a factor of numeric values in numeric order, levels ``(t)``."""
        v = self.numeric(node, label)
        known = self.state.levels.get(label) if not self.training else None
        bare = None if known is None else [lab[1:-1] for lab in known]
        codes, labels = factor_codes(v, label, bare)
        return pd.Categorical.from_codes(codes, categories=pd.Index([f"({lab})" for lab in labels], dtype=object))

    def scale_setting(self, arg: Node | None, name: str, label: str):
        """``center=``/``scale=`` of scale(): True/False, or a number used as the value (as in R)."""
        if arg is None:
            return True
        v = self.eval(arg)
        if isinstance(v, (bool, np.bool_)):
            return bool(v)
        if isinstance(v, (int, float, np.number)) and np.isfinite(v):
            return float(v)
        raise DesignError(f"{name}= in {label!r} must be TRUE, FALSE or a number, not {deparse(arg)}")

    def scale(self, pos, kw, label):
        x = self.numeric(pos[0], label)
        if self.training:
            center = self.scale_setting(kw.get("center", pos[1] if len(pos) > 1 else None), "center", label)
            scl = self.scale_setting(kw.get("scale", pos[2] if len(pos) > 2 else None), "scale", label)
            with np.errstate(all="ignore"):
                c = float(np.mean(x)) if center is True else (None if center is False else center)
                xc = x - c if c is not None else x
                if scl is True:
                    scl = float(np.sqrt(np.sum(xc ** 2) / max(np.size(xc) - 1, 1)))
                    if scl == 0:
                        raise DesignError(f"{label!r}: {deparse(pos[0])!r} is constant (standard deviation 0), so it "
                                          "cannot be scaled; remove the term, or centre only with scale = FALSE")
                    if not np.isfinite(scl) and np.all(np.isfinite(x)):
                        raise DesignError(f"{label!r}: the values of {deparse(pos[0])!r} are too large to scale "
                                          "(their sum of squares overflows)")
                elif scl is False:
                    scl = None
                elif scl == 0:
                    raise DesignError(f"{label!r}: scale = 0 would divide by zero")
            self.state.scale[label] = (c, scl)
        center, scl = self.state.scale[label]
        with np.errstate(all="ignore"):
            out = x - center if center is not None else x
            return out / scl if scl is not None else out

    def basis(self, node: Call, label: str) -> np.ndarray:
        """``poly()``, ``bs()``, ``ns()``: fitted on training data, the stored basis on new data."""
        if node is not self.root:
            raise DesignError(f"{label!r} gives several columns, so it must be a term of its own "
                              f"(as in y ~ {label} + ...), not part of {deparse(self.root)!r}")
        args = _match_basis_args(node, label)
        x = self.numeric(args["x"], label)
        x = np.broadcast_to(np.asarray(x, dtype=float), (len(self.data),)) if np.ndim(x) == 0 else x
        if self.training and label not in self.state.bases:
            require_finite_rows(x, self.data.index, f"{deparse(args['x'])!r} in {label!r}",
                                "check the transform or remove those rows")
            self.state.bases[label], out = _fit_basis(node.func, x, args, label)
        else:
            if label not in self.state.bases:
                raise DesignError(f"{label!r} was not fitted with the model")
            out = self.state.bases[label].basis(x)
        fitted = self.state.bases[label]
        if not getattr(fitted, "natural", True) and np.any((x < fitted.boundary[0]) | (x > fitted.boundary[1])):
            warnings.warn(f"{label}: some values lie beyond the boundary knots {list(fitted.boundary)}; the basis "
                          "continues its end polynomial pieces there (as R's bs() does), which is unstable far out",
                          UserWarning, stacklevel=6)
        return out


def learn_bases(atoms: dict, data: pd.DataFrame, state: AtomState) -> None:
    """Fit ``poly``/``bs``/``ns`` atoms on every row where their variable is known.

    R evaluates these in the model frame before rows with missing values in other
    columns are dropped, so knots and polynomial coefficients come from all rows with
    a value of ``x``.  Call this on the data before dropping rows; atoms it cannot fit
    here are fitted (or reported) later, on the complete rows.
    """
    for label, node in atoms.items():
        if not (isinstance(node, Call) and node.func in _BASES) or label in state.bases:
            continue
        ev = _Evaluator(data, state, training=True)
        try:
            args = _match_basis_args(node, label)
            ev.evaluate(args["x"])
            x = np.asarray(ev.numeric(args["x"], label), dtype=float)
        except DesignError:
            continue
        missing = np.isnan(x)
        if x.ndim != 1 or missing.all() or not np.isfinite(x[~missing]).all():
            continue
        try:
            state.bases[label], _ = _fit_basis(node.func, x[~missing], args, label)
        except DesignError:
            continue


_UNARY = {"log": np.log, "log10": np.log10, "log2": np.log2, "log1p": np.log1p, "exp": np.exp,
          "expm1": np.expm1, "sqrt": np.sqrt, "abs": np.abs, "sin": np.sin, "cos": np.cos,
          "tan": np.tan, "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan}


def evaluate_atom(node: Node, data: pd.DataFrame, state: AtomState, training: bool, matrix: bool = False):
    """Evaluate one atom to a float vector (covariate), a Categorical (factor) or, with
    ``matrix=True`` (model terms), a float matrix (``poly``/``bs``/``ns`` bases).

    In training mode factor levels, ``scale`` parameters and bases are learned into
    ``state``; otherwise they are read from it.  Non-finite covariate values raise a
    DesignError naming the atom and the first offending row.
    """
    label = deparse(node)
    value = _Evaluator(data, state, training).evaluate(node)
    n = len(data)
    if isinstance(value, np.ndarray) and value.ndim > 1:
        if not matrix:
            raise DesignError(f"{label!r} gives several columns; it can only be a term on the right-hand side "
                              "of the formula (not a response, offset or argument)")
        require_finite_rows(value, data.index, repr(label), "check the variable's values", show_value=False)
        return np.asarray(value, dtype=float)
    if isinstance(value, pd.Categorical):
        # as R's model.frame(drop.unused.levels = TRUE): a category no row uses (declared but absent,
        # or only in rows dropped for missing values) is not a level, so it never becomes the
        # reference; new data are read against the fitted levels (an unknown one is an error)
        cat = to_factor(value, label, None if training else state.levels.get(label))
        if training:
            state.levels.setdefault(label, list(cat.categories))
        return cat
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
    require_finite_rows(arr, data.index, repr(label), "check the transform or remove those rows")
    return arr
