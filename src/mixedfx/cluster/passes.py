"""Map a pass function over a dask DataFrame's partitions and tree-reduce the summaries.

Each pass is one ``dask.compute``: the partitions (``ddf.to_delayed()``) are mapped with a
module-level function of :mod:`mixedfx.models.partitioned` (broadcast arguments wrapped once in
``dask.delayed``, so they are shipped once per worker, not once per task) and reduced in groups of
``split_every`` (a tree: the client receives one merged summary).  Empty partitions give None,
which every merge skips.

:func:`map_reduce_buckets` is the bucketed variant for summaries with a large sparse part (pass 3's ``Ar0``,
pass 4's count tables): each partition's summary is cut into column buckets, each bucket is reduced by its
own tree, and the client writes the merged buckets one at a time into one preallocated CSC matrix
(:class:`~mixedfx.core.blocksum.ColumnAssembler`), releasing each bucket's future as soon as it is copied.
"""
from __future__ import annotations

from functools import partial

import dask

from ..core.blocksum import ColumnAssembler, assemble_buckets, bucket_sizes, merge_buckets

__all__ = ["partitions", "map_reduce", "map_reduce_buckets", "broadcast", "is_dask_frame", "distributed_client",
           "release_worker_memory"]

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


def _merge_bucket_items(merge_head, *items):
    return merge_buckets(items, merge_head)


def _split_one(split, edges, summary):
    return tuple(split(summary, edges))


def distributed_client():
    """The ``distributed.Client`` behind the active dask scheduler, or None (threads, synchronous...)."""
    owner = getattr(dask.base.get_scheduler(), "__self__", None)
    return owner if owner is not None and type(owner).__module__.split(".")[0] == "distributed" else None


def map_reduce_buckets(parts, fn, split, merge_head, edges, *args, split_every: int = SPLIT_EVERY, **kwargs):
    """A bucketed :func:`map_reduce`: ``(head, {key: CSC matrix})``, or None when every partition gave None.

    ``split(summary, edges)`` cuts one partition's summary into ``len(edges) - 1`` buckets (e.g.
    :func:`~mixedfx.core.blocksum.block_buckets`); each bucket is reduced by its own tree with
    :func:`~mixedfx.core.blocksum.merge_buckets` (``merge_head`` merges the small part carried by bucket 0).
    With a distributed client the bucket roots stay on the workers as futures: the client asks their sizes,
    preallocates the result, then gathers, copies and releases one bucket at a time (peak: the result plus
    one bucket).  Otherwise all buckets are computed and assembled in memory.
    """
    total, B = len(parts), len(edges) - 1
    call = dask.delayed(fn, pure=True)
    cut = dask.delayed(partial(_split_one, split, edges), pure=True, nout=B)
    leaves = [cut(call(p, *args, index=i, total=total, **kwargs)) for i, p in enumerate(parts)]
    if not leaves:
        return None
    reduce_one = dask.delayed(partial(_merge_bucket_items, merge_head), pure=True)
    roots = []
    for k in range(B):
        level = [leaf[k] for leaf in leaves]
        while len(level) > 1:
            level = [reduce_one(*level[i:i + split_every]) for i in range(0, len(level), split_every)]
        roots.append(reduce_one(level[0]) if total == 1 else level[0])
    client = distributed_client()
    if client is None:
        buckets = list(dask.compute(*roots))
        return None if buckets[0] is None else assemble_buckets(buckets, edges)
    futures = client.compute(roots)
    sizes = client.gather(client.map(bucket_sizes, futures, pure=False))
    keys = []
    for s in sizes:
        keys += [key for key in s if key not in keys]
    asm = {key: ColumnAssembler(next(s[key][0] for s in sizes if key in s), edges,
                                [s[key][1] if key in s else 0 for s in sizes]) for key in keys}
    head = None
    for k in range(B):
        bucket = futures[k].result()
        futures[k].release()
        futures[k] = None
        if k == 0 and bucket is not None:
            head = bucket[0]
        for key in keys:
            asm[key].put(k, None if bucket is None else bucket[1].get(key))
        del bucket
    return None if head is None else (head, {key: a.result() for key, a in asm.items()})


def _trim_heap() -> None:
    """Give the C heap's free pages back to the system (glibc's ``malloc_trim``; a no-op elsewhere)."""
    import ctypes
    import sys
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # pragma: no cover - not glibc
            pass


def release_worker_memory() -> None:
    """After the large passes: the workers return the memory their merges freed (dask's advice for
    "unmanaged" memory), so the client's fit does not run beside idle workers holding gigabytes."""
    client = distributed_client()
    if client is not None:
        client.run(_trim_heap)


def is_dask_frame(obj) -> bool:
    """A dask DataFrame (without importing anything new)."""
    return type(obj).__module__.split(".")[0] in ("dask", "dask_expr") and hasattr(obj, "to_delayed")
