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
