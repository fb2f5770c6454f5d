"""One 2-process LocalCluster for the Dask tests (started once per test session)."""
from __future__ import annotations

import warnings

import pytest


@pytest.fixture(scope="session")
def client():
    pytest.importorskip("distributed")
    from distributed import Client, LocalCluster
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None)
        c = Client(cluster)
    yield c
    c.close()
    cluster.close()
