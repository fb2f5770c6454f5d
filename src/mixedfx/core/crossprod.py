"""The blocks of ``A = [Z F]' W [Z F]`` (``F = [X y]``) on fixed sparsity patterns.

Each row contributes ``w_i z_ij z_ik`` to a fixed set of entries, so the positions of
every contribution are computed once; the blocks for new weights (and a new response,
as PIRLS needs at every iteration) are then bincounts over the rows, ``O(n)``, with
sparsity patterns that never change.  Blocks (term 0 first, the later terms ``r``):

* ``A00``: (l0, p0, p0) per-level blocks of ``Z0' W Z0``;
* ``Ar0``: CSR ``Zr' W Z0`` and ``Arr``: CSR ``Zr' W Zr`` (both triangles);
* ``AF0``, ``AFr``: dense ``F' W Z0`` and ``F' W Zr``; ``AFF = F' W F``.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["CrossProducts"]


def _entries(codes: np.ndarray, Xk: np.ndarray, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indices (n, p) and values (n, p) of one term's rows in Z."""
    p = Xk.shape[1]
    return offset + codes[:, None] * p + np.arange(p)[None, :], np.asarray(Xk, float)


def _pattern(keys: np.ndarray, ncol: int, nrow: int):
    """Sorted unique (row-major) keys -> CSR indptr/indices, and the position of every key."""
    uniq, pos = np.unique(keys, return_inverse=True)
    rows, cols = uniq // ncol, uniq % ncol
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=nrow))])
    return indptr, cols.astype(np.int32), pos.ravel(), len(uniq)


class CrossProducts:
    """Contribution maps for the blocks of A, built once per design.

    Parameters
    ----------
    X : (n, p) fixed-effects matrix.
    blocks : list of ``(codes (n,), Xk (n, p_k), n_levels)``, term 0 first.
    """

    def __init__(self, X: np.ndarray, blocks):
        self.X = np.asarray(X, float)
        self.n, self.p = self.X.shape
        codes0, X0, l0 = blocks[0]
        self.codes0 = np.asarray(codes0)
        self.p0 = X0.shape[1]
        self.l0 = int(l0)
        self.q0 = self.l0 * self.p0
        self.col0, self.val0 = _entries(self.codes0, X0, 0)
        self._intercept0 = bool(np.all(self.val0 == 1.0))
        self._zt = {}           # CSR Z0' and Zr' for F' W Z (keys "Z0", "Zr"): built when first needed
        rest = blocks[1:]
        self.has_rest = bool(rest)
        if not rest:
            self.qr = 0
            return
        cols, vals, off = [], [], 0
        for codes, Xk, nl in rest:
            c, v = _entries(np.asarray(codes), Xk, off)
            cols.append(c)
            vals.append(v)
            off += int(nl) * Xk.shape[1]
        self.qr = off
        self.colr = np.hstack(cols)            # (n, R)
        self.valr = np.hstack(vals)
        R = self.colr.shape[1]
        # Zr' W Z0: contribution (row i, rest entry a, term-0 entry b)
        keys = (self.colr[:, :, None].astype(np.int64) * self.q0 + self.col0[:, None, :]).reshape(self.n, -1)
        self.r0_indptr, self.r0_indices, self.r0_pos, self.r0_nnz = _pattern(keys, self.q0, self.qr)
        self.r0_coef = (self.valr[:, :, None] * self.val0[:, None, :]).reshape(self.n, -1)
        self._r0_flat = self.r0_coef.ravel()
        # Zr' W Zr (both triangles)
        keys = (self.colr[:, :, None].astype(np.int64) * self.qr + self.colr[:, None, :]).reshape(self.n, -1)
        self.rr_indptr, self.rr_indices, self.rr_pos, self.rr_nnz = _pattern(keys, self.qr, self.qr)
        self.rr_coef = (self.valr[:, :, None] * self.valr[:, None, :]).reshape(self.n, -1)
        self._rr_flat = self.rr_coef.ravel()
        self._R = R
        # persistent CSR blocks: the pattern is fixed, only .data is refilled
        self.Ar0 = sp.csr_matrix((np.zeros(self.r0_nnz), self.r0_indices, self.r0_indptr), shape=(self.qr, self.q0))
        self.Arr = sp.csr_matrix((np.zeros(self.rr_nnz), self.rr_indices, self.rr_indptr), shape=(self.qr, self.qr))

    #: ``F' W Z`` by bincounts when ``n (p + 1) k`` (``k`` entries of Z per row) is at most this; a
    #: scipy CSR costs ~0.1 ms to build and use even for 180 rows (sleepstudy's workspace: 0.27 ->
    #: 0.19 ms), while the bincounts' passes over the rows cost more than one CSR product at scale
    BINCOUNT_MAX = 200_000

    def _zt_f(self, key: str, cols: np.ndarray, vals: np.ndarray, q: int, Fw: np.ndarray) -> np.ndarray:
        """``F' W Z`` (p + 1, q) for the Z whose rows have column indices ``cols`` and values ``vals``
        (n, k; the columns of one row are distinct, and each column of Z is reached from one
        position ``a`` of ``k`` only).

        Both routes add each column's products in row order from zero, so they give the same
        numbers to the last bit (the bins of the other positions add exact zeros): which one runs
        never changes a fit.
        """
        n, k = cols.shape
        p1 = Fw.shape[1]
        if n * p1 * k <= self.BINCOUNT_MAX:
            out = np.zeros((p1, q))
            for a in range(k):
                for c in range(p1):
                    out[c] += np.bincount(cols[:, a], vals[:, a] * Fw[:, c], minlength=q)
            return out
        Zt = self._zt.get(key)
        if Zt is None:
            Zt = self._zt[key] = sp.csr_matrix((vals.ravel(), (cols.ravel(), np.repeat(np.arange(n), k))),
                                               shape=(q, n))
        return np.asarray(Zt @ Fw).T.copy()

    def compute_zz(self, w: np.ndarray) -> dict:
        """Only the random-effects blocks (A00, Ar0, Arr) for weights ``w``: what the u-only
        PIRLS step needs (the fixed-effects block and the response are not formed)."""
        w = np.asarray(w, float)
        p0, l0 = self.p0, self.l0
        A00 = np.empty((l0, p0, p0))
        if p0 == 1 and self._intercept0:
            A00[:, 0, 0] = np.bincount(self.codes0, w, minlength=l0)
        else:
            for a in range(p0):
                wa = w * self.val0[:, a]
                for b in range(a, p0):
                    A00[:, a, b] = A00[:, b, a] = np.bincount(self.codes0, wa * self.val0[:, b], minlength=l0)
        out = {"A00": A00}
        if self.has_rest:
            k = self.r0_coef.shape[1]
            self.Ar0.data[:] = np.bincount(self.r0_pos, (w if k == 1 else np.repeat(w, k)) * self._r0_flat,
                                           minlength=self.r0_nnz)
            k = self.rr_coef.shape[1]
            self.Arr.data[:] = np.bincount(self.rr_pos, (w if k == 1 else np.repeat(w, k)) * self._rr_flat,
                                           minlength=self.rr_nnz)
            out["Ar0"], out["Arr"] = self.Ar0, self.Arr
        return out

    def compute(self, w: np.ndarray | None, y: np.ndarray) -> dict:
        """All blocks of A for prior/working weights ``w`` (None: 1) and response ``y``."""
        w = np.ones(self.n) if w is None else np.asarray(w, float)
        out = self.compute_zz(w)
        if not hasattr(self, "_F"):
            self._F = np.empty((self.n, self.p + 1))
            self._F[:, :self.p] = self.X
        F = self._F
        F[:, self.p] = y
        Fw = F * w[:, None]
        out["AFF"] = F.T @ Fw
        out["AF0"] = self._zt_f("Z0", self.col0, self.val0, self.q0, Fw)
        if self.has_rest:
            out["AFr"] = self._zt_f("Zr", self.colr, self.valr, self.qr, Fw)
        return out
