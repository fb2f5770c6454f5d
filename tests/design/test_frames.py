"""Data frames beyond pandas: polars (eager and lazy), pyarrow Tables and dicts of columns give the
same designs and fits as pandas, bit for bit, on every lme4 reference model."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx.design import MissingDataWarning, build_design
from mixedfx.design.errors import DesignError
from mixedfx.design.frames import as_pandas
from conftest import is_reml, load_reference, reference_data, reference_ids

pl = pytest.importorskip("polars")
pa = pytest.importorskip("pyarrow")

KINDS = ["polars", "lazy", "arrow", "dict"]
LMM_IDS = reference_ids("lmer")
GLMM_IDS = reference_ids("glmer")
SLOW = {"insteval_crossed", "verbagg_binomial"}     # 73k and 7.6k rows: five fits each


def to_polars(df: pd.DataFrame):
    """A pandas frame as polars, factors as Enum in their declared level order (pl.from_pandas
    would make them Categorical, which has no level order of its own)."""
    cols = {}
    for c in df.columns:
        s = df[c]
        if isinstance(s.dtype, pd.CategoricalDtype):
            cols[c] = pl.Series(c, s.astype(object).to_numpy(), dtype=pl.Enum([str(v) for v in s.cat.categories]))
        else:
            cols[c] = pl.Series(c, s.to_numpy())
    return pl.DataFrame(cols)


def to_kind(df: pd.DataFrame, kind: str):
    if kind == "pandas":
        return df
    if kind == "polars":
        return to_polars(df)
    if kind == "lazy":
        return to_polars(df).lazy()
    if kind == "arrow":   # pure Arrow types: drop the pandas metadata pyarrow would use to restore dtypes
        return pa.Table.from_pandas(df, preserve_index=False).replace_schema_metadata(None)
    if kind == "dict":
        return {c: (df[c].array if isinstance(df[c].dtype, pd.CategoricalDtype) else df[c].to_numpy())
                for c in df.columns}
    raise ValueError(kind)


def fit_ref(ref: dict, data, **kw):
    # one BLAS thread: the adaptive policy may give a large block (InstEval) a second thread in one fit
    # and not in the next, depending on the machine's load, and the bits then differ; this test is
    # about the frame kinds
    kw.setdefault("blas_threads", 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if ref["fun"] == "lmer":
            return mfx.lmer(ref["formula"], data, reml=is_reml(ref), **kw)
        args = ref["args"]
        return mfx.glmer(ref["formula"], data, family=args["family"], nagq=args.get("nAGQ", 1), **kw)


_BASE: dict = {}


def base_fit(ref_id: str):
    """The pandas fit (and its data), fitted here so that every kind runs under the same settings."""
    if ref_id not in _BASE:
        ref = load_reference(ref_id)
        data = reference_data(ref).reset_index(drop=True)
        _BASE[ref_id] = (ref, data, fit_ref(ref, data))
    return _BASE[ref_id]


def assert_same_fit(m, m0):
    assert list(m.fixef.index) == list(m0.fixef.index)
    np.testing.assert_array_equal(m.fixef.to_numpy(), m0.fixef.to_numpy())
    np.testing.assert_array_equal(m.theta.to_numpy(), m0.theta.to_numpy())
    assert m.objective == m0.objective
    np.testing.assert_array_equal(m.fitted(), m0.fitted())


def _params(ids):
    return [pytest.param(r, k, marks=[pytest.mark.slow] if r in SLOW else []) for r in ids for k in KINDS]


@pytest.mark.parametrize("ref_id", LMM_IDS + GLMM_IDS)
@pytest.mark.parametrize("kind", KINDS)
def test_design_identical_for_every_reference_model(ref_id, kind):
    ref = load_reference(ref_id)
    df = reference_data(ref)
    fam = mfx.families.get_family(ref["args"]["family"]) if ref["fun"] == "glmer" else None
    d0 = build_design(ref["formula"], df, family=fam)
    d = build_design(ref["formula"], to_kind(df, kind), family=fam)
    np.testing.assert_array_equal(d.y, d0.y)
    np.testing.assert_array_equal(d.X, d0.X)
    assert d.xnames == d0.xnames
    assert (d.weights is None) == (d0.weights is None)
    if d.weights is not None:
        np.testing.assert_array_equal(d.weights, d0.weights)
    for b, b0 in zip(d.blocks, d0.blocks, strict=True):
        assert b.levels == b0.levels and b.term.text == b0.term.text
        np.testing.assert_array_equal(b.codes, b0.codes)
        np.testing.assert_array_equal(b.X, b0.X)
    assert isinstance(d.row_index, pd.RangeIndex) and len(d.row_index) == d0.n


@pytest.mark.parametrize("ref_id,kind", _params(LMM_IDS + GLMM_IDS))
def test_fit_and_predict_identical_for_every_reference_model(ref_id, kind):
    ref, df, m0 = base_fit(ref_id)
    m = fit_ref(ref, to_kind(df, kind))
    assert_same_fit(m, m0)
    # newdata of another kind than the fit's, rows reversed
    new = df.iloc[::-1].reset_index(drop=True)
    other = {"polars": "arrow", "lazy": "dict", "arrow": "lazy", "dict": "polars"}[kind]
    for nd in (to_kind(new, kind), to_kind(new, other)):
        np.testing.assert_array_equal(m.predict(nd), m0.predict(new))
        np.testing.assert_array_equal(m.predict(nd, re_form="~0"), m0.predict(new, re_form="~0"))


@pytest.mark.parametrize("kind", KINDS)
def test_weights_and_offset_as_series_of_the_same_kind(kind):
    df = mfx.datasets.load("sleepstudy")
    rng = np.random.default_rng(5)
    w = rng.uniform(0.5, 2.0, len(df))
    off = rng.normal(0, 3, len(df))
    formula = "Reaction ~ Days + offset(log(Days + 1)) + (Days | Subject)"
    m0 = mfx.lmer(formula, df.assign(w=w), weights="w", offset=pd.Series(off, index=df.index))
    data = to_kind(df, kind)
    series = {"polars": lambda v: pl.Series(v), "lazy": lambda v: pl.Series(v),
              "arrow": lambda v: pa.array(v), "dict": lambda v: list(v)}[kind]
    m = mfx.lmer(formula, data, weights=series(w), offset=series(off))
    assert_same_fit(m, m0)
    # the weights as a column of the frame, the offset as a chunked Arrow array
    m2 = mfx.lmer(formula, to_kind(df.assign(w=w), kind), weights="w",
                  offset=pa.chunked_array([off[:100], off[100:]]))
    assert_same_fit(m2, m0)


@pytest.mark.parametrize("kind", KINDS)
def test_binomial_proportion_with_trials_as_polars_or_arrow_weights(kind):
    df = mfx.datasets.load("cbpp")
    df = df.assign(p=df["incidence"] / df["size"])
    m0 = mfx.glmer("p ~ period + (1 | herd)", df, family="binomial", weights=df["size"].to_numpy())
    size = df["size"].to_numpy()
    w = {"polars": pl.Series(size), "lazy": pl.Series(size), "arrow": pa.array(size), "dict": size}[kind]
    m = mfx.glmer("p ~ period + (1 | herd)", to_kind(df, kind), family="binomial", weights=w)
    assert_same_fit(m, m0)
    for nd in ("polars", "arrow", "dict"):
        np.testing.assert_array_equal(m.predict(to_kind(df, nd), type="response", marginal=True),
                                      m0.predict(df, type="response", marginal=True))


def test_polars_weights_are_positional_and_pandas_series_aligned():
    df = mfx.datasets.load("sleepstudy")
    shuffled = df.sample(frac=1.0, random_state=3)
    w = np.linspace(0.5, 2.0, len(df))
    m_pos = mfx.lmer("Reaction ~ Days + (1 | Subject)", shuffled, weights=pl.Series(w))
    m_arr = mfx.lmer("Reaction ~ Days + (1 | Subject)", shuffled, weights=w)
    assert_same_fit(m_pos, m_arr)
    # a pandas Series is matched by label: reversing it does not change the fit
    s = pd.Series(w, index=shuffled.index)
    m_s = mfx.lmer("Reaction ~ Days + (1 | Subject)", shuffled, weights=s.iloc[::-1])
    assert_same_fit(m_s, m_arr)


def test_enum_level_order_is_kept_and_categorical_sorts_like_strings():
    rng = np.random.default_rng(1)
    n = 120
    g = np.repeat([f"g{i}" for i in range(12)], 10)
    dose = rng.choice(["low", "mid", "high"], n)
    y = rng.normal(size=n) + (dose == "high") + rng.normal(size=12)[np.repeat(np.arange(12), 10)]
    order = ["mid", "low", "high"]
    pdf = pd.DataFrame({"y": y, "g": g, "dose": pd.Categorical(dose, categories=order)})
    penum = pl.DataFrame({"y": y, "g": g, "dose": pl.Series(dose, dtype=pl.Enum(order))})
    m0 = mfx.lmer("y ~ dose + (1 | g)", pdf)
    m = mfx.lmer("y ~ dose + (1 | g)", penum)
    assert list(m.fixef.index) == ["(Intercept)", "doselow", "dosehigh"]
    assert_same_fit(m, m0)
    # polars Categorical: no level order of its own, read as strings (R's sorted factor levels)
    pcat = penum.with_columns(pl.col("dose").cast(pl.String).cast(pl.Categorical))
    m_str = mfx.lmer("y ~ dose + (1 | g)", pdf.assign(dose=dose))
    m_cat = mfx.lmer("y ~ dose + (1 | g)", pcat)
    assert list(m_cat.fixef.index) == ["(Intercept)", "doselow", "dosemid"]
    assert_same_fit(m_cat, m_str)
    # an Arrow dictionary keeps its dictionary order, also from a pandas frame with pyarrow dtypes
    arrow = pa.table({"y": y, "g": g, "dose": pa.DictionaryArray.from_arrays(
        pa.array([order.index(v) for v in dose], pa.int8()), pa.array(order))})
    assert_same_fit(mfx.lmer("y ~ dose + (1 | g)", arrow), m0)
    arrow_backed = arrow.to_pandas(types_mapper=pd.ArrowDtype)
    dtypes = arrow_backed.dtypes.copy()
    assert_same_fit(mfx.lmer("y ~ dose + (1 | g)", arrow_backed), m0)
    assert (arrow_backed.dtypes == dtypes).all()    # the caller's frame is left alone


@pytest.mark.parametrize("kind", ["polars", "arrow"])
def test_missing_values_are_dropped_as_in_pandas(kind):
    df = mfx.datasets.load("sleepstudy").reset_index(drop=True)
    days = df["Days"].astype("float").to_numpy().copy()
    days[[3, 50, 51]] = np.nan
    pdf = df.assign(Days=days)
    if kind == "polars":   # an integer column with nulls
        data = to_polars(df).with_columns(pl.Series("Days", df["Days"].to_numpy())
                                          .scatter([3, 50, 51], None))
    else:
        table = to_kind(df, "arrow")
        days_int = pa.array([None if i in (3, 50, 51) else int(v) for i, v in enumerate(df["Days"])], pa.int64())
        data = table.set_column(table.schema.get_field_index("Days"), "Days", days_int)
    with pytest.warns(MissingDataWarning, match="3 row"):
        m0 = mfx.lmer("Reaction ~ Days + (Days | Subject)", pdf)
    with pytest.warns(MissingDataWarning, match="3 row"):
        m = mfx.lmer("Reaction ~ Days + (Days | Subject)", data)
    assert_same_fit(m, m0)
    assert list(m.fit.design.row_index) == [i for i in range(len(df)) if i not in (3, 50, 51)]
    pred = m.predict(data)
    assert np.isnan(pred[[3, 50, 51]]).all()
    np.testing.assert_array_equal(pred, m0.predict(pdf))


def test_simulate_with_polars_newdata_is_indexed_by_position():
    ref, df, m0 = base_fit("sleep_slopes_reml")
    m = fit_ref(ref, to_polars(df))
    sims = m.simulate(nsim=2, seed=7, newdata=to_polars(df.iloc[:20]).lazy())
    sims0 = m0.simulate(nsim=2, seed=7, newdata=df.iloc[:20])
    assert list(sims.index) == list(range(20))
    np.testing.assert_array_equal(sims.to_numpy(), sims0.to_numpy())
    np.testing.assert_array_equal(m.simulate(nsim=1, seed=2).to_numpy(), m0.simulate(nsim=1, seed=2).to_numpy())
    assert list(m.simulate(nsim=1, seed=2).index) == list(range(len(df)))


def test_numeric_polars_and_arrow_columns_are_not_copied():
    p = pl.DataFrame({"x": [1.0, 2.0, 3.0], "k": [1, 2, 3], "s": ["a", "b", "a"]})
    out = as_pandas(p)
    assert np.shares_memory(out["x"].to_numpy(), p["x"].to_numpy())
    assert np.shares_memory(out["k"].to_numpy(), p["k"].to_numpy())
    t = pa.table({"x": [1.0, 2.0, 3.0]})
    assert np.shares_memory(as_pandas(t)["x"].to_numpy(), t["x"].to_numpy())
    a = np.arange(3.0)
    assert np.shares_memory(as_pandas({"a": a})["a"].to_numpy(), a)


def test_column_types_of_polars_frames():
    p = pl.DataFrame({"i": pl.Series([1, None, 3]), "b": [True, None, False],
                      "e": pl.Series(["x", "y", "x"], dtype=pl.Enum(["y", "x", "z"])),
                      "c": pl.Series(["q", None, "p"], dtype=pl.Categorical),
                      "dec": pl.Series([1.5, 2.0, 3.25]).cast(pl.Decimal(10, 2)),
                      "t": pl.Series([0, 1, 2]).cast(pl.Datetime("us", "Europe/Paris"))})
    out = as_pandas(p)
    assert out["i"].dtype == np.float64 and np.isnan(out["i"].iloc[1])
    assert list(out["b"]) == [True, None, False]
    assert list(out["e"].cat.categories) == ["y", "x", "z"] and list(out["e"]) == ["x", "y", "x"]
    assert not isinstance(out["c"].dtype, pd.CategoricalDtype) and out["c"].isna().tolist() == [False, True, False]
    assert out["dec"].tolist() == [1.5, 2.0, 3.25]
    assert str(out["t"].dt.tz) == "Europe/Paris"
    assert isinstance(out.index, pd.RangeIndex)


class _Custom:
    pass


@pytest.mark.parametrize("bad,name", [(np.zeros((5, 2)), "numpy.ndarray"), ([1, 2, 3], "list"),
                                      (pd.Series([1.0, 2.0]), "pandas.Series"), (_Custom(), "test_frames._Custom"),
                                      (pl.Series([1.0]), "polars.Series")])
def test_unsupported_types_are_named_with_their_module(bad, name):
    df = mfx.datasets.load("sleepstudy")
    msg = f"data must be a data frame (pandas, polars, pyarrow Table or dict of columns), got {name}"
    with pytest.raises(TypeError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        mfx.lmer("Reaction ~ Days + (1 | Subject)", bad)
    m = mfx.lmer("Reaction ~ Days + (1 | Subject)", df)
    for call in (lambda: m.predict(bad), lambda: m.simulate(newdata=bad)):
        with pytest.raises(TypeError, match=f"newdata must be a data frame .* got {name}"):
            call()
    g = mfx.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", mfx.datasets.load("cbpp"))
    with pytest.raises(TypeError, match=f"newdata must be a data frame .* got {name}"):
        g.predict(bad, type="response", marginal=True)


@pytest.mark.parametrize("bad,match", [({"y": [1.0, 2.0], "g": ["a"]}, r"differ in length \('y': 2, 'g': 1\)"),
                                       ({"y": [1.0, 2.0], "g": "a"}, "column 'g' of the data dict is a single value"),
                                       ({"y": np.zeros((2, 2))}, "2-dimensional array"),
                                       ({"y": {1.0, 2.0}}, "column 'y' of the data dict is a set"),
                                       ({"y": pd.Series([1.0, 2.0]), "g": pd.Series(["a", "b"], index=[4, 5])},
                                        "different indexes")])
def test_bad_dicts_raise_design_errors(bad, match):
    with pytest.raises(DesignError, match=match):
        mfx.lmer("y ~ 1 + (1 | g)", bad)


def test_callers_data_are_not_modified():
    df = mfx.datasets.load("sleepstudy")
    data = {"Reaction": df["Reaction"].to_numpy().copy(), "Days": list(df["Days"]),
            "Subject": df["Subject"].array}
    before = {k: (v.copy() if isinstance(v, np.ndarray) else list(v)) for k, v in data.items()}
    p = to_polars(df)
    p_before = p.clone()
    m = mfx.lmer("Reaction ~ Days + (Days | Subject)", data)
    m.predict(data)
    mfx.lmer("Reaction ~ Days + (Days | Subject)", p).predict(p)
    assert list(data) == ["Reaction", "Days", "Subject"]
    np.testing.assert_array_equal(data["Reaction"], before["Reaction"])
    assert data["Days"] == before["Days"] and list(data["Subject"]) == before["Subject"]
    assert p.equals(p_before)
