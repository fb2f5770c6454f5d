"""The maps ``u -> Z Lambda_theta u`` and ``v -> Z' v`` for one design, without per-call overhead.

Both PIRLS (:mod:`mixedfx.core.pirls`) and the general Laplace workspace
(:mod:`mixedfx.core.laplace_general`) evaluate the linear predictor for many ``u`` at one
``theta``; with scalar terms only (``(1 | g)``, ``(0 + x | g)``) these are gathers and
bincounts, which are several times faster than scipy sparse products for small models.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["RandomEffectsMap", "random_effects_matrix"]


def random_effects_matrix(codes: np.ndarray, Xk: np.ndarray, nlevels: int) -> sp.csr_matrix:
    """Sparse ``Z_k`` (n x nlevels*p): row i holds ``Xk[i]`` in the columns of its level.

    Rows with code ``-1`` (levels unseen in fitting) are all zero.
    """
    n, p = Xk.shape
    ok = codes >= 0
    rows = np.repeat(np.flatnonzero(ok), p)
    cols = (codes[ok][:, None] * p + np.arange(p)[None, :]).ravel()
    data = Xk[ok].ravel()
    return sp.csr_matrix((data, (rows, cols)), shape=(n, nlevels * p))


class RandomEffectsMap:
    """``Z`` for the blocks ``[(codes, Xk, n_levels), ...]`` of one design and its layout.

    Attributes
    ----------
    q : number of random effects.  nlevels : levels per term.  scalar : all terms scalar.
    """

    def __init__(self, blocks, layout):
        self.blocks = blocks
        self.layout = layout
        self.Z = sp.hstack([random_effects_matrix(c, Xk, nl) for c, Xk, nl in blocks], format="csr")
        self.Zt = self.Z.T.tocsr()
        self.scalar = all(Xk.shape[1] == 1 for _, Xk, _ in blocks)
        self.nlevels = [nl for _, _, nl in blocks]
        self.q = self.Z.shape[1]
        if self.scalar:     # column of each row's entry per term, and its value (0 for code -1)
            offsets = np.cumsum([0] + self.nlevels[:-1])
            self.gcols = np.column_stack([off + np.maximum(c, 0) for off, (c, _, _) in zip(offsets, blocks)])
            self.zx = np.column_stack([np.where(c >= 0, Xk[:, 0], 0.0) for c, Xk, _ in blocks])

    def zb_map(self, theta):
        """The map ``u -> Z Lambda_theta u`` (n,) for one theta."""
        if self.scalar:
            lams = self.layout.lambdas(np.asarray(theta, float))
            coef = self.zx * np.array([lam[0, 0] for lam in lams])
            cols = self.gcols
            if cols.shape[1] == 1:
                c0, k0 = cols[:, 0], coef[:, 0]
                return lambda u: k0 * u[c0]
            return lambda u: np.einsum("nk,nk->n", coef, u[cols])
        lam_u, Z = self.lambda_times(theta), self.Z
        return lambda u: Z @ lam_u(u)

    def zt_times(self, v: np.ndarray) -> np.ndarray:
        """``Z' v`` (q,)."""
        if self.scalar:
            return np.bincount(self.gcols.ravel(), (self.zx * v[:, None]).ravel(), minlength=self.q)
        return self.Zt @ v

    def lambda_times(self, theta):
        """The map ``u -> Lambda_theta u`` for one theta (a vector scaling when all terms are scalar)."""
        lams = self.layout.lambdas(np.asarray(theta, float))
        if self.scalar:
            scale = np.repeat([lam[0, 0] for lam in lams], self.nlevels)
            return lambda u: scale * u

        def apply(u):
            parts, start = [], 0
            for lam, (codes, Xk, nl) in zip(lams, self.blocks):
                p = Xk.shape[1]
                parts.append((u[start:start + nl * p].reshape(nl, p) @ lam.T).ravel())
                start += nl * p
            return np.concatenate(parts)
        return apply
