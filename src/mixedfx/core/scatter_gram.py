"""The Schur update of a large dense later-terms block by a compiled per-level scatter.

For a scalar first term (``p0 = 1``) and scalar later terms the dense path needs, for each theta,
the lower triangle of ``G = Ar0 diag(F^2) Ar0'``: each level ``g`` of term 0 (a user, say) adds
``F_g^2 a_g a_g'`` for its column ``a_g`` of ``Ar0`` (the later levels it meets: the items it
rated).  :class:`~mixedfx.core.gram.HybridGram` adds a level either through a sparse plan (one
stored entry per product: memory grows with the products, so it is capped) or as a dense column
in a SYRK (``q_r^2 / 2`` multiply-adds per level however few items it has).  When the products
number in the billions (10^5 users each rating ~1,000 of 10^4 items: 4.5e10 products, 9.5% dense
columns) the cap sends nearly every level to the SYRK, ~100x the necessary work.

:class:`ScatterGram` adds exactly the ``k (k + 1) / 2`` products of a level with ``k`` entries,
with a compiled kernel (numba, the optional ``fast`` extra) that walks the block in cache-sized
tiles (:mod:`mixedfx.core._scatter_kernels`): about 1-2 ns per product on one core, nothing
stored but ``Ar0`` itself (as CSC, the only copy when the workspace is built from summed blocks)
and the block.  Levels with so many entries that a dense SYRK of their column is cheaper than
their products (above ``q_r^2 / (2 SCATTER_ENTRY_COST)`` products, the heavy users of
MovieLens-like data) still go to the SYRK, as in ``HybridGram``.  It is chosen by
:func:`use_scatter` (numba importable, scalar terms, products beyond the plan's cap and filling
the block).
"""
from __future__ import annotations

import threading
import warnings

import numpy as np
import scipy.sparse as sp

from .gram import GRAM_CACHE, GRAM_CACHE_BYTES, MAX_PLAN_ENTRIES, HybridGram, uniform_scale

__all__ = ["ScatterGram", "ScaledColumns", "use_scatter", "scatter_available", "TILE", "SCATTER_MIN_PAIRS"]

#: below this many products per evaluation (~0.2 ms of work) the plan is as fast and the
#: kernel launch not worth it
SCATTER_MIN_PAIRS = 250_000
#: rows and columns of a tile of the block (2 x 256^2 doubles: the tile stays in L2)
TILE = 256
#: one kernel launch at a time: numba's default (workqueue) threading layer must not be entered
#: from two threads at once (fits run in threads by a user's own code)
_LAUNCH = threading.Lock()
#: one scattered product costs about as much as this many multiply-adds of the dense SYRK (~1 ns vs
#: 25-35 ps): a level with more products than ``q_r^2 / (2 SCATTER_ENTRY_COST)`` goes to the SYRK
SCATTER_ENTRY_COST = 35
#: as HybridGram's: keep Gram products for reuse when one costs at least this many multiply-adds per entry
SCATTER_CACHE_MIN_COST = 400


def scatter_available() -> bool:
    """Whether numba (the ``fast`` extra) can be imported."""
    try:
        from . import _scatter_kernels  # noqa: F401
    except ImportError:
        return False
    return True


def _column_counts(Ar0) -> np.ndarray:
    """Stored entries per column of ``Ar0`` (CSR or CSC) without converting it."""
    if Ar0.format == "csc":
        return np.diff(Ar0.indptr).astype(np.int64)
    return np.bincount(Ar0.indices, minlength=Ar0.shape[1]).astype(np.int64)


def use_scatter(Ar0, p0: int, scalar: bool, rest: str, warn: bool = True, min_pairs: float | None = None) -> bool:
    """Whether the later-terms block should be updated by :class:`ScatterGram`.

    Yes when numba is available, both sides are scalar (``p0 = 1`` and scalar later terms), the
    block is dense (``rest`` is not ``"sparse"``), the products ``sum_g k_g (k_g + 1) / 2`` exceed
    ``min_pairs`` (default the sparse plan's cap :data:`~mixedfx.core.gram.MAX_PLAN_ENTRIES`;
    :func:`~mixedfx.core.gram.choose_update` asks again with :data:`SCATTER_MIN_PAIRS` once the
    sparse path is ruled out) and at least a quarter of the block's lower triangle (a block that
    busy is dense).  Without numba a model beyond 1e9 products gets a RuntimeWarning saying how to
    install it (``warn=False``: no warning).
    """
    if p0 != 1 or not scalar or rest == "sparse" or Ar0 is None:
        return False
    q_r = Ar0.shape[0]
    k = _column_counts(Ar0)
    pairs = float(np.sum(k * (k + 1) / 2.0))
    limit = MAX_PLAN_ENTRIES if min_pairs is None else min_pairs
    if not (pairs > limit and pairs >= 0.25 * q_r * (q_r + 1) / 2.0):
        return False
    if scatter_available():
        return True
    if warn and pairs > 1e9:     # minutes per evaluation on the dense path: say how to avoid them
        warnings.warn(f"the later-terms block of this model ({q_r} columns) gets {pairs:.2g} products per evaluation; "
                      "without numba they go through a dense update about 100x slower: pip install "
                      '"mixedfx[fast]" (numba) for the compiled update', RuntimeWarning, stacklevel=2)
    return False


_CONTROLLER = []


def _threads() -> int:
    """Threads for the kernels: the BLAS libraries' current limit (the fit's thread policy), at
    most numba's pool (the libraries are looked up once; their limits are read at each call)."""
    import numba
    try:
        if not _CONTROLLER:
            from threadpoolctl import ThreadpoolController
            _CONTROLLER.append(ThreadpoolController().select(user_api="blas"))
        limits = [lib.num_threads for lib in _CONTROLLER[0].lib_controllers]
    except Exception:  # pragma: no cover - threadpoolctl is a dependency; be safe anyway
        limits = []
    n = min(limits) if limits else 1
    return max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))


class ScatterGram(HybridGram):
    """Lower triangle of ``Ar0 diag(F^2) Ar0'`` by a tiled compiled scatter (``p0 = 1``).

    Parameters
    ----------
    Ar0 : sparse (q_r, l0) cross-product ``Z_r' W Z_0``.  A CSC matrix with sorted indices is
        used as it is (shared, not copied: a workspace from summed blocks holds Ar0 once); a CSR
        matrix is copied to CSC, with the permutation :meth:`refresh` needs for PIRLS.
    Arr : sparse (q_r, q_r) ``Z_r' W Z_r`` (both triangles) or None.

    The block algebra (``assemble_scaled``, ``subtract_from``, the Gram cache,
    ``cond_var_parts``) is :class:`HybridGram`'s with every level on the "sparse" side and the
    plan replaced by the kernels of :mod:`mixedfx.core._scatter_kernels`.
    """

    def __init__(self, Ar0, p0: int = 1, Arr=None):
        if p0 != 1:
            raise ValueError("ScatterGram needs a scalar first term (p0 = 1)")
        from . import _scatter_kernels
        self._kernels = _scatter_kernels
        q_r, q0 = Ar0.shape
        self.q_r, self.q0, self.p0, self.l0 = q_r, q0, 1, q0
        if Ar0.format == "csc" and Ar0.has_canonical_format:
            self.A, self._perm = Ar0, None
        else:
            Ar0 = sp.csr_matrix(Ar0, copy=True)       # sum_duplicates works in place: not on the caller's
            Ar0.sum_duplicates()
            probe = sp.csr_matrix((np.arange(1, Ar0.nnz + 1, dtype=float), Ar0.indices, Ar0.indptr),
                                  shape=Ar0.shape).tocsc()
            probe.sort_indices()
            self._perm = (probe.data - 1).astype(np.int64)
            self.A = sp.csc_matrix((Ar0.data[self._perm], probe.indices, probe.indptr), shape=Ar0.shape)
            del probe
        k = np.diff(self.A.indptr).astype(np.int64)
        pairs = k * (k + 1) // 2
        dense = SCATTER_ENTRY_COST * pairs > q_r * q_r / 2.0        # the busiest levels: cheaper in the SYRK
        self.dense_levels = np.flatnonzero(dense)
        self.sparse_levels = np.flatnonzero(~dense)
        self.plan_entries = int(pairs[~dense].sum())
        self.T, self._wcols = None, None
        self._build_dense()
        cost = len(self.dense_levels) / 2.0 + SCATTER_ENTRY_COST * self.plan_entries / max(q_r * q_r, 1)
        self._cache_size = GRAM_CACHE if (cost >= SCATTER_CACHE_MIN_COST
                                          and GRAM_CACHE * q_r * q_r * 8 <= GRAM_CACHE_BYTES) else 0
        self._cache = []
        self.version = 0
        self._set_arr(Arr)
        self._bounds = None             # tile positions per level (formed on first use)

    def _tile_bounds(self) -> np.ndarray:
        if self._bounds is None:
            cols = self.sparse_levels.astype(np.int64)
            self._bounds = self._kernels.tile_bounds(self.A.indptr, self.A.indices, cols, self.q_r, TILE)
        return self._bounds

    def refresh(self, Ar0, Arr=None) -> None:
        """New values of Ar0 (same pattern) and Arr, e.g. after PIRLS reweighting."""
        self._cache.clear()
        self.version += 1
        if self._perm is not None:
            self.A.data[:] = sp.csr_matrix(Ar0).data[self._perm]
        elif Ar0 is not self.A:
            self.A.data[:] = sp.csc_matrix(Ar0).data
        if Arr is not None and len(self._arr_src):
            self.arr_vals[:] = sp.csr_matrix(Arr).data[self._arr_src]

    def add_gram(self, M: np.ndarray, F: np.ndarray, alpha: float = 1.0, overwrite: bool = False,
                 data: np.ndarray | None = None) -> None:
        """``M[lower] += alpha G`` (``= alpha G`` with ``overwrite``) for a Fortran-ordered ``M``;
        ``F`` is (l0,): level g adds ``alpha F_g^2 a_g a_g'``.  ``data``: values to use in place of
        ``Ar0``'s (same pattern; :meth:`assemble_scaled` passes rows scaled by ``lambda``)."""
        import numba
        if not M.flags.f_contiguous:
            raise ValueError("ScatterGram.add_gram needs a Fortran-ordered block")
        F = np.asarray(F, float).reshape(-1)
        A = self.A
        data = A.data if data is None else data
        self._add_dense(M, F, alpha, overwrite, data)   # the busiest levels (and M's initialization)
        if not len(self.sparse_levels):
            return
        f = F[self.sparse_levels]
        w = alpha * f * f
        with _LAUNCH:
            numba.set_num_threads(_threads())
            self._kernels.gram_lower(self._tile_bounds(), A.indices, data, w, M.T, TILE)

    def assemble_scaled(self, M: np.ndarray, F: np.ndarray, lam: np.ndarray) -> None:
        """:meth:`HybridGram.assemble_scaled` (``diag(lam) (Arr - Ar0 S Ar0') diag(lam) + I``, lower
        triangle), with a non-uniform ``lam`` (several later terms) folded into the values: the
        kernels read ``lam_i A_ig`` and ``Arr``'s entries take ``lam_i lam_j``, instead of two passes
        over the dense block afterwards (InstEval: 1.4 ms of an 18 ms evaluation).  Used when the
        scaled copy of ``Ar0``'s values is no larger than the block and no Gram is cached."""
        if uniform_scale(lam) or self._cache_size or self.A.nnz > self.q_r * self.q_r:
            return super().assemble_scaled(M, F, lam)
        self.add_gram(M, F, -1.0, overwrite=True, data=self.A.data * lam[self.A.indices])
        self.add_arr(M, 1.0, lam)
        M.T.reshape(-1)[::self.q_r + 1] += 1.0

    def level_quadratic(self, N: np.ndarray) -> np.ndarray:
        """``a_g' N a_g`` per level (l0, 1, 1) for a symmetric ``N`` given by its lower triangle
        (zero for the levels that go to the SYRK: :meth:`cond_var_parts` handles those)."""
        import numba
        N = np.asfortranarray(N)
        A = self.A
        out = np.zeros(self.l0)
        if len(self.sparse_levels):
            nt = -(-self.q_r // TILE)
            partial = np.zeros(((nt + 1) // 2, len(self.sparse_levels)))
            with _LAUNCH:
                numba.set_num_threads(_threads())
                self._kernels.level_quadratic(self._tile_bounds(), A.indices, A.data, N.T, partial)
            out[self.sparse_levels] = partial.sum(axis=0)
        return out.reshape(self.l0, 1, 1)


class ScaledColumns:
    """``diag(left) A diag(right)`` for a CSC ``A``, applied on the fly (no copy of ``A``'s values).

    The workspace's ``Lr0 = Lambda_r' Ar0 D0`` with scalar terms, when ``Ar0`` is large: ``@`` with
    a vector or a (q0, m) array, ``.T @``, column slices ``[:, s:e]`` and :meth:`tosparse` (as a
    CSC matrix) are what the workspace, the gradient and the leverages use.
    """

    def __init__(self, A, left: np.ndarray, right: np.ndarray, transposed: bool = False):
        self.A, self.left, self.right, self._t = A, left, right, transposed

    @property
    def shape(self) -> tuple:
        return self.A.shape[::-1] if self._t else self.A.shape

    @property
    def nnz(self) -> int:
        return self.A.nnz

    @property
    def T(self) -> "ScaledColumns":
        return ScaledColumns(self.A, self.left, self.right, not self._t)

    def __matmul__(self, x):
        x = np.asarray(x, float)
        col = (slice(None),) + (None,) * (x.ndim - 1)
        if self._t:      # right * (A' (left * x))
            return self.right[col] * np.asarray(self.A.T @ (self.left[col] * x))
        return self.left[col] * np.asarray(self.A @ (self.right[col] * x))

    def tosparse(self) -> sp.csc_matrix:
        A = self.A
        out = sp.csc_matrix((A.data * self.left[A.indices] * np.repeat(self.right, np.diff(A.indptr)),
                             A.indices, A.indptr), shape=A.shape)
        return out.T.tocsc() if self._t else out

    def tocsc(self) -> sp.csc_matrix:
        return self.tosparse()

    def tocsr(self) -> sp.csr_matrix:
        return self.tosparse().tocsr()

    def toarray(self) -> np.ndarray:
        return self.tosparse().toarray()

    def __getitem__(self, key):
        if self._t or not (isinstance(key, tuple) and len(key) == 2 and key[0] == slice(None)):
            return self.tosparse()[key]
        cols = key[1]
        A = self.A[:, cols]
        return ScaledColumns(A, self.left, self.right[cols]).tosparse()
