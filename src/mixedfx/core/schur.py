"""Precomputed plan for the Schur-complement update of the dense block.

For every theta the dense block needs ``Lr0 Lr0'`` with ``Lr0 = Lambda_r' Ar0 D0``
and ``D0`` block diagonal (one ``p0 x p0`` block ``D_g`` per level of the first
term).  Since

    Ar0 D0 D0' Ar0' = sum_g  Ar0[:, g] (D_g D_g') Ar0[:, g]'

is linear in the per-level matrices ``S_g = D_g D_g'``, its lower triangle is
``T @ vec(S)`` for a sparse matrix ``T`` that depends only on the sparsity
pattern and values of ``Ar0``.  ``T`` is built once; each evaluation is then one
sparse matrix-vector product (no sparse-sparse product, no per-theta pass over
the rows).  ``T`` has ``sum_g (p0 nnz_g)^2 / 2`` entries.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["SchurPlan"]


class SchurPlan:
    """Lower triangle of ``Ar0 diag_blocks(S) Ar0'`` as ``T @ vec(S)``.

    Parameters
    ----------
    Ar0 : sparse (q_r, l0 * p0) cross-product ``Z_r' W Z_0``.
    p0 : columns per level of the first term.
    """

    def __init__(self, Ar0: sp.spmatrix, p0: int, Arr: np.ndarray | None = None):
        A = sp.csc_matrix(Ar0)
        A.sum_duplicates()
        A.sort_indices()
        q_r, q0 = A.shape
        l0 = q0 // p0
        nnz = np.diff(A.indptr)
        if p0 == 1:
            ra, rb, vals, wcol = self._pairs_scalar(A, nnz)
        else:
            ra, rb, vals, wcol = self._pairs_blocks(A, nnz, p0, l0)
        lin = ra.astype(np.int64) * q_r + rb
        # T with one row per entry of the q_r x q_r matrix (counting sort, no comparison sort),
        # then restricted to the pattern: its nonzero rows, the diagonal and Arr's lower triangle
        W = l0 * p0 * p0
        full = sp.csr_matrix((vals, (lin, wcol)), shape=(q_r * q_r, W))
        mask = np.diff(full.indptr) > 0
        mask[np.arange(q_r, dtype=np.int64) * (q_r + 1)] = True
        if Arr is not None:
            mask |= np.tril(Arr).ravel() != 0
        self.lin = np.flatnonzero(mask)
        self.T = full[self.lin]
        self.T.sum_duplicates()
        self.q_r = q_r
        self.rows = (self.lin // q_r).astype(np.intp)
        self.cols = (self.lin % q_r).astype(np.intp)
        self.lin_fortran = self.cols.astype(np.int64) * q_r + self.rows   # (row, col) in column-major storage
        self.arr_vals = None if Arr is None else Arr[self.rows, self.cols]
        self.is_diag = self.rows == self.cols

    @staticmethod
    def _pairs_scalar(A: sp.csc_matrix, nnz: np.ndarray):
        """Entry pairs (r_a >= r_b) within each column: c (c + 1) / 2 per column of c entries.

        The t-th pair of a column is (i, k) with i = floor((sqrt(8t + 1) - 1) / 2) and
        k = t - i (i + 1) / 2, so only the lower triangle is ever generated.
        """
        counts = nnz * (nnz + 1) // 2
        total = int(counts.sum())
        col = np.repeat(np.arange(len(nnz)), counts)
        t = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
        i = ((np.sqrt(8.0 * t + 1.0) - 1.0) // 2).astype(np.int64)
        i -= (i * (i + 1) // 2 > t)                       # guard against rounding
        i += ((i + 1) * (i + 2) // 2 <= t)
        k = t - i * (i + 1) // 2
        start = A.indptr[col]
        ia, ib = start + i, start + k                      # rows sorted: index i >= k means r_a >= r_b
        return A.indices[ia], A.indices[ib], A.data[ia] * A.data[ib], col

    @staticmethod
    def _pairs_blocks(A: sp.csc_matrix, nnz: np.ndarray, p0: int, l0: int):
        """All entry pairs of columns (g p0 + a, g p0 + b), restricted to r_a >= r_b."""
        g = np.repeat(np.arange(l0), p0 * p0)
        a = np.tile(np.repeat(np.arange(p0), p0), l0)
        b = np.tile(np.tile(np.arange(p0), p0), l0)
        ca, cb = g * p0 + a, g * p0 + b
        widx = g * p0 * p0 + a * p0 + b
        na, nb = nnz[ca], nnz[cb]
        counts = na * nb
        total = int(counts.sum())
        pair = np.repeat(np.arange(len(ca)), counts)
        within = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        ia = A.indptr[ca][pair] + within // nb[pair]
        ib = A.indptr[cb][pair] + within % nb[pair]
        ra, rb = A.indices[ia], A.indices[ib]
        keep = ra >= rb
        return ra[keep], rb[keep], A.data[ia[keep]] * A.data[ib[keep]], widx[pair[keep]]

    @property
    def nnz(self) -> int:
        return self.T.nnz

    def subtract_from(self, M: np.ndarray, S: np.ndarray, scale: np.ndarray | None = None) -> None:
        """``M[lower] -= (Ar0 S Ar0')[lower]``, optionally scaled by ``scale_i scale_j``.

        ``S`` is (l0,) for p0 = 1 or (l0, p0, p0); only M's lower triangle is written.
        """
        vals = self.T @ np.ravel(S)
        if scale is not None:
            vals *= scale[self.rows] * scale[self.cols]
        M.ravel()[self.lin] -= vals

    def assemble_scaled(self, M: np.ndarray, S: np.ndarray, lam: np.ndarray) -> None:
        """Write the lower triangle of ``diag(lam) (Arr - Ar0 S Ar0') diag(lam) + I`` into the
        Fortran-ordered ``M`` (its upper triangle is left as garbage-free zeros).

        Needs ``Arr`` at construction; only the pattern's entries are touched after a fill.
        """
        vals = self.arr_vals - self.T @ np.ravel(S)
        vals *= lam[self.rows] * lam[self.cols]
        vals[self.is_diag] += 1.0
        M.fill(0.0)
        M.T.reshape(-1)[self.lin_fortran] = vals
