"""The blocks of ``A = [Z F]' W [Z F]`` summed over row partitions.

``A`` is a sum over rows, so partitions of the rows can each compute their share
(:func:`partition_blocks`) and the shares can be added (:func:`sum_blocks`, in any order, e.g. a
tree reduction).  Two conditions make the sum the in-memory ``A``:

* every partition uses the **global** level codes (the position of each level among all the
  data's levels) and the global standardization (:mod:`mixedfx.core.moments`), so the blocks
  have the same shapes and units everywhere;
* the sparse blocks ``Ar0`` and ``Arr`` are summed as concatenated COO triplets turned into CSR,
  which adds duplicate entries and **keeps entries that sum to zero**: the result's pattern is
  the union of the partitions' patterns, i.e. exactly the pattern of the in-memory
  :class:`~mixedfx.core.crossprod.CrossProducts` (every (row, column) pair that some row touches,
  whatever its weight).  Adding CSR matrices would drop exact zeros (zero weights, values that
  cancel), and the pattern decides the factorization path
  (:func:`~mixedfx.core.gram.choose_update`).

**Bucketed sums** (large ``Ar0``, e.g. 10^4 x 10^5 with ~10^8 entries): summing whole COO sets in a
tree puts the largest merges (several times the final size) on one process.  Instead each
partition's ``Ar0`` is cut into B column buckets (ranges of term-0 levels, :func:`bucket_edges`,
:func:`split_summary`); every bucket is summed on its own (:func:`merge_buckets`, CSC with
:func:`union_sum_csc`: the same union-of-patterns rule) and the buckets are written in order into
one preallocated CSC matrix (:class:`ColumnAssembler`), so no process holds the full matrix twice.
The dense blocks and ``Arr`` travel with bucket 0.  The same helpers bucket any sparse summary
whose columns are term-0 levels (the moment start's count tables, :mod:`mixedfx.core.start`).

:meth:`mixedfx.core.workspace.PLSWorkspace.from_blocks` and
:meth:`mixedfx.core.scaled_workspace.ScaledWorkspace.from_blocks` build workspaces from the sum.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from .crossprod import CrossProducts

__all__ = ["BlockSums", "partition_blocks", "sum_blocks", "bucket_edges", "split_columns", "union_sum_csc",
           "ColumnAssembler", "split_summary", "merge_buckets", "bucket_sizes", "assemble_buckets", "block_buckets",
           "finish_block_buckets", "sum_buckets", "sum_blocks_bucketed"]

_DENSE = ("A00", "AF0", "AFF", "AFr")
_SPARSE = ("Ar0", "Arr")


@dataclass(frozen=True)
class BlockSums:
    """The blocks of ``A`` over a set of rows, with the row counts the criterion needs.

    Attributes
    ----------
    A00 : (l0, p0, p0) per-level blocks of ``Z0' W Z0`` (term 0: the term with most levels).
    AF0 : (p+1, q0) ``F' W Z0`` with ``F = [X y]`` and ``q0 = l0 p0``.
    AFF : (p+1, p+1) ``F' W F``.
    AFr : (p+1, qr) ``F' W Zr`` of the later terms, or None without later terms.
    Ar0 : (qr, q0) sparse ``Zr' W Z0`` (COO in a partition's sums, CSR with sorted indices after
        :func:`sum_blocks`; **CSC** with sorted row indices, int32 indices when they fit, after the bucketed
        sum :func:`sum_blocks_bucketed` / :func:`finish_block_buckets`), or None.  Both have the
        same pattern (explicit zeros kept) and values.
    Arr : (qr, qr) sparse ``Zr' W Zr`` (both triangles), likewise, or None.
    n : number of rows (zero weights included).
    log_weights : ``sum log w`` over the positive weights (in the units the blocks were formed in).
    npos : number of positive weights (0 without weights).
    """

    A00: np.ndarray
    AF0: np.ndarray
    AFF: np.ndarray
    AFr: np.ndarray | None
    Ar0: sp.spmatrix | None
    Arr: sp.spmatrix | None
    n: int
    log_weights: float
    npos: int

    def __getitem__(self, key: str):
        """Block by name, as :meth:`CrossProducts.compute` returns them (for ``PLSWorkspace.from_blocks``)."""
        if key not in _DENSE + _SPARSE:
            raise KeyError(key)
        return getattr(self, key)

    @property
    def p(self) -> int:
        """Number of fixed effects."""
        return self.AFF.shape[0] - 1


def partition_blocks(X, y, blocks, weights=None) -> BlockSums | None:
    """One partition's share of ``A``.

    Parameters
    ----------
    X : (m, p) fixed-effects matrix of the partition's rows, standardized
        (:meth:`Standardization.fixed`).
    y : (m,) response minus offset, standardized (:meth:`Standardization.response`).
    blocks : per term (term 0 first), ``(codes (m,), Xk (m, p_k), n_levels)`` with the global level
        codes and the term's standardized columns (:meth:`Standardization.term`).
    weights : (m,) standardized prior weights (:meth:`Standardization.weights`) or None.

    Returns
    -------
    BlockSums or None
        The blocks with COO sparse blocks; None for a partition without rows (skipped by
        :func:`sum_blocks`).
    """
    X = np.asarray(X, float)
    if X.shape[0] == 0:
        return None
    for k, (codes, _, nl) in enumerate(blocks):
        codes = np.asarray(codes)
        if codes.size and (codes.min() < 0 or codes.max() >= nl):
            raise ValueError(f"term {k}: level codes must lie in [0, {nl}) (the global levels); "
                             f"found {codes.min()}..{codes.max()}")
    w = None if weights is None else np.asarray(weights, float)
    A = CrossProducts(X, blocks).compute(w, np.asarray(y, float))
    rest = len(blocks) > 1
    return BlockSums(A00=A["A00"], AF0=A["AF0"], AFF=A["AFF"], AFr=A["AFr"] if rest else None,
                     Ar0=A["Ar0"].tocoo() if rest else None, Arr=A["Arr"].tocoo() if rest else None,
                     n=X.shape[0], log_weights=0.0 if w is None else float(np.sum(np.log(w[w > 0]))),
                     npos=0 if w is None else int(np.count_nonzero(w > 0)))


def _union_sum(mats) -> sp.csr_matrix:
    """Sum of sparse matrices on the union of their stored patterns (explicit zeros kept), as CSR."""
    coos = [m.tocoo() for m in mats]
    shape = coos[0].shape
    if any(c.shape != shape for c in coos):
        raise ValueError(f"sparse blocks of different shapes: {sorted({c.shape for c in coos})}")
    row = np.concatenate([c.row for c in coos])
    col = np.concatenate([c.col for c in coos])
    data = np.concatenate([c.data for c in coos])
    out = sp.coo_matrix((data, (row, col)), shape=shape).tocsr()    # sums duplicates, keeps zeros
    out.sort_indices()
    return out


def sum_blocks(parts) -> BlockSums:
    """The sum of partitions' :class:`BlockSums` (None entries skipped).

    Dense blocks are added; sparse blocks are summed on the union of their patterns (see the
    module docstring), as CSR with sorted indices.  The result can itself be summed again
    (tree reductions).
    """
    parts = [b for b in parts if b is not None]
    if not parts:
        raise ValueError("no rows in any partition: nothing to sum")
    first = parts[0]
    for b in parts[1:]:
        for key in _DENSE:
            a, c = getattr(first, key), getattr(b, key)
            if (a is None) != (c is None) or (a is not None and a.shape != c.shape):
                raise ValueError(f"block {key} differs in shape between partitions: are the level codes global?")
    dense = {key: None if first[key] is None else np.sum([b[key] for b in parts], axis=0) for key in _DENSE}
    sparse = {key: None if first[key] is None else _union_sum([b[key] for b in parts]) for key in _SPARSE}
    return BlockSums(**dense, **sparse, n=sum(b.n for b in parts),
                     log_weights=math.fsum(b.log_weights for b in parts), npos=sum(b.npos for b in parts))


# ------------------------------------------------------------------ bucketed sums (large Ar0)
def _index_dtype(*maxvals) -> type:
    return np.int32 if max(maxvals, default=0) < 2**31 - 1 else np.int64


def bucket_edges(weights, nbuckets: int, width: int = 1) -> np.ndarray:
    """Column edges ``(B + 1,)`` of ``B`` contiguous buckets of levels with near-equal total ``weights``.

    Parameters
    ----------
    weights : (l,) non-negative expected size per level (e.g. a bound on its entries); all ones for
        equal numbers of levels.
    nbuckets : ``B`` (clipped to ``[1, l]``).
    width : columns per level (``p0`` for ``Ar0``: the edges are level edges times ``width``).
    """
    w = np.asarray(weights, float)
    nl = len(w)
    B = max(1, min(int(nbuckets), nl))
    cum = np.cumsum(w)
    total = cum[-1] if nl else 0.0
    if total > 0:
        inner = np.searchsorted(cum, total * np.arange(1, B) / B, side="left") + 1
    else:
        inner = (np.arange(1, B) * nl) // B
    edges = np.concatenate([[0], np.minimum(np.maximum.accumulate(inner), nl), [nl]]).astype(np.int64)
    return edges * int(width)


def split_columns(mat, edges) -> list:
    """``mat`` (any sparse format) cut into COO pieces by column ranges ``edges[k]:edges[k+1]`` (local
    column indices; stored entries, explicit zeros included, keep their order within a piece)."""
    edges = np.asarray(edges, np.int64)
    coo = mat.tocoo()
    nrows = coo.shape[0]
    if edges[0] != 0 or edges[-1] != coo.shape[1] or np.any(np.diff(edges) < 0):
        raise ValueError(f"bucket edges must rise from 0 to the {coo.shape[1]} columns; got {edges[0]}..{edges[-1]}")
    B = len(edges) - 1
    which = np.searchsorted(edges, coo.col, side="right") - 1
    order = np.argsort(which, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(which, minlength=B))])
    pieces = []
    for k in range(B):
        idx = order[bounds[k]:bounds[k + 1]]
        col = (coo.col[idx] - edges[k]).astype(coo.col.dtype, copy=False)
        pieces.append(sp.coo_matrix((coo.data[idx], (coo.row[idx], col)), shape=(nrows, int(edges[k + 1] - edges[k]))))
    return pieces


def union_sum_csc(mats) -> sp.csc_matrix:
    """Sum of sparse matrices (any format) on the union of their stored patterns, as CSC with sorted row
    indices: duplicates summed, entries that sum to zero KEPT (the rule of :func:`sum_blocks`)."""
    mats = [m for m in mats if m is not None]
    if not mats:
        raise ValueError("nothing to sum")
    if len(mats) == 1 and mats[0].format == "csc" and mats[0].has_canonical_format:
        return mats[0]
    coos = [m.tocoo() for m in mats]
    shape = coos[0].shape
    if any(c.shape != shape for c in coos):
        raise ValueError(f"sparse blocks of different shapes: {sorted({c.shape for c in coos})}")
    idx = _index_dtype(*shape)
    row = np.concatenate([c.row.astype(idx, copy=False) for c in coos])
    col = np.concatenate([c.col.astype(idx, copy=False) for c in coos])
    data = np.concatenate([c.data for c in coos])
    del coos
    out = sp.coo_matrix((data, (row, col)), shape=shape).tocsc()     # sums duplicates, keeps zeros
    out.sort_indices()
    return out


class ColumnAssembler:
    """One CSC matrix ``(nrows, edges[-1])`` filled bucket by bucket into preallocated arrays.

    Parameters
    ----------
    nrows : rows.  edges : (B + 1,) column edges of the buckets.
    nnz : (B,) stored entries of each bucket (:func:`bucket_sizes`).

    :meth:`put` copies bucket ``k`` (a CSC piece ``(nrows, edges[k+1] - edges[k])`` with sorted row
    indices, or None when empty) into place; :meth:`result` returns the matrix (int32 indices when they
    fit) once every bucket is in.  Peak memory: the result plus one bucket.
    """

    def __init__(self, nrows: int, edges, nnz):
        self.nrows = int(nrows)
        self.edges = np.asarray(edges, np.int64)
        nnz = np.asarray(nnz, np.int64)
        if len(nnz) != len(self.edges) - 1:
            raise ValueError(f"{len(nnz)} bucket sizes for {len(self.edges) - 1} buckets")
        self.offsets = np.concatenate([[0], np.cumsum(nnz)])
        total = int(self.offsets[-1])
        idx = _index_dtype(self.nrows, int(self.edges[-1]), total)
        self.indptr = np.empty(int(self.edges[-1]) + 1, idx)
        self.indices = np.empty(total, idx)
        self.data = np.empty(total)
        self._done = np.zeros(len(nnz), bool)

    def put(self, k: int, piece) -> None:
        a, b = int(self.edges[k]), int(self.edges[k + 1])
        o, want = int(self.offsets[k]), int(self.offsets[k + 1] - self.offsets[k])
        if piece is None:
            piece = sp.csc_matrix((self.nrows, b - a))
        piece = piece.tocsc()
        if piece.shape != (self.nrows, b - a) or piece.nnz != want:
            raise ValueError(f"bucket {k}: shape {piece.shape} with {piece.nnz} entries, expected "
                             f"{(self.nrows, b - a)} with {want}")
        if not piece.has_sorted_indices:
            piece.sort_indices()
        self.indices[o:o + want] = piece.indices
        self.data[o:o + want] = piece.data
        self.indptr[a:b] = piece.indptr[:-1] + o
        self._done[k] = True

    def result(self) -> sp.csc_matrix:
        if not self._done.all():
            raise ValueError(f"buckets {np.flatnonzero(~self._done).tolist()} were never filled")
        self.indptr[-1] = self.offsets[-1]
        out = sp.csc_matrix((self.data, self.indices, self.indptr), shape=(self.nrows, int(self.edges[-1])),
                            copy=False)
        out.has_sorted_indices = True
        return out


def split_summary(head, sparse: dict, edges) -> list:
    """A summary cut into buckets: ``[(head, {key: piece_0}), (None, {key: piece_1}), ...]``.

    ``head`` (the small part, e.g. a :class:`BlockSums` without ``Ar0``) travels with bucket 0;
    ``sparse`` maps keys to matrices whose columns are bucketed by ``edges`` (:func:`split_columns`).
    A None ``head`` (an empty partition) gives None buckets.
    """
    B = len(edges) - 1
    if head is None:
        return [None] * B
    pieces = {key: split_columns(m, edges) for key, m in sparse.items()}
    return [(head if k == 0 else None, {key: p[k] for key, p in pieces.items()}) for k in range(B)]


def merge_buckets(items, merge_head) -> tuple | None:
    """Merge the same bucket of several summaries (None items skipped): heads with ``merge_head`` (a list
    -> one), sparse pieces key by key with :func:`union_sum_csc`.  None when every item is None."""
    items = [x for x in items if x is not None]
    if not items:
        return None
    heads = [h for h, _ in items if h is not None]
    keys = []
    for _, d in items:
        keys += [key for key in d if key not in keys]
    sparse = {key: union_sum_csc([d[key] for _, d in items if key in d]) for key in keys}
    return (merge_head(heads) if heads else None), sparse


def bucket_sizes(bucket) -> dict:
    """``{key: (nrows, nnz)}`` of a merged bucket (a tiny summary to preallocate the result)."""
    return {} if bucket is None else {key: (m.shape[0], m.nnz) for key, m in bucket[1].items()}


def assemble_buckets(buckets, edges) -> tuple:
    """``(head, {key: CSC matrix})`` from merged buckets (all in memory: the non-distributed path)."""
    sizes = [bucket_sizes(b) for b in buckets]
    out = {}
    keys = []
    for s in sizes:
        keys += [key for key in s if key not in keys]
    for key in keys:
        nrows = next(s[key][0] for s in sizes if key in s)
        asm = ColumnAssembler(nrows, edges, [s[key][1] if key in s else 0 for s in sizes])
        for k, b in enumerate(buckets):
            asm.put(k, None if b is None else b[1].get(key))
        out[key] = asm.result()
    head = buckets[0][0] if buckets and buckets[0] is not None else None
    return head, out


def block_buckets(bs: BlockSums | None, edges) -> list:
    """A partition's :class:`BlockSums` cut into ``len(edges) - 1`` buckets of ``Ar0`` columns (``edges``: column
    edges, i.e. term-0 level edges times ``p0``); the rest travels with bucket 0 (see :func:`split_summary`)."""
    if bs is None:
        return [None] * (len(edges) - 1)
    if bs.Ar0 is None:
        return [(bs, {})] + [(None, {})] * (len(edges) - 2)
    return split_summary(replace(bs, Ar0=None), {"Ar0": bs.Ar0}, edges)


def finish_block_buckets(head: BlockSums, sparse: dict) -> BlockSums:
    """The summed :class:`BlockSums` from the merged bucket-0 head and the assembled CSC ``Ar0``."""
    return head if "Ar0" not in sparse else replace(head, Ar0=sparse["Ar0"])


def sum_buckets(parts, split, merge_head, edges) -> tuple | None:
    """In this process: cut every summary with ``split(summary, edges)``, merge each bucket
    (:func:`merge_buckets`), assemble (:func:`assemble_buckets`).  ``(head, {key: CSC})``, or None when every
    summary is None.  (A scheduler runs the same steps as one tree per bucket.)"""
    cut = [split(b, edges) for b in parts]
    merged = [merge_buckets([c[k] for c in cut], merge_head) for k in range(len(edges) - 1)]
    return None if merged[0] is None else assemble_buckets(merged, edges)


def sum_blocks_bucketed(parts, edges) -> BlockSums:
    """:func:`sum_blocks` through buckets of ``Ar0`` columns, in this process (``Ar0`` comes out CSC)."""
    out = sum_buckets(parts, block_buckets, sum_blocks, edges)
    if out is None:
        raise ValueError("no rows in any partition: nothing to sum")
    return finish_block_buckets(*out)
