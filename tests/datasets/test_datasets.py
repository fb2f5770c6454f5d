"""Bundled datasets: names, typed factor columns, provenance, values equal to the shared CSVs."""
from __future__ import annotations

import os

import pandas as pd
import pytest

import mixedfx as mfx
from conftest import SHARED


def test_list_and_describe():
    names = mfx.datasets.list()
    assert {"sleepstudy", "insteval", "cbpp", "verbagg", "grouseticks", "penicillin"} <= set(names)
    assert "Belenky" in mfx.datasets.describe("sleepstudy")["description"]
    with pytest.raises(KeyError, match="available"):
        mfx.datasets.load("nope")


@pytest.mark.parametrize("name", ["sleepstudy", "cake", "pastes", "insteval", "verbagg"])
def test_factor_columns_are_typed_and_values_match_shared_csv(name):
    df = mfx.datasets.load(name)
    raw = pd.read_csv(os.path.join(SHARED, "data", name + ".csv"), dtype=str, keep_default_na=False)
    assert list(df.columns) == list(raw.columns) and len(df) == len(raw)
    for col in df.columns:
        if isinstance(df[col].dtype, pd.CategoricalDtype):
            assert list(df[col].astype(str)) == list(raw[col])
        else:
            assert pd.api.types.is_numeric_dtype(df[col])
            pd.testing.assert_series_equal(df[col].astype(float), pd.to_numeric(raw[col]).astype(float),
                                           check_names=False)
