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

__all__ = ["SchurPlan", "DenseGram", "pair_count", "pattern_density", "level_weights"]


def level_weights(F: np.ndarray) -> np.ndarray:
    """Per-level weights ``S_g = F_g F_g'`` from the factor (a vector when p0 = 1)."""
    return F * F if F.ndim == 1 else F @ np.swapaxes(F, 1, 2)


def pair_count(Ar0: sp.spmatrix, p0: int) -> int:
    """Entries of the sparse plan ``T``: ~sum over levels of (nonzero rows)^2 / 2."""
    if Ar0.format == "csr":     # entries per column without building the CSC copy
        nnz = np.bincount(Ar0.indices, minlength=Ar0.shape[1]).astype(np.int64)
    else:
        nnz = np.diff(sp.csc_matrix(Ar0).indptr).astype(np.int64)
    if p0 > 1:
        nnz = nnz.reshape(-1, p0).sum(axis=1)
    return int(np.sum(nnz * (nnz + 1) // 2))


def pattern_density(Ar0: sp.spmatrix, p0: int, Arr=None, max_density: float = 1.0) -> float:
    """Share of the lower triangle of the later-terms block that the Schur update, ``Arr`` and
    the diagonal touch (what the sparse path would factor), without building a plan.

    Returns early with a value above ``max_density`` when one level alone fills more than that
    (its products are distinct entries), so busy crossed designs cost only a column count, or when
    the entries of the levels seen so far do (then the value is the share seen so far).
    """
    A = sp.csc_matrix(Ar0)
    A.sum_duplicates()
    A.sort_indices()
    q_r, q0 = A.shape
    tri = q_r * (q_r + 1) / 2.0
    nnz = np.diff(A.indptr).astype(np.int64)
    per_level = nnz.reshape(-1, p0).max(axis=1) if p0 > 1 else nnz
    if q_r == 0:
        return 0.0
    if per_level.size and per_level.max() * (per_level.max() + 1) / 2.0 > max_density * tri:
        return float(per_level.max() * (per_level.max() + 1) / 2.0 / tri)
    lin = [np.arange(q_r, dtype=np.int64) * (q_r + 1)]
    if Arr is not None:
        Arr = sp.coo_matrix(Arr)
        low = Arr.row >= Arr.col
        lin.append(Arr.row[low].astype(np.int64) * q_r + Arr.col[low])
    if q_r * q_r <= 20_000_000:
        # in chunks of 250,000 pairs, stopping once the entries seen exceed max_density (a busy crossing
        # shows it within its first levels: InstEval's 1,142-column block after 1 of ~4 chunks)
        mask = np.zeros(q_r * q_r, bool)
        for part in lin:
            mask[part] = True
        for ck in SchurPlan._pair_chunks(A, nnz, p0, q0 // p0, max_pairs=250_000):
            mask[SchurPlan._lin(ck, q_r)] = True
            seen = np.count_nonzero(mask) / tri
            if seen > max_density:
                return float(seen)
        return float(np.count_nonzero(mask) / tri)
    chunks = (SchurPlan._lin(ck, q_r) for ck in SchurPlan._pair_chunks(A, nnz, p0, q0 // p0))
    return float(len(np.unique(np.concatenate([np.unique(c) for c in chunks] + lin))) / tri)


class DenseGram:
    """``Ar0 diag_blocks(F F') Ar0'`` by one BLAS SYRK on ``B = Ar0 F`` (Fortran-ordered).

    For crossed factors whose update fills the whole block (each level of the first
    factor meets many levels of the later ones) the sparse plan would hold more
    entries than the dense product costs flops; then this costs ``q_r^2 q0 / 2``
    flops per evaluation at BLAS speed, no set-up, and ``q_r q0`` doubles of memory.
    """

    #: counts refreshes (a workspace reuses a factor only for the same values)
    version = 0

    def __init__(self, Ar0: sp.spmatrix, p0: int, Arr):
        self.A = np.asfortranarray(sp.csc_matrix(Ar0).toarray())
        self.p0 = p0
        self.Arr = Arr.toarray() if sp.issparse(Arr) else np.asarray(Arr)

    def refresh(self, Ar0: sp.spmatrix, Arr) -> None:
        """New values of Ar0 and Arr (same shapes), e.g. after PIRLS reweighting."""
        self.version += 1
        self.A[...] = Ar0.toarray()
        self.Arr = Arr.toarray() if sp.issparse(Arr) else np.asarray(Arr)

    def _gram_lower(self, F: np.ndarray) -> np.ndarray:
        from scipy.linalg.blas import dsyrk
        if self.p0 == 1:
            B = self.A * F[None, :]
        else:
            q_r = self.A.shape[0]
            B = np.asfortranarray(np.einsum("rgi,gij->rgj", self.A.reshape(q_r, -1, self.p0), F).reshape(q_r, -1))
        return dsyrk(1.0, B, lower=1)

    def subtract_from(self, M: np.ndarray, F: np.ndarray, scale=None) -> None:
        """``M[lower] -= (Ar0 S Ar0')[lower]`` (upper triangle untouched)."""
        G = self._gram_lower(F)
        if scale is not None:
            G *= scale[:, None] * scale[None, :]
        il = np.tril_indices_from(M)
        M[il] -= G[il]

    def assemble_scaled(self, M: np.ndarray, F: np.ndarray, lam: np.ndarray) -> None:
        """``M = diag(lam) (Arr - Ar0 S Ar0') diag(lam) + I`` (lower triangle valid)."""
        G = self._gram_lower(F)
        np.subtract(self.Arr, G, out=M)
        M *= lam[:, None]
        M *= lam[None, :]
        M[np.diag_indices_from(M)] += 1.0


class SchurPlan:
    """Lower triangle of ``Ar0 diag_blocks(S) Ar0'`` as ``T @ vec(S)``.

    Parameters
    ----------
    Ar0 : sparse (q_r, l0 * p0) cross-product ``Z_r' W Z_0``.
    p0 : columns per level of the first term.
    """

    #: counts refreshes (a workspace reuses a factor only for the same values)
    version = 0

    def __init__(self, Ar0: sp.spmatrix, p0: int, Arr=None):
        Ar0 = sp.csr_matrix(Ar0)
        Ar0.sum_duplicates()
        probe = sp.csr_matrix((np.arange(1, Ar0.nnz + 1, dtype=float), Ar0.indices, Ar0.indptr),
                              shape=Ar0.shape).tocsc()
        probe.sort_indices()
        self._perm = probe.data.astype(np.int64) - 1            # CSC entry k is CSR entry _perm[k]
        A = sp.csc_matrix((Ar0.data[self._perm], probe.indices, probe.indptr), shape=Ar0.shape)
        q_r, q0 = A.shape
        l0 = q0 // p0
        nnz = np.diff(A.indptr)
        W = l0 * p0 * p0
        chunks = lambda: self._pair_chunks(A, nnz, p0, l0)   # two passes, bounded memory
        # the pattern: entries the update touches, the diagonal and Arr's lower triangle
        diag = np.arange(q_r, dtype=np.int64) * (q_r + 1)
        if Arr is None:
            arr_lin, self._arr_src = np.zeros(0, np.int64), np.zeros(0, np.int64)
            arr_v = np.zeros(0)
        else:
            Arr = sp.csr_matrix(Arr)
            Arr.sum_duplicates()
            arow = np.repeat(np.arange(q_r), np.diff(Arr.indptr))
            self._arr_src = np.flatnonzero(arow >= Arr.indices)        # lower-triangle entries of Arr.data
            arr_lin = arow[self._arr_src].astype(np.int64) * q_r + Arr.indices[self._arr_src]
            arr_v = Arr.data[self._arr_src]
        if q_r * q_r <= 20_000_000:   # counting sort over a q_r^2 mask: linear time
            mask = np.zeros(q_r * q_r, bool)
            for ck in chunks():
                mask[self._lin(ck, q_r)] = True
            mask[diag] = True
            mask[arr_lin] = True
            self.lin = np.flatnonzero(mask)
            del mask
            table = np.full(q_r * q_r, -1, dtype=np.int32 if len(self.lin) < 2**31 else np.int64)
            table[self.lin] = np.arange(len(self.lin))
            position = table.__getitem__                  # O(1) lookup of a pattern position
        else:                          # large blocks: sort, memory proportional to the pattern
            self.lin = np.unique(np.concatenate([np.unique(self._lin(ck, q_r)) for ck in chunks()]
                                                + [diag, arr_lin]))
            position = lambda lin: np.searchsorted(self.lin, lin)
        # T in CSC form, one column per weight; built chunk by chunk without a global sort
        index_type = np.int32 if len(self.lin) < 2**31 else np.int64
        rows_parts, data_parts, ia_parts, ib_parts = [], [], [], []
        counts = np.zeros(W, np.int64)
        for ck in chunks():
            ra, rb, vals, wcol, ia, ib = ck
            pos = position(self._lin(ck, q_r))
            order = np.lexsort((pos, wcol))               # by column, then row: canonical CSC
            rows_parts.append(pos[order].astype(index_type))
            data_parts.append(vals[order])
            ia_parts.append(ia[order])
            ib_parts.append(ib[order])
            counts += np.bincount(wcol, minlength=W)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        cat = lambda parts, dt: np.concatenate(parts) if parts else np.zeros(0, dt)
        self.T = sp.csc_matrix((cat(data_parts, float), cat(rows_parts, index_type), indptr),
                               shape=(len(self.lin), W))
        self.T.has_sorted_indices = True
        self._ia, self._ib = cat(ia_parts, np.int64), cat(ib_parts, np.int64)   # T entry = A[ia] * A[ib]
        del rows_parts, data_parts, ia_parts, ib_parts
        self.q_r = q_r
        self.rows = (self.lin // q_r).astype(np.intp)
        self.cols = (self.lin % q_r).astype(np.intp)
        self.lin_fortran = self.cols.astype(np.int64) * q_r + self.rows   # (row, col) in column-major storage
        self._arr_pos = position(arr_lin)
        self.arr_vals = np.zeros(len(self.lin))
        self.arr_vals[self._arr_pos] = arr_v
        self.is_diag = self.rows == self.cols

    def refresh(self, Ar0: sp.spmatrix, Arr=None) -> None:
        """New values of Ar0 (same CSR pattern) and Arr, e.g. after PIRLS reweighting:
        ``T`` entries are products of two Ar0 entries, recomputed in ``O(nnz(T))``."""
        self.version += 1
        data = Ar0.data[self._perm]
        np.multiply(data[self._ia], data[self._ib], out=self.T.data)
        self.arr_vals[:] = 0.0
        if Arr is not None:
            csr = sp.isspmatrix_csr(Arr) or getattr(Arr, "format", "") == "csr"
            data = Arr.data if csr else sp.csr_matrix(Arr).data
            self.arr_vals[self._arr_pos] = data[self._arr_src]

    @staticmethod
    def _lin(chunk, q_r: int) -> np.ndarray:
        ra, rb = chunk[0], chunk[1]
        return ra.astype(np.int64) * q_r + rb

    @classmethod
    def _pair_chunks(cls, A: sp.csc_matrix, nnz: np.ndarray, p0: int, l0: int, max_pairs: int = 4_000_000):
        """Entry pairs in chunks of whole levels (at most ~max_pairs each), bounding temporaries."""
        if p0 > 1:
            yield cls._pairs_blocks(A, nnz, p0, l0)
            return
        per_col = nnz * (nnz + 1) // 2
        bounds = np.searchsorted(np.cumsum(per_col), np.arange(max_pairs, per_col.sum() + max_pairs, max_pairs))
        start = 0
        for end in np.unique(np.minimum(bounds + 1, len(nnz))):
            if end > start:
                yield cls._pairs_scalar(A, nnz, start, end)
                start = end
        if start < len(nnz):
            yield cls._pairs_scalar(A, nnz, start, len(nnz))

    @staticmethod
    def _pairs_scalar(A: sp.csc_matrix, nnz: np.ndarray, first: int = 0, last: int | None = None):
        """Entry pairs (r_a >= r_b) within each column: c (c + 1) / 2 per column of c entries.

        The t-th pair of a column is (i, k) with i = floor((sqrt(8t + 1) - 1) / 2) and
        k = t - i (i + 1) / 2, so only the lower triangle is ever generated.
        """
        last = len(nnz) if last is None else last
        counts = nnz[first:last] * (nnz[first:last] + 1) // 2
        total = int(counts.sum())
        col = np.repeat(np.arange(first, last), counts)
        t = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
        i = ((np.sqrt(8.0 * t + 1.0) - 1.0) // 2).astype(np.int64)
        i -= (i * (i + 1) // 2 > t)                       # guard against rounding
        i += ((i + 1) * (i + 2) // 2 <= t)
        k = t - i * (i + 1) // 2
        start = A.indptr[col]
        ia, ib = start + i, start + k                      # rows sorted: index i >= k means r_a >= r_b
        return A.indices[ia], A.indices[ib], A.data[ia] * A.data[ib], col, ia, ib

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
        ia, ib = ia[keep], ib[keep]
        return ra[keep], rb[keep], A.data[ia] * A.data[ib], widx[pair[keep]], ia, ib

    @property
    def nnz(self) -> int:
        return self.T.nnz

    def subtract_from(self, M: np.ndarray, F: np.ndarray, scale: np.ndarray | None = None) -> None:
        """``M[lower] -= (Ar0 S Ar0')[lower]`` with ``S_g = F_g F_g'``, optionally scaled by
        ``scale_i scale_j``.  ``F`` is (l0,) for p0 = 1 or (l0, p0, p0); only M's lower
        triangle is written.
        """
        vals = self.T @ np.ravel(level_weights(F))
        if scale is not None:
            vals *= scale[self.rows] * scale[self.cols]
        M.ravel()[self.lin] -= vals

    def pattern_values(self, F: np.ndarray, lam: np.ndarray) -> np.ndarray:
        """Values on the pattern of ``diag(lam) (Arr - Ar0 S Ar0') diag(lam) + I`` (lower triangle)."""
        vals = self.arr_vals - self.T @ np.ravel(level_weights(F))
        vals *= lam[self.rows] * lam[self.cols]
        vals[self.is_diag] += 1.0
        return vals

    def assemble_scaled(self, M: np.ndarray, F: np.ndarray, lam: np.ndarray) -> None:
        """Write the lower triangle of ``diag(lam) (Arr - Ar0 S Ar0') diag(lam) + I`` into the
        Fortran-ordered ``M`` (its upper triangle is zero)."""
        vals = self.pattern_values(F, lam)
        M.fill(0.0)
        M.T.reshape(-1)[self.lin_fortran] = vals
