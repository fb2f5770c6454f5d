"""Arguments of the basis calls ``poly()``, ``bs()``, ``ns()`` in a formula, matched as R matches them.

R's signatures: ``poly(x, ..., degree = 1, raw = FALSE)`` (a single unnamed argument after
``x`` is the degree), ``bs(x, df, knots, degree = 3, intercept = FALSE, Boundary.knots)`` and
``ns(x, df, knots, intercept = FALSE, Boundary.knots)``.  Names match exactly, then by unique
prefix (not for poly's arguments, which follow ``...``), then the rest by position.  Argument
values are constants: numbers, ``TRUE``/``FALSE``, ``c(...)`` and arithmetic on them.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..formula.ast import BinOp, Call, Name, Node, Number, Paren, UnaryOp, deparse
from .errors import DesignError
from .splines import fit_bspline, fit_poly

__all__ = ["BASES", "match_basis_args", "fit_basis"]

#: formal arguments of the basis functions, in R's order (poly's degree follows R's ``...``)
BASES = {"poly": ("x", "degree", "raw"),
         "bs": ("x", "df", "knots", "degree", "intercept", "Boundary.knots"),
         "ns": ("x", "df", "knots", "intercept", "Boundary.knots")}
_CONSTANTS = {"TRUE": True, "FALSE": False, "T": True, "F": False, "pi": np.pi}


def match_basis_args(node: Call, label: str) -> dict:
    """R's argument matching for poly/bs/ns: exact names, then unique prefixes, then position."""
    f = node.func
    formals = BASES[f]
    out: dict = {}
    pending = []
    for a in node.args:
        if a.name is None:
            continue
        if a.name in formals:
            if a.name in out:
                raise DesignError(f"argument {a.name}= is given twice in {label!r}")
            out[a.name] = a.value
        else:
            pending.append(a)
    for a in pending:      # partial matching (R does not partially match poly's arguments after ...)
        hits = [n for n in formals if n.startswith(a.name) and n not in out] if f != "poly" else []
        if f == "poly" and a.name in ("coefs", "simple"):
            raise DesignError(f"{a.name}= of poly() is not supported (in {label!r}): the coefficients are "
                              "learned from the data the model is fitted to, and used again for new data")
        if len(hits) != 1:
            extra = "; poly() of several variables is not supported" if f == "poly" else ""
            what = "no argument" if not hits else "several arguments starting with"
            raise DesignError(f"{f}() has {what} {a.name}= (in {label!r}); its arguments are "
                              f"{', '.join(formals)}{extra}")
        out[hits[0]] = a.value
    positional = [a.value for a in node.args if a.name is None]
    if f == "poly":
        if "x" not in out and positional:
            out["x"] = positional.pop(0)
        if len(positional) > 1:
            raise DesignError(f"poly() of several variables ({label}) is not supported; use poly(x, degree) "
                              "of one variable, or products of terms")
        if positional:
            if "degree" in out:
                raise DesignError(f"the degree is given twice in {label!r}")
            out["degree"] = positional[0]
    else:
        free = [n for n in formals if n not in out]
        if len(positional) > len(free):
            raise DesignError(f"{f}() takes at most {len(formals)} arguments ({', '.join(formals)}); "
                              f"{label!r} has more")
        out.update(zip(free, positional))
    if "x" not in out:
        raise DesignError(f"{f}() needs the variable, as in {f}(x, ...); {label!r} has none")
    return out


def _constant(node: Node, label: str, what: str):
    """The value of a constant argument: numbers, TRUE/FALSE, c(...), arithmetic on them."""
    if isinstance(node, Number):
        return node.value
    if isinstance(node, Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, Paren):
        return _constant(node.inner, label, what)
    if isinstance(node, UnaryOp):
        v = _constant(node.operand, label, what)
        return -np.asarray(v, dtype=float) if node.op == "-" else v
    if isinstance(node, Call) and node.func == "c" and all(a.name is None for a in node.args):
        parts = [np.atleast_1d(np.asarray(_constant(a.value, label, what), dtype=float)) for a in node.args]
        return np.concatenate(parts) if parts else np.zeros(0)
    if isinstance(node, BinOp) and node.op in ("+", "-", "*", "/", "^"):
        a = np.asarray(_constant(node.left, label, what), dtype=float)
        b = np.asarray(_constant(node.right, label, what), dtype=float)
        with np.errstate(all="ignore"):
            return {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "^": np.power}[node.op](a, b)
    raise DesignError(f"{what}= in {label!r} must be a number (or c() of numbers), not {deparse(node)}")


def _whole(args: dict, name: str, label: str, default, low: int):
    if name not in args:
        return default
    v = np.asarray(_constant(args[name], label, name), dtype=float)
    if v.size != 1 or not np.isfinite(v) or float(v) != int(v) or v < low:
        raise DesignError(f"{name}= in {label!r} must be a whole number of at least {low}, not {deparse(args[name])}")
    return int(v)


def _flag(args: dict, name: str, label: str) -> bool:
    if name not in args:
        return False
    v = _constant(args[name], label, name)
    if isinstance(v, (bool, np.bool_)) or (np.size(v) == 1 and float(v) in (0.0, 1.0)):
        return bool(v)
    raise DesignError(f"{name}= in {label!r} must be TRUE or FALSE, not {deparse(args[name])}")


def _numbers(args: dict, name: str, label: str):
    if name not in args:
        return None
    v = np.atleast_1d(np.asarray(_constant(args[name], label, name), dtype=float))
    if not np.all(np.isfinite(v)):
        raise DesignError(f"{name}= in {label!r} must be finite numbers, not {deparse(args[name])}")
    return v


def fit_basis(func: str, x: np.ndarray, args: dict, label: str):
    """Fit one basis to training values: (state, basis), with R's warnings prefixed by the term."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if func == "poly":
                fitted, out = fit_poly(x, _whole(args, "degree", label, 1, 1), raw=_flag(args, "raw", label))
            else:
                fitted, out = fit_bspline(x, natural=func == "ns", df=_whole(args, "df", label, None, 1),
                                          knots=_numbers(args, "knots", label),
                                          degree=_whole(args, "degree", label, 3, 1),
                                          intercept=_flag(args, "intercept", label),
                                          boundary=_numbers(args, "Boundary.knots", label))
        except DesignError:
            raise
        except ValueError as exc:
            raise DesignError(f"{label!r}: {exc}") from None
    for w in caught:
        warnings.warn(f"{label}: {w.message}", w.category, stacklevel=5)
    return fitted, out
