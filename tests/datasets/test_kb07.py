"""The bundled kb07 (MixedModels.jl's 1,789-row version) against summary numbers that
tests/reference/make_kb07.R computed from the source .rda file, and the lme4 reference
fits of the 4 x 4 crossed model (tests/reference/kb07_ml.json) load and are coherent."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx

with open(os.path.join(os.path.dirname(__file__), "..", "reference", "kb07_ml.json")) as _f:
    REF = json.load(_f)
RAW = REF["raw_data"]


@pytest.fixture(scope="module")
def kb07() -> pd.DataFrame:
    return mfx.datasets.load("kb07")


def test_shape_columns_and_provenance(kb07):
    assert kb07.shape == (1789, 7) == (RAW["nrow"], len(RAW["columns"]))
    assert list(kb07.columns) == RAW["columns"]
    assert "kb07" in mfx.datasets.list()
    info = mfx.datasets.describe("kb07")
    assert info["source_package"] == "MixedModels.jl"
    assert "MIT" in info["licence"] and "Kronmueller" in info["description"]


@pytest.mark.parametrize("col", ["subj", "item", "spkr", "prec", "load"])
def test_factor_levels_counts_and_order(kb07, col):
    fp = RAW["fingerprint"][col]
    x = kb07[col]
    assert isinstance(x.dtype, pd.CategoricalDtype)
    assert list(x.cat.categories) == fp["levels"]
    codes = x.cat.codes.to_numpy().astype(float) + 1          # R's 1-based codes
    assert (codes > 0).all(), f"kb07.{col} has values outside its levels"
    assert np.bincount(codes.astype(int), minlength=len(fp["levels"]) + 1)[1:].tolist() == fp["counts"]
    pos = np.arange(1, len(x) + 1, dtype=float)
    assert codes.sum() == fp["code_sum"]
    assert (codes * pos).sum() == fp["code_weighted"], f"kb07.{col}: row order differs from the source"


def test_two_level_factors_and_design(kb07):
    assert [list(kb07[c].cat.categories) for c in ("spkr", "prec", "load")] == \
        [["new", "old"], ["break", "maintain"], ["no", "yes"]]
    assert kb07["subj"].nunique() == 56 and kb07["item"].nunique() == 32
    cells = pd.crosstab(kb07["subj"], kb07["item"])
    assert int((cells == 0).to_numpy().sum()) == RAW["empty_subj_item_cells"] == 3
    assert int(cells.to_numpy().max()) == RAW["max_per_subj_item_cell"] == 1
    per = kb07.groupby(["spkr", "prec", "load"], observed=True).size()
    want = {(r["spkr"], r["prec"], r["load"]): r["Freq"] for r in _records(RAW["per_condition"])}
    assert per.to_dict() == want


@pytest.mark.parametrize("col", ["rt_trunc", "rt_raw"])
def test_response_values_match_the_source(kb07, col):
    fp = RAW["fingerprint"][col]
    v = kb07[col].to_numpy(dtype=float)
    pos = np.arange(1, len(v) + 1, dtype=float)
    assert v[:5].tolist() == fp["head"] and v[-5:].tolist() == fp["tail"]
    assert v.sum() == fp["sum"] and (v * v).sum() == fp["sum_sq"] and (v * pos).sum() == fp["weighted"]
    assert (v.min(), v.max()) == (fp["min"], fp["max"])
    assert v.mean() == pytest.approx(fp["mean"], rel=1e-14)
    assert v.std(ddof=1) == pytest.approx(fp["sd"], rel=1e-12)


def test_truncation(kb07):
    raw, trunc = kb07["rt_raw"].to_numpy(), kb07["rt_trunc"].to_numpy()
    cut = RAW["truncation_ms"]
    assert cut == 5171 and (trunc == np.minimum(raw, cut)).all()
    assert int((raw != trunc).sum()) == RAW["n_truncated"] == 43
    assert kb07["rt_trunc"].mean() == pytest.approx(2182.2001, abs=1e-4)   # MixedModels.jl's docs: mean 2182


def _records(table) -> list[dict]:
    """jsonlite writes a data frame as a list of rows; accept columns too."""
    if isinstance(table, dict):
        keys = list(table)
        return [dict(zip(keys, vals)) for vals in zip(*table.values())]
    return table


def test_lme4_reference_loads_and_is_coherent():
    fits = REF["fits"]
    assert set(fits) == {"nloptwrap_default", "bobyqa_1e5", "nelder_mead_1e5", "bobyqa_multistart"}
    assert REF["nobs"] == 1789 and REF["ngrps"] == {"subj": 56, "item": 32}
    assert REF["args"] == {"REML": False}
    for name, fit in fits.items():
        assert len(fit["theta"]) == len(fit["theta_names"]) == 20, name
        assert fit["theta_names"][0] == "subj.(Intercept)" and fit["theta_names"][10] == "item.(Intercept)"
        assert fit["fixef_names"] == ["(Intercept)", "spkr1", "prec1", "load1", "spkr1:prec1",
                                      "spkr1:load1", "prec1:load1", "spkr1:prec1:load1"], name
        assert len(fit["fixef"]) == len(fit["se"]) == 8
        assert fit["deviance"] == pytest.approx(-2 * fit["logLik"], rel=1e-12)
        assert fit["criterion"] == fit["deviance"] and fit["evaluations"] > 0 and fit["sigma"] > 0
        assert isinstance(fit["isSingular"], bool) and fit["seconds"] > 0
        resid = [r for r in _records(fit["varcorr"]) if r["grp"] == "Residual"]
        assert resid[0]["sdcor"] == pytest.approx(fit["sigma"], rel=1e-12)
    best = min(fits, key=lambda k: fits[k]["deviance"])
    assert REF["best"]["fit"] == best and REF["best"]["deviance"] == fits[best]["deviance"]
    assert REF["best"]["deviance"] <= REF["quoted_deviance"]["value"] == 28644.283
    assert REF["below_quoted"] is True
    starts = fits["bobyqa_multistart"]["random_starts"]
    assert len(starts) == 5 and all(len(s["start"]) == len(s["theta"]) == 20 for s in starts)
    # the refit from the best random start stays at (or below) that end point
    assert fits["bobyqa_multistart"]["deviance"] <= min(s["deviance"] for s in starts) + 1e-6
    # the 1,790-row RePsychLing version is the one the quoted figure belongs to
    rp = RAW["repsychling"]
    assert rp["nrow"] == 1790 and rp["rows_only_here"] == 0 and rp["coding_checked"] is True
    assert rp["fits"]["bobyqa_1e5"]["deviance"] == pytest.approx(28644.283, abs=5e-4)
    reml = REF["reml_bobyqa_1e5"]
    assert reml["REML"] is True and math.isfinite(reml["REMLcrit"]) and len(reml["theta"]) == 20
    assert reml["REMLcrit"] == pytest.approx(-2 * reml["logLik"], rel=1e-12)
