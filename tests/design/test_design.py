"""DataFrame -> Design: R's contrasts and names, factors, missing values, weights and bad input."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from mixedfx.design import DesignError, MissingDataWarning, build_design


@pytest.fixture
def toy():
    rng = np.random.default_rng(0)
    n = 60
    return pd.DataFrame({
        "y": rng.normal(size=n), "x": rng.normal(size=n), "h": rng.uniform(1, 2, size=n),
        "f": rng.choice(["lo", "mid", "hi"], size=n), "flag": rng.random(n) > 0.5,
        "g": np.repeat(np.arange(10), 6), "a": np.repeat(["p", "q"], 30),
    })


def test_r_column_names_and_treatment_contrasts(toy):
    d = build_design("y ~ f * x + flag + (1 | g)", toy)
    assert d.xnames == ("(Intercept)", "flo", "fmid", "x", "flagTRUE", "flo:x", "fmid:x")
    # treatment contrasts against the first (alphabetical) level "hi"
    np.testing.assert_array_equal(d.X[:, 1], (toy["f"] == "lo").astype(float))
    np.testing.assert_allclose(d.X[:, 5], (toy["f"] == "lo") * toy["x"])


def test_categorical_level_order_is_kept(toy):
    toy["f"] = pd.Categorical(toy["f"], categories=["mid", "lo", "hi"])
    d = build_design("y ~ f + (1 | g)", toy)
    assert d.xnames == ("(Intercept)", "flo", "fhi")


def test_no_intercept_gives_full_indicator_coding(toy):
    d = build_design("y ~ 0 + f + (1 | g)", toy)
    assert d.xnames == ("fhi", "flo", "fmid")


def test_transforms_and_frozen_scale(toy):
    d = build_design("y ~ scale(x) + I(x^2) + log(h) + (1 | g)", toy)
    assert d.xnames == ("(Intercept)", "scale(x)", "I(x^2)", "log(h)")
    z = (toy["x"] - toy["x"].mean()) / toy["x"].std(ddof=1)
    np.testing.assert_allclose(d.X[:, 1], z)
    new = pd.DataFrame({"x": [0.0, 1.0], "h": [1.0, 2.0], "g": [0, 1]})
    Xn = d.spec.fixed_matrix(new)   # new data use the training centre and scale
    np.testing.assert_allclose(Xn[:, 1], (new["x"] - toy["x"].mean()) / toy["x"].std(ddof=1))
    np.testing.assert_allclose(Xn[:, 3], np.log(new["h"]))


def test_integer_grouping_column_is_a_factor(toy):
    d = build_design("y ~ x + (x | g)", toy)
    (b,) = d.blocks
    assert b.levels == tuple(str(i) for i in range(10))
    assert b.cnames == ("(Intercept)", "x")
    assert b.X.shape == (60, 2)


def test_interaction_grouping_levels_lexical(toy):
    d = build_design("y ~ 1 + (1 | a:g)", toy)
    assert d.blocks[0].levels[:2] == ("p:0", "p:1")
    assert d.blocks[0].group_label == "a:g"


def test_missing_values_are_dropped_and_counted(toy):
    toy.loc[[3, 7], "x"] = np.nan
    toy.loc[11, "g"] = np.nan
    toy.loc[20, "f"] = None            # an unused column does not count
    with pytest.warns(MissingDataWarning, match="3 row"):
        d = build_design("y ~ x + (1 | g)", toy)
    assert d.n == 57 and d.n_dropped == 3
    assert list(d.row_index[:4]) == [0, 1, 2, 4]


def test_weights_and_offset_by_name_or_array(toy):
    d = build_design("y ~ x + (1 | g)", toy, weights="h", offset=np.ones(60))
    np.testing.assert_array_equal(d.weights, toy["h"])
    np.testing.assert_array_equal(d.offset, np.ones(60))
    d2 = build_design("y ~ x + offset(log(h)) + (1 | g)", toy, offset="x")
    np.testing.assert_allclose(d2.offset, toy["x"] + np.log(toy["h"]))


@pytest.mark.parametrize("formula, kwargs, message", [
    ("y ~ xx + (1 | g)", {}, r"'xx' \(did you mean 'x'"),
    ("y ~ x", {}, "no random-effects term.*OLS"),
    ("f ~ x + (1 | g)", {}, "response 'f' is not numeric"),
    ("y ~ x + (1 | a)", {"subset": "one_level"}, "only 1 level"),
    ("y ~ x + (1 | id)", {}, "60 levels for 60 observations"),
    ("y ~ x + (1 | g)", {"weights": "bad_w"}, "weights contain NaN"),
    ("y ~ x + (1 | g)", {"weights": "neg_w"}, "non-negative"),
    ("y ~ log(x) + (1 | g)", {}, "'log\\(x\\)' is not finite"),
    ("y ~ x + (1 | g)", {"weights": np.ones(5)}, "length 5"),
    ("one ~ x + (1 | g)", {}, "constant"),
    ("y ~ x + (1 | g)", {"weights": np.zeros(60)}, "all weights are zero"),
])
def test_bad_input_gets_a_clear_error(toy, formula, kwargs, message):
    toy["id"] = np.arange(60)
    toy["one"] = 1.0
    toy["bad_w"] = np.where(np.arange(60) == 4, np.inf, 1.0)
    toy["neg_w"] = np.where(np.arange(60) == 4, -1.0, 1.0)
    if kwargs.pop("subset", None):
        toy = toy[toy["a"] == "p"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DesignError, match=message):
            build_design(formula, toy, **kwargs)


def test_empty_and_tiny_data(toy):
    with pytest.raises(DesignError, match="empty"):
        build_design("y ~ x + (1 | g)", toy.iloc[:0])
    with pytest.raises(DesignError, match="only 1 complete"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = toy.copy()
            t.loc[1:, "y"] = np.nan
            build_design("y ~ x + (1 | g)", t)


def test_new_data_with_unseen_fixed_level_is_rejected(toy):
    d = build_design("y ~ f + (1 | g)", toy)
    with pytest.raises(DesignError, match="'f'.*'other'"):
        d.spec.fixed_matrix(pd.DataFrame({"f": ["lo", "other"], "g": [0, 1]}))


def test_too_many_random_effects_for_the_data():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"y": rng.normal(size=20), "x": rng.normal(size=20), "z": rng.normal(size=20),
                       "g": np.repeat(np.arange(10), 2)})
    with pytest.raises(DesignError, match="30 random effects for 20 observations"):
        build_design("y ~ x + (x + z | g)", df)
