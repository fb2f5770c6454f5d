"""Example datasets (copies of data shipped with R's lme4, nlme, glmmTMB, ordinal and geepack, kb07 from
MixedModels.jl, and simulated sets made by the scripts in ``tests/reference/``), with factor columns
typed in R's level order.

>>> import mixedfx as mfx
>>> mfx.datasets.list()[:3]
['cake', 'cbpp', 'dyestuff']
>>> df = mfx.datasets.load("sleepstudy")   # Subject is a categorical with R's level order
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import pandas as pd

__all__ = ["list", "load", "describe"]

_list = list


@lru_cache(maxsize=1)
def _manifest() -> dict:
    with resources.files(__name__).joinpath("data/datasets.json").open("r") as f:
        return json.load(f)


def list() -> _list:  # noqa: A001 - mirrors R's data() listing
    """Names of the bundled datasets."""
    return sorted(_manifest())


def describe(name: str) -> dict:
    """Provenance and factor columns of a bundled dataset."""
    return dict(_manifest()[_key(name)])


def _key(name: str) -> str:
    m = _manifest()
    for k in m:
        if k.lower() == str(name).lower():
            return k
    raise KeyError(f"no bundled dataset {name!r}; available: {', '.join(sorted(m))}")


def load(name: str) -> pd.DataFrame:
    """Load a bundled dataset as a DataFrame.

    Columns that R treats as factors are pandas categoricals with R's level order
    (the first level is the reference level of treatment contrasts); the rest are numeric.
    """
    key = _key(name)
    with resources.files(__name__).joinpath(f"data/{key}.csv.gz").open("rb") as f:
        df = pd.read_csv(f, compression="gzip", dtype=str, keep_default_na=False, na_values=["NA"])
    factors = _manifest()[key]["factors"]
    for col in df.columns:
        if col in factors:
            df[col] = pd.Categorical(df[col], categories=factors[col])
        else:
            df[col] = pd.to_numeric(df[col])
    return df
