"""Kenward-Roger (1997) adjusted covariance of beta and denominator df, as pbkrtest.

Model: ``y ~ N(X beta, Sigma)``, ``Sigma = Z G Z' + sigma^2 W^{-1}`` (``W`` prior weights), linear in
the variance parameters ``gamma``: the lower-triangle elements of each term's covariance matrix
``G_k`` and ``sigma^2`` (pbkrtest's parameterization), so ``Sigma_i = dSigma/dgamma_i`` is
``Z D_i Z'`` (``D_i`` = ``E_ab + E_ba`` on every level of term ``k``) or ``W^{-1}``, and the
second derivatives ``R_ij`` vanish.  With ``Phi = (X' Sigma^{-1} X)^{-1}`` (REML estimates),

    P_i  = -X' Sigma^{-1} Sigma_i Sigma^{-1} X
    Q_ij =  X' Sigma^{-1} Sigma_i Sigma^{-1} Sigma_j Sigma^{-1} X
    I_ij =  1/2 [tr(Sigma^{-1} Sigma_i Sigma^{-1} Sigma_j) - 2 tr(Phi Q_ij) + tr(Phi P_i Phi P_j)]
    W    =  I^{-1}                                     (expected REML information)
    Phi_A = Phi + 2 Phi [sum_ij W_ij (Q_ij - P_i Phi P_j)] Phi

and for a contrast ``L`` (q x p), ``Theta = L' (L Phi L')^{-1} L``,
``A1 = sum W_ij tr(Theta Phi P_i Phi) tr(Theta Phi P_j Phi)``,
``A2 = sum W_ij tr(Theta Phi P_i Phi Theta Phi P_j Phi)``, ``B = (A1 + 6 A2) / (2q)``,
``g = ((q+1) A1 - (q+4) A2) / ((q+2) A2)``, ``c1, c2, c3 = (g, q - g, q + 2 - g) / (3q + 2(1 - g))``,
``E* = 1 / (1 - A2/q)``, ``V* = (2/q) (1 + c1 B) / ((1 - c2 B)^2 (1 - c3 B))``,
``rho = V* / (2 E*^2)``, ``df = 4 + (q + 2) / (q rho - 1)``, scale ``lambda = df / (E* (df - 2))`` and
``F = lambda (L beta)' (L Phi_A L')^{-1} (L beta) / q`` on ``(q, df)``.

No n x n matrix is formed: with ``Lambda`` the relative covariance factor, ``M = Lambda' Z'WZ
Lambda + I = L L'`` and ``F = Lambda M^{-1} Lambda'``, Woodbury gives
``Sigma^{-1} = sigma^{-2} (W - W Z F Z' W)``, so every trace and product above reduces to q x q
matrices (``Z' Sigma^{-1} Z``, ``Z' Sigma^{-1} W^{-1} Sigma^{-1} Z``) and n x p ones
(``Sigma^{-1} X``).  Cost: a few dense q x q products (q = total number of random effects).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.linalg import cho_factor, cho_solve, solve_triangular

from ..core.workspace import random_effects_matrix

__all__ = ["KenwardRoger", "MAX_Q"]

#: Largest number of random effects for which the dense q x q algebra is attempted.
MAX_Q = 12000


def _pairs(a: int, b: int) -> list[tuple[int, int]]:
    """``D = E_ab + E_ba`` (or ``E_aa``) as the ordered index pairs it sums over."""
    return [(a, a)] if a == b else [(a, b), (b, a)]


def _structure_jacobian(fit, params, s2: float) -> np.ndarray:
    """``d(G entries, sigma^2) / d(variance parameters)`` for a model with structured terms.

    Kenward-Roger's pieces are first formed for every entry ``(k, a, b)`` of each ``G_k`` and for
    ``sigma^2``; a structured term's ``G_k = sigma^2 lambda_k lambda_k'`` moves only along the
    derivatives of its parameters (and of ``sigma^2``), so the pieces are projected onto those
    directions (the adjustment does not depend on how the structure is parameterized; the second
    derivatives of ``G``, which pbkrtest's linear covariance models lack, are not included).
    Unstructured terms keep their entries as parameters.
    """
    layout, theta = fit.layout, np.asarray(fit.theta, float)
    cols: list[np.ndarray] = []
    row = {prm: i for i, prm in enumerate(params)}
    m_u = len(params) + 1
    sig = np.zeros(m_u)
    sig[-1] = 1.0
    for k, (sl, st) in enumerate(zip(layout.slices(), layout.structures)):
        pk = st.p
        entries = [(a, b) for b in range(pk) for a in range(b, pk)]
        if st.name == "us":
            for a, b in entries:
                e = np.zeros(m_u)
                e[row[(k, a, b)]] = 1.0
                cols.append(e)
            continue
        lam, Jl = st.lam(theta[sl]), st.lam_jacobian(theta[sl])
        S = lam @ lam.T
        for j in range(st.n_params):
            dS = Jl[:, :, j] @ lam.T + lam @ Jl[:, :, j].T
            e = np.zeros(m_u)
            for a, b in entries:
                e[row[(k, a, b)]] = s2 * dS[a, b]
            cols.append(e)
        for a, b in entries:
            sig[row[(k, a, b)]] = S[a, b]
    cols.append(sig)
    return np.column_stack(cols)


def _pieces(fit):
    """``(P, Q, K, Phi)`` of an LMM without a residual model (q x q algebra, see the module notes)."""
    d = fit.design
    X = np.asarray(d.X, float)
    n, p = X.shape
    w = np.ones(n) if d.weights is None else np.asarray(d.weights, float)
    blocks = [(b.codes, np.asarray(b.X, float), int(b.nlevels)) for b in d.blocks]
    q = sum(Xk.shape[1] * nl for _, Xk, nl in blocks)
    if q > MAX_Q:
        raise MemoryError(f"Kenward-Roger needs dense {q} x {q} matrices (q = number of random effects); "
                          f"above {MAX_Q} use ddf='satterthwaite'")
    lams = fit.layout.lambdas(np.asarray(fit.theta, float))
    Z = sp.hstack([random_effects_matrix(c, Xk, nl) for c, Xk, nl in blocks], format="csr")
    Lam = sp.block_diag([sp.kron(sp.identity(nl), lam) for (_, _, nl), lam in zip(blocks, lams)], format="csr")
    s2 = float(fit.sigma) ** 2
    WZ = Z.multiply(w[:, None]).tocsr()
    ZWZ = (Z.T @ WZ).toarray()
    LtZWZ = np.asarray(Lam.T @ ZWZ)                          # Lambda' Z'WZ  (q x q)
    M = np.asarray(Lam.T @ LtZWZ.T) + np.eye(q)              # Lambda' Z'WZ Lambda + I (Lambda sparse)
    cf = cho_factor(M, lower=True, check_finite=False)
    Lc = cf[0]
    Y = solve_triangular(Lc, LtZWZ, lower=True, check_finite=False)      # L^{-1} Lambda' Z'WZ
    Y2 = solve_triangular(Lc, Y, lower=True, trans="T", check_finite=False)   # M^{-1} Lambda' Z'WZ
    ZWZ -= Y.T @ Y
    C = ZWZ / s2                                             # Z' Sigma^-1 Z
    Cr = (ZWZ - Y2.T @ Y2) / s2 ** 2                         # Z' Sigma^-1 W^-1 Sigma^-1 Z
    Linv = solve_triangular(Lc, np.eye(q), lower=True, check_finite=False)
    Minv = Linv.T @ Linv
    tr_res = (n - 2 * (q - np.trace(Minv)) + (q - 2 * np.trace(Minv) + np.sum(Minv * Minv))) / s2 ** 2

    def sigma_inv(R):                                        # Sigma^{-1} R for an n x k array
        WR = w[:, None] * R
        t = Lam.T @ np.asarray(Z.T @ WR)
        return (WR - np.asarray(WZ @ (Lam @ cho_solve(cf, t, check_finite=False)))) / s2

    U = sigma_inv(X)                                         # Sigma^-1 X
    V = U / w[:, None]                                       # W^-1 Sigma^-1 X
    SV = sigma_inv(V)
    SX = np.asarray(Z.T @ U)                                 # Z' Sigma^-1 X   (q x p)
    RZX = np.asarray(Z.T @ SV)                               # Z' Sigma^-1 W^-1 Sigma^-1 X
    Phi = np.asarray(fit.vcov, float)

    # variance parameters: (term, a, b) for the lower triangle of each G_k, then sigma^2
    params, offs, off = [], [], 0
    for _, Xk, nl in blocks:
        pk = Xk.shape[1]
        offs.append(off)
        for b in range(pk):
            for a in range(b, pk):
                params.append((len(offs) - 1, a, b))
        off += pk * nl

    def idx(k, a):
        pk, nl = blocks[k][1].shape[1], blocks[k][2]
        return offs[k] + a + pk * np.arange(nl)

    m = len(params) + 1
    P = np.empty((m, p, p))
    Q = np.empty((m, m, p, p))
    K = np.empty((m, m))
    for i, (k, a, b) in enumerate(params):
        pr = _pairs(a, b)
        P[i] = -sum(SX[idx(k, x)].T @ SX[idx(k, y)] for x, y in pr)
        Q[i, -1] = sum(SX[idx(k, x)].T @ RZX[idx(k, y)] for x, y in pr)
        Q[-1, i] = Q[i, -1].T
        K[i, -1] = K[-1, i] = sum(np.trace(Cr[np.ix_(idx(k, y), idx(k, x))]) for x, y in pr)
        for j, (k2, a2, b2) in enumerate(params):
            pr2 = _pairs(a2, b2)
            Q[i, j] = sum(SX[idx(k, x)].T @ C[np.ix_(idx(k, y), idx(k2, u))] @ SX[idx(k2, v)]
                          for x, y in pr for u, v in pr2)
            K[i, j] = sum(np.sum(C[np.ix_(idx(k, y), idx(k2, u))] * C[np.ix_(idx(k2, v), idx(k, x))].T)
                          for x, y in pr for u, v in pr2)
    P[-1] = -U.T @ V
    Q[-1, -1] = V.T @ SV
    K[-1, -1] = tr_res
    if fit.layout.structured:      # restrict to the structures' variance parameters
        J = _structure_jacobian(fit, params, s2)
        P = np.einsum("ia,ipq->apq", J, P)
        Q = np.einsum("ia,jb,ijpq->abpq", J, J, Q)
        K = J.T @ K @ J
        m = J.shape[1]
    return P, Q, K, Phi


#: Largest number of rows for the dense Kenward-Roger of models with a residual model.
MAX_N_RESIDUAL = 2500


def _residual_pieces(fit):
    """``(P, Q, K, Phi)`` with ``correlation=`` / ``disp=``, densely (n x n): ``Sigma = Z G Z' +
    sigma^2 V(phi)``, ``V = W^-1/2 S R S W^-1/2``.  The variance parameters are the entries of each
    ``G_k`` (projected onto structured terms' parameters as in :func:`_structure_jacobian`),
    ``sigma^2`` and the residual parameters ``phi``, whose ``dV / dphi`` are central differences
    of the residual model's exact ``V``; the second derivatives are left out, as for structures."""
    from ..models.residual_fit import residual_model
    d = fit.design
    X = np.asarray(d.X, float)
    n, p = X.shape
    if n > MAX_N_RESIDUAL:
        raise MemoryError(f"Kenward-Roger with correlation= / disp= forms dense {n} x {n} matrices; above "
                          f"{MAX_N_RESIDUAL} rows use ddf='satterthwaite'")
    iw = np.ones(n) if d.weights is None else 1.0 / np.sqrt(np.asarray(d.weights, float))
    if fit.residual is None:        # the dense path for a model without one: V = W^-1
        par = np.zeros(0)

        def V(ph):
            return np.diag(iw ** 2)
    else:
        rm, par = residual_model(d), np.asarray(fit.residual.par, float)

        def V(ph):
            C = rm.color(ph, np.eye(n)) * iw[:, None]
            return C @ C.T
    s2 = float(fit.sigma) ** 2
    blocks = [(b.codes, np.asarray(b.X, float), int(b.nlevels)) for b in d.blocks]
    Z = sp.hstack([random_effects_matrix(c, Xk, nl) for c, Xk, nl in blocks], format="csr").toarray()
    lams = fit.layout.lambdas(np.asarray(fit.theta, float))
    G = sp.block_diag([sp.kron(sp.identity(nl), s2 * lam @ lam.T) for (_, _, nl), lam in zip(blocks, lams)]).toarray()
    V0 = V(par)
    Sigma = Z @ G @ Z.T + s2 * V0
    Si = np.linalg.inv(Sigma)
    derivs, params, off = [], [], 0
    for k, (_, Xk, nl) in enumerate(blocks):
        pk = Xk.shape[1]
        for b in range(pk):
            for a in range(b, pk):
                D = np.zeros((pk, pk))
                for x, y in _pairs(a, b):
                    D[x, y] = 1.0
                Zk = Z[:, off:off + pk * nl]
                derivs.append(Zk @ np.kron(np.eye(nl), D) @ Zk.T)
                params.append((k, a, b))
        off += pk * nl
    derivs.append(V0)                                           # sigma^2
    for j in range(len(par)):                                   # the residual parameters
        h = 1e-5 * max(1.0, abs(par[j]))
        e = np.zeros(len(par))
        e[j] = h
        derivs.append(s2 * (V(par + e) - V(par - e)) / (2 * h))
    SiX = Si @ X
    A = [Si @ Di for Di in derivs]                              # Sigma^-1 Sigma_i
    ASX = [Ai @ SiX for Ai in A]                                # Sigma^-1 Sigma_i Sigma^-1 X
    m = len(derivs)
    P = np.array([-SiX.T @ Di @ SiX for Di in derivs])
    Q = np.empty((m, m, p, p))
    K = np.empty((m, m))
    for i in range(m):
        for j in range(m):
            Q[i, j] = SiX.T @ derivs[i] @ ASX[j]
            K[i, j] = np.sum(A[i] * A[j].T)
    Phi = np.asarray(fit.vcov, float)
    if fit.layout.structured:
        nr = len(par)
        J = _structure_jacobian(fit, params, s2)               # (entries + sigma^2) x (structure params + 1)
        Jf = np.zeros((J.shape[0] + nr, J.shape[1] + nr))
        Jf[:J.shape[0], :J.shape[1]] = J
        Jf[J.shape[0]:, J.shape[1]:] = np.eye(nr)
        P = np.einsum("ia,ipq->apq", Jf, P)
        Q = np.einsum("ia,jb,ijpq->abpq", Jf, Jf, Q)
        K = Jf.T @ K @ Jf
    return P, Q, K, Phi


class KenwardRoger:
    """Adjusted covariance ``Phi_A`` and the pieces for KR df of any contrast (one fitted REML LMM).

    Parameters
    ----------
    fit : LmmFit
        A REML fit (``fit.design``, ``fit.theta``, ``fit.sigma``, ``fit.vcov``).
    dense : use the dense n x n pieces (the path of models with ``correlation=`` / ``disp=``)
        also without a residual model (a check of one path against the other).
    """

    def __init__(self, fit, dense: bool = False):
        if getattr(fit, "residual", None) is not None or dense:
            P, Q, K, Phi = _residual_pieces(fit)
        else:
            P, Q, K, Phi = _pieces(fit)
        m, p = len(P), Phi.shape[0]
        IE2 = np.empty((m, m))
        for i in range(m):
            for j in range(m):
                IE2[i, j] = K[i, j] - 2 * np.sum(Phi * Q[i, j].T) + np.trace(Phi @ P[i] @ Phi @ P[j])
        IE2 = 0.5 * (IE2 + IE2.T)
        # invert on the correlation scale: the variance parameters carry the data's units (G entries and
        # sigma^2 scale with the response squared, correlation parameters do not), so an absolute
        # eigenvalue threshold would depend on the units
        dg = np.sqrt(np.abs(np.diag(IE2)))
        dg = np.where(dg > 0, dg, 1.0)
        Cn = IE2 / np.outer(dg, dg)
        ev = np.linalg.eigvalsh(Cn)
        Wg = 2 * (np.linalg.inv(Cn) if np.min(np.abs(ev)) > 1e-10 else np.linalg.pinv(Cn)) / np.outer(dg, dg)
        Umat = np.zeros((p, p))
        for i in range(m):
            for j in range(m):
                Umat += Wg[i, j] * (Q[i, j] - P[i] @ Phi @ P[j])
        Umat = 0.5 * (Umat + Umat.T)
        self.Phi = Phi
        self.P = P
        self.W = Wg
        self.Phi_A = Phi + 2 * Phi @ Umat @ Phi
        self.beta = np.asarray(fit.beta, float)

    def _moments(self, L: np.ndarray) -> tuple[int, float, float]:
        """``(q, A1, A2)`` for the contrast ``L``."""
        q = int(np.linalg.matrix_rank(L))
        Theta = L.T @ np.linalg.solve(L @ self.Phi @ L.T, L)
        TP = [Theta @ self.Phi @ Pi @ self.Phi for Pi in self.P]
        tr = np.array([np.trace(t) for t in TP])
        A1 = float(tr @ self.W @ tr)
        A2 = float(sum(self.W[i, j] * np.sum(TP[i] * TP[j].T) for i in range(len(TP)) for j in range(len(TP))))
        return q, A1, A2

    @staticmethod
    def _df(q: int, A1: float, A2: float) -> float:
        B = (A1 + 6 * A2) / (2 * q)
        g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
        den = 3 * q + 2 * (1 - g)
        c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
        v0 = 1 + c1 * B
        v0 = 0.0 if abs(v0) < 1e-10 else v0
        rho = (1 - A2 / q) ** 2 / q * v0 / ((1 - c2 * B) ** 2 * (1 - c3 * B))
        return float(4 + (q + 2) / (q * rho - 1))

    def ddf(self, L: np.ndarray) -> float:
        """KR denominator df for the hypothesis ``L beta = 0`` (``L``: p-vector or q x p)."""
        L = np.atleast_2d(np.asarray(L, float))
        return self._df(*self._moments(L))

    def ftest(self, L: np.ndarray) -> tuple[float, int, float, float]:
        """``(F, numdf, dendf, scale)``: the scaled statistic ``lambda (L b)' (L Phi_A L')^{-1} (L b) / q``.

        ``lambda = df (1 - A2/q) / (df - 2)``, set to 1 when ``df`` is within 0.01 of 2 (pbkrtest).
        """
        L = np.atleast_2d(np.asarray(L, float))
        q, A1, A2 = self._moments(L)
        df = self._df(q, A1, A2)
        Lb = L @ self.beta
        wald = float(Lb @ np.linalg.pinv(L @ self.Phi_A @ L.T) @ Lb) / q
        lam = 1.0 if abs(df - 2) < 1e-2 else df * (1 - A2 / q) / (df - 2)
        return lam * wald, q, df, lam
