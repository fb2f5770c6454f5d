"""Shared fixtures: lme4 reference results (tests/reference/lme4, made by tests/reference/make_lme4_core.R)
and a session cache of fits."""
from __future__ import annotations

import glob
import json
import os
import warnings

import pandas as pd
import pytest

import mixedfx as mfx

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE_DIR = os.path.join(HERE, "reference", "lme4")


def _reference_files():
    files = sorted(glob.glob(os.path.join(REFERENCE_DIR, "*.json")))
    if not files:
        raise RuntimeError(f"no lme4 reference JSON found in {REFERENCE_DIR}; it is part of the repository "
                           "(tests/reference/lme4/*.json): check that the checkout is complete")
    return files


def load_reference(ref_id: str) -> dict:
    with open(os.path.join(REFERENCE_DIR, ref_id + ".json")) as f:
        return json.load(f)


def reference_ids(fun: str) -> list[str]:
    out = []
    for path in _reference_files():
        with open(path) as f:
            d = json.load(f)
        if d["fun"] == fun:
            out.append(d["id"])
    return out


def is_reml(ref: dict) -> bool:
    args = ref["args"] if isinstance(ref["args"], dict) else {}
    return args.get("REML", True) is not False


def reference_data(ref: dict) -> pd.DataFrame:
    """The bundled dataset, with factor columns checked against the reference's levels."""
    df = mfx.datasets.load(ref["data"])
    for col, levels in ref["factor_levels"].items():
        assert list(df[col].cat.categories) == levels, f"{ref['data']}.{col} levels differ from R's"
    return df


_FITS: dict = {}


@pytest.fixture(scope="session")
def lmm_fit():
    """Return (result, reference) for a reference id; fits are cached for the session."""
    def get(ref_id: str):
        if ref_id not in _FITS:
            ref = load_reference(ref_id)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _FITS[ref_id] = mfx.lmer(ref["formula"], reference_data(ref), reml=is_reml(ref))
        return _FITS[ref_id], load_reference(ref_id)
    return get


def seed000_teams(seed: int = 18) -> pd.DataFrame:
    """Seed 000's set-up: 18 support teams of 6 to 230 customers, tau = 6, sigma = 8."""
    import numpy as np
    rng = np.random.default_rng(seed)
    sizes = rng.integers(6, 231, size=18)
    team = np.repeat(np.arange(18), sizes)
    wait = rng.uniform(0, 20, size=team.size)
    csat = 75 - 0.5 * wait + rng.normal(0, 6, 18)[team] + rng.normal(0, 8, team.size)
    return pd.DataFrame({"csat": csat, "wait": wait, "team": team})


def partition_case_data(name: str) -> pd.DataFrame:
    """The data of the partitioned-fit test cases (tests/core/test_blocksum.py,
    tests/models/test_fit_from_blocks.py): sleepstudy and Penicillin with random weights (some zero:
    they count in n, not in sum log w), a nested 600 schools x 2 classes x 3 pupils design (the sparse
    later-terms path), and a 2,500-row InstEval subset whose dept variance is not at the boundary."""
    import numpy as np
    rng = np.random.default_rng(1)
    if name.startswith("sleep"):
        df = mfx.datasets.load("sleepstudy")
        w = rng.uniform(0.2, 3.0, len(df))
        w[[3, 40, 41]] = 0.0
        return df.assign(w=w)
    if name.startswith("penicillin"):
        df = mfx.datasets.load("penicillin")
        w = rng.uniform(0.5, 2.0, len(df))
        w[[0, 7]] = 0.0
        return df.assign(w=w)
    if name == "nested":
        school, klass = np.repeat(np.arange(600), 6), np.repeat(np.arange(1200), 3)
        x = rng.normal(size=len(school))
        y = 1 + 0.5 * x + rng.normal(0, 0.7, 600)[school] + rng.normal(0, 0.5, 1200)[klass] + rng.normal(size=len(x))
        return pd.DataFrame({"y": y, "x": x + 1e4, "school": [f"s{i}" for i in school],
                             "klass": [f"c{i}" for i in klass]})
    inst = mfx.datasets.load("insteval")
    return inst.iloc[np.sort(np.random.default_rng(2).choice(len(inst), 2500, replace=False))].reset_index(drop=True)


def rel_max(a, b) -> float:
    """max |a - b| over max |b| (0 for empty arrays): a vector's difference relative to its largest entry."""
    import numpy as np
    a, b = np.atleast_1d(np.asarray(a, float)), np.atleast_1d(np.asarray(b, float))
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b))) if a.size else 0.0


def dask_from_frames(frames):
    """A dask DataFrame whose partitions are exactly ``frames`` (empty ones and missing columns included)."""
    import dask
    import dask.dataframe as dd
    return dd.from_delayed([dask.delayed(f) for f in frames], meta=frames[0].iloc[:0], verify_meta=False)


@pytest.fixture(scope="session")
def dask_client():
    """One 2-process dask LocalCluster for the Dask tests (tests/cluster), started once per session."""
    pytest.importorskip("distributed")
    from distributed import Client, LocalCluster
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None)
        c = Client(cluster)
    yield c
    c.close()
    cluster.close()
