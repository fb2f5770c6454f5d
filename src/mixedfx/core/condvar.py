"""Conditional covariance of fixed effects and random effects for prediction standard errors.

With ``b = Lambda u`` and ``u ~ N(0, s I)`` (``s = sigma^2`` for an LMM, the dispersion
``phi`` for a GLMM), Henderson's mixed-model equations in ``(beta, u)`` have the matrix

    C = [ X'WX           X'W Z Lambda            ]   = [ X'WX  B' ]
        [ Lambda'Z'WX    Lambda'Z'WZ Lambda + I  ]     [ B     A  ]

and ``Var([beta_hat - beta; u_hat - u]) = s C^{-1}`` (conditional on theta; for a GLMM ``W``
holds the working weights at the converged PIRLS fit).  This is lme4's ``condVar`` and, mapped
through ``b = Lambda u``, Henderson's ``C^{-1}``: it does not need ``Lambda`` to be invertible,
so singular fits are covered.  For a prediction ``x'beta + z'b`` write ``v = Lambda'z``; the
block inverse of ``C`` gives, with ``V_beta = s (X'WX - B'A^{-1}B)^{-1}`` (the fixed effects'
covariance) and ``r = x - B'A^{-1}v``,

    Var(x'beta_hat + z'b_hat - x'beta - z'b) = s v'A^{-1}v + r' V_beta r.

``V_beta`` is passed in: the LMM's own (identical to the block inverse) or, for a GLMM, the
reported Hessian-based one (the matrix stays positive semi-definite: it is a congruence of
``diag(V_beta, s A^{-1})``).  ``A`` is factored densely when small (its full inverse is then
gathered per row) and by a sparse LU otherwise.  Arrays only.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.linalg import cho_factor, cho_solve
from scipy.sparse.linalg import splu

__all__ = ["ConditionalCovariance", "spherical_rows", "new_level_variance"]

#: largest number of random effects for which ``A^{-1}`` is formed densely
DENSE_MAX_Q = 2000


def spherical_rows(parts, lambdas, offsets) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``Z Lambda`` as ``(columns, values)``, each (m, sum p_k) (unseen levels, code -1: value 0).

    ``parts``: per term ``(k, codes (m,), Xk (m, p_k))``; ``offsets[k]``: first column of term k in u
    (level-major: column ``offsets[k] + code * p_k + j``).
    """
    cols, vals = [], []
    for k, codes, Xk in parts:
        codes = np.asarray(codes)
        lam = lambdas[k]
        p = lam.shape[0]
        known = codes >= 0
        base = offsets[k] + np.where(known, codes, 0) * p
        cols.append(base[:, None] + np.arange(p)[None, :])
        vals.append(np.where(known[:, None], np.asarray(Xk, float) @ lam, 0.0))
    m = len(parts[0][1]) if parts else 0
    if not cols:
        return np.zeros((m, 0), np.int64), np.zeros((m, 0))
    return np.concatenate(cols, axis=1), np.concatenate(vals, axis=1)


class ConditionalCovariance:
    """Henderson's conditional covariance for one fit, factored once.

    Parameters
    ----------
    X : (n, p) fixed-effects matrix.  blocks : per term ``(codes (n,), Xk (n, p_k), n_levels)``.
    weights : (n,) weights ``W`` (prior weights for an LMM, working weights for a GLMM) or None.
    lambdas : per term the ``p_k x p_k`` relative covariance factor.
    scale : ``s`` (``sigma^2`` or ``phi``).  vbeta : (p, p) covariance of the fixed effects.
    """

    def __init__(self, X, blocks, weights, lambdas, scale: float, vbeta):
        X = np.asarray(X, float)
        n, self.p = X.shape
        self.lambdas = [np.asarray(lam, float) for lam in lambdas]
        self.scale = float(scale)
        self.vbeta = np.asarray(vbeta, float)
        self.offsets, start = [], 0
        for lam, (_, _, nl) in zip(self.lambdas, blocks):
            self.offsets.append(start)
            start += lam.shape[0] * int(nl)
        self.q = start
        cols, vals = spherical_rows([(k, c, Xk) for k, (c, Xk, _) in enumerate(blocks)], self.lambdas, self.offsets)
        w = np.ones(n) if weights is None else np.asarray(weights, float)
        rows = np.repeat(np.arange(n), cols.shape[1])
        ZL = sp.csr_matrix((vals.ravel(), (rows, cols.ravel())), shape=(n, self.q))
        ZLw = sp.csr_matrix(ZL.multiply(w[:, None]))
        A = (ZLw.T @ ZL).tocsc() + sp.identity(self.q, format="csc")
        B = np.asarray(ZLw.T @ X)                      # (q, p)
        if self.q <= DENSE_MAX_Q:
            self._ainv = cho_solve(cho_factor(A.toarray(), lower=True), np.eye(self.q))
            self._lu = None
            self.ainv_b = self._ainv @ B
        else:
            self._ainv = None
            self._lu = splu(A, permc_spec="MMD_AT_PLUS_A")
            self.ainv_b = self._lu.solve(B)

    def variance(self, Xnew, parts, chunk: int = 256) -> np.ndarray:
        """``Var(x'beta_hat + z'b_hat - x'beta - z'b)`` per row, known levels only (see the module).

        ``Xnew`` (m, p); ``parts``: per included term ``(k, codes, Xk)``; rows at unseen levels
        (code -1) get no contribution from that term here (see :meth:`new_level_variance`).
        """
        Xnew = np.asarray(Xnew, float)
        m = Xnew.shape[0]
        cols, vals = spherical_rows(parts, self.lambdas, self.offsets)
        if cols.shape[1] == 0:
            return np.einsum("ij,jk,ik->i", Xnew, self.vbeta, Xnew)
        r = Xnew - np.einsum("ms,msp->mp", vals, self.ainv_b[cols])
        fixed = np.einsum("ij,jk,ik->i", r, self.vbeta, r)
        if self._ainv is not None:
            quad = np.einsum("ms,mst,mt->m", vals, self._ainv[cols[:, :, None], cols[:, None, :]], vals)
        elif m > self.q:
            quad = self._quad_by_columns(cols, vals, chunk)
        else:
            quad = np.empty(m)
            for s in range(0, m, chunk):
                e = min(s + chunk, m)
                k = e - s
                V = sp.csc_matrix((vals[s:e].ravel(), (cols[s:e].ravel(), np.repeat(np.arange(k), cols.shape[1]))),
                                  shape=(self.q, k)).toarray()
                quad[s:e] = np.einsum("qm,qm->m", V, self._lu.solve(V))
        return self.scale * quad + fixed


    def _quad_by_columns(self, cols, vals, chunk: int) -> np.ndarray:
        """``v'A^{-1}v`` per row from ``A^{-1}`` a block of columns at a time (many rows, large q)."""
        quad = np.zeros(cols.shape[0])
        for c0 in range(0, self.q, chunk):
            c1 = min(c0 + chunk, self.q)
            E = np.zeros((self.q, c1 - c0))
            E[np.arange(c0, c1), np.arange(c1 - c0)] = 1.0
            Y = self._lu.solve(E)                     # A^{-1}[:, c0:c1]
            for s in range(cols.shape[1]):
                hit = (cols[:, s] >= c0) & (cols[:, s] < c1) & (vals[:, s] != 0)
                if hit.any():
                    block = Y[cols[hit], (cols[hit, s] - c0)[:, None]]      # (rows, n_cols): A^{-1}[col_t, col_s]
                    quad[hit] += vals[hit, s] * np.einsum("mt,mt->m", block, vals[hit])
        return quad


def new_level_variance(Xk, lam, scale: float) -> np.ndarray:
    """``z'Gz`` per row with ``G = scale lam lam'``: a random effect the data say nothing about."""
    t = np.asarray(Xk, float) @ np.asarray(lam, float)
    return scale * np.einsum("ij,ij->i", t, t)

