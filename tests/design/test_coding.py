"""Factor coding without formulaic (design/coding.py) against formulaic's coding."""
from __future__ import annotations

import itertools
import random

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx.design.coding import CONTRASTS, FULL, NUMERIC, plan_coding
from mixedfx.design.design import build_design
from mixedfx.design.errors import DesignError
from mixedfx.design.matrices import build_term_matrix
from mixedfx.formula.terms import TermList, parse_formula
from mixedfx.inference.terms import term_columns


def _atoms(rng, n, levels):
    vals = {}
    for a, k in zip("abc", levels):
        codes = rng.integers(0, k, n)
        codes[:k] = np.arange(k)
        vals[a] = pd.Categorical.from_codes(codes, categories=pd.Index([f"L{i}" for i in range(k)], dtype=object))
    for a in "xz":
        vals[a] = rng.normal(size=n)
    return vals


def _random_termlists(seed, count):
    rnd = random.Random(seed)
    rng = np.random.default_rng(seed)
    every = [t for r in (1, 2, 3) for t in itertools.combinations("abcxz", r)]
    for _ in range(count):
        vals = _atoms(rng, 40, [rnd.choice([1, 2, 3, 4]) for _ in range(3)])
        terms = sorted(rnd.sample(every, rnd.randint(1, 5)), key=len)     # R orders terms by degree
        yield TermList(rnd.random() < 0.7, tuple(terms)), vals


def test_coded_matrices_equal_formulaic_on_random_formulas():
    coded = 0
    for tl, vals in _random_termlists(7, 600):
        X, spec = build_term_matrix(tl, vals, 40)
        if spec.coding is None:
            continue
        coded += 1
        Xf, specf = build_term_matrix(tl, vals, 40, coding=False)
        assert spec.names == specf.names, tl
        np.testing.assert_array_equal(X, Xf)
        assert spec.width == specf.width
    assert coded > 100          # the hierarchical share of random formulas is coded here


def test_interactions_of_factors_with_many_levels():
    """Column indices beyond int8 (pandas' code type below 128 levels): 50 x 10 levels, 500 columns."""
    rng = np.random.default_rng(0)
    n = 3000
    vals = {"f": pd.Categorical.from_codes(rng.integers(0, 50, n), categories=[f"F{i}" for i in range(50)]),
            "g": pd.Categorical.from_codes(rng.integers(0, 10, n), categories=[f"G{i}" for i in range(10)]),
            "x": rng.normal(size=n)}
    for tl in (TermList(True, (("f",), ("g",), ("x",), ("f", "g"), ("f", "x"), ("g", "x"), ("f", "g", "x"))),
               TermList(False, (("f",), ("g",), ("f", "g")))):
        X, spec = build_term_matrix(tl, vals, n)
        assert spec.coding is not None
        Xf, specf = build_term_matrix(tl, vals, n, coding=False)
        assert spec.names == specf.names
        np.testing.assert_array_equal(X, Xf)


@pytest.mark.parametrize("rhs", ["f * g * x", "0 + f + x", "f + f:x", "0 + f:x", "f:x", "x + f:x", "0 + f + g"])
def test_hierarchical_formulas_take_the_coded_path(rhs):
    rng = np.random.default_rng(0)
    n = 30
    d = pd.DataFrame(dict(y=rng.normal(size=n), x=rng.normal(size=n), f=rng.choice(list("abc"), n),
                          g=rng.choice(list("uv"), n), h=rng.choice(list("pqrs"), n)))
    design = build_design(parse_formula(f"y ~ {rhs} + (1 | h)"), d, lmm=True)
    assert design.spec.fixed.coding is not None
    assert set(design.spec.fixed.levels) <= {"f", "g"}


def test_plan_coding_rules():
    rng = np.random.default_rng(1)
    vals = _atoms(rng, 20, [3, 2, 2])
    # a * b with intercept: every factor by contrasts
    assert plan_coding(TermList(True, (("a",), ("b",), ("a", "b"))), vals) == \
        ((CONTRASTS,), (CONTRASTS,), (CONTRASTS, CONTRASTS))
    # no intercept: the first factor in full, the next by contrasts
    assert plan_coding(TermList(False, (("a",), ("x",), ("b",))), vals) == ((FULL,), (NUMERIC,), (CONTRASTS,))
    # a:x without x: a in full
    assert plan_coding(TermList(True, (("a", "x"),)), vals) == ((FULL, NUMERIC),)
    # a:b without main effects needs formulaic's merging of spans
    assert plan_coding(TermList(True, (("a", "b"),)), vals) is None


def test_cake_matrix_names_and_terms_match_formulaic():
    cake = mfx.datasets.load("cake")
    f = parse_formula("angle ~ recipe * temp + (1 | recipe:replicate)")
    design = build_design(f, cake, lmm=True)
    fixed = design.spec.fixed
    assert fixed.coding is not None
    assert design.xnames == ("(Intercept)", "recipeB", "recipeC", "temp", "recipeB:temp", "recipeC:temp")
    assert term_columns(design) == {"recipe": [1, 2], "temp": [3], "recipe:temp": [4, 5]}


def test_new_data_with_other_category_order_and_unseen_level():
    cake = mfx.datasets.load("cake")
    m = mfx.lmer("angle ~ recipe * temp + (1 | recipe:replicate)", cake)
    new = cake.iloc[[0, 100, 200]].copy()
    new["recipe"] = pd.Categorical(new["recipe"].astype(str), categories=["C", "B", "A"])
    fixed = m.fit.design.spec.fixed
    X = fixed.matrix({"recipe": pd.Categorical(new["recipe"]), "temp": new["temp"].to_numpy(float)}, 3)
    ref = np.asarray(m.fit.design.X)[[0, 100, 200]]
    np.testing.assert_array_equal(X, ref)
    np.testing.assert_allclose(m.predict(new, re_form="~0"), m.predict(re_form="~0")[[0, 100, 200]], rtol=1e-12)
    bad = pd.Categorical(["A", "D"], categories=["A", "D"])
    with pytest.raises(DesignError, match="'recipe'.*'D'"):
        fixed.matrix({"recipe": bad, "temp": np.ones(2)}, 2)


def test_coded_fit_equals_formulaic_fit(monkeypatch):
    cake = mfx.datasets.load("cake")
    f = "angle ~ recipe * temp + (1 | recipe:replicate)"
    m = mfx.lmer(f, cake)
    import mixedfx.design.matrices as matrices
    orig = matrices.build_term_matrix
    monkeypatch.setattr("mixedfx.design.design.build_term_matrix",
                        lambda tl, av, n, coding=True: orig(tl, av, n, coding=False))
    r = mfx.lmer(f, cake)
    assert m.fit.design.spec.fixed.coding is not None
    assert r.fit.design.spec.fixed.coding is None and r.fit.design.spec.fixed.formulaic_spec is not None
    assert m.objective == r.objective
    np.testing.assert_array_equal(m.fixef, r.fixef)
    a, b = m.anova(), r.anova()
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(m.anova(ddf="kenward-roger"), r.anova(ddf="kenward-roger"))


def test_saved_coded_model_predicts_the_same(tmp_path):
    cake = mfx.datasets.load("cake")
    m = mfx.lmer("angle ~ recipe * temp + (1 | recipe:replicate)", cake)
    path = tmp_path / "cake.json"
    m.save(path)
    r = mfx.load(path)
    assert r.fit.design.spec.fixed.coding == m.fit.design.spec.fixed.coding
    new = cake.iloc[::37]
    np.testing.assert_allclose(r.predict(new), m.predict(new), rtol=1e-13)
    assert term_columns(r.fit.design) == term_columns(m.fit.design)


def test_level_labels_with_colons_and_brackets_keep_r_names():
    """R names a column by the factor's name and level text, whatever the text holds (formulaic's names,
    parsed back, lose a level such as ``a:b``)."""
    rng = np.random.default_rng(0)
    n = 60
    d = pd.DataFrame(dict(y=rng.normal(size=n), s=rng.choice(["x y", "a:b", "c[1]"], n),
                          k=pd.Categorical(rng.choice([3, 1, 2], n)), g=rng.choice(list("pqrstu"), n)))
    design = build_design(parse_formula("y ~ 0 + s + k + (1 | g)"), d, lmm=True)
    assert design.xnames == ("sa:b", "sc[1]", "sx y", "k2", "k3")


def test_unused_categories_are_not_levels_as_in_lme4():
    """R's model.frame(drop.unused.levels = TRUE): a declared but absent category, or one whose rows were
    all dropped for missing values, is not a level (and so never the reference)."""
    cake = mfx.datasets.load("cake")
    f = "angle ~ recipe * temp + (1 | recipe:replicate)"
    base = mfx.lmer(f, cake)
    extra = cake.copy()
    extra["recipe"] = extra["recipe"].cat.add_categories(["D"]).cat.reorder_categories(["D", "A", "B", "C"])
    m = mfx.lmer(f, extra)            # lme4 1.1-31 on the same data: the names below, REML 1703.267
    assert m.fit.design.xnames == base.fit.design.xnames == (
        "(Intercept)", "recipeB", "recipeC", "temp", "recipeB:temp", "recipeC:temp")
    assert m.objective == base.objective
    na_only = pd.concat([cake, cake.iloc[:2].assign(angle=np.nan, recipe="E")], ignore_index=True)
    na_only["recipe"] = pd.Categorical(na_only["recipe"].astype(str), categories=["E", "A", "B", "C"])
    with pytest.warns(UserWarning, match="2 row"):
        r = mfx.lmer(f, na_only)
    assert r.fit.design.xnames == base.fit.design.xnames and r.n_dropped == 2
    np.testing.assert_array_equal(r.fixef.values, base.fixef.values)
    new = cake.iloc[[0, 100]].copy()
    new["recipe"] = pd.Categorical(["A", "B"], categories=["B", "A", "Z"])    # another category list
    np.testing.assert_allclose(m.predict(new), base.predict(cake.iloc[[0, 100]]), rtol=1e-12)
    new["recipe"] = pd.Categorical(["A", "Z"], categories=["A", "Z"])
    with pytest.raises(DesignError, match="recipe"):
        m.predict(new)
