"""Pass 1 of a partitioned fit: surveys + template -> the in-memory design's spec and arrays."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from mixedfx import datasets
from mixedfx.design import DesignError, MissingDataWarning, build_design
from mixedfx.design.partitioned import (evaluate_partition, merge_surveys, missing_message, partition_survey,
                                        spec_from_survey, survey_plan)


def _sleep_missing():
    df = datasets.load("sleepstudy").copy()
    rng = np.random.default_rng(3)
    df["w"] = rng.uniform(0.5, 2.0, len(df))
    df["o"] = rng.normal(0, 5, len(df))
    df["z"] = rng.normal(0, 1, len(df))
    df.loc[[3, 40, 41, 100], "Reaction"] = np.nan
    df.loc[[7, 150], "w"] = np.nan
    df.loc[[60], "o"] = np.nan
    df.loc[[61, 62], "z"] = np.nan
    return df


def _cake_numeric():
    """Integer grouping values (R sorts 1, 2, ..., 10, not "1", "10") and categories in a non-sorted order."""
    df = datasets.load("cake").copy()
    df["replicate"] = df["replicate"].astype(str).astype(int)
    df["recipe"] = df["recipe"].cat.reorder_categories(["C", "A", "B"])
    return df


def _penicillin_text():
    df = datasets.load("penicillin").copy()
    df["plate"] = df["plate"].astype(str)       # strings: R's sorted level order from the union
    return df


CASES = {
    "sleepstudy": ("Reaction ~ Days + (Days | Subject)", lambda: datasets.load("sleepstudy"), {}),
    "scale": ("Reaction ~ scale(Days) + (scale(Days) | Subject)", lambda: datasets.load("sleepstudy"), {}),
    "scale_settings": ("Reaction ~ scale(Days, center = FALSE) + I(scale(log(Days + 1), 2)^2) + (1 | Subject)",
                       lambda: datasets.load("sleepstudy"), {}),
    "factor": ("Reaction ~ factor(Days) * z + (1 | Subject)",
               lambda: datasets.load("sleepstudy").assign(z=lambda d: np.sin(np.arange(len(d)))), {}),
    "cake": ("angle ~ recipe * temp + (1 | recipe:replicate)", lambda: datasets.load("cake"), {}),
    "cake_factor": ("angle ~ recipe * factor(temp) + (1 | replicate) + (1 | recipe:replicate)",
                    lambda: datasets.load("cake"), {}),
    "numeric_levels": ("angle ~ factor(temp) + recipe + (1 | replicate)", lambda: _cake_numeric(), {}),
    "poly": ("Reaction ~ poly(Days, 3) + poly(z, 2, raw = TRUE) + (1 | Subject)", _sleep_missing, {}),
    "poly_weights": ("Reaction ~ poly(Days + 1, 2) + (poly(Days, 2) | Subject)", _sleep_missing,
                     {"weights": "w"}),
    "penicillin": ("diameter ~ 1 + (1 | plate) + (1 | sample)", _penicillin_text, {}),
    "missing_weights_offset": ("Reaction ~ Days + z + offset(z / 10) + (Days | Subject)", _sleep_missing,
                               {"weights": "w", "offset": "o"}),
}


def _splits(n: int, k: int, seed: int):
    """k index sets: non-contiguous random, one empty, the last lacking the first rows' levels."""
    rng = np.random.default_rng(seed)
    lab = rng.integers(0, k - 1, n)
    lab[: n // 5] = 0                  # the first rows (a few whole subjects / plates) only in partition 0
    out = [np.flatnonzero(lab == j) for j in range(k - 1)]
    out.insert(1, np.array([], dtype=int))     # an empty partition
    return out


def _in_memory(formula, df, kw):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        d = build_design(formula, df, **kw)
    msgs = [str(w.message) for w in rec if issubclass(w.category, MissingDataWarning)]
    return d, msgs


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("k", [3, 5])
def test_partitioned_equals_in_memory(case, k):
    formula, load, kw = CASES[case]
    df = load()
    ref, msgs = _in_memory(formula, df, kw)
    parts = [df.iloc[ix] for ix in _splits(len(df), k, seed=k)]
    assert any(len(p) == 0 for p in parts)
    plan = survey_plan(formula, **kw)
    survey = merge_surveys([partition_survey(p, plan, i, len(parts)) for i, p in enumerate(parts)])
    assert survey.n_dropped == ref.n_dropped
    assert (missing_message(survey) is None) == (not msgs)
    if msgs:
        assert msgs[0] == missing_message(survey)
    spec = spec_from_survey(plan, survey)
    assert spec.fixed.names == ref.xnames
    assert spec.state.levels == ref.spec.state.levels
    assert spec.state.scale.keys() == ref.spec.state.scale.keys()
    for lab, (c, s) in spec.state.scale.items():
        c0, s0 = ref.spec.state.scale[lab]
        assert (c is None) == (c0 is None) and (s is None) == (s0 is None)
        if c is not None:
            assert c == pytest.approx(c0, rel=1e-14, abs=1e-14)
        if s is not None:
            assert s == pytest.approx(s0, rel=1e-14)
    assert spec.state.bases.keys() == ref.spec.state.bases.keys()
    for lab, basis in spec.state.bases.items():
        want = ref.spec.state.bases[lab]
        assert (basis.degree, basis.raw) == (want.degree, want.raw)
        np.testing.assert_allclose(basis.alpha, want.alpha, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(basis.norm2, want.norm2, rtol=1e-12)
    assert [(g, lv) for g, lv, _ in spec.random] == [(b.term.group, b.levels) for b in ref.blocks]
    arrays = [evaluate_partition(spec, p, weights=kw.get("weights"), where=f"partition {i}")
              for i, p in enumerate(parts)]
    assert arrays[1] is None
    got = [a for a in arrays if a is not None]
    rows = np.concatenate([np.asarray(p.index)[a.mask] for p, a in zip([p for p, a in zip(parts, arrays)
                                                                         if a is not None], got)])
    order = np.argsort(pd.Index(df.index).get_indexer(rows), kind="stable")
    assert list(rows[order]) == list(ref.row_index)

    def stack(get):
        return np.concatenate([get(a) for a in got])[order]

    np.testing.assert_allclose(stack(lambda a: a.y), ref.y, rtol=1e-12, atol=0)
    np.testing.assert_allclose(stack(lambda a: a.X), ref.X, rtol=1e-12, atol=1e-12)
    for j, b in enumerate(ref.blocks):
        np.testing.assert_array_equal(stack(lambda a: a.blocks[j][0]), b.codes)
        np.testing.assert_allclose(stack(lambda a: a.blocks[j][1]), b.X, rtol=1e-12, atol=1e-12)
    for name in ("weights", "offset"):
        want = getattr(ref, name)
        if want is None:
            assert all(getattr(a, name) is None for a in got)
        else:
            np.testing.assert_allclose(stack(lambda a, name=name: getattr(a, name)), want, rtol=1e-12, atol=1e-12)


def test_unseen_level_is_a_clear_error():
    df = datasets.load("sleepstudy")
    plan = survey_plan("Reaction ~ Days + (1 | Subject)")
    part = df[df["Subject"] != "308"]
    spec = spec_from_survey(plan, merge_surveys([partition_survey(part, plan)]))
    with pytest.raises(DesignError, match="partition 2.*'308'.*not in the design spec"):
        evaluate_partition(spec, df.assign(Subject=df["Subject"].astype(str)), where="partition 2")


def test_refusals_and_schema_errors():
    with pytest.raises(DesignError, match="inside poly"):
        survey_plan("Reaction ~ poly(scale(Days), 2) + (1 | Subject)")
    with pytest.raises(DesignError, match="degree \\(3\\) must be less than the number of distinct values \\(3\\)"):
        df3 = datasets.load("sleepstudy").query("Days < 3")
        plan3 = survey_plan("Reaction ~ poly(Days, 3) + (1 | Subject)")
        spec_from_survey(plan3, merge_surveys([partition_survey(df3.iloc[:20], plan3),
                                               partition_survey(df3.iloc[20:], plan3)]))
    with pytest.raises(DesignError, match="ns\\(\\) is not supported"):
        survey_plan("Reaction ~ ns(Days, df = 3) + (1 | Subject)")
    with pytest.raises(DesignError, match="inside"):
        survey_plan("Reaction ~ scale(scale(Days)) + (1 | Subject)")
    with pytest.raises(DesignError, match="weights= must be a column name"):
        survey_plan("Reaction ~ Days + (1 | Subject)", weights=np.ones(180))
    df = datasets.load("sleepstudy")
    plan = survey_plan("Reaction ~ Days + (1 | Subject)")
    with pytest.raises(DesignError, match="column 'Days' is not in partition 2 of 4"):
        partition_survey(df.drop(columns="Days"), plan, 2, 4)
    a = partition_survey(df.iloc[:90], plan, 0, 2)
    b = partition_survey(df.iloc[90:].assign(Days=lambda d: d["Days"].astype(str)), plan, 1, 2)
    with pytest.raises(DesignError, match="column 'Days' is numeric in partition 0 of 2 but text in partition 1"):
        merge_surveys([a, b])
    with pytest.raises(DesignError, match="every partition is empty"):
        merge_surveys([None, partition_survey(df.iloc[:0], plan)])
