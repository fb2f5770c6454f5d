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

:meth:`mixedfx.core.workspace.PLSWorkspace.from_blocks` and
:meth:`mixedfx.core.scaled_workspace.ScaledWorkspace.from_blocks` build workspaces from the sum.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .crossprod import CrossProducts

__all__ = ["BlockSums", "partition_blocks", "sum_blocks"]

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
        :func:`sum_blocks`), or None.
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
