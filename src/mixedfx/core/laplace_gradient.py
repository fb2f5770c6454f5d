"""Analytic gradient of the Laplace deviance over ``(theta, beta)``, and its Hessian.

The Laplace deviance of :class:`mixedfx.core.pirls.GlmmWorkspace` at ``x = (theta, beta)`` is

    D(x) = -2 log f(y | eta) + u'u / phi + log|M| ,   M = I + V' W V ,

with ``V = Z Lambda_theta``, ``eta = X beta + V u + offset``, ``u = u_hat(x)`` the conditional
modes from PIRLS, ``W = w mu_eta^2 / Var(mu)`` the IRLS (Fisher) weights at the modes and
``phi`` the dispersion (1, or profiled: by the envelope theorem its variation drops out of
the gradient).  With the per-observation quantities of
:meth:`mixedfx.families.Family.working_derivatives` (``s`` the score, ``W_obs = -ds/deta``,
``W' = dW/deta``), the modes solve ``u = V's``, so by implicit differentiation
``M_obs du = dV's - V'W_obs (X dbeta + dV u)`` with ``M_obs = I + V'W_obs V``.  The first two
terms of ``D`` are stationary in ``u`` (envelope theorem), and
``d log|M| = 2 tr(M^{-1} V'W dV) + sum_i h_i W'_i d eta_i`` with the leverages
``h_i = V_i M^{-1} V_i'``.  Writing ``c = h * W'``, ``a = M_obs^{-1} V'c`` and
``e = -2 s / phi + c - W_obs * (V a)`` (all elementwise), the gradient is

    dD/dbeta    = X' e
    dD/dtheta_j = e' dV_j u + s' dV_j a + 2 sum_i W_i (dV_j)_i M^{-1} V_i' ,

where ``dV_j = Z dLambda_j``: for the entry ``(r, c)`` of term ``k``'s factor, row ``i`` of
``dV_j`` holds ``Z_k[i, r]`` in the column of level ``g_ik`` and component ``c``.  Everything
needs ``M^{-1}`` only on the blocks of the columns that share a row (the pattern of ``V'V``);
they come from the blocked factor with term 0 (block diagonal) eliminated first and the
later terms in a dense Schur complement.

:meth:`LaplaceGradient.profiled_gradient` adds the dependence of ``beta`` on theta in stage
1 (joint PIRLS), and :func:`agq_gradient` differentiates the adaptive Gauss-Hermite
deviance of one scalar term the same way (modes by implicit differentiation, the nodes'
scale through ``W'``).  :func:`differenced_hessian` differences a gradient centrally (``2 m``
PIRLS solutions for ``m`` parameters, instead of ``1 + 2m + m(m-1)/2`` deviances for a
second-difference Hessian); its error is ``O(h^2)`` plus the gradient's noise divided by
``h``, where the second-difference Hessian divides the deviance's noise by ``h^2``.
"""
from __future__ import annotations

import numpy as np
from scipy.linalg.lapack import dpotrf, dpotri

from .finite_diff import gradient_hessian

__all__ = ["LaplaceGradient", "differenced_hessian", "agq_gradient"]

#: largest later-terms block (columns) for the dense Schur complement
MAX_REST = 2000
#: largest dense ``Mr0`` (entries) and largest list of same-column entry pairs
MAX_DENSE, MAX_PAIRS = 1 << 22, 1 << 22


def _pattern_product(rows: np.ndarray, values: np.ndarray, gathered: np.ndarray, nrows: int) -> np.ndarray:
    """``sum`` over pattern entries of ``values * gathered`` into ``rows`` (a sparse product as
    bincounts; ``gathered`` of shape (nnz,) or (nnz, m))."""
    if gathered.ndim == 1:
        return np.bincount(rows, values * gathered, minlength=nrows)
    return np.column_stack([np.bincount(rows, values * gathered[:, j], minlength=nrows)
                            for j in range(gathered.shape[1])])


class _Blocked:
    """``M = I + V' diag(w) V`` factored by eliminating term 0 (block diagonal) first.

    ``M = [[M00, Mr0'], [Mr0, Mrr]]``; ``D = M00^{-1}`` (per level), ``MD = Mr0 D`` (on the
    pattern of ``Mr0``), ``S = Mrr - MD Mr0'`` (dense, inverted).  The products with ``MD``
    are dense matrix products when ``Mr0`` is dense enough, else sums over the precomputed
    pairs of entries sharing a column.  ``ok`` is False when ``M`` is not positive definite.
    """

    def __init__(self, g: "LaplaceGradient", vals: np.ndarray, w: np.ndarray):
        self.g = g
        p0, l0 = g.p0, g.l0
        v0 = vals[:, :p0]
        if p0 == 1:
            m00 = 1.0 + np.bincount(g.codes0, w * v0[:, 0] ** 2, minlength=l0)
            self.ok = bool(np.all(m00 > 0))
            self.D = (1.0 / m00)[:, None, None]
        else:
            outer = (w[:, None, None] * v0[:, :, None] * v0[:, None, :]).reshape(g.n, -1)
            m00 = np.stack([np.bincount(g.codes0, outer[:, j], minlength=l0) for j in range(p0 * p0)], axis=1)
            m00 = m00.reshape(l0, p0, p0) + np.eye(p0)
            try:
                np.linalg.cholesky(m00)
                self.D = np.linalg.inv(m00)
                self.ok = True
            except np.linalg.LinAlgError:
                self.ok = False
        if not self.ok or not g.qr:
            return
        vr = vals[:, p0:]
        mr0 = np.bincount(g.r0_pos, (w[:, None, None] * vr[:, :, None] * v0[:, None, :]).ravel(),
                          minlength=g.r0_nnz)
        if p0 == 1:
            md = mr0 * self.D[g.r0_lev, 0, 0]
        else:   # entry (a, (g, t)) of Mr0 D = sum_s Mr0[a, (g, s)] D_g[s, t]
            md = np.zeros(g.r0_nnz)
            for s in range(p0):
                md += mr0[g.r0_same[s]] * self.D[g.r0_lev, s, g.r0_comp]
        self.md = md
        S = np.bincount(g.rr_index, (w[:, None, None] * vr[:, :, None] * vr[:, None, :]).ravel(),
                        minlength=g.qr * g.qr).reshape(g.qr, g.qr)
        S[np.diag_indices(g.qr)] += 1.0
        if g.r0_dense:
            self.MDd = np.zeros((g.qr, g.q0))
            self.MDd[g.r0_row, g.r0_col] = md
            Mr0 = np.zeros((g.qr, g.q0))
            Mr0[g.r0_row, g.r0_col] = mr0
            S -= self.MDd @ Mr0.T
        else:
            S -= np.bincount(g.pair_rr, md[g.pair_i] * mr0[g.pair_j], minlength=g.qr * g.qr).reshape(g.qr, g.qr)
        c, info = dpotrf(S, lower=1, clean=0, overwrite_a=1)
        if info == 0:
            Sinv, info = dpotri(c, lower=1, overwrite_c=1)
        if info != 0:
            self.ok = False
            return
        self.Sinv = np.tril(Sinv) + np.tril(Sinv, -1).T

    def _md_times(self, b0: np.ndarray) -> np.ndarray:
        """``MD b0`` (b0 with q0 rows)."""
        g = self.g
        if g.r0_dense:
            return self.MDd @ b0
        return _pattern_product(g.r0_row, self.md, b0[g.r0_col], g.qr)

    def _mdt_times(self, xr: np.ndarray) -> np.ndarray:
        """``MD' xr`` (xr with qr rows)."""
        g = self.g
        if g.r0_dense:
            return self.MDd.T @ xr
        return _pattern_product(g.r0_col, self.md, xr[g.r0_row], g.q0)

    def solve(self, b: np.ndarray) -> np.ndarray:
        """``M^{-1} b`` for b of shape (q,) or (q, k)."""
        g = self.g
        b0 = b[:g.q0]
        x0 = np.einsum("gst,gt...->gs...", self.D, b0.reshape((g.l0, g.p0) + b.shape[1:]))
        x0 = x0.reshape(b0.shape)
        if not g.qr:
            return x0
        xr = self.Sinv @ (b[g.q0:] - self._md_times(b0))
        return np.concatenate([x0 - self._mdt_times(xr), xr])

    def local_inverse(self) -> np.ndarray:
        """``M^{-1}`` on each row's columns, (n, P, P)."""
        g = self.g
        p0 = g.p0
        if not g.qr:
            return self.D[g.codes0]
        # T = S^{-1} MD on MD's pattern; (M^{-1})_r0 = -T and (M^{-1})_00 = D + MD' T per level
        if g.r0_dense:
            T = (self.Sinv @ self.MDd)[g.r0_row, g.r0_col]
        else:
            T = np.bincount(g.pair_i, self.Sinv.ravel()[g.pair_rr] * self.md[g.pair_j], minlength=g.r0_nnz)
        blk = np.zeros((g.l0 * p0 * p0))
        for t in range(p0):
            tt = T if p0 == 1 else T[g.r0_same[t]]               # T[a, (g, t)]
            blk += np.bincount((g.r0_lev * p0 + g.r0_comp) * p0 + t, self.md * tt, minlength=g.l0 * p0 * p0)
        out = np.empty((g.n, g.P, g.P))
        out[:, :p0, :p0] = (self.D + blk.reshape(g.l0, p0, p0))[g.codes0]
        r0 = -T[g.r0_pos].reshape(g.n, g.P - p0, p0)
        out[:, p0:, :p0] = r0
        out[:, :p0, p0:] = np.swapaxes(r0, 1, 2)
        out[:, p0:, p0:] = self.Sinv[g.ra[:, :, None], g.ra[:, None, :]]
        return out


class LaplaceGradient:
    """Gradient of the Laplace deviance for one design (see the module docstring).

    Parameters
    ----------
    X : (n, p).  blocks : list of ``(codes, Xk, n_levels)``, term 0 first (as the workspace).
    layout : the :class:`~mixedfx.core.covariance.ThetaLayout`.  family, y, w : as the workspace.
    """

    def __init__(self, X, blocks, layout, family, y, w):
        self.X, self.layout, self.family, self.y, self.w = X, layout, family, y, w
        self.n = X.shape[0]
        self.blocks = blocks
        sizes = [Xk.shape[1] for _, Xk, _ in blocks]
        self.P = sum(sizes)
        self.p0, self.l0 = sizes[0], int(blocks[0][2])
        self.q0 = self.p0 * self.l0
        self.codes0 = np.asarray(blocks[0][0])
        cols, off = [], 0
        self.pos = [int(v) for v in np.cumsum([0] + sizes[:-1])]   # first position of each term in a row
        for (codes, Xk, nl), p in zip(blocks, sizes):
            cols.append(off + np.asarray(codes)[:, None] * p + np.arange(p)[None, :])
            off += int(nl) * p
        self.q = off
        self.cols = np.hstack(cols)                    # (n, P)
        self.qr = self.q - self.q0
        # theta index -> (term, row r, column c) of lambda_k
        self.theta_map = []
        for k, p in enumerate(sizes):
            r, c = layout.tril_indices(p)
            self.theta_map += [(k, int(i), int(j)) for i, j in zip(r, c)]
        self.feasible = self.qr <= MAX_REST
        self._scalar = all(p == 1 for p in sizes)
        self._zvals = np.hstack([np.asarray(Xk, float) for _, Xk, _ in blocks])    # Z's values on cols
        self._flat_cols = self.cols.ravel()
        if self.qr and self.feasible:
            self._rest_pattern()

    def _rest_pattern(self) -> None:
        """Fixed patterns of ``Mr0`` (sorted keys ``a q0 + col``) and ``Mrr`` (dense), and the
        pairs of ``Mr0`` entries sharing a column (for ``MD Mr0'`` and ``S^{-1} MD``)."""
        p0, q0, qr = self.p0, self.q0, self.qr
        c0 = self.cols[:, :p0]
        self.ra = self.cols[:, p0:] - q0                   # (n, Pr)
        keys = (self.ra[:, :, None].astype(np.int64) * q0 + c0[:, None, :]).ravel()
        uniq, pos = np.unique(keys, return_inverse=True)
        self.r0_pos = pos.ravel()                          # contribution (row, a, s) -> pattern entry
        self.r0_nnz = len(uniq)
        self.r0_row, self.r0_col = uniq // q0, uniq % q0
        self.r0_indptr = np.concatenate([[0], np.cumsum(np.bincount(self.r0_row, minlength=qr))])
        self.r0_indices = self.r0_col.astype(np.int32)
        self.r0_lev, self.r0_comp = self.r0_col // p0, self.r0_col % p0
        if p0 > 1:   # entry of (a, (g, s)) for each entry (a, (g, t)) and each s
            self.r0_same = [np.searchsorted(uniq, uniq - self.r0_comp + s) for s in range(p0)]
        self.rr_index = (self.ra[:, :, None].astype(np.int64) * qr + self.ra[:, None, :]).ravel()
        counts = np.bincount(self.r0_col, minlength=q0)
        npairs = int(np.sum(counts.astype(np.int64) ** 2))
        self.r0_dense = qr * q0 <= MAX_DENSE and (npairs > MAX_PAIRS or self.r0_nnz > 0.2 * qr * q0)
        if not self.r0_dense:
            if npairs > MAX_PAIRS:
                self.feasible = False
                return
            order = np.lexsort((self.r0_row, self.r0_col))
            colptr = np.concatenate([[0], np.cumsum(counts)])
            col = self.r0_col[order]
            reps = counts[col]
            within = np.arange(npairs) - np.repeat(np.cumsum(reps) - reps, reps)
            self.pair_i = np.repeat(order, reps)
            self.pair_j = order[np.repeat(colptr[col], reps) + within]
            self.pair_rr = self.r0_row[self.pair_i] * qr + self.r0_row[self.pair_j]

    def _values(self, theta) -> np.ndarray:
        """Row values of ``V = Z Lambda`` on :attr:`cols`, (n, P)."""
        lams = self.layout.lambdas(np.asarray(theta, float))
        if self._scalar:
            return self._zvals * np.array([lam[0, 0] for lam in lams])
        return np.hstack([np.asarray(Xk, float) @ lam for (_, Xk, _), lam in zip(self.blocks, lams)])

    def _vt_times(self, vals: np.ndarray, r: np.ndarray) -> np.ndarray:
        """``V' r`` for ``r`` of shape (n,) or (n, m) (bincounts: no sparse-matrix call overhead)."""
        cols = self._flat_cols
        if r.ndim == 1:
            return np.bincount(cols, (vals * r[:, None]).ravel(), minlength=self.q)
        return np.column_stack([np.bincount(cols, (vals * r[:, j:j + 1]).ravel(), minlength=self.q)
                                for j in range(r.shape[1])])

    def _v_times(self, vals: np.ndarray, a: np.ndarray) -> np.ndarray:
        """``V a`` for ``a`` of shape (q,) or (q, m)."""
        if a.ndim == 1:
            return np.einsum("np,np->n", vals, a[self.cols])
        return np.einsum("np,npm->nm", vals, a[self.cols])

    def _theta_reduce(self, Q: np.ndarray) -> np.ndarray:
        """``sum_i Z_k[i, r] Q[i, pos_k + c]`` for each theta entry ``(k, r, c)``."""
        return np.array([np.dot(self.blocks[k][1][:, r], Q[:, self.pos[k] + c]) for k, r, c in self.theta_map])

    def gradient(self, theta, u, eta, mu, phi: float = 1.0, mode_derivatives: bool = False):
        """``dD / d(theta, beta)`` at the modes ``u`` (with ``eta``, ``mu``); None if a factor fails.

        With ``mode_derivatives``, also ``du / d(theta, beta)`` (q, m), from the same factor.
        """
        out = self._parts(theta, u, eta, mu, phi, mode_derivatives)
        if out is None:
            return None
        return (out[0], out[1]) if mode_derivatives else out[0]

    def gradient_with_leverage(self, theta, u, eta, mu, mode_derivatives: bool = False):
        """``(dD / d(theta, beta), h, V a)`` at the modes (``phi = 1``): the gradient with the
        leverages ``h_i = V_i M^{-1} V_i'`` and ``V a = V M_obs^{-1} V' (h * W')``, which the
        derivatives in parameters acting on the observations other than through ``eta`` need
        (:mod:`mixedfx.core.laplace_general`).  With ``mode_derivatives`` also
        ``du / d(theta, beta)`` and a function ``r -> M_obs^{-1} V' r`` (for the modes'
        derivatives in further parameters).  None if a factor fails."""
        out = self._parts(theta, u, eta, mu, 1.0, mode_derivatives)
        if out is None or not mode_derivatives:
            return out
        grad, du, _, vals, _, lev, Va, Mo = out
        return grad, lev, Va, du, lambda r: Mo.solve(self._vt_times(vals, r))

    def profiled_gradient(self, theta, u, eta, mu, phi: float = 1.0) -> np.ndarray | None:
        """``dD1 / dtheta`` for ``D1(theta) = D(theta, beta_hat(theta))``, ``beta_hat`` from the joint
        PIRLS solution (stage 1, lme4's ``nAGQ = 0``; ``u``, ``eta``, ``mu`` at that solution).

        ``beta_hat`` solves ``X's = 0`` with ``u = u_hat(theta, beta)``, so
        ``X'W_obs (dV_j u + V du/dtheta_j + (X + V du/dbeta) dbeta/dtheta_j) = 0`` gives
        ``dbeta/dtheta``, and ``dD1/dtheta = dD/dtheta + dD/dbeta dbeta/dtheta``.
        """
        out = self._parts(theta, u, eta, mu, phi, True)
        if out is None:
            return None
        grad, du, zeta, vals, Wo = out[:5]
        k = len(self.theta_map)
        Vdu = self._v_times(vals, du)                              # (n, m)
        WX = Wo[:, None] * self.X
        A = WX.T @ (self.X + Vdu[:, k:])
        B = WX.T @ (zeta + Vdu[:, :k])
        try:
            dbeta = -np.linalg.solve(A, B)
        except np.linalg.LinAlgError:
            return None
        return grad[:k] + grad[k:] @ dbeta

    def _parts(self, theta, u, eta, mu, phi, mode_derivatives):
        fam, y, w = self.family, self.y, self.w
        W, dW, s, Wo = fam.working_derivatives(y, eta, mu, w)
        vals = self._values(theta)
        M = _Blocked(self, vals, W)
        if not M.ok:
            return None
        canonical = np.all(np.abs(Wo - W) <= 1e-12 * np.abs(W))    # canonical link: W_obs = W
        Mo = M if canonical else _Blocked(self, vals, Wo)
        if not Mo.ok:
            return None
        Minv = M.local_inverse()
        t = Minv[:, :, 0] * vals[:, :1]
        for b in range(1, self.P):
            t += Minv[:, :, b] * vals[:, b:b + 1]           # (M^{-1} V_i')[cols_i]
        lev = np.einsum("na,na->n", vals, t)                 # leverages h
        c = lev * dW
        a = Mo.solve(self._vt_times(vals, c))
        Va = self._v_times(vals, a)
        e = -2.0 * s / phi + c - Wo * Va
        Q = e[:, None] * u[self.cols] + s[:, None] * a[self.cols] + 2.0 * W[:, None] * t
        grad = np.concatenate([self._theta_reduce(Q), self.X.T @ e])
        if not mode_derivatives:
            return grad, lev, Va
        # M_obs du = dV's - V' W_obs (X dbeta + dV u): one right-hand side per parameter
        dvs, zeta = [], []
        for k, r, cc in self.theta_map:
            zr = self.blocks[k][1][:, r]
            col = self.cols[:, self.pos[k] + cc]
            zeta.append(zr * u[col])                         # dV_j u
            dvs.append(np.bincount(col, zr * s, minlength=self.q))
        zeta = np.column_stack(zeta)
        rhs = np.column_stack(dvs + [np.zeros((self.q, self.X.shape[1]))])
        rhs -= self._vt_times(vals, Wo[:, None] * np.hstack([zeta, self.X]))
        return grad, Mo.solve(rhs), zeta, vals, Wo, lev, Va, Mo


def differenced_hessian(gradient_at, x: np.ndarray, h=1e-4, du: np.ndarray | None = None):
    """Central differences of an analytic gradient: column ``j`` is
    ``(g(x + h_j e_j) - g(x - h_j e_j)) / (2 h_j)``, then symmetrized (``h`` a scalar or one step
    per coordinate).  ``gradient_at(z, u0)`` gets the first-order prediction ``u0 = h_j du[:, j]``
    (signed) of the change in the modes when ``du`` is given (else None).

    Returns ``(H, err)`` with ``err`` the largest asymmetry ``|H_ij - H_ji|`` before
    symmetrizing (an estimate of the differencing error), or None if a gradient fails.
    """
    x = np.asarray(x, float)
    return gradient_hessian(lambda z: gradient_at(z, None if du is None else du @ (z - x)), x, h)


def agq_gradient(family, y, w, X, codes, z, nlevels: int, lam: float, u, eta, mu, nodes, log_weights):
    """Gradient over ``(theta, beta)`` of the adaptive Gauss-Hermite deviance of one scalar term
    without a dispersion (``phi = 1``), at the PIRLS modes ``u`` (``eta``, ``mu``).

    Group ``g`` (rows ``i``, covariate ``z_i``, ``eta_i(v) = a_i + lam z_i v``) contributes
    ``log I_g = log(sqrt(2) sigma_g) + LSE_k T_gk``, ``T_gk = log w_k + x_k^2 + l_g(v_k) - v_k^2 / 2
    - log(2 pi) / 2``, with ``v_k = u_g + sqrt(2) sigma_g x_k`` and ``sigma_g = L_g^{-1}``,
    ``L_g^2 = 1 + lam^2 sum W_i z_i^2`` (IRLS weights at the mode).  With ``pi_gk`` the softmax
    of ``T_g.`` over the nodes and ``'`` a derivative in one parameter,
    ``(log I_g)' = sigma'/sigma + sum_k pi_gk (sum_i s_ik eta_ik' - v_k v_k')``, where
    ``eta_ik' = a_i' + z_i (lam' v_k + lam v_k')``, ``v_k' = u_g' + sqrt(2) x_k sigma_g'``,
    the mode's ``u_g' (1 + lam^2 sum W_obs z^2) = lam' sum z s - lam sum z W_obs (a' + z lam' u_g)``
    and ``(L_g^2)' = 2 lam lam' sum W z^2 + lam^2 sum W' z^2 eta_i'`` at the mode.
    """
    W, dW, s, Wo = family.working_derivatives(y, eta, mu, w)

    def per_group(v):
        return np.bincount(codes, v, minlength=nlevels)
    z2 = z * z
    L2 = 1.0 + lam * lam * per_group(W * z2)
    sigma = 1.0 / np.sqrt(L2)
    r2 = np.sqrt(2.0)
    V = u[None, :] + (r2 * nodes)[:, None] * sigma[None, :]                    # (nodes, groups)
    a = eta - lam * z * u[codes]
    ETA = a[None, :] + (lam * z)[None, :] * V[:, codes]
    MU = family.link.inverse(ETA)
    me = family.link.mu_eta(ETA)
    S = w * (y - MU) * me / family.variance(MU)                                # scores at the nodes
    K = len(nodes)
    index = (codes[None, :] + nlevels * np.arange(K)[:, None]).ravel()
    ll = np.bincount(index, family.loglik_terms(y, MU, w).ravel(), minlength=K * nlevels).reshape(K, nlevels)
    T = log_weights[:, None] + ll - 0.5 * V * V
    T -= T.max(axis=0)
    pi = np.exp(T)
    pi /= pi.sum(axis=0)
    Ev, Exv = np.sum(pi * V, axis=0), np.sum(pi * V * nodes[:, None], axis=0)
    P = pi[:, codes]                                                            # (nodes, n)
    r = np.sum(P * S, axis=0)
    A = per_group(z * r)
    B = per_group(z * np.sum(P * V[:, codes] * S, axis=0))
    C = per_group(z * np.sum(P * nodes[:, None] * S, axis=0))
    Do = 1.0 + lam * lam * per_group(Wo * z2)
    ug = u

    def dlogI(du, dL2, extra):
        dsig_rel = -0.5 * dL2 / L2                                              # sigma'/sigma
        dsig = sigma * dsig_rel
        return dsig_rel + extra + lam * du * A + lam * r2 * dsig * C - du * Ev - r2 * dsig * Exv
    # theta (lam' = 1, a' = 0)
    du = (per_group(z * s) - lam * ug * per_group(Wo * z2)) / Do
    dL2 = 2.0 * lam * per_group(W * z2) + lam * lam * per_group(dW * z2 * z * (ug + lam * du)[codes])
    g_theta = -2.0 * np.sum(dlogI(du, dL2, B))
    # beta_j (lam' = 0, a' = X_j)
    g_beta = np.empty(X.shape[1])
    for j in range(X.shape[1]):
        xj = X[:, j]
        du = -lam * per_group(z * Wo * xj) / Do
        dL2 = lam * lam * per_group(dW * z2 * (xj + lam * z * du[codes]))
        g_beta[j] = -2.0 * (np.sum(dlogI(du, dL2, 0.0)) + xj @ r)
    return np.concatenate([[g_theta], g_beta])
