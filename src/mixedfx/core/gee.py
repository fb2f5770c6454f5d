"""Generalized estimating equations (Liang and Zeger 1986) on arrays, with geepack's estimators.

Rows come sorted by cluster (``starts`` gives the cluster boundaries) with a 0-based *wave* per
row: the position of the row in its cluster's correlation matrix (its position in the cluster,
or the rank of its time among the distinct times).  Writing ``A_i = diag(V(mu_ij))``,
``W_i = diag(w_ij)`` (prior weights), ``Delta_i = diag(dmu/deta)`` and the working covariance
``V_i = phi A_i^{1/2} R_i(alpha) A_i^{1/2}``, the mean parameters solve

    sum_i D_i' W_i^{1/2} V_i^{-1} W_i^{1/2} (y_i - mu_i) = 0,    D_i = Delta_i X_i,

by Fisher scoring.  As in geepack's ``geese``, each iteration takes one scoring step for beta and
then re-estimates the scale and the correlation from the Pearson residuals
``r_ij = (y_ij - mu_ij) / sqrt(V(mu_ij))``:

* ``phi = sum w r^2 / sum w`` (no degrees-of-freedom correction);
* with ``z_ijk = r_ij r_ik / phi`` over the pairs j < k of a cluster and pair weights
  ``w_ij w_ik``, the correlation parameters solve ``sum w w E' (z - rho(alpha)) = 0`` with
  ``E = d rho / d alpha`` (one Gauss-Newton step per iteration).  For the exchangeable and
  unstructured structures rho is linear in alpha, so alpha is the weighted mean of ``z`` over all
  pairs (exchangeable) or over the pairs of waves (j, k) (unstructured).  For AR(1)
  ``rho_jk = alpha^|t_j - t_k|`` over *all* pairs, not only the lag-1 pairs.

The covariance of beta-hat is the sandwich ``B^{-1} M B^{-1}`` with
``B = sum D~_i' R_i^{-1} D~_i / phi`` (``D~`` the standardized ``W^{1/2} A^{-1/2} D``) and
``M = sum U_i U_i'`` the outer products of the cluster scores; ``B^{-1}`` is the model-based
("naive") covariance.  Mancl and DeRouen (2001) replace ``U_i`` by ``D' V^{-1} (I - H_ii)^{-1} r``,
Kauermann and Carroll (2001) by ``D' V^{-1} (I - H_ii)^{-1/2} r`` (in standardized coordinates),
``H_ii = D_i B^{-1} D_i' V_i^{-1}``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = ["CORSTRS", "ClusterLayout", "GEESolution", "cluster_layout", "fit_gee", "glm_start",
           "corr_matrix", "vcov_kinds", "quasi_loglik", "valid_mu", "GEENumericalError"]

CORSTRS = ("independence", "exchangeable", "ar1", "unstructured")


class GEENumericalError(ArithmeticError):
    """The estimating equations cannot be solved (singular information or working correlation)."""


@dataclass(frozen=True)
class Pattern:
    """Clusters sharing one set of waves: ``rows`` (m, s) row indices, ``waves`` (s,), ``n_waves`` T.

    The pairs j < k (``pair_a``, ``pair_b``), their ``lag`` |wave_j - wave_k| and the index
    ``uidx`` of their unstructured parameter are built on first use (AR(1), unstructured).
    """
    rows: np.ndarray
    waves: np.ndarray
    n_waves: int

    @cached_property
    def _pairs(self):
        a, b = np.triu_indices(len(self.waves), 1)
        wa, wb = self.waves[a], self.waves[b]
        return a, b, np.abs(wb - wa), _upper_index(wa, wb, self.n_waves)

    @property
    def pair_a(self) -> np.ndarray:
        return self._pairs[0]

    @property
    def pair_b(self) -> np.ndarray:
        return self._pairs[1]

    @property
    def lag(self) -> np.ndarray:
        return self._pairs[2]

    @property
    def uidx(self) -> np.ndarray:
        return self._pairs[3]


@dataclass(frozen=True)
class ClusterLayout:
    """Clusters of sorted rows: ``starts`` (K + 1,), ``sizes`` (K,), ``waves`` (n,), ``n_waves``."""
    starts: np.ndarray
    sizes: np.ndarray
    waves: np.ndarray
    n_waves: int
    patterns: tuple[Pattern, ...]
    cluster_of_pattern: tuple[np.ndarray, ...]   # for each pattern, the clusters (0..K-1) in it

    @property
    def n_clusters(self) -> int:
        return len(self.sizes)


def _upper_index(a, b, T: int):
    """Index of the pair (a, b), a < b, in the order (0,1), (0,2), ..., (0,T-1), (1,2), ..."""
    return a * T - a * (a + 1) // 2 + (b - a - 1)


def cluster_layout(codes: np.ndarray, waves: np.ndarray | None) -> tuple[np.ndarray, ClusterLayout]:
    """Sort rows by cluster code, then wave (stable), and group the clusters by their waves.

    ``codes`` (n,) integer cluster codes; ``waves`` (n,) 0-based integer waves, or None for the
    position of the row in its cluster (in the given row order).  Returns ``(order, layout)``:
    ``order`` sorts the rows (apply it to y, X, ...).  Raises ValueError when a cluster has the
    same wave twice.
    """
    codes = np.asarray(codes, dtype=np.int64)
    n = len(codes)
    if waves is None:
        order = np.argsort(codes, kind="stable")
        sc = codes[order]
        starts = np.flatnonzero(np.r_[True, sc[1:] != sc[:-1], True])
        sizes = np.diff(starts)
        wv = np.arange(n) - np.repeat(starts[:-1], sizes)
    else:
        waves = np.asarray(waves, dtype=np.int64)
        order = np.lexsort((waves, codes))
        sc = codes[order]
        starts = np.flatnonzero(np.r_[True, sc[1:] != sc[:-1], True])
        sizes = np.diff(starts)
        wv = waves[order]
        dup = np.flatnonzero((sc[1:] == sc[:-1]) & (wv[1:] == wv[:-1]))
        if len(dup):
            raise ValueError(f"cluster code {int(sc[dup[0]])} has wave {int(wv[dup[0]])} twice")
    T = int(wv.max()) + 1 if n else 0
    groups: dict = {}
    for k, (s0, s) in enumerate(zip(starts[:-1], sizes)):
        groups.setdefault(tuple(wv[s0:s0 + s].tolist()), []).append(k)
    patterns, members = [], []
    for key, ks in groups.items():
        w = np.array(key, dtype=np.int64)
        s = len(w)
        ks = np.array(ks, dtype=np.int64)
        rows = starts[ks][:, None] + np.arange(s)[None, :]
        patterns.append(Pattern(rows, w, T))
        members.append(ks)
    return order, ClusterLayout(starts, sizes, wv, T, tuple(patterns), tuple(members))


def n_alpha(corstr: str, layout: ClusterLayout) -> int:
    """Number of working-correlation parameters."""
    if corstr == "independence":
        return 0
    if corstr == "unstructured":
        return layout.n_waves * (layout.n_waves - 1) // 2
    return 1


def corr_matrix(corstr: str, alpha: np.ndarray, waves: np.ndarray, n_waves: int) -> np.ndarray:
    """The working correlation ``R`` for a cluster with the given (sorted) waves."""
    waves = np.asarray(waves, dtype=np.int64)
    s = len(waves)
    if corstr == "independence" or s == 1:
        return np.eye(s)
    lag = np.abs(waves[:, None] - waves[None, :])
    if corstr == "exchangeable":
        return np.where(lag == 0, 1.0, float(alpha[0]))
    if corstr == "ar1":
        with np.errstate(all="ignore"):
            return np.where(lag == 0, 1.0, float(alpha[0]) ** lag)
    full = np.eye(n_waves)
    iu = np.triu_indices(n_waves, 1)
    full[iu] = alpha
    full[(iu[1], iu[0])] = alpha
    return full[np.ix_(waves, waves)]


def valid_mu(family, mu) -> bool:
    """geepack's validMu: finite means inside the family's range."""
    if not np.all(np.isfinite(mu)):
        return False
    name = family.name
    if name == "binomial":
        return bool(np.all((mu > 0) & (mu < 1)))
    if name in ("poisson", "Gamma", "gamma"):
        return bool(np.all(mu > 0))
    return True


def glm_start(y, X, offset, w, family, maxit: int = 100, tol: float = 1e-12) -> np.ndarray:
    """The GLM (independence) estimate by IRLS from R's ``mustart``: geepack's starting beta."""
    link = family.link
    mu = family.initial_mu(y, w)
    eta = link.link(mu)
    beta = None
    dev_old = np.inf
    for _ in range(maxit):
        me = link.mu_eta(eta)
        W = w * me * me / family.variance(mu)
        z = eta - offset + (y - mu) / me
        sw = np.sqrt(W)
        new, *_ = np.linalg.lstsq(X * sw[:, None], z * sw, rcond=None)
        step = new if beta is None else new - beta
        base = np.zeros_like(new) if beta is None else beta
        for _half in range(60):
            cand = base + step
            eta_c = X @ cand + offset
            mu_c = link.inverse(eta_c)
            if valid_mu(family, mu_c):
                break
            step = step / 2
        else:
            raise GEENumericalError("the GLM start gives means outside the family's range at every step length")
        beta, eta, mu = cand, eta_c, mu_c
        dev = family.deviance(y, mu, w)
        if abs(dev - dev_old) <= tol * (abs(dev) + 0.1):
            break
        dev_old = dev
    return beta


@dataclass(frozen=True)
class _Pieces:
    """Per pattern: standardized D (m, s, p), residuals e (m, s), Pearson r (m, s), w (m, s)."""
    D: list
    e: list
    r: list
    w: list


def _pieces(beta, y, X, offset, w, family, layout: ClusterLayout) -> tuple[_Pieces, np.ndarray, np.ndarray]:
    link = family.link
    eta = X @ beta + offset
    mu = link.inverse(eta)
    sv = np.sqrt(family.variance(mu))
    me = link.mu_eta(eta)
    sw = np.sqrt(w)
    Dfull = X * (sw * me / sv)[:, None]
    r = (y - mu) / sv
    e = sw * r
    P = _Pieces([], [], [], [])
    for pat in layout.patterns:
        P.D.append(Dfull[pat.rows])
        P.e.append(e[pat.rows])
        P.r.append(r[pat.rows])
        P.w.append(w[pat.rows])
    return P, eta, mu


def _rinvs(corstr, alpha, layout: ClusterLayout) -> list:
    """Per pattern, what applying ``R^{-1}`` needs: None (identity), ``("exch", a, s)`` (closed
    form ``R^{-1} = (I - c 11') / (1 - a)``, ``c = a / (1 - a + s a)``), ``("ar1", diag, offdiag)``
    (the tridiagonal inverse of a Markov chain with consecutive correlations ``a^(t_j+1 - t_j)``)
    or the inverse matrix."""
    out = []
    for pat in layout.patterns:
        s = len(pat.waves)
        if corstr == "independence" or s == 1:
            out.append(None)
            continue
        if corstr == "exchangeable":
            a = float(alpha[0])
            if not (abs(1 - a) > 1e-12 and abs(1 - a + s * a) > 1e-12):
                raise GEENumericalError(f"the exchangeable working correlation of a cluster of {s} is singular at "
                                        f"alpha = {a:.6g}")
            out.append(("exch", a, s))
            continue
        if corstr == "ar1":
            a = float(alpha[0])
            with np.errstate(all="ignore"):
                rho = a ** np.diff(pat.waves).astype(float)      # consecutive correlations (Markov chain)
            if not np.all(np.abs(np.abs(rho) - 1) > 1e-12):     # (valid for |rho| > 1 too, as geepack goes on)
                raise GEENumericalError(f"the AR(1) working correlation is singular at alpha = {a:.6g}")
            c = 1.0 / (1.0 - rho * rho)
            out.append(("ar1", np.r_[1.0, c] + np.r_[rho * rho * c, 0.0], -rho * c))
            continue
        R = corr_matrix(corstr, alpha, pat.waves, layout.n_waves)
        try:
            Rinv = np.linalg.inv(R)
        except np.linalg.LinAlgError:
            raise GEENumericalError(f"the working correlation matrix is singular at alpha = "
                                    f"{np.round(alpha, 6).tolist()}") from None
        if not np.all(np.isfinite(Rinv)):
            raise GEENumericalError(f"the working correlation matrix is singular at alpha = "
                                    f"{np.round(alpha, 6).tolist()}")
        out.append(Rinv)
    return out


def _apply_rinv(Rinv, D: np.ndarray) -> np.ndarray:
    """``R^{-1} D`` for a batch ``D`` (m, s, p) or (m, s)."""
    if Rinv is None:
        return D
    if isinstance(Rinv, tuple) and Rinv[0] == "exch":
        _, a, s = Rinv
        c = a / (1 - a + s * a)
        return (D - c * D.sum(axis=1, keepdims=True)) / (1 - a)
    if isinstance(Rinv, tuple):            # AR(1): R^{-1} is tridiagonal
        _, dg, off = Rinv
        if D.ndim == 3:
            dg, off = dg[:, None], off[:, None]
        out = dg * D
        out[:, :-1] += off * D[:, 1:]
        out[:, 1:] += off * D[:, :-1]
        return out
    return np.matmul(Rinv, D) if D.ndim == 3 else D @ Rinv.T


def _bread_scores(P: _Pieces, Rinvs, phi: float, layout: ClusterLayout, p: int):
    """``B = sum D' R^-1 D / phi`` and the cluster scores ``U_i = D_i' R_i^-1 e_i / phi`` (K, p)."""
    B = np.zeros((p, p))
    U = np.zeros((layout.n_clusters, p))
    for D, e, Rinv, ks in zip(P.D, P.e, Rinvs, layout.cluster_of_pattern):
        RD = _apply_rinv(Rinv, D)                     # (m, s, p)
        B += np.einsum("msp,msq->pq", D, RD)
        U[ks] = np.einsum("msp,ms->mp", RD, e)
    return B / phi, U / phi


def _update_phi(P: _Pieces) -> float:
    num = sum(float(np.sum(w * r * r)) for r, w in zip(P.r, P.w))
    den = sum(float(np.sum(w)) for w in P.w)
    return num / den


def _lag_sums(waves: np.ndarray, v: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``S_d = sum_i sum_{pairs j<k at lag d} v_ij v_ik`` and the same of ``w`` for d = 0..span-1.

    The values are placed at their waves (zeros in the gaps), so the lag sums are
    autocorrelations: a loop over the lags for short spans, an FFT for long ones.
    """
    w0 = waves - waves[0]
    span = int(w0[-1]) + 1
    Vv = np.zeros((len(v), span))
    Vw = np.zeros((len(v), span))
    Vv[:, w0] = v
    Vw[:, w0] = w
    if span <= 128:
        S = np.array([0.0] + [float(np.sum(Vv[:, :-d] * Vv[:, d:])) for d in range(1, span)])
        Wl = np.array([0.0] + [float(np.sum(Vw[:, :-d] * Vw[:, d:])) for d in range(1, span)])
        return S, Wl
    nfft = 1 << int(np.ceil(np.log2(2 * span)))
    out = []
    for V in (Vv, Vw):
        F = np.fft.rfft(V, nfft, axis=1)
        out.append(np.fft.irfft((F * F.conj()).real.sum(axis=0), nfft)[:span])
    return out[0], out[1]


def _update_alpha(corstr, alpha, P: _Pieces, phi, layout: ClusterLayout) -> np.ndarray:
    """One Gauss-Newton step of ``sum ww E' (z - rho(alpha)) = 0`` (exact for linear rho)."""
    if corstr == "independence":
        return alpha
    q = len(alpha)
    H = np.zeros(q)
    G = np.zeros(q)
    for pat, r, w in zip(layout.patterns, P.r, P.w):
        s = len(pat.waves)
        if s < 2:
            continue
        if corstr == "exchangeable":          # sums over pairs j < k without forming them
            wr = w * r
            H[0] += 0.5 * float(np.sum(w.sum(axis=1) ** 2 - (w * w).sum(axis=1)))
            G[0] += 0.5 * float(np.sum(wr.sum(axis=1) ** 2 - (wr * wr).sum(axis=1))) / phi
            continue
        if corstr == "ar1":                   # the pairs enter through their lag only
            S, Wl = _lag_sums(pat.waves, w * r, w)
            d = np.arange(1, len(S), dtype=float)
            with np.errstate(all="ignore"):
                rho = alpha[0] ** d
                E = np.where(d == 1, 1.0, d * alpha[0] ** (d - 1))
            H[0] += np.sum(Wl[1:] * E * E)
            G[0] += np.sum(E * (S[1:] / phi - Wl[1:] * rho))
            continue
        npairs = s * (s - 1) // 2
        step = max(1, int(4_000_000 // npairs))
        for c0 in range(0, len(r), step):        # chunks of clusters: (chunk, npairs) arrays stay small
            rc, wc = r[c0:c0 + step], w[c0:c0 + step]
            z = rc[:, pat.pair_a] * rc[:, pat.pair_b] / phi
            ww = wc[:, pat.pair_a] * wc[:, pat.pair_b]
            H += np.bincount(pat.uidx, ww.sum(axis=0), minlength=q)
            G += np.bincount(pat.uidx, np.sum(ww * (z - alpha[pat.uidx]), axis=0), minlength=q)
    if corstr == "exchangeable" and H[0] > 0:
        G[0] -= alpha[0] * H[0]
    if np.any(H <= 0):
        raise GEENumericalError("some correlation parameters have no pairs of observations to estimate them from "
                                "(no cluster has two rows at the times they need); use corstr='independence'")
    return alpha + G / H


@dataclass(frozen=True)
class GEESolution:
    """A GEE fit on sorted rows.

    ``beta``, ``alpha`` (working-correlation parameters), ``phi`` (scale); ``bread`` ``B`` (its
    inverse is the naive covariance) and cluster ``scores`` (K, p) at the estimates; ``eta``,
    ``mu`` (sorted rows); ``iterations``; ``converged``; ``max_step`` the last step (in the units
    of the convergence criterion); ``corr_pd`` is False when the working correlation matrix is
    not positive definite at the estimate.
    """
    beta: np.ndarray
    alpha: np.ndarray
    phi: float
    bread: np.ndarray
    scores: np.ndarray
    eta: np.ndarray
    mu: np.ndarray
    iterations: int
    converged: bool
    max_step: float
    corr_pd: bool

    @property
    def vcov_naive(self) -> np.ndarray:
        return np.linalg.inv(self.bread)

    @property
    def vcov_robust(self) -> np.ndarray:
        Bi = np.linalg.inv(self.bread)
        return Bi @ (self.scores.T @ self.scores) @ Bi


def fit_gee(y, X, offset, w, family, layout: ClusterLayout, corstr: str, maxiter: int = 100,
            tol: float = 1e-8, beta0=None) -> GEESolution:
    """Solve the GEE (see the module docstring) by geepack's iteration.

    Each iteration: one Fisher-scoring step for beta (halved until the means are valid), then
    phi and alpha from the new Pearson residuals.  Converged when the beta step is below ``tol``
    times beta's model-based standard errors, phi changes by less than ``tol`` relatively and
    alpha by less than ``tol`` (a criterion free of the units of y and X).
    """
    if corstr not in CORSTRS:
        raise ValueError(f"unknown corstr {corstr!r}; use one of {', '.join(CORSTRS)}")
    y, X = np.asarray(y, float), np.asarray(X, float)
    offset, w = np.asarray(offset, float), np.asarray(w, float)
    p = X.shape[1]
    beta = glm_start(y, X, offset, w, family) if beta0 is None else np.asarray(beta0, float)
    alpha = np.zeros(n_alpha(corstr, layout))
    P, eta, mu = _pieces(beta, y, X, offset, w, family, layout)
    r_all = (y - mu) / np.sqrt(family.variance(mu))
    phi = float(np.mean(r_all * r_all))              # geepack's start: lm of r^2 on the scale design
    converged, it, step_size = False, 0, np.inf
    for it in range(1, maxiter + 1):
        Rinvs = _rinvs(corstr, alpha, layout)
        B, U = _bread_scores(P, Rinvs, phi, layout, p)
        try:
            step = np.linalg.solve(B, U.sum(axis=0))
            se = np.sqrt(np.abs(np.diag(np.linalg.inv(B))))
            se = np.where(se > 0, se, 1.0)
        except np.linalg.LinAlgError:
            raise GEENumericalError(f"the GEE information matrix became singular at iteration {it} (working "
                                    f"correlation parameters {np.round(alpha, 4).tolist()}): the working "
                                    "correlation degenerates; use a simpler corstr") from None
        for _half in range(60):
            new = beta + step
            mu_new = family.link.inverse(X @ new + offset)
            if valid_mu(family, mu_new):
                break
            step = step / 2
        else:
            raise GEENumericalError("every step of the beta update gives means outside the family's range")
        beta = new
        P, eta, mu = _pieces(beta, y, X, offset, w, family, layout)
        phi_new = _update_phi(P)
        if not (np.isfinite(phi_new) and phi_new > 0):
            raise GEENumericalError("the scale estimate is zero or not finite (the model fits the data exactly)")
        alpha_new = _update_alpha(corstr, alpha, P, phi_new, layout)
        step_size = max(float(np.max(np.abs(step) / se)) if p else 0.0, abs(phi_new - phi) / phi,
                        float(np.max(np.abs(alpha_new - alpha))) if len(alpha) else 0.0)
        phi, alpha = phi_new, alpha_new
        if not np.all(np.isfinite(alpha)):
            raise GEENumericalError("the correlation estimate is not finite")
        if step_size <= tol:
            converged = True
            break
    Rinvs = _rinvs(corstr, alpha, layout)
    B, U = _bread_scores(P, Rinvs, phi, layout, p)
    pd_ok = _corr_pd(corstr, alpha, layout)
    return GEESolution(beta, alpha, phi, B, U, eta, mu, it, converged, step_size, pd_ok)


def _corr_pd(corstr, alpha, layout: ClusterLayout) -> bool:
    """Is every cluster's working correlation positive definite?"""
    smax = int(layout.sizes.max())
    if corstr == "independence" or smax < 2:
        return True
    if corstr == "exchangeable":
        return bool(-1.0 / (smax - 1) < alpha[0] < 1)
    if corstr == "ar1":
        return bool(abs(alpha[0]) < 1)
    return all(np.all(np.linalg.eigvalsh(corr_matrix(corstr, alpha, pat.waves, layout.n_waves)) > 0)
               for pat in layout.patterns)


def _sym_inv_sqrt(M: np.ndarray) -> np.ndarray:
    """Symmetric inverse square root of a batch of symmetric positive definite matrices."""
    vals, vecs = np.linalg.eigh(M)
    if np.any(vals <= 0):
        raise GEENumericalError("a cluster has leverage 1 (I - H_ii is singular): the small-sample "
                                "corrections are not defined")
    return np.einsum("...ij,...j,...kj->...ik", vecs, 1.0 / np.sqrt(vals), vecs)


def vcov_kinds(sol: GEESolution, y, X, offset, w, family, layout: ClusterLayout, corstr: str,
               kinds=("mancl-derouen", "kauermann-carroll")) -> dict:
    """Small-sample corrected sandwiches at the solution: ``{kind: (p, p) covariance}``.

    In standardized coordinates (``D^ = G D~``, ``e^ = G e`` with ``G = (R / phi)^{-1/2}``
    symmetric), ``H^_i = D^_i B^{-1} D^_i'`` is symmetric and the corrected scores are
    ``D^' (I - H^)^{-1} e^`` (Mancl-DeRouen) and ``D^' (I - H^)^{-1/2} e^`` (Kauermann-Carroll).
    """
    p = X.shape[1]
    P, _, _ = _pieces(sol.beta, y, X, offset, w, family, layout)
    Bi = np.linalg.inv(sol.bread)
    out = {k: np.zeros((layout.n_clusters, p)) for k in kinds}
    for pat, D, e, ks in zip(layout.patterns, P.D, P.e, layout.cluster_of_pattern):
        R = corr_matrix(corstr, sol.alpha, pat.waves, layout.n_waves) * sol.phi
        G = _sym_inv_sqrt(R)
        step = max(1, int(2_000_000 // len(pat.waves) ** 2))     # chunks of clusters: (chunk, s, s) arrays
        for c0 in range(0, len(ks), step):
            Dh = np.matmul(G, D[c0:c0 + step])                       # (m, s, p)
            eh = e[c0:c0 + step] @ G                                 # G symmetric
            H = np.einsum("msp,pq,mtq->mst", Dh, Bi, Dh)
            IH = np.eye(len(pat.waves))[None] - H
            for k in kinds:
                if k == "mancl-derouen":
                    try:
                        c = np.linalg.solve(IH, eh[..., None])[..., 0]
                    except np.linalg.LinAlgError:
                        raise GEENumericalError("a cluster has leverage 1 (I - H_ii is singular): the Mancl-DeRouen "
                                                "correction is not defined") from None
                else:
                    c = np.einsum("mst,mt->ms", _sym_inv_sqrt(IH), eh)
                out[k][ks[c0:c0 + step]] = np.einsum("msp,ms->mp", Dh, c)
    return {k: Bi @ (U.T @ U) @ Bi for k, U in out.items()}


def quasi_loglik(family, y, mu, w) -> float:
    """The (unscaled) quasi-likelihood of QIC, weighted by the prior weights: Poisson
    ``y log mu - mu``; Gaussian ``-(y - mu)^2 / 2``; binomial ``y log(mu/(1-mu)) + log(1-mu)``;
    Gamma ``-y/mu - log mu``."""
    name = family.name
    if name == "poisson":
        q = y * np.log(mu) - mu
    elif name == "gaussian":
        q = -0.5 * (y - mu) ** 2
    elif name == "binomial":
        q = y * np.log(mu / (1 - mu)) + np.log1p(-mu)
    elif name in ("Gamma", "gamma"):
        q = -y / mu - np.log(mu)
    else:
        raise ValueError(f"no quasi-likelihood for the {name} family")
    return float(np.sum(w * q))
