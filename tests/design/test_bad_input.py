"""Bad input gets a clear error naming the column, argument or term, or a documented conversion.

One test per case of issue 8 (items 4 and 5): nothing is silently misread, and no exception
from numpy, pandas or the model code reaches the user.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx.design import DesignError, build_design
from mixedfx.formula import FormulaSyntaxError, parse_formula


@pytest.fixture
def df():
    rng = np.random.default_rng(3)
    n = 60
    return pd.DataFrame({
        "y": rng.normal(size=n), "x": rng.normal(size=n), "g": np.repeat(list("abcdef"), 10),
        "cnt": rng.poisson(3, n), "s": rng.choice(["lo", "hi"], n),
    })


def quiet(fn, *args, **kwargs):
    """Call with package warnings silenced and numpy RuntimeWarnings turned into errors."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", RuntimeWarning)
        return fn(*args, **kwargs)


# -- item 4: silent misreadings ------------------------------------------------------------------
@pytest.mark.parametrize("values", [pd.date_range("2020-01-01", periods=60, freq="D"),
                                    pd.date_range("2020-01-01", periods=60, freq="h", tz="UTC"),
                                    pd.to_timedelta(np.arange(60), unit="D")])
def test_dates_and_durations_are_not_read_as_factors(df, values):
    df["t"] = values
    with pytest.raises(DesignError, match=r"column 't' holds dates.*\.dt\.days.*factor\(t\)"):
        build_design("y ~ t + (1 | g)", df)
    with pytest.raises(DesignError, match="column 't' holds dates"):
        build_design("y ~ log(t) + (1 | g)", df)


def test_dates_as_factor_or_grouping_use_their_text(df):
    df["day"] = np.repeat(pd.date_range("2020-01-01", periods=6), 10)
    d = build_design("y ~ factor(day) + (1 | g)", df)
    assert d.xnames[1] == "factor(day)2020-01-02" and d.X.shape == (60, 6)
    d = build_design("y ~ x + (1 | day)", df)
    assert d.blocks[0].nlevels == 6


def test_python_dates_in_an_object_column(df):
    df["d"] = [pd.Timestamp("2020-01-01").date()] * 60
    with pytest.raises(DesignError, match="column 'd' holds dates"):
        build_design("y ~ d + (1 | g)", df)


def test_complex_column_is_an_error_not_a_cast(df):
    df["z"] = df["x"] + 1j
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # no ComplexWarning either
        with pytest.raises(DesignError, match="column 'z' holds complex numbers"):
            build_design("y ~ z + (1 | g)", df)


def test_weights_series_is_aligned_on_the_index(df):
    data = df.iloc[::-1]                                    # index 59, 58, ..., 0
    w = pd.Series(np.arange(1.0, 61.0), index=df.index)     # index 0..59
    d = build_design("y ~ x + (1 | g)", data, weights=w)
    np.testing.assert_array_equal(d.weights, w.reindex(data.index).to_numpy())
    assert d.weights[0] == 60.0                             # row labelled 59, not position 0
    # a Series for more rows than the data (the data were filtered): matched by label too
    sub = df[df["x"] > 0]
    d = build_design("y ~ x + (1 | g)", sub, offset=pd.Series(np.arange(60.0), index=df.index))
    np.testing.assert_array_equal(d.offset, sub.index.to_numpy(dtype=float))


@pytest.mark.parametrize("what", ["weights", "offset"])
def test_series_with_a_foreign_index_is_rejected(df, what):
    other = pd.Series(np.ones(60), index=np.arange(100, 160))
    with pytest.raises(DesignError, match=fr"{what}= is a Series whose index does not match.*to_numpy"):
        build_design("y ~ x + (1 | g)", df, **{what: other})
    dup = pd.Series(np.ones(60), index=np.r_[np.arange(59), 0])
    with pytest.raises(DesignError, match="duplicate labels"):
        build_design("y ~ x + (1 | g)", df.iloc[::-1], **{what: dup})
    # an array or a same-index Series is used by position, as before
    d = build_design("y ~ x + (1 | g)", df, **{what: pd.Series(np.ones(60), index=df.index)})
    assert getattr(d, what).shape == (60,)


@pytest.mark.parametrize("reml", ["no", "FALSE", None, 0, 1.0, [True]])
def test_reml_must_be_a_bool(df, reml):
    with pytest.raises(TypeError, match=r"reml must be True \(REML\) or False"):
        mfx.lmer("y ~ x + (1 | g)", df, reml=reml)


def test_numpy_bool_reml_is_accepted():
    data = mfx.datasets.load("sleepstudy")
    m = mfx.lmer("Reaction ~ Days + (1 | Subject)", data, reml=np.bool_(False))
    assert m.reml is False


# -- item 5: clear errors ------------------------------------------------------------------------
def test_all_missing_column_is_named(df):
    df["z"] = np.nan
    with pytest.raises(DesignError, match=r"column 'z' has no values: all 60 rows are missing"):
        quiet(build_design, "y ~ x + z + (1 | g)", df)


def test_too_few_complete_rows_names_the_columns(df):
    df["m"] = np.where(np.arange(60) == 0, 1.0, np.nan)
    with pytest.raises(DesignError, match=r"only 1 complete observation\(s\) of 60 \(missing values: 'm' in 59"):
        quiet(build_design, "y ~ m + (1 | g)", df)


def test_missing_data_warning_names_the_columns(df):
    df.loc[[1, 2], "x"] = np.nan
    with pytest.warns(mfx.MissingDataWarning, match=r"2 row\(s\).*missing in 'x': 2"):
        build_design("y ~ x + (1 | g)", df)


def test_object_dtype_numbers(df):
    df["o"] = pd.Series([10, 2, 3] * 20, dtype=object)
    with pytest.raises(DesignError, match=r"column 'o' holds numbers stored with dtype object.*pd.to_numeric"):
        build_design("y ~ o + (1 | g)", df)
    with pytest.raises(DesignError, match="column 'o' holds numbers"):
        build_design("o ~ x + (1 | g)", df)
    d = build_design("y ~ factor(o) + (1 | g)", df)            # levels in numeric order, as in R
    assert d.xnames == ("(Intercept)", "factor(o)3", "factor(o)10")


def test_object_dtype_booleans_are_a_logical_factor(df):
    df["flag"] = pd.Series(np.arange(60) % 2 == 0, dtype=object)
    assert build_design("y ~ flag + (1 | g)", df).xnames == ("(Intercept)", "flagTRUE")


def test_integer_column_labels_are_usable_with_backticks(df):
    df[3] = df["x"] * 2
    d = build_design("y ~ `3` + (1 | g)", df)
    assert d.xnames == ("(Intercept)", "`3`")
    np.testing.assert_array_equal(d.X[:, 1], df[3])
    np.testing.assert_array_equal(d.spec.fixed_matrix(df.iloc[:4])[:, 1], df[3].iloc[:4])
    df["3"] = 1.0
    with pytest.raises(DesignError, match="column labels '3' clash"):
        build_design("y ~ x + (1 | g)", df)


def test_multiindex_columns_are_rejected(df):
    df.columns = pd.MultiIndex.from_product([["a"], list(df.columns)])
    with pytest.raises(DesignError, match="MultiIndex"):
        build_design("y ~ x + (1 | g)", df)


def test_duplicate_column_names_are_rejected(df):
    data = pd.concat([df, df[["x"]]], axis=1)
    with pytest.raises(DesignError, match="several columns named 'x'"):
        build_design("y ~ x + (1 | g)", data)


def test_non_ascii_names_as_in_r(df):
    df["Réaction"] = df["y"]
    df["größe"] = df["x"]
    d = build_design("Réaction ~ größe + (1 | g)", df)
    assert d.xnames == ("(Intercept)", "größe")
    assert parse_formula("Réaction ~ größe + (1 | g)").variables == ("Réaction", "größe", "g")


def test_name_with_a_space_suggests_backticks():
    with pytest.raises(FormulaSyntaxError, match="backticks, as in `my x`") as info:
        parse_formula("y ~ my x + (1 | g)")
    assert info.value.pos == 7


@pytest.mark.parametrize("weights", ["w", np.array(["a"] * 60, dtype=object), ["a"] * 60,
                                     np.full(60, 1 + 1j), pd.Series(["1"] * 60)])
def test_weights_that_are_not_numbers(df, weights):
    df["w"] = "a"
    with pytest.raises(DesignError, match=r"weights"):
        build_design("y ~ x + (1 | g)", df, weights=weights)


def test_weights_column_of_strings_names_the_column(df):
    df["w"] = "a"
    with pytest.raises(DesignError, match=r"the weights column 'w' is not numeric.*'a'"):
        build_design("y ~ x + (1 | g)", df, weights="w")


def test_a_thousand_terms(df):
    rng = np.random.default_rng(1)
    n, p = 1100, 1000
    data = pd.DataFrame(rng.normal(size=(n, p)), columns=[f"v{i}" for i in range(p)])
    data["y"] = rng.normal(size=n)
    data["g"] = np.repeat(np.arange(11), 100)
    formula = "y ~ " + " + ".join(data.columns[:p]) + " + (1 | g)"
    assert len(parse_formula(formula).fixed.terms) == p
    assert build_design(formula, data).X.shape == (n, p + 1)


@pytest.mark.parametrize("formula", [
    "y ~ " + "(" * 5000 + "x" + ")" * 5000 + " + (1 | g)",
    "y ~ I(" + "(" * 3000 + "x" + ")" * 3000 + ") + (1 | g)",
    "y ~ " + "abs(" * 2000 + "x" + ")" * 2000 + " + (1 | g)",
    "y ~ I(" + " + ".join(["x"] * 3000) + ") + (1 | g)",
    "y ~ x + (" + "(" * 3000 + "1" + ")" * 3000 + " | " + "(" * 3000 + "g" + ")" * 3000 + ")",
])
def test_deep_nesting_builds_without_recursion_errors(df, formula):
    d = build_design(formula, df)
    assert d.X.shape[0] == 60


@pytest.mark.parametrize("family", ["poisson", "negbin"])
def test_all_zero_counts_name_the_response(df, family):
    df["zero"] = 0
    with pytest.raises(DesignError, match=r"the response 'zero' is 0 in every row"):
        quiet(mfx.glmer, "zero ~ x + (1 | g)", df, family=family)


@pytest.mark.parametrize("call", ["factor()", "I()", "scale()", "log()", "as.numeric()", "pmin()", "exp()"])
def test_function_without_argument(df, call):
    name = call[:-2]
    with pytest.raises(DesignError, match=fr"{name}\(\) needs an argument, as in {name}\(x\)"):
        build_design(f"y ~ {call} + (1 | g)", df)


@pytest.mark.parametrize("term, message", [
    ("log(x, foo = 2)", r"log\(\) has no argument foo="),
    ("factor(s, levels = 2)", r"factor\(\) has no argument levels="),
    ("sqrt(x, x)", r"sqrt\(\) takes one argument"),
    ("scale(x, center = s)", r"center= in 'scale\(x, center = s\)' must be TRUE, FALSE or a number"),
    ("scale(x, scale = 0)", "scale = 0 would divide by zero"),
    ("lag(x, 2)", r"function lag\(\) .* not supported"),
])
def test_bad_function_arguments(df, term, message):
    with pytest.raises(DesignError, match=message):
        build_design(f"y ~ {term} + (1 | g)", df)


def test_scale_with_numeric_center_follows_r(df):
    d = build_design("y ~ scale(x, center = 2) + (1 | g)", df)
    xc = df["x"].to_numpy() - 2
    np.testing.assert_allclose(d.X[:, 1], xc / np.sqrt(np.sum(xc ** 2) / 59))


def test_scale_of_a_constant_column_has_no_runtime_warning(df):
    df["k"] = 5.0
    with pytest.raises(DesignError, match=r"'scale\(k\)': 'k' is constant .* scale = FALSE"):
        quiet(build_design, "y ~ scale(k) + (1 | g)", df)
    d = quiet(build_design, "y ~ scale(k, scale = FALSE) + x + (1 | g)", df)
    assert d.xnames == ("(Intercept)", "x")         # centred only: a zero column, dropped as aliased


@pytest.mark.parametrize("reml", [True, False])
def test_as_many_fixed_effects_as_rows(reml):
    rng = np.random.default_rng(0)
    data = pd.DataFrame(rng.normal(size=(6, 6)), columns=["y", "v0", "v1", "v2", "v3", "v4"])
    data["g"] = list("aabbcc")
    with pytest.raises(DesignError, match="6 columns for 6 observations"):
        quiet(mfx.lmer, "y ~ v0 + v1 + v2 + v3 + v4 + (1 | g)", data, reml=reml)


@pytest.mark.parametrize("start, message", [
    ([np.nan], r"start= contains NaN or infinite values \(position\(s\) 0\)"),
    ([np.inf], "NaN or infinite"),
    ("foo", r"start='foo' is not a known start; use 'moments'"),
    ([1.0, 2.0], r"start= has 2 value\(s\); this model has 1 theta parameters"),
    (["a"], "start= must be numbers"),
    ({"beta": [1.0]}, "takes only 'theta'"),
])
def test_lmer_start_is_checked(df, start, message):
    with pytest.raises(ValueError, match=message):
        quiet(mfx.lmer, "y ~ x + (1 | g)", df, start=start)


def test_lmer_start_from_a_previous_result():
    data = mfx.datasets.load("sleepstudy")
    m = mfx.lmer("Reaction ~ Days + (Days | Subject)", data)
    again = mfx.lmer("Reaction ~ Days + (Days | Subject)", data, start=m)
    assert again.objective == pytest.approx(m.objective, rel=1e-9)


@pytest.mark.parametrize("start, message", [
    ("foo", "start= for glmer must be a previous result or a dict"),
    ({"theta": [np.nan]}, r"start\['theta'\] contains NaN"),
    ({"beta": [0.0]}, r"start\['beta'\] has 1 value\(s\); this model has 2 fixed effects \(\(Intercept\), x\)"),
    ({"sigma": 1.0}, "'theta' and 'beta' only"),
])
def test_glmer_start_is_checked(df, start, message):
    with pytest.raises(ValueError, match=message):
        quiet(mfx.glmer, "cnt ~ x + (1 | g)", df, family="poisson", start=start)


def test_glmer_nagq_and_negbin_start(df):
    with pytest.raises(ValueError, match="nagq must be a whole number"):
        mfx.glmer("cnt ~ x + (1 | g)", df, family="poisson", nagq="1")
    with pytest.raises(ValueError, match="start= is not used with family='negbin'"):
        mfx.glmer("cnt ~ x + (1 | g)", df, family="negbin", start={"theta": [1.0]})


@pytest.mark.parametrize("kwargs, formula, message", [
    ({"offset": np.r_[np.inf, np.zeros(59)]}, "y ~ x + (1 | g)", r"offset given as offset= is not finite in 1 row"),
    ({"offset": "o_inf"}, "y ~ x + (1 | g)", r"offset column 'o_inf' is not finite"),
    ({}, "y ~ x + offset(o_inf) + (1 | g)", r"in offset\(o_inf\): 'o_inf' is not finite"),
    ({"offset": np.full(60, 1e300)}, "y ~ x + (1 | g)", r"the offset \(largest \|value\| 1e\+300\) is too large"),
    ({}, "y ~ x + offset(o_big) + (1 | g)", r"the offset .* is too large"),
    ({"offset": np.full(60, 1e14)}, "y ~ x + (1 | g)", r"the offset .*1e\+14.* swamps the response"),
    ({"offset": "y"}, "y ~ x + (1 | g)", "the response minus the offset is constant"),
])
def test_bad_offsets_blame_the_offset(df, kwargs, formula, message):
    df["o_inf"] = np.where(np.arange(60) == 5, -np.inf, 0.0)
    df["o_big"] = 1e300
    with pytest.raises(DesignError, match=message):
        quiet(mfx.lmer, formula, df, **kwargs)


def test_glmm_offsets_on_the_wrong_scale(df):
    msg = r"offset varies by 1e\+300 on the scale of the linear predictor \(log link\)"
    with pytest.raises(DesignError, match=msg):
        quiet(mfx.glmer, "cnt ~ x + (1 | g)", df, family="poisson", offset=np.linspace(0, 1e300, 60))
    huge = np.zeros(60)
    huge[-2:] = [1.5e307, -1.7e308]            # the spread overflows: still a clear error, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DesignError, match="offset varies by inf"):
            build_design("cnt ~ x + (1 | g)", df, offset=huge, family=mfx.families.get_family("poisson"))
    # a constant 1e300 is absorbed by the intercept: the fit centres the offset
    big = quiet(mfx.glmer, "cnt ~ x + (1 | g)", df, family="poisson", offset=np.full(60, 1e300))
    base = quiet(mfx.glmer, "cnt ~ x + (1 | g)", df, family="poisson")
    assert big.fixef.iloc[0] == -1e300 and big.fixef.iloc[1] == pytest.approx(base.fixef.iloc[1], rel=1e-8)
    # a large constant shift is absorbed by the intercept and stays allowed
    d = build_design("cnt ~ x + (1 | g)", df, offset=np.full(60, 1e8), family=mfx.families.get_family("poisson"))
    assert d.offset[0] == 1e8


@pytest.mark.parametrize("formula, message", [
    ("y ~ x + (y | g)", r"the response 'y' appears in the random-effects term \(1 \+ y \| g\)"),
    ("y ~ x + (0 + y || g)", "appears in the random-effects term"),
    ("y ~ x + (1 | y)", r"the response 'y' is used as a grouping factor in \(1 \| y\)"),
    ("y ~ y + x + (1 | g)", r"the response 'y' also appears as a predictor"),
    ("log(y) ~ log(y) + (1 | g)", "also appears as a predictor"),
])
def test_response_on_the_right_hand_side(df, formula, message):
    with pytest.raises(DesignError, match=message):
        build_design(formula, df)


def test_cbind_response_part_on_the_right_hand_side(df):
    df["n"] = df["cnt"] + 2
    with pytest.raises(DesignError, match=r"'cnt' \(part of the response cbind\(cnt, n - cnt\)\)"):
        build_design("cbind(cnt, n - cnt) ~ cnt + (1 | g)", df, family=mfx.families.get_family("binomial"))
    # another variable of the response is an ordinary predictor (cbpp's size)
    build_design("cbind(cnt, n - cnt) ~ n + (1 | g)", df, family=mfx.families.get_family("binomial"))


@pytest.mark.parametrize("formula, message", [
    ("y ~ . + (1 | g)", r"'\.' \(all other columns\) is not supported"),
    ('y ~ "x" + (1 | g)', r'a string "x" is not a term'),
    ("y ~ `` + (1 | g)", "empty backtick-quoted name"),
    ("y ~ `x + (1 | g)", "needs a closing backtick"),
])
def test_formula_shorthands_we_do_not_support(formula, message):
    with pytest.raises(FormulaSyntaxError, match=message):
        parse_formula(formula)


def test_factor_levels_that_print_alike_are_merged_as_in_r(df):
    df["v"] = np.where(np.arange(60) % 3 == 0, 0.1, np.where(np.arange(60) % 3 == 1, 0.1 + 2 ** -56, 0.2))
    d = build_design("y ~ factor(v) + (1 | g)", df)          # was: ValueError from pandas
    assert d.xnames == ("(Intercept)", "factor(v)0.2")


def test_covariates_too_large_to_square(df):
    df["big"] = np.where(np.arange(60) == 7, 1e200, 1.0)
    with pytest.raises(DesignError, match=r"'big' reaches 1e\+200 \(row 7\); numbers this large overflow"):
        quiet(build_design, "y ~ big + (1 | g)", df)
    df["half"] = np.linspace(1, 2, 60) * 1e100
    df["other"] = np.linspace(2, 1, 60) * 1e100
    with pytest.raises(DesignError, match=r"'I\(half \* other\)' reaches 2\.\d+e\+200"):
        quiet(build_design, "y ~ I(half * other) + (1 | g)", df)
    with pytest.raises(DesignError, match=r"the fixed-effects column 'half:other' reaches"):
        quiet(build_design, "y ~ half:other + (1 | g)", df)
