"""Penalized least squares workspace for linear mixed models (Bates et al. 2015, JSS 67(1)).

Model: ``y = X beta + Z b + e`` with ``b = Lambda_theta u``, ``u ~ N(0, sigma^2 I)``,
``e ~ N(0, sigma^2 W^{-1})``.  With ``F = [X y]`` and everything pre-multiplied by
``W^{1/2}``, the blocked cross-product

    A = [Z F]' [Z F]   (formed once, never again touching the n rows)

is factored for each theta as the lower-triangular

    L L' = [ Lambda' Z'Z Lambda + I   Lambda' Z'F ]
           [ F'Z Lambda               F'F         ]

in three block rows, as in MixedModels.jl:

* block 0, the first random term (the one with most levels): ``L00`` is block
  diagonal (``l_0`` blocks of ``p_0 x p_0``; a vector when ``p_0 = 1``) and never fills in;
* block r, all later terms: ``Lrr`` is dense (crossed factors fill it in);
* block F: ``LFF`` of size ``(p+1)``; its last diagonal entry squared is the
  penalized residual sum of squares ``r^2``, its leading ``p x p`` block ``R_X``.

The profiled deviances are (``n`` rows, ``p`` fixed effects, ``nu = n`` for ML and
``n - p`` for REML)::

    ML:   log|L_Z|^2 + n  (1 + log(2 pi r^2 / n))         - sum(log w)
    REML: log|L_Z|^2 + log|R_X|^2 + (n-p)(1 + log(2 pi r^2 / (n-p))) - sum(log w)
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.linalg import solve_triangular
from scipy.linalg.lapack import dpotrf, dtrtrs

from .blocks import batched_cholesky, batched_lower_inverse
from .criterion import FAILED_OBJECTIVE, profiled_criterion
from .covariance import ThetaLayout
from .crossprod import CrossProducts
from .gram import DenseGram, HybridGram, choose_update
from .scatter_gram import ScaledColumns, ScatterGram, use_scatter
from .sparse_chol import SparseBlockSolver
from .zmap import random_effects_matrix

__all__ = ["PLSWorkspace", "FAILED_OBJECTIVE", "random_effects_matrix", "deviance_from_parts"]


def deviance_from_parts(ws, sigma: float | None = None, reml: bool | None = None) -> float:
    """The one deviance formula (:func:`profiled_criterion`) from a factored workspace's parts (any
    object with ``n``, ``p``, ``reml``, ``logdet_Z``, ``logdet_X``, ``pwrss`` and ``log_weights``)."""
    return profiled_criterion(ws.logdet_Z, ws.logdet_X, ws.pwrss, ws.n, ws.p, ws.reml if reml is None else reml,
                              ws.log_weights, sigma)


def _trsolve(L: np.ndarray, B: np.ndarray, trans: int = 0) -> np.ndarray:
    """``L^{-1} B`` (``trans=1``: ``L^{-T} B``) for a lower-triangular ``L``, by LAPACK's dtrtrs
    directly (scipy's ``solve_triangular`` wrapper costs ~8 us a call, more than small solves)."""
    if L.shape[0] == 0:
        return np.zeros(B.shape)
    return dtrtrs(L, B, lower=1, trans=trans)[0]


def _chol(M: np.ndarray, clean: bool = True) -> np.ndarray | None:
    """Lower Cholesky factor via LAPACK dpotrf, in place for a Fortran-ordered M.

    Reads only the lower triangle; with ``clean=False`` the upper triangle of the
    result is left as it was (callers then use only the lower triangle).
    Returns None when M is not positive definite.
    """
    if M.shape[0] == 0:
        return M
    c, info = dpotrf(M, lower=1, clean=int(clean), overwrite_a=1)
    return c if info == 0 else None


class PLSWorkspace:
    """Blocked PLS factorization for one LMM; mutable, updated in place for each theta.

    Parameters
    ----------
    X : (n, p) fixed-effects matrix.
    y : (n,) response (the offset already subtracted).
    blocks : list of ``(codes (n,), Xk (n, p_k), n_levels)``; block 0 should be the
        term with most levels.
    weights : (n,) prior weights or None.
    reml : REML (True) or ML (False) criterion.
    rest : how to factor the later-terms block: ``"dense"`` (LAPACK), ``"sparse"``
        (qdldl on its fixed pattern; scalar later terms only) or ``"auto"``: sparse when
        the terms are scalar, the block has at least 500 columns and its pattern fills
        at most 2% of the lower triangle (nested or sparsely crossed factors).
    structures : per term, a :class:`~mixedfx.core.structures.CovStructure` (default: unstructured).
    """

    #: smallest later-terms block for which "auto" considers the sparse path
    SPARSE_MIN_Q = 500
    #: largest pattern density (share of the lower triangle) for the sparse path
    SPARSE_MAX_DENSITY = 0.02

    def __init__(self, X, y, blocks, weights=None, reml=True, rest="auto", structures=None):
        X = np.asarray(X, float)
        self._init_shape(X.shape[0], X.shape[1], [b[1].shape[1] for b in blocks], [b[2] for b in blocks], reml,
                         structures)
        self.cross = CrossProducts(X, blocks)
        self._set_values(weights, y)
        self._init_rest(rest)

    @classmethod
    def from_blocks(cls, A, n: int, p: int, sizes, nlevels, log_weights: float = 0.0, reml=True, rest="auto",
                    structures=None) -> "PLSWorkspace":
        """A workspace from the blocks of ``A`` alone (no rows; it cannot :meth:`reweight`).

        Parameters
        ----------
        A : the blocks :meth:`CrossProducts.compute` returns (``A00`` (l0, p0, p0), ``AF0`` (p+1, q0),
            ``AFF`` (p+1, p+1); with later terms ``AFr`` (p+1, qr), CSR ``Ar0`` (qr, q0), ``Arr`` (qr, qr)),
            e.g. :class:`mixedfx.core.blocksum.BlockSums`; their patterns choose the factorization path.
        n, p : rows (zero weights included), fixed effects.  sizes, nlevels : per term, ``p_k`` and levels.
        log_weights : ``sum log w`` over the positive weights.  reml, rest, structures : as for the constructor.
        """
        self = cls.__new__(cls)
        self._init_shape(n, p, sizes, nlevels, reml, structures)
        self.cross = None
        self._set_blocks(A, log_weights)
        self._init_rest(rest)
        return self

    def _init_shape(self, n, p, sizes, nlevels, reml, structures) -> None:
        self.n, self.p = int(n), int(p)
        self.reml = reml
        self.sizes = tuple(int(s) for s in sizes)
        self.nlevels = tuple(int(nl) for nl in nlevels)
        self.layout = ThetaLayout(self.sizes, None if structures is None else tuple(structures))
        p0, l0 = self.sizes[0], self.nlevels[0]
        self.q0 = l0 * p0
        self._diag0 = np.arange(p0)
        self.has_rest = len(self.sizes) > 1
        if p0 == 2:   # buffers for the closed-form two-column block
            self._L00_buf = np.zeros((l0, 2, 2))
            self._D0_buf = np.zeros((l0, 2, 2))
            self._LF0_buf = np.zeros((self.p + 1, l0, 2))

    def _init_rest(self, rest) -> None:
        """Choose and set up the later-terms factorization from the patterns of ``Ar0`` and ``Arr``."""
        p0 = self.sizes[0]
        if self.has_rest:
            self.qr = self._Arr_sparse.shape[0]
            self._rest_scalar = all(p == 1 for p in self.sizes[1:])
            if rest == "sparse" and not self._rest_scalar:
                raise ValueError("the sparse path needs scalar later terms, e.g. (1 | g)")
            if self.Ar0.format == "csc" and not use_scatter(self.Ar0, p0, self._rest_scalar, rest, warn=False):
                self.Ar0 = self.Ar0.tocsr()           # summed blocks may come as CSC
                self.Ar0.sort_indices()
            self.schur, self.rest_sparse = choose_update(self.Ar0, p0, self._Arr_sparse, rest, self._rest_scalar,
                                                         self.SPARSE_MIN_Q, self.SPARSE_MAX_DENSITY)
            if self.rest_sparse:
                self._sparse = SparseBlockSolver(self.schur.rows, self.schur.cols, self.qr)
            else:       # (only the vector-valued path reads the dense Arr)
                self.Arr = None if self._rest_scalar else self._Arr_sparse.toarray()
                self._M = np.zeros((self.qr, self.qr), order="F")
        else:
            self.qr = 0
            self.rest_sparse = False
        self.theta = None
        self.objective_value = None

    def _set_values(self, weights, y) -> None:
        """Blocks of A for these weights and response (structure unchanged)."""
        w = None if weights is None else np.asarray(weights, float)
        self._set_blocks(self.cross.compute(w, y), 0.0 if w is None else float(np.sum(np.log(w[w > 0]))))

    def _set_blocks(self, A, log_weights: float) -> None:
        """Take the blocks of A (see :meth:`from_blocks`) and ``sum log w``."""
        self.log_weights = log_weights
        self.A00, self.AF0, self.AFF = A["A00"], A["AF0"], A["AFF"]
        if self.sizes[0] == 2:
            self._a00 = (self.A00[:, 0, 0].copy(), self.A00[:, 1, 0].copy(), self.A00[:, 1, 1].copy())
            af = self.AF0.reshape(self.p + 1, self.nlevels[0], 2)
            self._af0_cols = (af[:, :, 0].copy(), af[:, :, 1].copy())
        if self.has_rest:
            self.Ar0, self._Arr_sparse, self.AFr = A["Ar0"], A["Arr"], A["AFr"]

    def reweight_zz(self, weights) -> "PLSWorkspace":
        """New weights for the random-effects blocks only (u-only PIRLS: :meth:`factor_z`,
        :meth:`solve_u`); the fixed-effects block is left stale."""
        A = self._rows().compute_zz(weights)
        self.A00 = A["A00"]
        if self.sizes[0] == 2:
            self._a00 = (self.A00[:, 0, 0].copy(), self.A00[:, 1, 0].copy(), self.A00[:, 1, 1].copy())
        if self.has_rest:
            self.Ar0, self._Arr_sparse = A["Ar0"], A["Arr"]
            self.schur.refresh(self.Ar0, self._Arr_sparse)
            if not self.rest_sparse and not self._rest_scalar:
                self.Arr = self._Arr_sparse.toarray()
        self.theta = None
        return self

    def reweight(self, weights, y) -> "PLSWorkspace":
        """New weights and response on the same design (PIRLS), in ``O(n)`` plus the
        Schur-plan refresh; the sparsity patterns and factor layout are reused."""
        self._rows()
        self._set_values(weights, y)
        if self.has_rest:
            self.schur.refresh(self.Ar0, self._Arr_sparse)
            if not self.rest_sparse and not self._rest_scalar:
                self.Arr = self._Arr_sparse.toarray()
        self.theta = None
        return self

    def _rows(self) -> CrossProducts:
        if self.cross is None:
            raise ValueError("a workspace built from_blocks has no rows to reweight; build it from the data")
        return self.cross

    # ------------------------------------------------------------------ update
    def _lambda_rest(self, lams) -> tuple[np.ndarray | None, sp.spmatrix | None]:
        """Lambda for the rest block: a vector when all terms are scalar, else sparse block diagonal."""
        if self._rest_scalar:
            return np.concatenate([np.full(l, lam[0, 0]) for lam, l in zip(lams[1:], self.nlevels[1:])]), None
        mats = [sp.kron(sp.identity(l, format="csr"), sp.csr_matrix(lam))
                for lam, l in zip(lams[1:], self.nlevels[1:])]
        return None, sp.block_diag(mats, format="csr")

    def factor_z(self, theta) -> bool:
        """Factor ``L_Z`` (blocks 0 and r) for ``theta``; sets ``logdet_Z``.  False if not PD.

        This is all PIRLS needs when ``beta`` is fixed (:meth:`solve_u`); :meth:`update` adds
        the fixed-effects block.
        """
        theta = np.asarray(theta, float)
        self.theta = theta.copy()
        lams = self.layout.lambdas(theta)
        self._lams = lams
        lam0 = lams[0]
        p0 = self.sizes[0]
        if p0 == 1:
            l = lam0[0, 0]
            d2 = l * l * self.A00[:, 0, 0] + 1.0
            if not np.all(d2 > 0):                # negative (observed-information) weights can make it so
                return False
            self.L00 = np.sqrt(d2)
            self.d0 = l / self.L00
            logdet = 2.0 * float(np.sum(np.log(self.L00)))
        elif p0 == 2:
            self._L00inv = None
            logdet = self._factor_block0_p2(lam0)
            if logdet is None:
                return False
        else:
            C = lam0.T @ self.A00 @ lam0          # batched over levels: (l0, p0, p0)
            C[:, self._diag0, self._diag0] += 1.0
            self.L00 = batched_cholesky(C)
            if self.L00 is None:
                return False
            logdet = 2.0 * float(np.sum(np.log(self.L00[:, self._diag0, self._diag0])))
            self._L00inv = batched_lower_inverse(self.L00)
            self.D0 = lam0 @ np.swapaxes(self._L00inv, 1, 2)   # D_g = lam0 L00_g^{-T}
        if self.has_rest:
            logdet_r = self._factor_rest(lams)
            if logdet_r is None:
                return False
            logdet += logdet_r
        self.logdet_Z = logdet
        return True

    def update(self, theta) -> "PLSWorkspace":
        """Update the factor L for ``theta`` (in place) and compute the objective."""
        if not self.factor_z(theta):
            return self._fail()
        p0 = self.sizes[0]
        if p0 == 1:
            LF0 = self.AF0 * self.d0[None, :]
        elif p0 == 2:
            F0, F1 = self._af0_cols
            D = self.D0
            LF0 = self._LF0_buf
            LF0[:, :, 0] = F0 * D[:, 0, 0] + F1 * D[:, 1, 0]
            LF0[:, :, 1] = F0 * D[:, 0, 1] + F1 * D[:, 1, 1]
            LF0 = LF0.reshape(self.p + 1, -1)
        else:
            LF0 = (self.AF0.reshape(self.p + 1, -1, 1, p0) @ self.D0).reshape(self.p + 1, -1)
        self.LF0 = LF0
        MFF = self.AFF - LF0 @ LF0.T
        if self.has_rest:
            Y = self._lambda_r_times(self.AFr.T).T - np.asarray(self.Lr0 @ LF0.T).T
            if self.rest_sparse:
                self._MinvYt = self._sparse.solve(Y.T)          # (q_r, p + 1)
                MFF -= Y @ self._MinvYt
            else:
                self.LFr = dtrtrs(self.Lrr, Y.T, lower=1)[0].T     # LAPACK directly: the wrapper costs ~30 us
                MFF -= self.LFr @ self.LFr.T
        LFF = _chol(MFF)
        if LFF is None:
            return self._fail()
        self.LFF = LFF
        diag = LFF.diagonal()
        self.pwrss = float(diag[-1] ** 2)
        self.logdet_X = 2.0 * float(np.log(diag[:-1]).sum())
        self.objective_value = self._objective()
        return self

    def _lambda_r_times(self, V: np.ndarray) -> np.ndarray:
        """``Lambda_r' V`` for V with q_r rows (block by block: ``lambda_k'`` per level)."""
        if self._lam_r is not None:
            return V * (self._lam_r[:, None] if V.ndim == 2 else self._lam_r)
        V2 = np.asarray(V).reshape(self.qr, -1)
        out = np.empty_like(V2)
        start = 0
        for lam, p, l in zip(self._lams[1:], self.sizes[1:], self.nlevels[1:]):
            out[start:start + p * l] = (lam.T @ V2[start:start + p * l].reshape(l, p, -1)).reshape(p * l, -1)
            start += p * l
        return out.reshape(V.shape)

    def _factor_rest_dense(self, lams):
        """The later-terms block for vector-valued terms that fill it (:class:`DenseGram`), all dense.

        ``L_r0 = Lambda_r' A_r0 D_0`` and ``M = Lambda_r' A_rr Lambda_r - L_r0 L_r0' + I``, with
        ``Lambda_r'`` applied level block by level block and one SYRK; no sparse products.
        Returns ``log|L_rr|^2`` or None when ``M`` is not positive definite.
        """
        from scipy.linalg.blas import dsyrk

        self._lam_r = None
        p0, l0, qr = self.sizes[0], self.nlevels[0], self.qr
        A = self.schur.A
        if p0 == 1:
            ArD = A * self.d0[None, :]
        else:
            ArD = (A.reshape(qr, l0, p0).transpose(1, 0, 2) @ self.D0).transpose(1, 0, 2).reshape(qr, self.q0)
        Lr0 = np.asfortranarray(self._lambda_r_times(ArD))
        self.Lr0 = Lr0
        M = self._M
        M[:] = self._lambda_r_times(self._lambda_r_times(self.schur.Arr).T)
        M -= dsyrk(1.0, Lr0, lower=1)
        M[np.diag_indices_from(M)] += 1.0
        Lrr = _chol(M, clean=False)
        if Lrr is None:
            return None
        self.Lrr = Lrr
        return 2.0 * float(np.sum(np.log(np.diag(Lrr))))

    def solve_u(self, v: np.ndarray) -> np.ndarray:
        """``u`` solving ``L_Z L_Z' u = Lambda' v`` with the current ``L_Z`` (v = Z' W r, length q).

        Forward ``c0 = L00^{-1} Lambda0' v0``, ``c_r = Lrr^{-1} (Lambda_r' v_r - Lr0 c0)``, then
        back ``u_r = Lrr^{-T} c_r``, ``u0 = L00^{-T} (c0 - Lr0' u_r)`` (with the sparse path
        ``u_r = M^{-1} (Lambda_r' v_r - Lr0 c0)``).
        """
        p0, l0 = self.sizes[0], self.nlevels[0]
        lam0 = self._lams[0]
        w0 = v[:self.q0].reshape(l0, p0) @ lam0
        if p0 == 1:
            c0 = w0[:, 0] / self.L00
        else:
            c0 = np.linalg.solve(self.L00, w0[..., None])[..., 0].ravel()
        if self.has_rest:
            rhs = self._lambda_r_times(v[self.q0:]) - self.Lr0 @ c0
            if self.rest_sparse:
                ur = self._sparse.solve(rhs)
            else:   # LAPACK directly: scipy's solve_triangular wrapper costs ~50 us a call here
                cr = dtrtrs(self.Lrr, rhs, lower=1)[0]
                ur = dtrtrs(self.Lrr, cr, lower=1, trans=1)[0]
            c0 = c0 - self.Lr0.T @ ur
        else:
            ur = np.zeros(0)
        if p0 == 1:
            u0 = c0 / self.L00
        else:
            u0 = np.linalg.solve(np.swapaxes(self.L00, 1, 2), c0.reshape(l0, p0)[..., None])[..., 0].ravel()
        return np.concatenate([u0, ur])

    def _factor_block0_p2(self, lam0):
        """Block 0 for a two-column term in closed form (vector ops over levels).

        With ``lambda = [[t0, 0], [t1, t2]]`` and per-level ``A = [[a, b], [b, c]]``:
        ``C = lambda' A lambda + I``, its Cholesky ``L``, ``L^{-1}`` and ``D = lambda L^{-T}``
        are written out entry by entry (the same numbers as the general path, without the
        per-call overhead of batched LAPACK on 2 x 2 blocks).  Returns ``log|L00|^2``.
        """
        t0, t1, t2 = float(lam0[0, 0]), float(lam0[1, 0]), float(lam0[1, 1])
        a, b, c = self._a00
        t0b_t1c = t0 * b + t1 * c
        c00 = t0 * (t0 * a + t1 * b) + t1 * t0b_t1c + 1.0
        c10 = t2 * t0b_t1c
        c11 = t2 * t2 * c + 1.0
        l00 = np.sqrt(c00)
        l10 = c10 / l00
        d11 = c11 - l10 * l10
        if d11.min() <= 0:
            return None
        l11 = np.sqrt(d11)
        i00, i11 = 1.0 / l00, 1.0 / l11
        i10 = -l10 * i00 * i11
        L = self._L00_buf
        L[:, 0, 0], L[:, 1, 0], L[:, 1, 1] = l00, l10, l11
        self.L00 = L
        D = self._D0_buf
        D[:, 0, 0], D[:, 0, 1] = t0 * i00, t0 * i10
        D[:, 1, 0], D[:, 1, 1] = t1 * i00, t1 * i10 + t2 * i11
        self.D0 = D
        return float(np.log(c00 * d11).sum())

    def _factor_rest(self, lams):
        """``Lr0`` and the factor of the later-terms block; returns its log-determinant or None."""
        if not self._rest_scalar and not self.rest_sparse and isinstance(self.schur, DenseGram):
            return self._factor_rest_dense(lams)
        p0 = self.sizes[0]
        lam_r, Lam_r = self._lambda_rest(lams)
        self._lam_r = lam_r
        self._LamrT = None if Lam_r is None else Lam_r.T.tocsr()
        # Lr0 = Lambda_r' Ar0 D0
        if isinstance(self.schur, ScatterGram) and lam_r is not None:      # large: applied on the fly
            Lr0 = ScaledColumns(self.schur.A, lam_r, self.d0)
        elif p0 == 1 and lam_r is not None:
            if getattr(self, "_Lr0_buf", None) is None:
                self._Lr0_buf = sp.csr_matrix((np.empty_like(self.Ar0.data), self.Ar0.indices, self.Ar0.indptr),
                                              shape=self.Ar0.shape)     # Ar0's pattern, shared (no index copies)
                self._ar0_counts = np.diff(self.Ar0.indptr).astype(np.intp)   # per row: no nnz-long row index
            Lr0, Ar0 = self._Lr0_buf, self.Ar0
            np.multiply(Ar0.data, np.repeat(lam_r, self._ar0_counts) * self.d0[Ar0.indices], out=Lr0.data)
        else:
            D0 = sp.diags(self.d0) if p0 == 1 else sp.bsr_matrix(
                (self.D0, np.arange(self.nlevels[0]), np.arange(self.nlevels[0] + 1)),
                shape=(self.q0, self.q0)).tocsr()
            left = sp.diags(lam_r) if lam_r is not None else self._LamrT
            Lr0 = (left @ self.Ar0 @ D0).tocsr()
        self.Lr0 = Lr0
        # M = Lambda_r' (Arr - Ar0 D0 D0' Ar0') Lambda_r + I, lower triangle
        F = self.d0 if p0 == 1 else self.D0
        if self.rest_sparse:
            return self._sparse.factor(self.schur.pattern_values(F, lam_r))
        # an exact repeat (the polish's start, the final update) reuses the factor in place
        key = (b"".join(lam.tobytes() for lam in lams[1:]), F.tobytes(), self.schur.version)
        if getattr(self, "_rest_key", (None,))[0] == key:
            self.Lrr = self._rest_key[2]
            return self._rest_key[1]
        self._rest_key = (None,)
        M = self._M
        if lam_r is not None:
            self.schur.assemble_scaled(M, F, lam_r)
        else:
            G = self.Arr.copy()
            self.schur.subtract_from(G, F)
            G = np.tril(G) + np.tril(G, -1).T
            LT = self._LamrT
            M[:] = np.asarray(LT @ np.asarray(LT @ G).T)
            M[np.diag_indices_from(M)] += 1.0
        Lrr = _chol(M, clean=False)
        if Lrr is None:
            return None
        self.Lrr = Lrr
        self._rest_key = (key, 2.0 * float(np.sum(np.log(np.diag(Lrr)))), Lrr)
        return self._rest_key[1]

    def _fail(self) -> "PLSWorkspace":
        self.objective_value = FAILED_OBJECTIVE
        return self

    def _objective(self) -> float:
        return deviance_from_parts(self)

    def deviance(self, sigma: float | None = None, reml: bool | None = None) -> float:
        """The criterion at the current theta (:func:`deviance_from_parts`): profiled over sigma
        when ``sigma`` is None, REML or ML as the workspace unless ``reml`` is given."""
        if self.objective_value is None or self.objective_value >= FAILED_OBJECTIVE:
            return FAILED_OBJECTIVE
        return deviance_from_parts(self, sigma, reml)

    def objective(self, theta) -> float:
        """The profiled deviance (REML criterion or -2 log-likelihood) at ``theta``."""
        return self.update(theta).objective_value

    # -------------------------------------------------------------- solutions
    @property
    def sigma2(self) -> float:
        return self.pwrss / (self.n - self.p if self.reml else self.n)

    def beta(self) -> np.ndarray:
        """Fixed effects: solve ``R_X' beta = l_yX``."""
        p = self.p
        return _trsolve(self.LFF[:p, :p], self.LFF[p, :p], trans=1)

    def u(self, beta: np.ndarray | None = None) -> np.ndarray:
        """Spherical random effects (conditional modes of u), stacked over terms.

        With ``beta`` given, the modes for those fixed effects (PIRLS's u-only step);
        otherwise for the PLS estimate of beta.
        """
        p = self.p
        beta = self.beta() if beta is None else np.asarray(beta, float)
        c0 = self.LF0[p] - beta @ self.LF0[:p]
        if self.has_rest:
            if self.rest_sparse:   # u_r = M^{-1} (y_r - beta' X_r) with the cached solves
                ur = self._MinvYt[:, p] - self._MinvYt[:, :p] @ beta
            else:
                cr = self.LFr[p] - beta @ self.LFr[:p]
                ur = _trsolve(self.Lrr, cr, trans=1)
            c0 = c0 - self.Lr0.T @ ur
        else:
            ur = np.zeros(0)
        p0 = self.sizes[0]
        if p0 == 1:
            u0 = c0 / self.L00
        elif getattr(self, "_L00inv", None) is not None:        # L00_g^{-T} c_g with the factor's inverses
            u0 = np.einsum("gba,gb->ga", self._L00inv, c0.reshape(-1, p0)).ravel()
        else:
            u0 = np.linalg.solve(np.transpose(self.L00, (0, 2, 1)), c0.reshape(-1, p0)[..., None])[..., 0].ravel()
        return np.concatenate([u0, ur])

    def b_blocks(self, u: np.ndarray | None = None) -> list[np.ndarray]:
        """Random effects ``b = Lambda u`` per term, each as (n_levels, p_k)."""
        u = self.u() if u is None else u
        out, start = [], 0
        for lam, p, l in zip(self.layout.lambdas(self.theta), self.sizes, self.nlevels):
            uk = u[start:start + p * l].reshape(l, p)
            out.append(uk @ lam.T)
            start += p * l
        return out

    def vcov_beta(self, scale: float | None = None) -> np.ndarray:
        """``scale (R_X R_X')^{-1}`` with ``scale = sigma^2`` by default."""
        p = self.p
        Rinv = _trsolve(self.LFF[:p, :p], np.eye(p))
        return (self.sigma2 if scale is None else scale) * (Rinv.T @ Rinv)

    def _rest_half_solve(self, B) -> np.ndarray:
        """``H`` with ``H' H = B' M^{-1} B`` for the later-terms block ``M``."""
        if self.rest_sparse:
            return self._sparse.half_solve(B)
        B = B.toarray() if sp.issparse(B) else B
        return solve_triangular(self.Lrr, B, lower=True, check_finite=False)

    def cond_var_blocks(self, chunk: int = 2048, scale: float | None = None,
                        last_use: bool = False) -> list[np.ndarray]:
        """Conditional covariance of b per term and level, (n_levels, p_k, p_k).

        ``Var(b | y) = sigma^2 Lambda (L_Z L_Z')^{-1} Lambda'`` (as lme4's condVar),
        using the block inverse of ``L_Z = [[L00, 0], [Lr0, Lrr]]``: for a level g of
        term 0 the block of ``(L_Z L_Z')^{-1}`` is ``L00_g^{-T} (I + W_g' W_g) L00_g^{-1}``
        with ``W = Lrr^{-1} Lr0`` (computed in column chunks); for later terms it is
        the block of ``Lrr^{-T} Lrr^{-1}``.  ``last_use``: the factor's memory may be reused (a
        large dense block is inverted in place; the workspace must be updated again before use).
        """
        lams = self.layout.lambdas(self.theta)
        p0, l0 = self.sizes[0], self.nlevels[0]
        G, rest_blocks = np.zeros((l0, p0, p0)), None
        if self.rest_sparse:
            G = self._sparse.quad_blocks(self.Lr0, p0)
        elif self.has_rest and isinstance(self.schur, HybridGram) and self._lam_r is not None:
            F = self.d0 if p0 == 1 else self.D0     # scalar later terms: L^{-1} and M^{-1}, no q_r x q_0 array
            G, rest_blocks = self.schur.cond_var_parts(self.Lrr, self.Lr0, self._lam_r, F, self.nlevels[1:],
                                                       overwrite=last_use)
            if last_use:        # the factor's memory now holds M^{-1}: a later use must refactor
                self.Lrr, self._rest_key, self.theta = None, (None,), None
        elif self.has_rest:
            for s in range(0, self.q0, chunk):
                e = min(s + chunk, self.q0)
                W = self._rest_half_solve(self.Lr0[:, s:e])
                Wg = W.reshape(self.qr, -1, p0)
                G[s // p0:e // p0] = np.einsum("rgi,rgj->gij", Wg, Wg)
        G[:, np.arange(p0), np.arange(p0)] += 1.0
        if p0 == 1:
            S0 = G / (self.L00 ** 2)[:, None, None]
        else:
            Li = np.linalg.inv(self.L00)
            S0 = Li.transpose(0, 2, 1) @ G @ Li
        out = [S0] + (rest_blocks or [])
        if self.rest_sparse:            # scalar later terms: the diagonal of M^{-1}
            diag = self._sparse.inverse_diagonal()
            start = 0
            for l in self.nlevels[1:]:
                out.append(diag[start:start + l, None, None])
                start += l
        elif self.has_rest and rest_blocks is None:
            Linv = solve_triangular(self.Lrr, np.eye(self.qr), lower=True, check_finite=False)
            start = 0
            for p, l in zip(self.sizes[1:], self.nlevels[1:]):
                cols = Linv[:, start:start + p * l].reshape(self.qr, l, p)
                out.append(np.einsum("rgi,rgj->gij", cols, cols))
                start += p * l
        s2 = self.sigma2 if scale is None else scale
        return [s2 * (lam @ S @ lam.T) for lam, S in zip(lams, out)]
