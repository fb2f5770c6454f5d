"""The simulated ratings table the issue 13 prototypes read (one generator for all of them).

``y = 1 + 0.5 x + u_user + v_item + e`` with user SD 0.5, item SD 0.3, unit noise, written as
Parquet files of ``chunk`` rows; nothing is written when ``path`` already holds Parquet files.
"""
from __future__ import annotations

import glob
import os

import numpy as np


def generate(path, rows, users, items, chunk=1_000_000, seed=0):
    import pyarrow as pa
    import pyarrow.parquet as pq
    if glob.glob(os.path.join(path, "*.parquet")):
        return
    os.makedirs(path, exist_ok=True)
    rng = np.random.default_rng(seed)
    bu, bi = rng.normal(0, 0.5, users), rng.normal(0, 0.3, items)
    for k, s in enumerate(range(0, rows, chunk)):
        m = min(chunk, rows - s)
        user = rng.integers(0, users, m, dtype=np.int32)
        item = rng.integers(0, items, m, dtype=np.int32)
        x = rng.normal(size=m)
        y = 1 + 0.5 * x + bu[user] + bi[item] + rng.normal(size=m)
        pq.write_table(pa.table({"user": user, "item": item, "x": x, "y": y}), f"{path}/part-{k:04d}.parquet",
                       compression="zstd")
