"""Property-based fuzzing of the formula parser and the design builder.

Whatever the text, :func:`parse_formula` returns a formula or raises
:class:`FormulaSyntaxError`; whatever the formula and columns, :func:`build_design`
returns a design or raises :class:`FormulaSyntaxError` / :class:`DesignError`, and emits
no numpy ``RuntimeWarning`` (only the package's own warnings).  The default run takes a
few seconds; ``pytest -m slow`` runs 10,000 formulas through each.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from mixedfx.design import DesignError, build_design  # noqa: E402
from mixedfx.families import get_family  # noqa: E402
from mixedfx.formula import FormulaSyntaxError, parse_formula  # noqa: E402
from mixedfx.formula.ast import deparse  # noqa: E402
from mixedfx.formula.parser import parse  # noqa: E402

# -- formula text ------------------------------------------------------------------------------
NAMES = ["y", "x", "k", "s", "c", "b", "t", "o", "one", "m", "z", "e", "g", "h", "cnt", "`3`", "`my x`",
         "Réaction", "w", "nope", "TRUE", "pi"]
FUNCS = ["log", "exp", "sqrt", "I", "factor", "scale", "offset", "cbind", "pmin", "as.numeric", "poly",
         "log10", "abs", "ordered"]
OPS = ["+", "-", "*", "/", ":", "^", "%in%", "|", "||", "==", ">", "~", "%foo%"]
TOKENS = NAMES + [f + "(" for f in FUNCS] + OPS + ["(", ")", ",", "=", "0", "1", "2", "3.5", "1e400", "-1",
                                                    '"a"', "center = FALSE", "base = 2", "scale = 0", ".", "`"]


def _grammar_formula():
    """Mostly well-formed formulas: random expressions of names, calls and operators, and random terms."""
    atom = st.sampled_from(NAMES + ["0", "1", "2"])

    def extend(inner):
        return st.one_of(
            st.tuples(inner, st.sampled_from(["+", "+", "-", "*", "/", ":", "^", "%in%", "==", ">"]), inner).map(
                lambda t: f"{t[0]} {t[1]} {t[2]}"),
            st.tuples(st.sampled_from(FUNCS), st.lists(inner, min_size=0, max_size=3)).map(
                lambda t: f"{t[0]}({', '.join(t[1])})"),
            inner.map(lambda e: f"({e})"),
            inner.map(lambda e: f"-{e}"),
        )
    expr = st.recursive(atom, extend, max_leaves=8)
    bar = st.tuples(st.one_of(st.sampled_from(["1", "x", "0 + x", "1 + k"]), expr), st.sampled_from(["|", "||"]),
                    st.sampled_from(["g", "g", "h", "g:h", "g/h", "s", "c", "b", "y", "t", "`3`", "x"])).map(
        lambda t: f"({t[0]} {t[1]} {t[2]})")
    response = st.sampled_from(["y", "y", "cnt", "log(y)", "cbind(cnt, k)", "b", "s", "t", "o", "Réaction", ""])
    return st.tuples(response, expr, st.lists(bar, min_size=1, max_size=2)).map(
        lambda t: f"{t[0]} ~ {' + '.join([t[1]] + t[2])}")


def _token_soup():
    return st.lists(st.sampled_from(TOKENS), min_size=1, max_size=16).map(" ".join)


FORMULAS = st.one_of(_grammar_formula(), _token_soup(), st.text(max_size=40))


def check_parse(text: str) -> None:
    try:
        f = parse_formula(text)
    except FormulaSyntaxError as exc:
        assert 0 <= exc.pos <= len(text)
        return
    # what parses deparses to text that parses to the same terms
    lhs, rhs = parse(text)
    again = parse_formula(("" if lhs is None else deparse(lhs)) + " ~ " + deparse(rhs))
    assert again.fixed == f.fixed and again.random == f.random and again.variables == f.variables


# -- data with every awkward column type -----------------------------------------------------
def _data(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    d = pd.DataFrame({
        "y": rng.normal(size=n), "x": rng.normal(size=n), "k": rng.integers(0, 5, n),
        "s": rng.choice(["lo", "mid", "hi"], n), "c": pd.Categorical(rng.choice(["p", "q"], n)),
        "b": rng.random(n) < 0.5, "t": pd.date_range("2020-01-01", periods=n),
        "o": pd.Series(rng.normal(size=n), dtype=object), "one": 1.0,
        "m": np.where(rng.random(n) < 0.2, np.nan, rng.normal(size=n)), "z": rng.normal(size=n) + 1j,
        "e": np.nan, "g": np.repeat(np.arange(8), n // 8), "h": np.tile(np.arange(4), n // 4),
        "cnt": rng.poisson(2, n), "w": rng.choice(["a", "b"], n), "Réaction": rng.normal(size=n),
        "my x": rng.normal(size=n),
    })
    d[3] = rng.normal(size=n)
    return d


DATA = _data()
FAMILIES = [None, get_family("poisson"), get_family("binomial")]


def check_design(text: str, family_index: int) -> None:
    family = FAMILIES[family_index]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)     # numpy warnings must not leak
        warnings.simplefilter("ignore", UserWarning)        # the package's own warnings are fine
        try:
            d = build_design(text, DATA, family=family)
        except (FormulaSyntaxError, DesignError):
            return
    assert d.X.shape[0] == d.n == len(d.y) and np.all(np.isfinite(d.X)) and np.all(np.isfinite(d.y))
    for blk in d.blocks:
        assert blk.X.shape[0] == d.n and blk.codes.min() >= 0


# -- awkward column contents and weights/offset arguments ------------------------------------
N = 24
_floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
COLUMNS = st.one_of(
    st.lists(_floats, min_size=N, max_size=N).map(lambda v: pd.Series(v, dtype=float)),
    st.lists(st.one_of(st.integers(-3, 3), st.none()), min_size=N, max_size=N).map(
        lambda v: pd.Series(v, dtype="Int64")),
    st.lists(st.one_of(st.booleans(), st.none()), min_size=N, max_size=N).map(lambda v: pd.Series(v, dtype=object)),
    st.lists(st.one_of(st.text(max_size=3), st.integers(), st.floats(), st.none()), min_size=N, max_size=N).map(
        lambda v: pd.Series(v, dtype=object)),
    st.lists(st.sampled_from(["a", "b", "c"]), min_size=N, max_size=N).map(
        lambda v: pd.Series(pd.Categorical(v, categories=["c", "b", "a", "unused"]))),
    st.lists(st.datetimes(), min_size=N, max_size=N).map(pd.Series),
    st.lists(st.sampled_from([0.0, 1e-300, 1e300, -1e308, 5.0]), min_size=N, max_size=N).map(pd.Series),
    st.just(pd.Series([1 + 2j] * N)),
)
VECTORS = st.one_of(
    st.none(),
    st.sampled_from(["x", "y", "s", "nope"]),
    st.lists(_floats, min_size=N, max_size=N).map(np.array),
    st.lists(st.floats(0.1, 10), min_size=1, max_size=2 * N).map(np.array),
    st.lists(st.floats(0.1, 10), min_size=N, max_size=N).flatmap(
        lambda v: st.permutations(list(range(N))).map(lambda idx: pd.Series(v, index=idx))),
    st.lists(st.floats(0.1, 10), min_size=N, max_size=N).map(lambda v: pd.Series(v, index=range(5, 5 + N))),
    st.just(np.array(["1"] * N, dtype=object)),
)
FIXED_FORMULAS = ["y ~ x + (1 | g)", "y ~ log(x) + scale(x) + (x | g)", "y ~ factor(x) + (1 | g)",
                  "x ~ 1 + (1 | g)", "y ~ 1 + (1 | x)", "y ~ I(x^2) + offset(x) + (1 | g)"]


def check_columns_and_vectors(column, formula: str, weights, offset, family_index: int) -> None:
    rng = np.random.default_rng(0)
    data = pd.DataFrame({"y": rng.poisson(3, N).astype(float), "g": np.repeat(np.arange(4), N // 4),
                         "s": ["u"] * N, "x": column})
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("ignore", UserWarning)
        try:
            d = build_design(formula, data, weights=weights, offset=offset, family=FAMILIES[family_index])
        except (FormulaSyntaxError, DesignError):
            return
    assert np.all(np.isfinite(d.X)) and np.all(np.isfinite(d.y))
    for v in (d.weights, d.offset):
        assert v is None or (v.shape == (d.n,) and np.all(np.isfinite(v)))


FAST = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
SLOW = settings(max_examples=10_000, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@FAST
@given(FORMULAS)
def test_parser_raises_only_formula_syntax_errors(text):
    check_parse(text)


@FAST
@given(st.one_of(_grammar_formula(), _token_soup()), st.integers(0, 2))
def test_design_builder_raises_only_documented_errors(text, family_index):
    check_design(text, family_index)


@FAST
@given(COLUMNS, st.sampled_from(FIXED_FORMULAS), VECTORS, VECTORS, st.integers(0, 2))
def test_design_builder_on_awkward_columns_and_vectors(column, formula, weights, offset, family_index):
    check_columns_and_vectors(column, formula, weights, offset, family_index)


@pytest.mark.slow
@SLOW
@given(COLUMNS, st.sampled_from(FIXED_FORMULAS), VECTORS, VECTORS, st.integers(0, 2))
def test_design_builder_on_awkward_columns_10000(column, formula, weights, offset, family_index):
    check_columns_and_vectors(column, formula, weights, offset, family_index)


@pytest.mark.slow
@SLOW
@given(FORMULAS)
def test_parser_fuzz_10000(text):
    check_parse(text)


@pytest.mark.slow
@SLOW
@given(st.one_of(_grammar_formula(), _token_soup()), st.integers(0, 2))
def test_design_builder_fuzz_10000(text, family_index):
    check_design(text, family_index)
