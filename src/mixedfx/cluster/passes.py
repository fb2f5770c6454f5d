"""Map a pass function over a dask DataFrame's partitions and tree-reduce the summaries.

Each pass is one ``dask.compute``: the partitions (``ddf.to_delayed()``) are mapped with a
module-level function of :mod:`mixedfx.models.partitioned` (broadcast arguments wrapped once in
``dask.delayed``, so they are shipped once per worker, not once per task) and reduced in groups of
``split_every`` (a tree: the client receives one merged summary).  Empty partitions give None,
which every merge skips.
"""
from __future__ import annotations

from functools import partial

import dask

__all__ = ["partitions", "map_reduce", "broadcast", "is_dask_frame"]

SPLIT_EVERY = 8


def partitions(ddf) -> list:
    """The partitions of a dask DataFrame as a list of Delayed pandas frames."""
    return list(ddf.to_delayed())


def broadcast(obj):
    """One shared graph node for a broadcast argument (spec, scaling...)."""
    return dask.delayed(obj, pure=True, traverse=False)


def _merge_some(merge, *items):
    """``merge(items)`` over the non-None items; None when every item is None (empty partitions)."""
    items = [x for x in items if x is not None]
    return merge(items) if items else None


def _max_some(*items):
    return max((x for x in items if x is not None), default=0.0)


def map_reduce(parts, fn, merge, *args, split_every: int = SPLIT_EVERY, **kwargs):
    """``merge([fn(part, *args, index=i, total=K, **kwargs) for each partition i])`` as a dask tree.

    ``merge`` takes a list of non-None summaries (``merge=max`` for scalars).  Returns the merged
    summary (None when every partition gave None).
    """
    total = len(parts)
    call = dask.delayed(fn, pure=True)
    level = [call(p, *args, index=i, total=total, **kwargs) for i, p in enumerate(parts)]
    reduce_one = dask.delayed(_max_some if merge is max else partial(_merge_some, merge), pure=True)
    while len(level) > 1:
        level = [reduce_one(*level[i:i + split_every]) for i in range(0, len(level), split_every)]
    if not level:
        return None
    (out,) = dask.compute(level[0] if total > 1 else reduce_one(level[0]))
    return out


def is_dask_frame(obj) -> bool:
    """A dask DataFrame (without importing anything new)."""
    return type(obj).__module__.split(".")[0] in ("dask", "dask_expr") and hasattr(obj, "to_delayed")
