"""Leverages (lme4's ``hatvalues``) from the blocked factorization, never forming the n x n hat matrix.

For GLMMs the same computation uses the final PIRLS factor, as lme4 does (see :func:`hatvalues`).

The fitted values of the penalized least-squares problem are ``H y`` with
``H = W^{1/2} A (L L')^{-1} A' W^{1/2}``, ``A = [Z Lambda, X]`` and ``L`` the full blocked factor, so
``h_i = w_i ||L^{-1} a_i||^2`` for row ``a_i``.  With the blocks of ``L``:

    c0  = D0_g' x0_i                      (term 0, level g of row i; D0 = Lambda0 L00^{-T})
    c_r = Lrr^{-1} (Lambda_r' z_r,i - Lr0 c0)
    c_X = R_X^{-1} (x_i - L_X0 c0 - L_Xr c_r)
    h_i = w_i (||c0||^2 + ||c_r||^2 + ||c_X||^2)

computed for rows in chunks (linear mixed models).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.linalg import solve_triangular


__all__ = ["hatvalues"]


def _leverages(ws, blocks, X, weights, chunk: int = 4096) -> np.ndarray:
    n, p = X.shape
    p0 = ws.sizes[0]
    codes0, X0 = blocks[0][0], blocks[0][1]
    if p0 == 1:
        c0_all = (ws.d0[codes0] * X0[:, 0])[:, None]
    else:
        c0_all = np.einsum("nij,ni->nj", ws.D0[codes0], X0)
    LX0 = ws.LF0[:p]
    Lxx = ws.LFF[:p, :p]
    h = np.empty(n)
    if ws.has_rest:
        from ..core.workspace import random_effects_matrix
        lams = ws.layout.lambdas(ws.theta)
        Zr = sp.hstack([random_effects_matrix(c, Xk @ lam, nl) for (c, Xk, nl), lam in zip(blocks[1:], lams[1:])],
                       format="csr")   # rows are (Lambda_r' z_r,i)'
    for s in range(0, n, chunk):
        e = min(s + chunk, n)
        m = e - s
        c0 = c0_all[s:e]
        cols = (codes0[s:e, None] * p0 + np.arange(p0)[None, :]).ravel()
        C0 = sp.csc_matrix((c0.ravel(), (cols, np.repeat(np.arange(m), p0))), shape=(ws.q0, m))
        total = np.sum(c0 * c0, axis=1)
        rhs_x = X[s:e].T - np.asarray(C0.T @ LX0.T).T
        if ws.has_rest:
            R = Zr[s:e].T.toarray() - np.asarray(ws.Lr0 @ C0.toarray())
            if ws.rest_sparse:
                H = ws._sparse.half_solve(R)
                total += np.sum(H * H, axis=0)
                rhs_x -= ws._MinvYt[:, :p].T @ R
            else:
                cr = solve_triangular(ws.Lrr, R, lower=True, check_finite=False)
                total += np.sum(cr * cr, axis=0)
                rhs_x -= ws.LFr[:p] @ cr
        cx = solve_triangular(Lxx, rhs_x, lower=True, check_finite=False)
        total += np.sum(cx * cx, axis=0)
        h[s:e] = total
    return h * (np.ones(n) if weights is None else weights)


def hatvalues(result) -> np.ndarray:
    """Diagonal of the hat matrix, one value per observation (lme4's ``hatvalues``).

    LMMs: ``h_i = w_i ||L^{-1} a_i||^2`` (prior weights ``w``), the leverages of the penalized
    least-squares fit; they sum to the effective number of parameters.  GLMMs: lme4's definition,
    the same formula with the factor ``L`` of the final PIRLS step (working weights at the
    conditional modes) and the *prior* weights ``w_i`` (binomial trials for ``cbind`` responses),
    so the values are not bounded by 1 and are a relative, not absolute, measure (lme4 warns that
    the hat matrix "may not make sense for GLMMs").
    """
    fit = result.fit
    d = fit.design
    blocks = [(b.codes, b.X, b.nlevels) for b in d.blocks]
    if getattr(result, "family", None) is None:
        # the hat matrix does not depend on units: use the standardized problem's factor
        ws = fit.fresh_workspace()
        return _leverages(ws.internal, ws.blocks, ws.X, ws.weights)
    gw = fit.fresh_workspace()          # PIRLS already at the optimum
    gw.full_update(fit.theta)
    return _leverages(gw.ws, blocks, d.X, gw.w)
