"""Sparse LDL' of the later-terms block when it stays sparse (nested or sparsely crossed factors).

The block ``M = Lambda_r' (Arr - Ar0 D0 D0' Ar0') Lambda_r + I`` has a sparsity pattern
fixed by the data.  When the first term nests the later ones (classes within schools)
``M`` is diagonal or nearly so; a dense ``q_r x q_r`` Cholesky would then waste
``O(q_r^3)`` work and ``O(q_r^2)`` memory.  Here ``M`` is assembled on its pattern and
refactorized numerically with qdldl (AMD ordering, symbolic analysis once), giving

    log|M| = sum(log d)    and    M^{-1} B   by two sparse triangular solves.

Everything downstream uses only ``log|M|`` and solves with ``M``.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import spsolve_triangular

__all__ = ["SparseBlockSolver"]


class SparseBlockSolver:
    """Refactorizable sparse LDL' on a fixed lower-triangle pattern.

    Parameters
    ----------
    rows, cols : (nnz,) lower-triangle pattern (rows >= cols), including the diagonal.
    n : matrix size.
    """

    def __init__(self, rows: np.ndarray, cols: np.ndarray, n: int):
        self.n = n
        # qdldl takes the upper triangle in CSC: entry (i, j) of the lower pattern is (j, i)
        probe = sp.csc_matrix((np.arange(1, len(rows) + 1, dtype=float), (cols, rows)), shape=(n, n))
        probe.sort_indices()
        self._order = probe.data.astype(np.int64) - 1       # pattern position of each CSC entry
        self._indices, self._indptr = probe.indices, probe.indptr
        self._solver = None
        self.L = self.d = self.perm = None

    def factor(self, values: np.ndarray) -> float | None:
        """Factor the matrix with these pattern values; returns log|M| or None if not PD."""
        import qdldl

        M = sp.csc_matrix((values[self._order], self._indices, self._indptr), shape=(self.n, self.n))
        try:
            if self._solver is None:
                self._solver = qdldl.Solver(M, upper=True)
            else:
                self._solver.update(M, upper=True)
        except (ValueError, RuntimeError):
            return None
        L, d, perm = self._solver.factors()
        if np.any(d <= 0):
            return None
        self.L = (sp.csr_matrix(L) + sp.identity(self.n, format="csr")).tocsr()
        self.d = np.asarray(d)
        self.perm = np.asarray(perm)
        return float(np.sum(np.log(self.d)))

    def _diag_inverse_of_diagonal(self) -> np.ndarray:
        out = np.empty(self.n)
        out[self.perm] = 1.0 / self.d       # M = P D P'  ->  (M^{-1})_{p_j p_j} = 1 / d_j
        return out

    def solve(self, B: np.ndarray) -> np.ndarray:
        """``M^{-1} B`` for a vector or a (n, k) matrix."""
        B = np.asarray(B, float)
        if B.ndim == 1:
            return self._solver.solve(B)
        return np.column_stack([self._solver.solve(B[:, j]) for j in range(B.shape[1])]) if B.shape[1] \
            else np.zeros((self.n, 0))

    def half_solve(self, B) -> np.ndarray:
        """``D^{-1/2} L^{-1} P' B`` (so that ``||.||^2`` of a column is ``b' M^{-1} b``)."""
        B = B.toarray() if sp.issparse(B) else np.asarray(B, float)
        Y = spsolve_triangular(self.L, B[self.perm], lower=True, unit_diagonal=True)
        return Y / np.sqrt(self.d)[:, None] if Y.ndim == 2 else Y / np.sqrt(self.d)

    def quad_blocks(self, B: sp.spmatrix, p: int, chunk: int = 2048) -> np.ndarray:
        """Diagonal ``p x p`` blocks of ``B' M^{-1} B`` for consecutive column groups of B.

        When the factor is diagonal (nested factors: ``M`` itself is diagonal) the work
        stays sparse; otherwise columns are solved in dense chunks.
        """
        B = sp.csc_matrix(B)
        ncol = B.shape[1]
        out = np.zeros((ncol // p, p, p))
        if self.L.nnz == self.n:          # only the unit diagonal: M^{-1} = P D^{-1} P'
            W = sp.diags(1.0 / np.sqrt(self.d)) @ B[self.perm]
            W = sp.csc_matrix(W)
            for a in range(p):
                for b in range(a, p):
                    v = np.asarray(W[:, a::p].multiply(W[:, b::p]).sum(axis=0)).ravel()
                    out[:, a, b] = out[:, b, a] = v
            return out
        for s in range(0, ncol, chunk - chunk % p):
            e = min(s + chunk - chunk % p, ncol)
            H = self.half_solve(B[:, s:e]).reshape(self.n, -1, p)
            out[s // p:e // p] = np.einsum("rgi,rgj->gij", H, H)
        return out

    def inverse_diagonal(self, chunk: int = 1024) -> np.ndarray:
        """Diagonal of ``M^{-1}`` (for scalar terms), by chunks of unit vectors."""
        if self.L.nnz == self.n:
            return self._diag_inverse_of_diagonal()
        out = np.empty(self.n)
        for s in range(0, self.n, chunk):
            e = min(s + chunk, self.n)
            E = np.zeros((self.n, e - s))
            E[np.arange(s, e), np.arange(e - s)] = 1.0
            H = self.half_solve(E)
            out[s:e] = np.einsum("ij,ij->j", H, H)
        return out
