"""Compiled (numba) profiled criterion of a small LMM in one call (:mod:`mixedfx.core.fused`).

Imported only when numba is installed (``pip install "mixedfx[fast]"``).  :func:`small_criterion`
computes what :meth:`mixedfx.core.workspace.PLSWorkspace.update` computes, for the same blocks of
``A = [Z F]' W [Z F]`` (``F = [X y]``), with plain loops and no temporaries beyond the buffers it
is given:

* block 0, level by level: ``C_g = lambda_0' A00_g lambda_0 + I = L_g L_g'`` and
  ``D_g = lambda_0 L_g^{-T}``; ``L_F0 = A_F0 D_0`` and ``T = A_r0 D_0``;
* later terms: ``L_r0 = Lambda_r' T``, ``M = Lambda_r' A_rr Lambda_r - L_r0 L_r0' + I = L_rr L_rr'``,
  ``Y = Lambda_r' A_Fr' - L_r0 L_F0'`` and ``Z = L_rr^{-1} Y``;
* ``A_FF - L_F0 L_F0' - Z' Z = L_FF L_FF'``.

It returns ``(ok, log|L_Z|^2, log|R_X|^2, r^2)``: ``ok`` is False when a block is not positive
definite.  The dense later-terms loops cost ``O(q_r^2 q_0 + q_r^3)``, so the caller uses this only
for small models, where the Python-level work of the general path dominates.

``lam`` packs every term's ``p_k x p_k`` factor row-major, term ``k`` from ``lam_off[k]``; ``sizes``
and ``nlev`` give ``p_k`` and the levels (term 0 first).  Later-term columns are ordered term by term,
level-major within a term (``p_k`` consecutive columns per level), as in the workspace.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["small_criterion"]


@njit(cache=True, boundscheck=False)
def _lambda_rows_t(lam, lam_off, sizes, nlev, V, tmp):
    """``V <- Lambda_r' V`` in place: rows of V in the later terms' column order (``V`` may be a
    transposed view: ``M.T`` gives ``M <- M Lambda_r``)."""
    start = 0
    m = V.shape[1]
    for k in range(1, sizes.shape[0]):
        p, o = sizes[k], lam_off[k]
        for h in range(nlev[k]):
            r = start + h * p
            for i in range(p):
                for c in range(m):
                    s = 0.0
                    for b in range(p):
                        s += lam[o + b * p + i] * V[r + b, c]
                    tmp[i, c] = s
            for i in range(p):
                for c in range(m):
                    V[r + i, c] = tmp[i, c]
        start += p * nlev[k]


@njit(cache=True, boundscheck=False)
def _chol_lower(M):
    """Lower Cholesky factor of M in place (lower triangle read and written); returns the log
    determinant, or NaN when M is not positive definite."""
    n = M.shape[0]
    logdet = 0.0
    for j in range(n):
        s = M[j, j]
        for k in range(j):
            s -= M[j, k] * M[j, k]
        if not s > 0.0:
            return np.nan
        d = math.sqrt(s)
        M[j, j] = d
        logdet += math.log(s)
        for i in range(j + 1, n):
            t = M[i, j]
            for k in range(j):
                t -= M[i, k] * M[j, k]
            M[i, j] = t / d
    return logdet


@njit(cache=True, boundscheck=False)
def small_criterion(lam, lam_off, sizes, nlev, A00, AF0, AFF, Ar0, Arr, AFr, LF0, T, M, Y, MFF):
    """``(ok, logdet_Z, logdet_X, pwrss)`` for the packed factors ``lam`` (see the module notes).

    Buffers (overwritten): ``LF0`` (p+1, q0), ``T`` (q_r, q0), ``M`` (q_r, q_r), ``Y`` (q_r, p+1),
    ``MFF`` (p+1, p+1).
    """
    p0 = sizes[0]
    l0 = nlev[0]
    p1 = AFF.shape[0]
    qr = Arr.shape[0]
    pmax = 1
    for k in range(sizes.shape[0]):
        pmax = max(pmax, sizes[k])
    C = np.empty((p0, p0))
    Li = np.empty((p0, p0))
    D = np.empty((p0, p0))
    logdet_z = 0.0
    for g in range(l0):
        c0 = g * p0
        for i in range(p0):                   # C = lambda0' A00_g lambda0 + I (lower triangle)
            for j in range(i + 1):
                s = 0.0
                for a in range(p0):
                    la = lam[a * p0 + i]
                    if la != 0.0:
                        t = 0.0
                        for b in range(p0):
                            t += A00[g, a, b] * lam[b * p0 + j]
                        s += la * t
                C[i, j] = s + (1.0 if i == j else 0.0)
        ld = _chol_lower(C)
        if not ld == ld:
            return False, 0.0, 0.0, 0.0
        logdet_z += ld
        for j in range(p0):                   # Li = L^{-1} (lower), by forward substitution
            for i in range(p0):
                if i < j:
                    Li[i, j] = 0.0
                    continue
                s = 1.0 if i == j else 0.0
                for k in range(j, i):
                    s -= C[i, k] * Li[k, j]
                Li[i, j] = s / C[i, i]
        for a in range(p0):                   # D = lambda0 Li'
            for j in range(p0):
                s = 0.0
                for k in range(j + 1):
                    s += lam[a * p0 + k] * Li[j, k]
                D[a, j] = s
        for f in range(p1):                   # LF0 = AF0 D (this level's columns)
            for j in range(p0):
                s = 0.0
                for a in range(p0):
                    s += AF0[f, c0 + a] * D[a, j]
                LF0[f, c0 + j] = s
        for r in range(qr):                   # T = Ar0 D
            for j in range(p0):
                s = 0.0
                for a in range(p0):
                    s += Ar0[r, c0 + a] * D[a, j]
                T[r, c0 + j] = s
    q0 = l0 * p0
    for i in range(p1):                       # MFF = AFF - LF0 LF0' (lower)
        for j in range(i + 1):
            s = AFF[i, j]
            for c in range(q0):
                s -= LF0[i, c] * LF0[j, c]
            MFF[i, j] = s
    if qr > 0:
        tmp = np.empty((pmax, max(q0, qr, p1)))
        _lambda_rows_t(lam, lam_off, sizes, nlev, T, tmp)       # T = L_r0 = Lambda_r' Ar0 D0
        for i in range(qr):
            for j in range(qr):
                M[i, j] = Arr[i, j]
        _lambda_rows_t(lam, lam_off, sizes, nlev, M, tmp)
        _lambda_rows_t(lam, lam_off, sizes, nlev, M.T, tmp)      # M <- M Lambda_r, as (Lambda_r' M')'
        for i in range(qr):                   # M -= L_r0 L_r0', + I (lower)
            for j in range(i + 1):
                s = M[i, j]
                for c in range(q0):
                    s -= T[i, c] * T[j, c]
                M[i, j] = s + (1.0 if i == j else 0.0)
        ld = _chol_lower(M)
        if not ld == ld:
            return False, 0.0, 0.0, 0.0
        logdet_z += ld
        for i in range(qr):                   # Y = Lambda_r' AFr' - L_r0 LF0'
            for f in range(p1):
                Y[i, f] = AFr[f, i]
        _lambda_rows_t(lam, lam_off, sizes, nlev, Y, tmp)
        for i in range(qr):
            for f in range(p1):
                s = Y[i, f]
                for c in range(q0):
                    s -= T[i, c] * LF0[f, c]
                Y[i, f] = s
        for f in range(p1):                   # Z = L_rr^{-1} Y (forward), in place
            for i in range(qr):
                s = Y[i, f]
                for k in range(i):
                    s -= M[i, k] * Y[k, f]
                Y[i, f] = s / M[i, i]
        for i in range(p1):                   # MFF -= Z' Z
            for j in range(i + 1):
                s = 0.0
                for r in range(qr):
                    s += Y[r, i] * Y[r, j]
                MFF[i, j] -= s
    ld = _chol_lower(MFF)
    if not ld == ld:
        return False, 0.0, 0.0, 0.0
    last = MFF[p1 - 1, p1 - 1]
    pwrss = last * last
    logdet_x = ld - math.log(pwrss)
    return True, logdet_z, logdet_x, pwrss
