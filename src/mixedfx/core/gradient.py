"""Analytic gradient of the profiled REML / ML criterion with respect to theta.

With everything pre-multiplied by ``W^{1/2}`` and in units where the residual variance is
one, write ``V = I + Z Lambda Lambda' Z'``, ``Omega = Lambda' Z'Z Lambda + I = L_Z L_Z'`` and
``e = y - X beta_hat``.  The pieces of the profiled criteria are

* ``log|L_Z|^2 = log|V|``,   ``d/dtheta_i = 2 tr(dLambda_i  P)``  with ``P = Omega^{-1} Lambda' Z'Z``;
* ``r^2 = e' V^{-1} e``,     ``d r^2 / dtheta_i = -2 s' dLambda_i u`` with ``s = Z' V^{-1} e``
  (the weighted residual's ``Z'r``) and ``u = Lambda' s`` the spherical modes
  (by the envelope theorem beta and u stay at their optimum);
* ``log|R_X|^2 = log|X' V^{-1} X|``,  ``d/dtheta_i = -2 tr(dLambda_i C K E)`` with
  ``C = Omega^{-1} Lambda' Z'X`` (q x p), ``E = X' V^{-1} Z = X'Z - C' Lambda' Z'Z`` (p x q) and
  ``K = (R_X R_X')^{-1}``.

so that, with ``nu = n`` (ML) or ``n - p`` (REML),

    d ML / dtheta_i   = 2 tr(dLambda_i P) - 2 (nu / r^2) s' dLambda_i u
    d REML / dtheta_i = the same  - 2 tr(dLambda_i C K E).

``Lambda`` is block diagonal with ``lambda_k`` repeated over the levels of term ``k``, and
``dLambda_i`` for the theta entry at ``(a, b)`` of ``lambda_k`` is ``I_{l_k} (x) e_a e_b'``.
Every trace therefore needs only the sum over levels ``g`` of the diagonal ``p_k x p_k``
blocks of ``P``, ``C K E`` and ``u s'``: ``tr(dLambda_i Q) = sum_g Q_gg[b, a]``.  The
diagonal blocks of ``P = Omega^{-1} Lambda' A_ZZ`` need ``Omega^{-1}`` on the pattern of
``A_ZZ`` only, which the blocked factor gives as (Murray 2016; MixedModels.jl's gradient
follows the same algebra)::

    (Omega^{-1})_rr = M^{-1} = L_rr^{-T} L_rr^{-1}
    (Omega^{-1})_r0 = -M^{-1} L_r0 L_00^{-1}
    (Omega^{-1})_00,gg = L_00,g^{-T} (I + (L_r0' M^{-1} L_r0)_gg) L_00,g^{-1}

This costs ``O(q_r^3 + q_r nnz(L_r0) + q_r q_0 p_0)`` per gradient: a few evaluations of the
criterion for the crossed vector-valued designs it is meant for.  On the sparse later-terms
path (qdldl, nested scalar terms) ``M^{-1}`` comes densely from the ``L D L'`` factor, for up to
:data:`SPARSE_MAX_QR` columns; beyond that (or beyond :data:`MAX_DENSE_ENTRIES`)
:func:`gradient_supported` is False and optimizers use derivative-free methods.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.linalg.lapack import dpotri, dtrtrs

from .blocks import batched_lower_inverse
from .schur import DenseGram

__all__ = ["profiled_gradient", "gradient_supported", "gradient_cost", "evaluation_cost"]

#: largest dense ``q_r x q_0`` block (entries) the gradient forms
MAX_DENSE_ENTRIES = 20_000_000


#: largest sparse-path later-terms block whose inverse the gradient forms densely
SPARSE_MAX_QR = 5000


def gradient_supported(ws) -> bool:
    """Whether :func:`profiled_gradient` can run on this :class:`PLSWorkspace`: always but for
    blocks too large to hold ``q_r x q_0`` (or, on the sparse path, ``q_r x q_r``) densely."""
    if not ws.has_rest:
        return True
    if ws.rest_sparse and ws.qr > SPARSE_MAX_QR:
        return False
    return ws.qr * ws.q0 <= MAX_DENSE_ENTRIES


#: fixed Python-level cost of one criterion evaluation and of one gradient, in flop equivalents
#: (about 0.3 ms and 0.6 ms at 10 Gflop/s)
EVAL_OVERHEAD_FLOPS = 3e6
GRADIENT_OVERHEAD_FLOPS = 6e6


def gradient_cost(ws) -> float:
    """Flop equivalents of one gradient (dense algebra, plus memory-bound passes weighted x2)."""
    if not ws.has_rest:
        return GRADIENT_OVERHEAD_FLOPS + 20.0 * ws.q0 * ws.sizes[0] ** 2
    qr, q0, p0 = ws.qr, ws.q0, ws.sizes[0]
    dense = ws.Ar0.nnz > 0.25 * qr * q0
    product = 2.0 * qr * qr * q0 if dense else 2.0 * qr * ws.Ar0.nnz
    inverse = 2.0 * qr ** 3 / 3 if not ws.rest_sparse else 2.0 * qr ** 3    # dense M^{-1} from the LDL'
    flops = inverse + product + 30.0 * qr * q0 * p0 + 2.0 * qr * qr * max(ws.sizes)
    return GRADIENT_OVERHEAD_FLOPS + 2.0 * flops


def evaluation_cost(ws) -> float:
    """Flop equivalents of one criterion evaluation (the Schur update and the Cholesky factor)."""
    if not ws.has_rest:
        return EVAL_OVERHEAD_FLOPS + 10.0 * ws.q0 * ws.sizes[0] ** 2
    qr, q0 = ws.qr, ws.q0
    update = min(float(qr) * qr * q0, 50.0 * ws.Ar0.nnz * ws.sizes[0] ** 2 * 4)
    return EVAL_OVERHEAD_FLOPS + update + qr ** 3 / 3


def _blocks3(ws, v: np.ndarray, k: int, start: int) -> np.ndarray:
    """Rows of ``v`` (q, m) for term ``k`` as (n_levels, p_k, m)."""
    p, l = ws.sizes[k], ws.nlevels[k]
    return v[start:start + p * l].reshape(l, p, -1)


def _lambda_times(ws, v: np.ndarray) -> np.ndarray:
    """``Lambda v`` for v (q, m)."""
    out, start = np.empty_like(v), 0
    for k, lam in enumerate(ws._lams):
        p, l = ws.sizes[k], ws.nlevels[k]
        out[start:start + p * l] = np.einsum("ab,gbm->gam", lam, _blocks3(ws, v, k, start)).reshape(p * l, -1)
        start += p * l
    return out


def _azz_times(ws, v: np.ndarray) -> np.ndarray:
    """``A_ZZ v = Z'W Z v`` for v (q, m), from the blocks of A."""
    q0 = ws.q0
    v0 = v[:q0].reshape(ws.nlevels[0], ws.sizes[0], -1)
    out0 = (ws.A00 @ v0).reshape(q0, -1)
    if not ws.has_rest:
        return out0
    vr = v[q0:]
    out0 = out0 + np.asarray(ws.Ar0.T @ vr)
    outr = np.asarray(ws.Ar0 @ v[:q0]) + np.asarray(ws._Arr_sparse @ vr)
    return np.vstack([out0, outr])


def _l00(ws) -> np.ndarray:
    """The term-0 diagonal blocks of ``L_Z`` as (l0, p0, p0)."""
    return ws.L00[:, None, None] if ws.sizes[0] == 1 else ws.L00


def _omega_inv_zx(ws, l00_inv: np.ndarray) -> np.ndarray:
    """``C = Omega^{-1} Lambda' Z'X`` (q, p): ``L_Z^{-T}`` applied to ``L_Z^{-1} Lambda' Z'X``, whose
    rows the factor holds (``LF0``, ``LFr``); on the sparse path the later-terms part of ``C`` is
    the cached ``M^{-1} Y``."""
    p = ws.p
    q0, p0, l0 = ws.q0, ws.sizes[0], ws.nlevels[0]
    c0 = ws.LF0[:p].T
    if ws.has_rest:
        if ws.rest_sparse:
            ur = ws._MinvYt[:, :p]
        else:
            ur = dtrtrs(ws.Lrr, np.asfortranarray(ws.LFr[:p].T), lower=1, trans=1)[0]
        c0 = c0 - np.asarray(ws.Lr0.T @ ur)
    else:
        ur = np.zeros((0, p))
    u0 = np.einsum("gba,gbm->gam", l00_inv, c0.reshape(l0, p0, -1)).reshape(q0, -1)
    return np.vstack([u0, ur])


def _sum_blocks(a3: np.ndarray, b3: np.ndarray) -> np.ndarray:
    """``sum_h a3[h] b3[h]'`` for stacks (l, p, m): one GEMM."""
    l, p, m = a3.shape
    return a3.transpose(1, 0, 2).reshape(p, l * m) @ b3.transpose(1, 0, 2).reshape(p, l * m).T


def _trace_blocks(ws, l00_inv: np.ndarray) -> list[np.ndarray]:
    """Per term, ``sum_g P_gg`` with ``P = Omega^{-1} Lambda' A_ZZ`` (each p_k x p_k)."""
    p0, l0, q0 = ws.sizes[0], ws.nlevels[0], ws.q0
    lam0 = ws._lams[0]
    la00 = lam0.T @ ws.A00                                  # lambda0' A00_g, (l0, p0, p0)
    l00_invT = l00_inv.transpose(0, 2, 1)
    if not ws.has_rest:
        o00 = l00_invT @ l00_inv                             # L00_g^{-T} L00_g^{-1}
        return [_sum_blocks(o00, la00.transpose(0, 2, 1))]
    qr = ws.qr
    if ws.rest_sparse:                                      # M = P L D L' P': M^{-1} = H' H
        H = ws._sparse.half_solve(np.eye(qr))
        minv = H.T @ H
    else:
        minv, info = dpotri(ws.Lrr, lower=1)
        if info != 0:
            raise np.linalg.LinAlgError("the later-terms factor could not be inverted")
        minv = np.tril(minv) + np.tril(minv, -1).T           # M^{-1} = (Omega^{-1})_rr
    Lr0 = ws.Lr0
    if hasattr(Lr0, "tosparse"):        # applied on the fly for a large Ar0 (ScaledColumns)
        Lr0 = Lr0.tosparse()
    if not sp.issparse(Lr0) or Lr0.nnz > 0.25 * qr * q0:
        Lr0d = Lr0.toarray() if sp.issparse(Lr0) else Lr0
        B = minv @ Lr0d                                     # M^{-1} L_r0, (q_r, q_0)
    else:
        Lr0d = Lr0.toarray()
        B = np.asarray((Lr0.T @ minv).T)
    # per term-0 level g: columns (q_r, p0) of L_r0 and B as (l0, q_r, p0)
    Bg = B.reshape(qr, l0, p0).transpose(1, 0, 2)
    G = Lr0d.reshape(qr, l0, p0).transpose(1, 2, 0) @ Bg   # (L_r0' M^{-1} L_r0)_gg
    G[:, np.arange(p0), np.arange(p0)] += 1.0
    o00 = l00_invT @ G @ l00_inv                            # (Omega^{-1})_00,gg
    o_r0 = -(Bg @ l00_inv)                                  # (Omega^{-1})_r0 by level: (l0, q_r, p0)
    Ar0 = ws.schur.A if isinstance(ws.schur, DenseGram) else ws.Ar0.toarray()
    la_r0 = ws._lambda_r_times(Ar0).reshape(qr, l0, p0).transpose(1, 0, 2)   # Lambda_r' A_r0
    out = [_sum_blocks(o00, la00.transpose(0, 2, 1))
           + o_r0.reshape(-1, p0).T @ la_r0.reshape(-1, p0)]
    al = (Ar0.reshape(qr, l0, p0).transpose(1, 0, 2) @ lam0).transpose(1, 0, 2).reshape(qr, q0)   # A_r0 Lambda_0
    o_r0 = o_r0.transpose(1, 0, 2).reshape(qr, q0)
    Arr = ws.schur.Arr if isinstance(ws.schur, DenseGram) else ws._Arr_sparse.toarray()
    la_rr = ws._lambda_r_times(Arr)                          # Lambda_r' A_rr
    start = 0
    for p, l in zip(ws.sizes[1:], ws.nlevels[1:]):
        sl = slice(start, start + p * l)
        t = _sum_blocks(o_r0[sl].reshape(l, p, q0), al[sl].reshape(l, p, q0))
        t += _sum_blocks(minv[sl].reshape(l, p, qr), la_rr[:, sl].T.reshape(l, p, qr))
        out.append(t)
        start += p * l
    return out


def profiled_gradient(ws) -> np.ndarray:
    """Gradient of the profiled criterion (REML or ML as the workspace) at its current theta.

    Parameters
    ----------
    ws : a :class:`~mixedfx.core.workspace.PLSWorkspace` just updated (successfully) at theta.

    Returns
    -------
    (n_theta,) array: ``d criterion / d theta`` in the workspace's units.
    """
    if not gradient_supported(ws):
        raise NotImplementedError(f"the analytic gradient forms the later-terms block's inverse densely; "
                                  f"this one has {ws.qr} columns")
    p, n = ws.p, ws.n
    nu = n - p if ws.reml else n
    r2 = ws.pwrss
    l00_inv = getattr(ws, "_L00inv", None)          # the factor's own, when it formed them
    if l00_inv is None or l00_inv.shape[1] != ws.sizes[0]:
        l00_inv = batched_lower_inverse(_l00(ws))
    beta = ws.beta()
    u = ws.u(beta)
    AF = np.hstack([ws.AF0, ws.AFr]) if ws.has_rest else ws.AF0     # (p + 1, q): F' W Z
    s = AF[p] - beta @ AF[:p] - _azz_times(ws, _lambda_times(ws, u[:, None]))[:, 0]
    traces = _trace_blocks(ws, l00_inv)
    if ws.reml and p:
        C = _omega_inv_zx(ws, l00_inv)                                                      # Omega^{-1} Lambda' Z'X
        Et = AF[:p].T - _azz_times(ws, _lambda_times(ws, C))                               # E' = Z' V^{-1} X
        RX = ws.LFF[:p, :p]
        Kinv = np.tril(RX) @ np.tril(RX).T
        EK = np.linalg.solve(Kinv, Et.T).T                                                  # E' K
    G = []
    start = 0
    for k in range(len(ws.sizes)):
        pk, l = ws.sizes[k], ws.nlevels[k]
        us = np.einsum("ga,gb->ab", u[start:start + pk * l].reshape(l, pk), s[start:start + pk * l].reshape(l, pk))
        Q = traces[k] - (nu / r2) * us
        if ws.reml and p:
            Q = Q - np.einsum("gap,gbp->ab", _blocks3(ws, C, k, start), _blocks3(ws, EK, k, start))
        G.append(2.0 * Q.T)      # d / d lambda[a, b] = tr(dLambda Q) = sum_g Q_gg[b, a]
        start += pk * l
    return ws.layout.chain(ws.theta, G)     # through each term's covariance structure
