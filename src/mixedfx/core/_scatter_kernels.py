"""Compiled (numba) kernels of :class:`mixedfx.core.scatter_gram.ScatterGram`.

Imported only when numba is installed (``pip install "mixedfx[fast]"``). Both kernels walk the lower
triangle of a ``q_r x q_r`` block in square tiles of ``tile`` rows and columns, so the entries one
level of term 0 touches inside a tile stay in cache: for each tile, each level's sorted row indices
are cut to the tile's row and column ranges (positions computed once per pattern by
:func:`tile_bounds`), and only the products of those two runs are visited. Per level with ``k``
entries that is ``k (k + 1) / 2`` products in all, against ``q_r^2 / 2`` multiply-adds for a dense
SYRK of the level's column.

The block is passed transposed (``Mt = M.T``, C-ordered, for a Fortran-ordered ``M``): the lower-
triangle entry ``M[i, j]`` (``i >= j``) is ``Mt[j, i]``, so a column of ``M`` is a contiguous row of
``Mt``.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["tile_bounds", "gram_lower", "level_quadratic"]


@njit(parallel=True, cache=True, boundscheck=False)
def tile_bounds(indptr, indices, cols, q_r, tile):
    """``bounds[t, c]``: first position in column ``cols[c]`` whose row index is ``>= t * tile``
    (``bounds[nt, c]`` is the column's end).  Read sequentially by the kernels: a tile's runs of
    every level come from four rows of ``bounds``, not from binary searches through ``indices``."""
    nt = (q_r + tile - 1) // tile
    bounds = np.empty((nt + 1, cols.shape[0]), np.int64)
    for c in prange(cols.shape[0]):
        g = cols[c]
        a, e = indptr[g], indptr[g + 1]
        for t in range(nt + 1):
            limit = t * tile
            while a < e and indices[a] < limit:
                a += 1
            bounds[t, c] = a
        bounds[nt, c] = e
    return bounds


@njit(cache=True, inline="always")
def _tile_of(t):
    """Tile ``t`` of the lower triangle in row order: ``(ti, tj)`` with ``ti >= tj``."""
    ti = 0
    acc = 0
    while acc + ti + 1 <= t:
        acc += ti + 1
        ti += 1
    return ti, t - acc


@njit(cache=True, inline="always")
def _runs(bounds, ti, tj, c):
    """Listed column ``c``'s entries in tile column ``tj`` (``js:je``) and tile row ``ti`` (``b0:ie``)."""
    return bounds[tj, c], bounds[tj + 1, c], bounds[ti, c], bounds[ti + 1, c]


@njit(parallel=True, cache=True, boundscheck=False)
def gram_lower(bounds, indices, data, w, Mt, tile):
    """``M[i, j] += sum_c w_c A[i, g_c] A[j, g_c]`` for ``i >= j`` (``Mt = M.T``) over the columns
    ``g_c`` of ``bounds`` (:func:`tile_bounds`; ``A`` is CSC with sorted row indices), ``w`` one
    weight per listed column.  Tiles are independent (parallel)."""
    q0 = bounds.shape[1]
    nt = bounds.shape[0] - 1
    for t in prange(nt * (nt + 1) // 2):
        ti, tj = _tile_of(t)
        for g in range(q0):
            js, je, b0, ie = _runs(bounds, ti, tj, g)
            if js == je or b0 == ie:
                continue
            wg = w[g]
            for a in range(js, je):
                v = wg * data[a]
                row = Mt[indices[a]]
                for b in range(a if ti == tj else b0, ie):
                    row[indices[b]] += v * data[b]


@njit(parallel=True, cache=True, boundscheck=False)
def level_quadratic(bounds, indices, data, Nt, partial):
    """``partial[r, c]``: tile-row pair ``r``'s share of ``A_g' N A_g`` for listed column ``g = g_c``
    of ``bounds`` and a symmetric ``N`` given by its lower triangle (``Nt = N.T``); summing
    ``partial`` over ``r`` gives the quadratic forms.

    Tile rows ``r`` and ``nt - 1 - r`` go to one task (equal work per task); ``partial`` has
    ``(nt + 1) // 2`` rows and one column per listed column.
    """
    q0 = bounds.shape[1]
    nt = bounds.shape[0] - 1
    for r in prange((nt + 1) // 2):
        sides = 1 if nt - 1 - r == r else 2
        for side in range(sides):
            ti = r + side * (nt - 1 - 2 * r)
            for tj in range(ti + 1):
                for g in range(q0):
                    js, je, b0, ie = _runs(bounds, ti, tj, g)
                    if js == je or b0 == ie:
                        continue
                    acc = 0.0
                    for a in range(js, je):
                        row = Nt[indices[a]]
                        if ti == tj:
                            inner = 0.5 * row[indices[a]] * data[a]      # the diagonal once
                            for b in range(a + 1, ie):
                                inner += row[indices[b]] * data[b]
                        else:
                            inner = 0.0
                            for b in range(b0, ie):
                                inner += row[indices[b]] * data[b]
                        acc += inner * data[a]
                    partial[r, g] += 2.0 * acc
