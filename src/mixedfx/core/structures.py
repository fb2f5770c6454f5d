"""Covariance structures of random-effects terms: parameters -> one block of Lambda.

A term with ``p`` columns has random effects ``b_g ~ N(0, sigma^2 lambda lambda')`` per level
``g``; a structure maps its parameter vector to the ``p x p`` lower-triangular relative factor
``lambda`` (residual variance one), with the derivatives the analytic gradient needs.  The
names and semantics follow glmmTMB (and lme4 2.0 for ``us``, ``diag``, ``cs``, ``ar1``):

========  ======================================================  =====================
name      relative covariance ``Sigma = lambda lambda'``          parameters
========  ======================================================  =====================
us        unstructured (lme4's default ``(x | g)``)                lower triangle of
                                                                   ``lambda`` (lme4's theta)
diag      ``diag(s_1^2, ..., s_p^2)``                              ``s_1..s_p``
homdiag   ``s^2 I``                                                ``s``
cs        ``D R D``, ``R = (1 - rho) I + rho J``                   ``s_1..s_p, a``
homcs     ``s^2 R`` with the ``cs`` correlation                    ``s, a``
ar1       ``s^2 R``, ``R_ij = rho^|i - j|``                        ``s, a``
ou        ``s^2 R``, ``R_ij = exp(-kappa |t_i - t_j|)``            ``s, a``
toep      ``D R D``, ``R_ij = r_|i - j|`` (any valid Toeplitz)     ``s_1..s_p, a_1..a_{p-1}``
========  ======================================================  =====================

with ``D = diag(|s|)``.  Standard deviations enter ``lambda`` through their absolute values, so
``Sigma`` is even in each of them: they are bounded below by zero like lme4's diagonal theta
entries, and an unbounded optimizer's answer is mapped back by taking absolute values.  Correlation
parameters are unconstrained reals mapped into their valid range:

* ``ar1``: ``rho = a / sqrt(1 + a^2)`` in (-1, 1);
* ``cs``, ``homcs``: ``rho = lo + (1 - lo) (1 + a / sqrt(1 + a^2)) / 2`` in ``(lo, 1)`` with
  ``lo = -1 / (p - 1)``, the range where ``R`` is positive definite;
* ``toep``: the partial autocorrelations ``phi_k = a_k / sqrt(1 + a_k^2)``, turned into
  autocorrelations ``r_1..r_{p-1}`` by the Durbin-Levinson recursion (every choice gives a
  positive definite ``R``, and every positive definite Toeplitz ``R`` is reached);
* ``ou``: ``kappa = exp(a) / u``, the decay rate per unit of the coordinate ``t`` (the numeric
  values of the ``numFactor`` levels), with ``u`` the mean spacing of the levels (so ``a`` does not
  depend on the units of ``t``); the correlation at distance ``d`` is ``exp(-kappa d)``.

``lambda = D chol(R)``, and the derivative of the Cholesky factor is
``d chol(R) = L Phi(L^-1 dR L^-T)`` with ``Phi`` the lower triangle with a halved diagonal.
"""
from __future__ import annotations

import numpy as np

__all__ = ["CovStructure", "Unstructured", "Diagonal", "Correlated", "make_structure", "STRUCTURES",
           "correlated_names"]

#: structure names accepted in formulas, as ``name(lhs | group)``
STRUCTURES = ("us", "diag", "homdiag", "cs", "homcs", "ar1", "ou", "toep")

#: structures with one standard deviation shared by every column
HOMOGENEOUS = ("homdiag", "homcs", "ar1", "ou")


def _tril_indices(p: int) -> tuple[np.ndarray, np.ndarray]:
    """Lower triangle, column-major (lme4's theta order)."""
    rows, cols = [], []
    for j in range(p):
        for i in range(j, p):
            rows.append(i)
            cols.append(j)
    return np.array(rows, dtype=int), np.array(cols, dtype=int)


class CovStructure:
    """Base class: a parameter vector -> the relative factor ``lambda`` of one term.

    Attributes
    ----------
    name : the formula name (``"us"``, ``"ar1"``...).  p : number of columns of the term.
    n_params : length of the parameter vector.
    scaling : how the standardized copy may rescale the term's columns: ``"center"``
        (centre on the intercept and scale each column: only ``us``), ``"column"`` (scale each
        column, no centring) or ``"common"`` (one scale for every column).
    """
    name = "base"
    scaling = "column"

    def __init__(self, p: int):
        self.p = int(p)

    # ------------------------------------------------------------ the map
    def lower_bounds(self) -> np.ndarray:
        raise NotImplementedError

    def initial(self) -> np.ndarray:
        raise NotImplementedError

    def lam(self, par: np.ndarray) -> np.ndarray:
        """The ``p x p`` lower-triangular relative factor."""
        raise NotImplementedError

    def lam_jacobian(self, par: np.ndarray) -> np.ndarray:
        """``d lambda / d par`` as a ``(p, p, n_params)`` array."""
        raise NotImplementedError

    def chain(self, par: np.ndarray, G: np.ndarray) -> np.ndarray:
        """Gradient wrt the parameters from ``G[a, b] = d f / d lambda[a, b]`` (lower triangle)."""
        J = self.lam_jacobian(par)
        return np.einsum("ab,abm->m", np.tril(G), J)

    def from_cov(self, S: np.ndarray) -> np.ndarray:
        """Parameters whose ``lambda lambda'`` is closest to the relative covariance ``S`` (exact
        when ``S`` has the structure): used for starting values."""
        raise NotImplementedError

    def scale(self, par: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Parameters of ``diag(t) Sigma diag(t)``: the same structure after the term's columns are
        multiplied by ``t`` (all equal for the ``"common"`` scaling)."""
        raise NotImplementedError

    def rectify(self, par: np.ndarray) -> np.ndarray:
        """The equivalent parameters with non-negative standard deviations."""
        lb = self.lower_bounds()
        out = np.array(par, float)
        out[lb == 0] = np.abs(out[lb == 0])
        return out

    def flip(self, par: np.ndarray, j: int) -> np.ndarray:
        """Parameters with the bounded component ``j`` negated and ``Sigma`` unchanged."""
        out = np.array(par, float)
        out[j] = -out[j]
        return out

    def names(self, group: str, cnames: tuple[str, ...]) -> list[str]:
        raise NotImplementedError

    # ------------------------------------------------------------ reporting
    def cov(self, par: np.ndarray) -> np.ndarray:
        lam = self.lam(par)
        return lam @ lam.T

    def natural(self, par: np.ndarray) -> dict:
        """The structure's own parameters on their natural scale (e.g. ``{"rho": 0.6}``)."""
        return {}

    def __repr__(self) -> str:
        return f"{self.name}(p={self.p})"

    def _key(self) -> tuple:
        times = getattr(self, "times", None)
        return (self.name, self.p, None if times is None else tuple(np.asarray(times, float).tolist()))

    def __eq__(self, other) -> bool:
        return isinstance(other, CovStructure) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


class Unstructured(CovStructure):
    """lme4's general positive semi-definite covariance: theta is the lower triangle of ``lambda``."""
    name = "us"
    scaling = "center"

    def __init__(self, p: int):
        super().__init__(p)
        self.rows, self.cols = _tril_indices(self.p)
        self.n_params = len(self.rows)

    def lower_bounds(self) -> np.ndarray:
        return np.where(self.rows == self.cols, 0.0, -np.inf)

    def initial(self) -> np.ndarray:
        return np.where(self.rows == self.cols, 1.0, 0.0)

    def lam(self, par):
        lam = np.zeros((self.p, self.p))
        lam[self.rows, self.cols] = par
        return lam

    def lam_jacobian(self, par):
        J = np.zeros((self.p, self.p, self.n_params))
        J[self.rows, self.cols, np.arange(self.n_params)] = 1.0
        return J

    def chain(self, par, G):
        return np.asarray(G)[self.rows, self.cols]

    def from_cov(self, S):
        w, V = np.linalg.eigh(0.5 * (S + S.T))
        half = V * np.sqrt(np.clip(w, 0.0, None))[None, :]
        R = np.linalg.qr(half.T, mode="r")
        F = R.T * np.where(np.diag(R) < 0, -1.0, 1.0)[None, :]
        return F[self.rows, self.cols]

    def scale(self, par, t):
        return self.from_cov(np.outer(t, t) * self.cov(par))

    def rectify(self, par):
        out = np.array(par, float)
        for j in range(self.p):
            col = self.cols == j
            if out[col & (self.rows == j)][0] < 0:
                out[col] = -out[col]
        return out

    def flip(self, par, j):
        out = np.array(par, float)
        out[self.cols == self.cols[j]] *= -1.0
        return out

    def names(self, group, cnames):
        return [f"{group}.{cnames[i]}" if i == j else f"{group}.{cnames[i]}.{cnames[j]}"
                for i, j in zip(self.rows, self.cols)]


class Diagonal(CovStructure):
    """``diag`` (one SD per column) and ``homdiag`` (one SD for all): independent effects."""

    def __init__(self, p: int, homogeneous: bool = False):
        super().__init__(p)
        self.homogeneous = homogeneous
        self.name = "homdiag" if homogeneous else "diag"
        self.scaling = "common" if homogeneous else "column"
        self.n_params = 1 if homogeneous else self.p

    def lower_bounds(self):
        return np.zeros(self.n_params)

    def initial(self):
        return np.ones(self.n_params)

    def _sd(self, par):
        return np.full(self.p, par[0]) if self.homogeneous else np.asarray(par, float)

    def lam(self, par):
        return np.diag(self._sd(par))

    def lam_jacobian(self, par):
        J = np.zeros((self.p, self.p, self.n_params))
        i = np.arange(self.p)
        J[i, i, 0 if self.homogeneous else i] = 1.0
        return J

    def from_cov(self, S):
        d = np.sqrt(np.clip(np.diag(S), 0.0, None))
        return np.array([np.sqrt(np.mean(d ** 2))]) if self.homogeneous else d

    def scale(self, par, t):
        t = np.asarray(t, float)
        return np.asarray(par, float) * (t[0] if self.homogeneous else t)

    def names(self, group, cnames):
        return [f"{group}.sd"] if self.homogeneous else [f"{group}.{c}" for c in cnames]

    # natural parameters (SDs in the data's units): for profiles and the bootstrap
    def natural_names(self, group, cnames):
        return [f"sd_{self.name}|{group}"] if self.homogeneous else [f"sd_{c}|{group}" for c in cnames]

    def natural_vector(self, par, sigma):
        return sigma * np.abs(np.asarray(par, float))

    def from_natural_vector(self, v, sigma):
        return np.asarray(v, float) / sigma

    def natural_bounds(self):
        return [0.0] * self.n_params, [np.inf] * self.n_params


def _unit(a):
    """``a / sqrt(1 + a^2)`` and its derivative ``(1 + a^2)^(-3/2)``."""
    a = np.asarray(a, float)
    r = 1.0 + a * a
    return a / np.sqrt(r), r ** -1.5


def _unit_inverse(r):
    r = np.clip(np.asarray(r, float), -1 + 1e-12, 1 - 1e-12)
    return r / np.sqrt(1.0 - r * r)


def _levinson(phi: np.ndarray) -> np.ndarray:
    """Autocorrelations ``r_1..r_m`` from partial autocorrelations ``phi_1..phi_m`` (Durbin-Levinson;
    works on complex input for the complex-step derivative)."""
    m = len(phi)
    r = np.zeros(m, dtype=phi.dtype)
    coef = np.zeros(0, dtype=phi.dtype)        # AR coefficients of the current order
    for k in range(m):
        pk = phi[k]
        # r_{k+1} = sum_j coef_j r_{k-j} + pk * (1 - sum_j coef_j r_{j+1})
        past = np.concatenate([[1.0], r[:k]])[::-1][:k] if k else np.zeros(0, dtype=phi.dtype)
        pred = np.dot(coef, past) if k else 0.0
        var = 1.0 - (np.dot(coef, r[:k]) if k else 0.0)
        r[k] = pred + pk * var
        coef = np.concatenate([coef - pk * coef[::-1], [pk]])
    return r


def _partial_from_acf(r: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_levinson` (partial autocorrelations clipped into (-1, 1))."""
    m = len(r)
    phi = np.zeros(m)
    coef = np.zeros(0)
    for k in range(m):
        past = np.concatenate([[1.0], r[:k]])[::-1][:k] if k else np.zeros(0)
        pred = np.dot(coef, past) if k else 0.0
        var = 1.0 - (np.dot(coef, r[:k]) if k else 0.0)
        pk = (r[k] - pred) / var if var > 1e-12 else 0.0
        pk = float(np.clip(pk, -0.999, 0.999))
        phi[k] = pk
        coef = np.concatenate([coef - pk * coef[::-1], [pk]])
    return phi


class Correlated(CovStructure):
    """``cs``, ``homcs``, ``ar1``, ``ou`` and ``toep``: standard deviations times a correlation
    matrix ``R`` from unconstrained parameters (see the module notes)."""

    def __init__(self, name: str, p: int, times=None):
        super().__init__(p)
        if name not in ("cs", "homcs", "ar1", "ou", "toep"):
            raise ValueError(f"unknown correlated structure {name!r}")
        self.name = name
        self.homogeneous = name in HOMOGENEOUS
        self.scaling = "common" if self.homogeneous else "column"
        self.n_sd = 1 if self.homogeneous else self.p
        self.n_cor = self.p - 1 if name == "toep" else 1
        self.n_params = self.n_sd + self.n_cor
        self.times = None if times is None else np.asarray(times, float)
        if name == "ou":
            if self.times is None or len(self.times) != self.p:
                raise ValueError("ou needs the coordinate of each of the term's columns")
            # distances in units of the mean spacing: the parameter, and so the fit, does not
            # depend on the units of t (kappa is reported per unit of t)
            span = float(np.ptp(self.times))
            self._unit = span / (self.p - 1) if span > 0 else 1.0
            self._dist = np.abs(self.times[:, None] - self.times[None, :]) / self._unit
        self._lag = np.abs(np.arange(self.p)[:, None] - np.arange(self.p)[None, :])

    def lower_bounds(self):
        return np.concatenate([np.zeros(self.n_sd), np.full(self.n_cor, -np.inf)])

    def initial(self):
        return np.concatenate([np.ones(self.n_sd), np.zeros(self.n_cor)])

    # --------------------------------------------------------- correlation
    def _cs_range(self) -> float:
        return -1.0 / (self.p - 1) if self.p > 1 else -1.0

    def correlation(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``R(a)`` and ``dR/da`` as ``(p, p, n_cor)``."""
        p = self.p
        a = np.asarray(a, float)
        if self.name in ("cs", "homcs"):
            u, du = _unit(a[0])
            lo = self._cs_range()
            rho = lo + (1.0 - lo) * (1.0 + u) / 2.0
            off = 1.0 - np.eye(p)
            R = np.eye(p) + rho * off
            return R, (0.5 * (1.0 - lo) * du * off)[:, :, None]
        if self.name == "ar1":
            rho, drho = _unit(a[0])
            lag = self._lag
            R = rho ** lag
            with np.errstate(divide="ignore", invalid="ignore"):
                dR = np.where(lag > 0, lag * np.where(lag > 1, rho ** np.maximum(lag - 1, 0), 1.0), 0.0)
            return R, (dR * drho)[:, :, None]
        if self.name == "ou":
            kappa = float(np.exp(a[0]))
            R = np.exp(-kappa * self._dist)
            return R, (-kappa * self._dist * R)[:, :, None]
        # toep: complex-step derivative of the Durbin-Levinson recursion (exact: only + - *)
        phi, dphi = _unit(a)
        r = _levinson(phi.astype(float))
        R = np.where(self._lag == 0, 1.0, np.concatenate([[1.0], r])[self._lag])
        dR = np.zeros((p, p, self.n_cor))
        h = 1e-30
        for k in range(self.n_cor):
            z = phi.astype(complex)
            z[k] += 1j * h
            dr = _levinson(z).imag / h * dphi[k]
            dR[:, :, k] = np.where(self._lag == 0, 0.0, np.concatenate([[0.0], dr])[self._lag])
        return R, dR

    def natural(self, par):
        a = np.asarray(par, float)[self.n_sd:]
        if self.name == "toep":
            return {"rho": _levinson(_unit(a)[0]).tolist()}
        if self.name == "ou":
            return {"kappa": float(np.exp(a[0]) / self._unit)}
        R, _ = self.correlation(a)
        return {"rho": float(R[1, 0]) if self.p > 1 else 0.0}

    # --------------------------------------------------------- the map
    def _sd(self, par):
        """Standard deviations as they enter ``lambda``: ``|s|`` so that ``Sigma`` is even in each one
        (for ``cs`` and ``toep`` a negative ``s_i`` would otherwise flip the sign of row ``i``'s
        correlations)."""
        s = np.abs(np.asarray(par, float)[:self.n_sd])
        return np.full(self.p, s[0]) if self.homogeneous else s

    def _chol(self, a):
        R, dR = self.correlation(a)
        try:
            L = np.linalg.cholesky(R)
        except np.linalg.LinAlgError:      # R numerically singular at an extreme parameter
            w, V = np.linalg.eigh(R)
            R = (V * np.clip(w, 1e-12, None)) @ V.T
            L = np.linalg.cholesky(R)
        return L, dR

    def lam(self, par):
        L, _ = self._chol(np.asarray(par, float)[self.n_sd:])
        return self._sd(par)[:, None] * L

    def lam_jacobian(self, par):
        p = self.p
        L, dR = self._chol(np.asarray(par, float)[self.n_sd:])
        s = self._sd(par)
        sign = np.where(np.asarray(par, float)[:self.n_sd] < 0, -1.0, 1.0)
        J = np.zeros((p, p, self.n_params))
        if self.homogeneous:
            J[:, :, 0] = sign[0] * L
        else:
            for i in range(p):
                J[i, :, i] = sign[i] * L[i]
        Linv = np.linalg.inv(L)
        for k in range(self.n_cor):
            M = Linv @ dR[:, :, k] @ Linv.T
            phi = np.tril(M, -1) + 0.5 * np.diag(np.diag(M))
            J[:, :, self.n_sd + k] = s[:, None] * (L @ phi)
        return J

    def from_cov(self, S):
        S = 0.5 * (S + S.T)
        d = np.sqrt(np.clip(np.diag(S), 1e-300, None))
        C = S / np.outer(d, d)
        sd = np.array([np.sqrt(np.mean(d ** 2))]) if self.homogeneous else d
        p = self.p
        if p < 2:
            return np.concatenate([sd, np.zeros(self.n_cor)])
        if self.name in ("cs", "homcs"):
            rho = float(np.mean(C[~np.eye(p, dtype=bool)]))
            lo = self._cs_range()
            u = np.clip(2.0 * (rho - lo) / (1.0 - lo) - 1.0, -0.99, 0.99)
            return np.concatenate([sd, [_unit_inverse(u)]])
        if self.name == "ar1":
            rho = float(np.clip(np.mean(np.diag(C, -1)), -0.99, 0.99))
            return np.concatenate([sd, [_unit_inverse(rho)]])
        if self.name == "ou":
            off = self._dist > 0
            c = np.clip(C[off], 0.01, 0.99)
            kappa = float(np.median(-np.log(c) / self._dist[off]))
            return np.concatenate([sd, [np.log(max(kappa, 1e-8))]])
        r = np.array([np.mean(np.diag(C, -k)) for k in range(1, p)])
        return np.concatenate([sd, _unit_inverse(_partial_from_acf(r))])

    def scale(self, par, t):
        out = np.array(par, float)
        t = np.asarray(t, float)
        out[:self.n_sd] *= t[0] if self.homogeneous else t
        return out

    # natural parameters: SDs in the data's units, then rho (ar1, cs), kappa (ou) or the partial
    # autocorrelations (toep); for profiles and the bootstrap
    def natural_names(self, group, cnames):
        sd = [f"sd_{self.name}|{group}"] if self.homogeneous else [f"sd_{c}|{group}" for c in cnames]
        if self.name == "toep":
            return sd + [f"pacf{k}_toep|{group}" for k in range(1, self.p)]
        return sd + [f"{'kappa' if self.name == 'ou' else 'rho'}_{self.name}|{group}"]

    def _corr_natural(self, a):
        if self.name == "toep":
            return _unit(a)[0]
        if self.name == "ou":
            return np.exp(a) / self._unit
        if self.name == "ar1":
            return _unit(a)[0]
        lo = self._cs_range()
        return lo + (1.0 - lo) * (1.0 + _unit(a)[0]) / 2.0

    def _corr_from_natural(self, v):
        v = np.asarray(v, float)
        if self.name in ("toep", "ar1"):
            return _unit_inverse(v)
        if self.name == "ou":
            return np.log(np.maximum(v, 1e-300) * self._unit)
        lo = self._cs_range()
        return _unit_inverse(2.0 * (v - lo) / (1.0 - lo) - 1.0)

    def natural_vector(self, par, sigma):
        par = np.asarray(par, float)
        return np.concatenate([sigma * np.abs(par[:self.n_sd]), np.atleast_1d(self._corr_natural(par[self.n_sd:]))])

    def from_natural_vector(self, v, sigma):
        v = np.asarray(v, float)
        return np.concatenate([v[:self.n_sd] / sigma, np.atleast_1d(self._corr_from_natural(v[self.n_sd:]))])

    def natural_bounds(self):
        lo_c = {"ar1": -1.0, "toep": -1.0, "ou": 0.0}.get(self.name, self._cs_range())
        hi_c = np.inf if self.name == "ou" else 1.0
        return [0.0] * self.n_sd + [lo_c] * self.n_cor, [np.inf] * self.n_sd + [hi_c] * self.n_cor

    def names(self, group, cnames):
        sd = [f"{group}.sd"] if self.homogeneous else [f"{group}.{c}" for c in cnames]
        if self.name == "toep":
            return sd + [f"{group}.{self.name}.lag{k}" for k in range(1, self.p)]
        return sd + [f"{group}.{self.name}"]


def correlated_names() -> tuple[str, ...]:
    return ("cs", "homcs", "ar1", "ou", "toep")


def make_structure(name: str, p: int, times=None) -> CovStructure:
    """The structure object for a formula name and a term with ``p`` columns."""
    if name == "us":
        return Unstructured(p)
    if name in ("diag", "homdiag"):
        return Diagonal(p, homogeneous=name == "homdiag")
    if name in correlated_names():
        return Correlated(name, p, times)
    raise ValueError(f"unknown covariance structure {name!r}; choose one of {', '.join(STRUCTURES)}")
