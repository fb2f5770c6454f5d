"""The design stage's shortcuts for small data (issue 15) change nothing a user can see: the data
are read afresh on every call and never modified, dropped rows keep their labels, and parsed
formulas are shared only when their text is the same."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx.design import MissingDataWarning, build_design
from mixedfx.design.evaluate import factor_codes, to_factor
from mixedfx.design.modelframe import ModelFrame
from mixedfx.formula import FormulaSyntaxError, parse_formula


def _frame(n: int = 40, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"y": rng.normal(size=n), "x": rng.normal(size=n),
                         "g": pd.Categorical(rng.choice(["b", "a", "c"], n), categories=["c", "b", "a", "z"])})


def test_data_changed_between_fits_is_read_again():
    df = _frame()
    f = parse_formula("y ~ x + (1 | g)")
    first = build_design(f, df)
    df["x"] = df["x"] * 2.0 + 1.0                 # the same frame object, new values
    df.loc[0, "y"] = 100.0
    second = build_design(f, df)
    assert np.array_equal(second.X[:, 1], first.X[:, 1] * 2.0 + 1.0)
    assert second.y[0] == 100.0 and first.y[0] != 100.0
    m1 = mfx.lmer("y ~ x + (1 | g)", df)
    df["y"] = df["y"] + 5.0
    m2 = mfx.lmer("y ~ x + (1 | g)", df)
    assert m2.fixef["(Intercept)"] == pytest.approx(m1.fixef["(Intercept)"] + 5.0, abs=1e-6)


def test_caller_frame_is_not_modified():
    pa = pytest.importorskip("pyarrow")
    df = _frame()
    df.loc[[2, 5], "x"] = np.nan
    df["d"] = pd.Series(pa.array(["q", "p"] * 20).dictionary_encode(), dtype=pd.ArrowDtype(
        pa.dictionary(pa.int32(), pa.string())))
    before = df.copy(deep=True)
    dtypes = df.dtypes.copy()
    with pytest.warns(MissingDataWarning, match=r"2 row\(s\)"):
        d = build_design("y ~ x + (1 | d) + (1 | g)", df)
    pd.testing.assert_frame_equal(df, before)
    assert df.dtypes.equals(dtypes)
    assert {b.group_label: b.levels for b in d.blocks}["d"] == ("q", "p")    # the dictionary's order


def test_dropped_rows_keep_their_labels_and_index_type():
    n = 30
    df = _frame(n).set_index(pd.date_range("2020-01-01", periods=n, freq="D"))
    df.loc[df.index[1::2], "x"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingDataWarning)
        d = build_design("y ~ x + (1 | g)", df)
    expected = df.loc[df["x"].notna().to_numpy()].index
    assert d.row_index.equals(expected) and d.row_index.freq == expected.freq
    assert np.array_equal(d.X[:, 1], df["x"].dropna().to_numpy())


def test_model_frame_reads_each_column_once_and_subsets_rows():
    df = _frame(10)
    frame = ModelFrame(df)
    assert frame["x"] is frame["x"]
    mask = np.arange(10) % 3 != 0
    sub = frame.rows(mask)
    assert len(sub) == mask.sum() and sub.index.equals(df.index[mask])
    pd.testing.assert_series_equal(sub["x"], df["x"][mask])
    assert frame.notna(["x", "g"]).all()


@pytest.mark.parametrize("values", [
    pd.Categorical(["b", "a", "b"], categories=["c", "b", "a"]),
    np.array([3, 1, 2, 3]), np.array([0.5, 1.0, 0.5]), np.array([True, False, True]),
    np.array(["u", "t", "u"], dtype=object),
])
def test_factor_codes_match_to_factor(values):
    cat = to_factor(values, "v")
    codes, labels = factor_codes(values, "v")
    assert np.array_equal(codes, cat.codes) and labels == list(cat.categories)


def test_parsed_formulas_are_shared_only_for_equal_text():
    a = parse_formula("y ~ x + (1 | g)")
    assert parse_formula("y ~ x + (1 | g)") is a
    assert parse_formula("y ~ x + (x | g)") is not a
    for _ in range(2):                          # an error is raised every time, not remembered
        with pytest.raises(FormulaSyntaxError):
            parse_formula("y ~ x + (1 | )")
    with pytest.raises(TypeError, match="string"):
        parse_formula(["y ~ x"])
