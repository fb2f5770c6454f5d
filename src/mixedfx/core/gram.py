"""The Schur update of a dense later-terms block: dense SYRK for busy levels, a sparse plan for the rest.

For every theta the dense path needs the lower triangle of

    G = Ar0 diag_blocks(S) Ar0' = sum_g  A_g S_g A_g'      (S_g = F_g F_g', one per level g of term 0)

where ``A_g`` holds the ``p0`` columns of ``Ar0`` for level ``g``.  A level with ``k`` nonzero rows
contributes about ``p0^2 k^2 / 2`` products.  Two ways to add them up:

* a sparse plan: one entry per product, kept as a CSR matrix ``T`` with a row for every entry of
  the Fortran-ordered ``q_r x q_r`` block and a column per entry of ``S``; then ``G = T vec(S)``,
  one pass over ``T`` accumulated straight into the block (no scatter, no temporary).  An entry
  streams 12 bytes, about 1.3 ns on one core;
* dense: the level's columns scaled by ``F_g``, then one SYRK over all such levels, about
  ``p0 q_r^2 / 2`` multiply-adds per level at ~25 ps each, however sparse the columns are.

Each level goes the cheaper way (:data:`PLAN_ENTRY_COST`), and the plan is capped
(:data:`MAX_PLAN_ENTRIES`: the levels with most products go dense beyond it), so memory is
bounded by the cap, the plan's row pointer (4 bytes per entry of the block: half the block) and
a ``q_r x``:data:`DENSE_CHUNK` buffer: nothing of size ``q_r x q_0``.  Some Gram products are
kept for reuse (:data:`GRAM_CACHE`).
With MovieLens-like data (users x items, heavy-tailed activity) the few very active levels go
dense and the many light ones sparse; crossed factors where every level meets most of the later
levels go all dense, nested ones all sparse.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.linalg.blas import dsyrk, dtrmm
from scipy.linalg.lapack import dlauum, dtrtri

from .schur import DenseGram, SchurPlan, pair_count, pattern_density

try:   # scipy's compiled kernels: y += T x without a temporary of the block's size, and the
    # regrouping of the plan into buffers reused block after block
    from scipy.sparse._sparsetools import csc_matvec as _csc_matvec, csr_matvec as _csr_matvec
    from scipy.sparse._sparsetools import csr_tocsc as _csr_tocsc
except ImportError:  # pragma: no cover - a future scipy without the private module
    _csr_matvec = _csc_matvec = _csr_tocsc = None

__all__ = ["HybridGram", "DenseGram", "choose_update", "level_pairs", "PLAN_ENTRY_COST", "MAX_PLAN_ENTRIES",
           "DENSE_CHUNK"]

#: one plan entry costs about as much as this many dense SYRK multiply-adds (1.3 ns vs 25-35 ps
#: measured on one core; the dense side also pays its chunk set-up)
PLAN_ENTRY_COST = 50
#: most entries in the sparse plan (12 bytes each: ~385 MB, plus a row pointer of 4 q_r^2 bytes)
MAX_PLAN_ENTRIES = 32_000_000
#: no plan when (after the cap) fewer than this share of the levels stay out of the dense SYRK: it
#: would save under 1% of the dense work for up to ~0.8 GB of memory (large crossed models)
PLAN_MIN_LEVEL_SHARE = 0.01
#: term-0 columns densified at a time for the SYRK (a q_r x DENSE_CHUNK buffer)
DENSE_CHUNK = 256
#: pairs generated at a time while building the plan (bounds the temporaries)
_BUILD_PAIRS = 1_000_000
#: plan entries regrouped at a time (the build holds the plan plus one such block)
_BUILD_BLOCK = 3_000_000
#: Gram products kept for reuse, most recent first: the optimizer's first steps and the
#: finite-difference steps of its polish revisit a term-0 factor with another lambda_r.  Only
#: when the product costs at least GRAM_CACHE_MIN_COST multiply-adds per entry of the block
#: (a copy costs ~40-80) and the copies fit in GRAM_CACHE_BYTES.
GRAM_CACHE = 2
GRAM_CACHE_MIN_COST = 400
GRAM_CACHE_BYTES = 512 * 2**20


def _index_type(size: int, largest: int):
    """int32 for an index array of at least ``size`` entries whose values fit (half the memory);
    int64 otherwise: numpy gathers with its native index up to ~3x faster on cached data."""
    return np.int32 if size >= 2**16 and largest < 2**31 else np.int64


def level_pairs(A: sp.csc_matrix, p0: int) -> np.ndarray:
    """Products ``A[r, g p0 + a] A[s, g p0 + b]`` with ``r >= s`` of each level (its plan entries).

    ``A`` is a CSC matrix with sorted row indices.  For ``p0 = 1`` a column with ``k`` entries has
    ``k (k + 1) / 2``; for ``p0 > 1`` every ordered column pair ``(a, b)`` of the level counts its
    row pairs with ``r >= s`` (found by binary search on the sorted rows).
    """
    q_r, q0 = A.shape
    nnz = np.diff(A.indptr).astype(np.int64)
    if p0 == 1:
        return nnz * (nnz + 1) // 2
    l0 = q0 // p0
    col = np.repeat(np.arange(q0), nnz)
    key = col.astype(np.int64) * q_r + A.indices          # increasing over the CSC entries
    level = col // p0
    out = np.zeros(l0, np.int64)
    for a in range(p0):
        for b in range(p0):
            sel = col % p0 == b                             # entries (s, g p0 + b)
            target = (level[sel] * p0 + a).astype(np.int64) * q_r + A.indices[sel]
            first = np.searchsorted(key, target)            # first entry of column g p0 + a with row >= s
            count = A.indptr[level[sel] * p0 + a + 1] - first
            out += np.bincount(level[sel], count, minlength=l0).astype(np.int64)
    return out


def uniform_scale(lam: np.ndarray) -> bool:
    """Whether the later terms' ``lambda`` (one entry per column) is one number (a single scalar
    term): then it scales the whole block and folds into a constant."""
    return bool(lam.size) and lam.min() == lam.max()


def choose_update(Ar0, p0: int, Arr, rest: str, scalar: bool, sparse_min_q: int, sparse_max_density: float):
    """How a :class:`~mixedfx.core.workspace.PLSWorkspace` updates its later-terms block.

    Returns ``(schur, sparse)``.  ``sparse``: the block is factored by sparse LDL' on its pattern
    (``rest="sparse"``, or ``"auto"`` with scalar later terms, at least ``sparse_min_q`` columns
    and a pattern filling at most ``sparse_max_density`` of the lower triangle); ``schur`` is then
    a :class:`SchurPlan`.  Otherwise the block is dense: vector-valued later terms that fill it
    take one SYRK on a dense copy of Ar0 (:class:`DenseGram`, when the plan would cost more than
    the product and the copy fits in 512 MB); with numba installed, scalar terms with a busy block
    a :class:`~mixedfx.core.scatter_gram.ScatterGram` (chosen first, before the pattern is
    examined, when the products are beyond the plan's cap); everything else a :class:`HybridGram`.
    ``Ar0`` is CSR, or CSC (from summed blocks) when ``ScatterGram`` is chosen.
    """
    from .scatter_gram import SCATTER_MIN_PAIRS, ScatterGram, use_scatter     # (it builds on HybridGram)
    if use_scatter(Ar0, p0, scalar, rest):      # beyond the plan's cap: before the pattern is even looked at
        return ScatterGram(Ar0, p0, Arr), False
    q_r, q0 = Ar0.shape
    dense_gram = pair_count(Ar0, p0) * 80 > q_r ** 2 * q0 and q_r * q0 * 8 <= 512 * 2**20
    sparse = rest == "sparse" or (
        rest == "auto" and scalar and q_r >= sparse_min_q and not dense_gram
        and pattern_density(Ar0, p0, Arr, sparse_max_density) <= sparse_max_density)
    if sparse:
        return SchurPlan(Ar0, p0, Arr), True
    if dense_gram and not scalar:
        return DenseGram(Ar0, p0, Arr), False
    if use_scatter(Ar0, p0, scalar, rest, warn=False, min_pairs=SCATTER_MIN_PAIRS):
        return ScatterGram(Ar0, p0, Arr), False
    return HybridGram(Ar0, p0, Arr), False


class HybridGram:
    """Lower triangle of ``Ar0 diag_blocks(F F') Ar0'`` (and the later-terms block built on it).

    Parameters
    ----------
    Ar0 : sparse (q_r, l0 * p0) cross-product ``Z_r' W Z_0``.
    p0 : columns per level of the first term.
    Arr : sparse (q_r, q_r) ``Z_r' W Z_r`` (both triangles) or None.
    max_entries, entry_cost : the plan's cap and the cost of an entry in dense multiply-adds.
    """

    def __init__(self, Ar0, p0: int, Arr=None, max_entries: int = MAX_PLAN_ENTRIES,
                 entry_cost: float = PLAN_ENTRY_COST):
        Ar0 = sp.csr_matrix(Ar0)
        Ar0.sum_duplicates()
        q_r, q0 = Ar0.shape
        self.q_r, self.q0, self.p0, self.l0 = q_r, q0, p0, q0 // p0
        # CSC copy of Ar0 (sorted rows) and where each CSC entry lives in Ar0's CSR data: a stable
        # sort of the CSR entries by column keeps them in row order within each column
        self._perm = np.argsort(Ar0.indices, kind="stable").astype(_index_type(Ar0.nnz, Ar0.nnz))
        rows = np.repeat(np.arange(q_r, dtype=Ar0.indices.dtype), np.diff(Ar0.indptr))[self._perm]
        indptr = np.concatenate([[0], np.cumsum(np.bincount(Ar0.indices, minlength=q0))]).astype(Ar0.indptr.dtype)
        self.A = sp.csc_matrix((Ar0.data[self._perm], rows, indptr), shape=Ar0.shape)
        # which levels go dense
        pairs = level_pairs(self.A, p0)
        dense = entry_cost * pairs > p0 * q_r * q_r / 2.0
        sparse_total = int(pairs[~dense].sum())
        if sparse_total > max_entries:               # cap: the biggest sparse levels go dense
            light = np.flatnonzero(~dense)
            order = light[np.argsort(-pairs[light], kind="stable")]
            excess = np.cumsum(pairs[order]) - (pairs[order].sum() - max_entries)
            dense[order[:int(np.searchsorted(excess, 0, side="left")) + 1]] = True
        if dense.any() and np.count_nonzero(~dense) < PLAN_MIN_LEVEL_SHARE * self.l0:
            dense[:] = True
        self.dense_levels = np.flatnonzero(dense)
        self.sparse_levels = np.flatnonzero(~dense)
        self.plan_entries = int(pairs[~dense].sum())
        self._build_dense()
        self._build_plan()
        cost = len(self.dense_levels) * p0 / 2.0 + entry_cost * self.plan_entries / max(q_r * q_r, 1)
        self._cache_size = GRAM_CACHE if (cost >= GRAM_CACHE_MIN_COST
                                          and GRAM_CACHE * q_r * q_r * 8 <= GRAM_CACHE_BYTES) else 0
        self._cache = []                  # [(F bytes, Fortran q_r x q_r lower Gram)], most recent last
        self.version = 0                  # counts refreshes (new values of Ar0, Arr)
        self._set_arr(Arr)

    def _set_arr(self, Arr) -> None:
        """Arr's lower triangle, at its Fortran positions in the block."""
        q_r = self.q_r
        self._arr_src = self._arr_lin = np.zeros(0, np.int64)
        self.arr_vals = np.zeros(0)
        self._arr_ij = None
        if Arr is not None:
            Arr = sp.csr_matrix(Arr)
            Arr.sum_duplicates()
            arow = np.repeat(np.arange(q_r), np.diff(Arr.indptr))
            self._arr_src = np.flatnonzero(arow >= Arr.indices)
            self._arr_lin = arow[self._arr_src].astype(np.int64) + Arr.indices[self._arr_src].astype(np.int64) * q_r
            self.arr_vals = Arr.data[self._arr_src].copy()

    # ------------------------------------------------------------------ set-up
    def _build_dense(self) -> None:
        """Per chunk of dense levels: the CSC entries and their places in a q_r x chunk buffer."""
        A, p0, q_r = self.A, self.p0, self.q_r
        per = max(1, DENSE_CHUNK // p0)
        self._chunks = []
        for s in range(0, len(self.dense_levels), per):
            levels = self.dense_levels[s:s + per]
            cols = (levels[:, None] * p0 + np.arange(p0)[None, :]).ravel()
            counts = np.diff(A.indptr)[cols]
            src = np.concatenate([np.arange(A.indptr[c], A.indptr[c + 1]) for c in cols]) if len(cols) \
                else np.zeros(0, np.int64)
            local = np.repeat(np.arange(len(cols)), counts)
            flat = A.indices[src].astype(np.int64) + local * q_r
            small = _index_type(A.nnz // 2**8, max(A.nnz, q_r * len(cols), self.l0))   # int32 from 2^24 entries
            self._chunks.append((levels, src.astype(small), flat.astype(small),
                                 np.repeat(levels, p0)[local].astype(small) if p0 == 1 else None))
        width = min(per, len(self.dense_levels)) * p0
        self._buf = np.zeros((q_r, width), order="F") if width else None
        self._buf2 = np.zeros((q_r, width), order="F") if width and p0 > 1 else None

    def _pair_chunks(self):
        """Plan entries of the sparse levels in chunks, in T's column order: (T column, Fortran
        position in the block, CSC index of each factor)."""
        A, p0 = self.A, self.p0
        nnz = np.diff(A.indptr).astype(np.int64)
        levels = self.sparse_levels
        if p0 == 1:     # levels with k entries share one pattern of k (k + 1) / 2 index pairs
            k = nnz[levels]
            done = 0
            for kk in np.unique(k):            # T's columns: the sparse levels ordered by k (self._wcols)
                group = levels[k == kk]
                if kk == 0:                    # levels without later-term entries: empty columns of T
                    done += len(group)
                    continue
                ti, tj = np.tril_indices(int(kk))              # i >= j: rows sorted, so r_i >= r_j
                step = max(1, _BUILD_PAIRS // len(ti))
                for s in range(0, len(group), step):
                    start = A.indptr[group[s:s + step]][:, None]
                    ia, ib = (start + ti).ravel(), (start + tj).ravel()
                    col = np.repeat(np.arange(done, done + len(start)), len(ti))
                    yield col, self._position(ia, ib), ia, ib
                    done += len(start)
            return
        per = level_pairs(A, p0)[levels] if len(levels) else np.zeros(0, np.int64)
        cum = np.cumsum(per)
        start = 0
        while start < len(levels):
            base = cum[start - 1] if start else 0
            end = max(start + 1, int(np.searchsorted(cum, base + _BUILD_PAIRS, side="right")))
            ia, ib, wcol = self._pairs_blocks(levels[start:end], nnz)
            yield wcol, self._position(ia, ib), ia, ib
            start = end

    def _position(self, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
        """Fortran position in the block of the product of CSC entries ia and ib (row of ia >= row of ib)."""
        pos = self.A.indices[ib].astype(np.int64)
        pos *= self.q_r
        pos += self.A.indices[ia]
        return pos

    def _pairs_blocks(self, levels: np.ndarray, nnz: np.ndarray):
        """Entry pairs of columns (g p0 + a, g p0 + b) with r_a >= r_b, in weight-column order."""
        p0, A = self.p0, self.A
        a = np.tile(np.repeat(np.arange(p0), p0), len(levels))
        b = np.tile(np.tile(np.arange(p0), p0), len(levels))
        g = np.repeat(levels, p0 * p0)
        ca, cb = g * p0 + a, g * p0 + b
        na, nb = nnz[ca], nnz[cb]
        counts = na * nb
        pair = np.repeat(np.arange(len(ca)), counts)
        within = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
        ia = A.indptr[ca][pair] + within // nb[pair]
        ib = A.indptr[cb][pair] + within % nb[pair]
        keep = A.indices[ia] >= A.indices[ib]
        ia, ib, pair = ia[keep], ib[keep], pair[keep]
        return ia, ib, g[pair] * p0 * p0 + a[pair] * p0 + b[pair]

    def _to_rows(self, values_of) -> sp.csr_matrix:
        """The plan entries (generated by T's column) regrouped by block position: T as CSR.

        The entries are counted per (row block, column) (from the levels' rows when p0 = 1, else by
        a first pass), then written into their row block's region in column order; each region is
        then regrouped by row (scipy's linear-time CSC -> CSR) in place.  Memory: the plan plus one
        region's copy (:data:`_BUILD_BLOCK` entries), not two copies of the plan.
        """
        q_r, n = self.q_r, self.plan_entries
        nrow = q_r * q_r
        ncol = len(self._wcols) if self._wcols is not None else self.l0 * self.p0 * self.p0
        index = np.int32 if max(nrow, n) < 2**31 else np.int64
        # row blocks at whole columns of the block, about equal lower-triangle areas
        nb = int(min(64, max(1, -(-n // _BUILD_BLOCK))))
        area = np.cumsum(q_r - np.arange(q_r, dtype=np.int64))
        cuts = np.searchsorted(area, area[-1] * np.arange(1, nb) / nb)
        cuts = np.unique(np.concatenate([[0], cuts, [q_r]]))
        bounds, nb = cuts * q_r, len(cuts) - 1
        block_of = (np.searchsorted(cuts, np.arange(q_r), side="right") - 1).astype(np.int16)   # by column
        if self.p0 == 1:    # entry j (of k) of a level is the smaller row of k - j pairs: no first pass
            A = self.A
            start, k = A.indptr[self._wcols], np.diff(A.indptr)[self._wcols]
            col = np.repeat(np.arange(ncol), k)
            j = np.arange(int(k.sum())) - np.repeat(np.cumsum(k) - k, k)
            blk = block_of[A.indices[np.repeat(start, k) + j]]
            counts = np.rint(np.bincount(blk * np.int64(ncol) + col, weights=np.repeat(k, k) - j,
                                         minlength=nb * ncol)).astype(np.int64)
        else:
            counts = np.zeros(nb * ncol, np.int64)
            for col, pos, ia, ib in self._pair_chunks():
                blk = block_of[self.A.indices[ib]]
                counts += np.bincount(blk * np.int64(ncol) + col, minlength=nb * ncol)
        counts = counts.reshape(nb, ncol)
        region = np.concatenate([[0], np.cumsum(counts.sum(axis=1))])
        rows = np.empty(n, index)
        vals = np.empty(n, float)
        fill = region[:-1].copy()
        for col, pos, ia, ib in self._pair_chunks():
            blk = block_of[self.A.indices[ib]]
            order = np.argsort(blk, kind="stable")          # (radix sort) keeps T's column order in a block
            cut = np.searchsorted(blk[order], np.arange(nb + 1))
            v = values_of(ia, ib)
            for b in np.flatnonzero(np.diff(cut)):
                sel = order[cut[b]:cut[b + 1]]
                rows[fill[b]:fill[b] + len(sel)] = pos[sel] - bounds[b]
                vals[fill[b]:fill[b] + len(sel)] = v[sel]
                fill[b] += len(sel)
        indptr = np.empty(nrow + 1, index)
        big = int(np.diff(region).max())
        tmp_i, tmp_x = np.empty(big, index), np.empty(big)      # one region's copy, reused
        for b in range(nb):
            s, e = int(region[b]), int(region[b + 1])
            width = int(bounds[b + 1] - bounds[b])
            colptr = np.concatenate([[0], np.cumsum(counts[b])]).astype(index)
            if _csr_tocsc is not None:       # the region read as the CSR of its transpose
                bp = indptr[bounds[b]:bounds[b + 1] + 1]
                _csr_tocsc(ncol, width, colptr, rows[s:e], vals[s:e], bp, tmp_i[:e - s], tmp_x[:e - s])
                bp += s
                rows[s:e], vals[s:e] = tmp_i[:e - s], tmp_x[:e - s]   # now T's column of each entry
            else:  # pragma: no cover
                R = sp.csc_matrix((vals[s:e], rows[s:e], colptr), shape=(width, ncol)).tocsr()
                rows[s:e], vals[s:e] = R.indices, R.data
                indptr[bounds[b]:bounds[b + 1]] = R.indptr[:-1] + s
        indptr[-1] = n
        return sp.csr_matrix((vals, rows, indptr), shape=(nrow, ncol))

    def _build_plan(self) -> None:
        data = self.A.data
        if self.p0 == 1:    # T's column c holds level _wcols[c]
            k = np.diff(self.A.indptr)[self.sparse_levels]
            self._wcols = self.sparse_levels[np.argsort(k, kind="stable")]
        else:               # T's column c is entry c of vec(S) (levels x p0 x p0)
            self._wcols = None
        self.T = self._to_rows(lambda ia, ib: data[ia] * data[ib]) if self.plan_entries else None
        self._ia = self._ib = None        # formed on the first refresh (PIRLS) only

    def refresh(self, Ar0, Arr=None) -> None:
        """New values of Ar0 (same CSR pattern) and Arr, e.g. after PIRLS reweighting."""
        self._cache.clear()
        self.version += 1
        self.A.data[:] = Ar0.data[self._perm]
        if self.T is not None:
            if self._ia is None:        # where each plan entry's two factors live in A.data
                small = np.int32 if self.A.nnz < 2**31 else np.int64
                self._ia = self._to_rows(lambda ia, ib: ia.astype(float)).data.astype(small)
                self._ib = self._to_rows(lambda ia, ib: ib.astype(float)).data.astype(small)
            np.multiply(self.A.data[self._ia], self.A.data[self._ib], out=self.T.data)
        if Arr is not None and len(self._arr_src):
            data = Arr.data if sp.isspmatrix_csr(Arr) or getattr(Arr, "format", "") == "csr" \
                else sp.csr_matrix(Arr).data
            self.arr_vals[:] = data[self._arr_src]

    # ------------------------------------------------------------- evaluation
    @property
    def nnz(self) -> int:
        return self.plan_entries

    def add_gram(self, M: np.ndarray, F: np.ndarray, alpha: float = 1.0, overwrite: bool = False) -> None:
        """``M[lower] += alpha G`` for the Fortran-ordered ``M`` (its upper triangle is not written);
        with ``overwrite``, ``M[lower] = alpha G`` (the first SYRK sets it: no zeroing pass; without
        a dense part M is zeroed first).

        ``F`` is (l0,) for p0 = 1 or (l0, p0, p0): ``S_g = F_g F_g'``.
        """
        self._add_dense(M, F, alpha, overwrite)
        if self.T is not None:
            if F.ndim == 1:
                f = F[self._wcols]
                w = alpha * f * f
            else:
                w = alpha * (F @ np.swapaxes(F, 1, 2)).ravel()
            flat = M.T.reshape(-1)                  # a view: M is Fortran-ordered
            if _csr_matvec is not None:
                _csr_matvec(self.q_r * self.q_r, len(w), self.T.indptr, self.T.indices, self.T.data, w, flat)
            else:  # pragma: no cover
                flat += self.T @ w

    def _add_dense(self, M: np.ndarray, F: np.ndarray, alpha: float, overwrite: bool, data=None) -> None:
        """The dense levels' part of :meth:`add_gram` (with ``overwrite`` it also initializes ``M``);
        ``data``: values to use in place of ``A.data`` (same pattern), e.g. rows already scaled."""
        q_r = self.q_r
        if overwrite and not self._chunks:
            M.fill(0.0)
        beta = 0.0 if overwrite else 1.0
        data = self.A.data if data is None else data
        for levels, src, pos, lev in self._chunks:
            m = len(levels) * self.p0
            buf = self._buf[:, :m]
            buf.fill(0.0)
            bflat = buf.T.reshape(-1)
            if self.p0 == 1:
                bflat[pos] = data[src] * F[lev]
                B = buf
            else:
                bflat[pos] = data[src]
                B = self._buf2[:, :m]
                np.matmul(np.swapaxes(F[levels], 1, 2), buf.T.reshape(len(levels), self.p0, q_r),
                          out=B.T.reshape(len(levels), self.p0, q_r))
            out = dsyrk(alpha, B, beta=beta, c=M, lower=1, overwrite_c=1)
            if out is not M:   # pragma: no cover - scipy always works in place on a Fortran M
                M[...] = out
            beta = 1.0

    def subtract_from(self, M: np.ndarray, F: np.ndarray, scale: np.ndarray | None = None) -> None:
        """``M[lower] -= (Ar0 S Ar0')[lower]``, optionally scaled by ``scale_i scale_j`` (any order of M)."""
        if M.flags.f_contiguous and scale is None:
            self.add_gram(M, F, -1.0)
            return
        G = np.zeros((self.q_r, self.q_r), order="F")
        self.add_gram(G, F, -1.0)
        if scale is not None:
            G *= scale[:, None]
            G *= scale[None, :]
        M += G                                      # G's upper triangle is zero

    def assemble_scaled(self, M: np.ndarray, F: np.ndarray, lam: np.ndarray) -> None:
        """Write the lower triangle of ``diag(lam) (Arr - Ar0 S Ar0') diag(lam) + I`` into the
        Fortran-ordered ``M`` (its upper triangle is left as zeros or stale values)."""
        uniform = uniform_scale(lam)
        c = float(lam[0]) ** 2 if uniform else 1.0
        G = self._cached_gram(F) if self._cache_size else None
        if G is None:
            self.add_gram(M, F, -c, overwrite=True)
        else:
            np.multiply(G, -c, out=M)
        self.add_arr(M, c)
        if not uniform:
            M *= lam[:, None]
            M *= lam[None, :]
        M.T.reshape(-1)[::self.q_r + 1] += 1.0

    def _cached_gram(self, F: np.ndarray) -> np.ndarray:
        """The lower triangle of ``Ar0 S Ar0'`` for ``F`` (upper triangle zero: never written), from
        the cache or computed into its least recently used buffer."""
        key = F.tobytes()
        for i, (k, G) in enumerate(self._cache):
            if k == key:
                self._cache.append(self._cache.pop(i))
                return G
        if len(self._cache) < self._cache_size:
            G = np.zeros((self.q_r, self.q_r), order="F")
        else:
            G = self._cache.pop(0)[1]
        self._cache.append((key, G))
        try:
            self.add_gram(G, F, 1.0, overwrite=True)
        except BaseException:
            self._cache.pop()
            raise
        return G

    def add_arr(self, M: np.ndarray, c: float = 1.0, lam: np.ndarray | None = None) -> None:
        """``M[lower] += c Arr[lower]`` (Fortran-ordered M); with ``lam``, entry ``(i, j)`` also times
        ``lam_i lam_j`` (``diag(lam) Arr diag(lam)``)."""
        if not len(self._arr_lin):
            return
        vals = c * self.arr_vals
        if lam is not None:
            if self._arr_ij is None:            # row and column of each stored entry (fixed pattern)
                self._arr_ij = (self._arr_lin % self.q_r, self._arr_lin // self.q_r)
            vals *= lam[self._arr_ij[0]] * lam[self._arr_ij[1]]
        M.T.reshape(-1)[self._arr_lin] += vals

    def level_quadratic(self, N: np.ndarray) -> np.ndarray:
        """``A_g' N A_g`` per level (l0, p0, p0) for a symmetric ``N`` given by its lower triangle
        (Fortran-ordered), summed over the sparse plan; dense levels are left at zero.

        ``N``'s diagonal is halved in place and restored (so each pair ``r > s`` counts twice).
        """
        p0, l0 = self.p0, self.l0
        if self.T is None:
            return np.zeros((l0, p0, p0))
        Y = np.zeros(self.T.shape[1])
        flat = N.T.reshape(-1)
        diag = flat[::self.q_r + 1]
        diag *= 0.5
        try:
            if _csc_matvec is not None:   # T' v: T' is T's arrays read as CSC
                _csc_matvec(len(Y), len(flat), self.T.indptr, self.T.indices, self.T.data, flat, Y)
            else:  # pragma: no cover
                Y += self.T.T @ flat
        finally:
            diag *= 2.0
        if self._wcols is not None:
            out = np.zeros(l0)
            out[self._wcols] = 2.0 * Y
            return out.reshape(l0, 1, 1)
        Y = Y.reshape(l0, p0, p0)
        return Y + np.swapaxes(Y, 1, 2)

    def cond_var_parts(self, Lrr: np.ndarray, Lr0, lam: np.ndarray, F: np.ndarray, rest_levels,
                       chunk: int = DENSE_CHUNK, overwrite: bool = False):
        """For conditional variances with scalar later terms: ``(Lr0' M^{-1} Lr0)_gg`` per level of
        term 0 (l0, p0, p0) and the later terms' diagonal of ``M^{-1}`` (one (l, 1, 1) per term).

        ``Lrr`` is the lower factor of ``M``, ``Lr0 = diag(lam) Ar0 D0`` (``F`` is ``D0``: (l0,) or
        (l0, p0, p0)).  ``L^{-1}`` (dtrtri) gives the dense levels' blocks as ``||L^{-1} Lr0_g||^2``,
        by column chunks (dtrmm); in place it then becomes ``M^{-1} = L^{-T} L^{-1}`` (dlauum), whose
        diagonal is the later terms' part and whose entries on the plan give the sparse levels'
        ``F_g' A_g' diag(lam) M^{-1} diag(lam) A_g F_g`` in one pass.  One q_r x q_r copy, no
        q_r x q_0 array.
        """
        qr, p0, l0 = self.q_r, self.p0, self.l0
        self._cache.clear()             # (the optimizer is done: room for L^{-1})
        Linv, info = dtrtri(Lrr, lower=1, overwrite_c=int(overwrite))     # overwrite: in Lrr's memory
        if info != 0:
            raise np.linalg.LinAlgError("the later-terms factor could not be inverted")
        G = np.zeros((l0, p0, p0))
        if len(self.dense_levels):
            Lr0 = Lr0.tocsc() if sp.issparse(Lr0) else Lr0
            per = max(1, chunk // p0)
            for s in range(0, len(self.dense_levels), per):
                lev = self.dense_levels[s:s + per]
                cols = (lev[:, None] * p0 + np.arange(p0)[None, :]).ravel()
                C = Lr0[:, cols]
                C = C.toarray(order="F") if sp.issparse(C) else np.asfortranarray(C)
                W = dtrmm(1.0, Linv, C, lower=1, overwrite_b=1).reshape(qr, len(lev), p0)
                G[lev] = np.einsum("rgi,rgj->gij", W, W)
        Minv, info = dlauum(Linv, lower=1, overwrite_c=1)
        if info != 0:
            raise np.linalg.LinAlgError("the later-terms factor could not be inverted")
        diag = Minv.diagonal().copy()
        rest, start = [], 0
        for l in rest_levels:
            rest.append(diag[start:start + l, None, None])
            start += l
        sl = self.sparse_levels
        if len(sl):
            uniform = lam.min() == lam.max()
            if not uniform:
                Minv *= lam[:, None]
                Minv *= lam[None, :]
            Q = self.level_quadratic(Minv)[sl]               # A_g' diag(lam) M^{-1} diag(lam) A_g
            if uniform:
                Q *= lam[0] ** 2
            if p0 == 1:
                G[sl] = Q * (F[sl] ** 2)[:, None, None]
            else:
                G[sl] = np.swapaxes(F[sl], 1, 2) @ Q @ F[sl]
        return G, rest
