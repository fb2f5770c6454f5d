"""Formula text -> syntax tree -> expanded terms, as R's terms() and lme4's findbars."""
from __future__ import annotations

import pytest

from mixedfx.formula import FormulaSyntaxError, parse_formula


def labels(text):
    return parse_formula(text).fixed.labels()


def random_texts(text):
    return [(r.text, r.group_label) for r in parse_formula(text).random]


@pytest.mark.parametrize("text, expected", [
    ("y ~ x", ["(Intercept)", "x"]),
    ("y ~ 0 + x", ["x"]),
    ("y ~ x - 1", ["x"]),
    ("y ~ -1 + x", ["x"]),
    ("y ~ a*b", ["(Intercept)", "a", "b", "a:b"]),
    ("y ~ a*b*c - a:b:c", ["(Intercept)", "a", "b", "c", "a:b", "a:c", "b:c"]),
    ("y ~ (a + b + c)^2", ["(Intercept)", "a", "b", "c", "a:b", "a:c", "b:c"]),
    ("y ~ a/b", ["(Intercept)", "a", "a:b"]),
    ("y ~ (a + b)/c", ["(Intercept)", "a", "b", "a:b:c"]),
    ("y ~ b %in% a", ["(Intercept)", "b:a"]),
    ("y ~ x:z + z", ["(Intercept)", "z", "x:z"]),       # factors keep first-appearance order
    ("y ~ I(x^2) + log(x + 1) + scale(h)", ["(Intercept)", "I(x^2)", "log(x + 1)", "scale(h)"]),
    ("y ~ a + a", ["(Intercept)", "a"]),
    ("y ~ 1", ["(Intercept)"]),
])
def test_fixed_terms_follow_r(text, expected):
    assert labels(text + " + (1 | g)") == expected


def test_random_terms_follow_lme4():
    assert random_texts("y ~ x + (x | g)") == [("1 + x | g", "g")]
    assert random_texts("y ~ x + (x || g)") == [("1 | g", "g"), ("0 + x | g", "g")]
    assert random_texts("y ~ (1 | a/b)") == [("1 | a", "a"), ("1 | b:a", "b:a")]
    assert random_texts("y ~ (1 | a:b)") == [("1 | a:b", "a:b")]
    assert random_texts("y ~ (0 + x | g) + (1 | h)") == [("0 + x | g", "g"), ("1 | h", "h")]
    assert random_texts("y ~ ((1 | g))") == [("1 | g", "g")]


def test_offset_and_variables():
    f = parse_formula("y ~ x + offset(log(n)) + (1 | g)")
    assert f.fixed.labels() == ["(Intercept)", "x"]
    assert len(f.offsets) == 1
    assert f.variables == ("y", "x", "n", "g")
    assert f.response_label == "y"


def test_backticks_and_dots():
    f = parse_formula("`my y` ~ x.1 + `odd name` + (1 | grp.id)")
    assert f.variables == ("my y", "x.1", "odd name", "grp.id")
    assert f.fixed.labels() == ["(Intercept)", "x.1", "`odd name`"]


@pytest.mark.parametrize("text, position, words", [
    ("y ~ x + (1 | )", 13, "missing grouping factor"),
    ("y ~ x +", 7, "missing term"),
    ("y ~ (x", 6, "expected ')'"),
    ("y x", 2, "needs '~'"),
    ("y ~ x + 1 | g", 4, "need parentheses"),
    ("y ~ x $ z", 6, "unexpected character"),
    ("y ~ 3 + x", 4, "bare number"),
    ("y ~ (a + b)^x", 12, "positive whole number"),
    ("y ~ (1 | log(g))", 9, "grouping factor"),
    ("", 0, "empty"),
])
def test_syntax_errors_point_at_the_problem(text, position, words):
    with pytest.raises(FormulaSyntaxError) as info:
        parse_formula(text)
    err = info.value
    assert err.pos == position
    assert words in str(err)
    lines = str(err).splitlines()
    assert lines[-1].index("^") - 2 == position      # the caret sits under the problem


def test_formula_package_does_not_import_numpy():
    import ast
    import pathlib

    import mixedfx.formula as pkg
    for path in pathlib.Path(pkg.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not any(n.split(".")[0] in ("numpy", "pandas", "scipy") for n in names), path
