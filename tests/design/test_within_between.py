"""within_between(): group means and deviations (Mundlak decomposition) on a copy of the data."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mixedfx.design import DesignError
from mixedfx.design.within_between import within_between


@pytest.fixture
def df():
    return pd.DataFrame({"g": ["a", "a", "b", "b", None, "c"], "h": [1, 2, 1, 1, 1, 1],
                         "x": [1.0, 3.0, np.nan, 4.0, 5.0, 2.0], "z": [1, 2, 3, 4, 5, 6],
                         "flag": [True, False, True, True, False, False]}, index=[7, 7, 8, 8, 9, 9])


def test_values_and_copy(df):
    before = df.copy()
    out = within_between(df, ["x", "z"], group="g")
    pd.testing.assert_frame_equal(df, before)                # the caller's data are untouched
    assert out is not df and list(out.columns) == list(df.columns) + ["x_between", "x_within", "z_between", "z_within"]
    np.testing.assert_array_equal(out["x_between"], [2.0, 2.0, 4.0, 4.0, np.nan, 2.0])   # NaN-aware mean
    np.testing.assert_array_equal(out["x_within"], [-1.0, 1.0, np.nan, 0.0, np.nan, 0.0])
    np.testing.assert_array_equal(out["z_between"], [1.5, 1.5, 3.5, 3.5, np.nan, 6.0])
    ok = out["x"].notna() & out["g"].notna()
    np.testing.assert_allclose((out["x_between"] + out["x_within"])[ok], out["x"][ok])
    pd.testing.assert_index_equal(out.index, df.index)        # repeated index labels are fine


def test_options(df):
    out = within_between(df, "flag", group=["g", "h"], suffixes=("_m", "_c"))
    np.testing.assert_array_equal(out["flag_m"], [1.0, 0.0, 1.0, 1.0, np.nan, 0.0])
    np.testing.assert_array_equal(out["flag_c"], [0.0, 0.0, 0.0, 0.0, np.nan, 0.0])
    cat = df.assign(g=pd.Categorical(df["g"], categories=["c", "b", "a", "unused"]),
                    x=pd.array([1, 3, None, 4, 5, 2], dtype="Int64"))
    np.testing.assert_array_equal(within_between(cat, "x", "g")["x_between"], [2.0, 2.0, 4.0, 4.0, np.nan, 2.0])


def test_errors(df):
    with pytest.raises(DesignError, match="'xx'"):
        within_between(df, "xx", group="g")
    with pytest.raises(DesignError, match="'gg'"):
        within_between(df, "x", group="gg")
    with pytest.raises(DesignError, match="'g' is not numeric"):
        within_between(df, "g", group="h")
    with pytest.raises(ValueError, match="both a column"):
        within_between(df, "h", group="h")
    with pytest.raises(ValueError, match="already exist"):
        within_between(df.assign(x_within=0.0), "x", group="g")
    with pytest.raises(ValueError, match="suffixes"):
        within_between(df, "x", group="g", suffixes=("_a", "_a"))
    # was "the output column(s) ['x_between', 'x_within', 'x_between', 'x_within'] already exist"
    with pytest.raises(ValueError, match=r"column\(s\) \['x'\] are listed more than once"):
        within_between(df, ["x", "x"], group="g")
    with pytest.raises(TypeError, match="within_between\\(\\) data must be a data frame.*numpy.ndarray"):
        within_between(df.to_numpy(), "x", group="g")


def test_polars_and_dict_input(df):
    """Any frame lmer() accepts: polars (no index, so a RangeIndex) and a dict of columns give the
    pandas result (was: TypeError 'data must be a pandas DataFrame, got DataFrame' for polars)."""
    pl = pytest.importorskip("polars")
    expected = within_between(df.reset_index(drop=True), ["x", "z"], group="g")
    src = pl.from_pandas(df.reset_index(drop=True))
    out = within_between(src, ["x", "z"], group="g")
    assert isinstance(out, pd.DataFrame) and src.columns == ["g", "h", "x", "z", "flag"]
    np.testing.assert_array_equal(out["x_between"], expected["x_between"])
    np.testing.assert_array_equal(out["z_within"], expected["z_within"])
    got = within_between({"g": [1, 1, 2], "x": [1.0, 2.0, 4.0]}, "x", group="g")
    np.testing.assert_array_equal(got["x_within"], [-0.5, 0.5, 0.0])
