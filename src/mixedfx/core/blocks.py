"""Batched kernels for stacks of small blocks (one ``p x p`` block per level of a term)."""
from __future__ import annotations

import numpy as np

__all__ = ["batched_cholesky", "batched_lower_inverse"]


def batched_cholesky(C: np.ndarray) -> np.ndarray | None:
    """Lower Cholesky factors of a stack of small SPD matrices (l, p, p), column by column.

    For the p <= 4 blocks of random-slope terms this is several times faster than
    ``numpy.linalg.cholesky`` (whose per-call overhead dominates on tiny blocks).
    Returns None if a block is not positive definite.
    """
    l, p, _ = C.shape
    if p > 6:    # LAPACK per block: the column loop below is O(p^2) numpy calls
        try:
            return np.linalg.cholesky(C)
        except np.linalg.LinAlgError:
            return None
    L = np.zeros_like(C)
    if p == 2:   # closed form for the common random-slope block
        c00, c10, c11 = C[:, 0, 0], C[:, 1, 0], C[:, 1, 1]
        if c00.min() <= 0:
            return None
        L[:, 0, 0] = l00 = np.sqrt(c00)
        L[:, 1, 0] = l10 = c10 / l00
        d = c11 - l10 * l10
        if d.min() <= 0:
            return None
        L[:, 1, 1] = np.sqrt(d)
        return L
    for j in range(p):
        d = C[:, j, j] - np.sum(L[:, j, :j] ** 2, axis=1) if j else C[:, j, j]
        if np.any(d <= 0):
            return None
        L[:, j, j] = ljj = np.sqrt(d)
        for i in range(j + 1, p):
            v = C[:, i, j] - np.sum(L[:, i, :j] * L[:, j, :j], axis=1) if j else C[:, i, j]
            L[:, i, j] = v / ljj
    return L


def batched_lower_inverse(L: np.ndarray) -> np.ndarray:
    """Inverses of a stack of small lower-triangular matrices (l, p, p) by forward substitution,
    one row at a time for all blocks: row ``i`` of ``L^-1`` is ``-(L[i, :i] X[:i, :i]) / L[i, i]``
    off the diagonal (measured 3x faster than ``numpy.linalg.inv`` on stacks of 10 x 10 blocks)."""
    l, p, _ = L.shape
    inv = np.zeros_like(L)
    if p == 2:
        inv[:, 0, 0] = i00 = 1.0 / L[:, 0, 0]
        inv[:, 1, 1] = i11 = 1.0 / L[:, 1, 1]
        inv[:, 1, 0] = -L[:, 1, 0] * i00 * i11
        return inv
    d = 1.0 / np.diagonal(L, axis1=1, axis2=2)
    for i in range(p):
        inv[:, i, i] = d[:, i]
        if i:
            inv[:, i, :i] = -np.einsum("gk,gkj->gj", L[:, i, :i], inv[:, :i, :i]) * d[:, i, None]
    return inv
