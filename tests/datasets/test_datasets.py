"""Bundled datasets: names, typed factor columns, provenance, values equal to lme4's own datasets
(fingerprints in tests/reference/datasets_lme4.json, made by tests/reference/make_datasets_lme4.R)."""
from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx

with open(os.path.join(os.path.dirname(__file__), "..", "reference", "datasets_lme4.json")) as _f:
    LME4 = json.load(_f)["datasets"]


def test_list_and_describe():
    names = mfx.datasets.list()
    assert {"sleepstudy", "insteval", "cbpp", "verbagg", "grouseticks", "penicillin"} <= set(names)
    assert "Belenky" in mfx.datasets.describe("sleepstudy")["description"]
    with pytest.raises(KeyError, match="available"):
        mfx.datasets.load("nope")


@pytest.mark.parametrize("name", sorted(LME4))
def test_factor_columns_are_typed_and_values_match_lme4(name):
    df = mfx.datasets.load(name)
    ref = LME4[name]
    assert list(df.columns) == ref["columns"] and len(df) == ref["nrow"]
    pos = np.arange(1, len(df) + 1, dtype=float)
    for col, fp in ref["fingerprint"].items():
        x = df[col]
        if fp["type"] == "factor":
            assert isinstance(x.dtype, pd.CategoricalDtype), f"{name}.{col} is not categorical"
            assert list(x.cat.categories) == fp["levels"], f"{name}.{col}: level order differs from R's"
            codes = x.cat.codes.to_numpy().astype(float) + 1           # R's 1-based codes
            assert (codes > 0).all(), f"{name}.{col} has missing values"
            assert np.bincount(codes.astype(int), minlength=len(fp["levels"]) + 1)[1:].tolist() == fp["counts"]
            assert codes.sum() == fp["code_sum"], f"{name}.{col}: values differ from lme4's"
            assert (codes * pos).sum() == pytest.approx(fp["code_weighted"], rel=1e-13), \
                f"{name}.{col}: row order differs"
        else:
            assert pd.api.types.is_numeric_dtype(x), f"{name}.{col} is not numeric"
            v = x.to_numpy(dtype=float)
            assert v[:5].tolist() == fp["head"] and v[-5:].tolist() == fp["tail"], f"{name}.{col}: first/last values"
            for got, want in [(v.sum(), fp["sum"]), ((v * v).sum(), fp["sum_sq"]), ((v * pos).sum(), fp["weighted"])]:
                assert got == pytest.approx(want, rel=1e-12), f"{name}.{col}: values differ from lme4's"
