"""Residual correlation and variance models of a linear mixed model (nlme's ``correlation=`` and ``weights=``).

The residual covariance is ``sigma^2 Sigma`` with ``Sigma = S R S = S C C' S``:

* ``S = diag(s)``, ``s_i = exp(D_i . delta)``, ``D`` the ``(n, m)`` dispersion-model matrix *without* its
  intercept (absorbed into ``sigma``), as nlme's ``varIdent`` / glmmTMB's Gaussian ``dispformula``;
* ``R`` block diagonal over the residual grouping factor, ``R_g = C_g C_g'`` the within-group correlation:

==========  =====================================  ===========================================================
class       ``R_g[i, j]``                          unconstrained parameter ``a``
==========  =====================================  ===========================================================
AR1         ``rho^|t_i - t_j|``, integer times     ``rho = a / sqrt(1 + a^2)`` in (-1, 1)
CAR1        ``phi^|t_i - t_j|``, real times        ``phi = 1 / (1 + exp(-a))`` in (0, 1)
CompSymm    ``(1 - rho) I + rho J``                ``rho = lo + (1 - lo) (1 + u) / 2``, ``u = a / sqrt(1 + a^2)``,
                                                   ``lo = -1 / (m_max - 1)``, so ``rho`` in ``(lo, 1)``
==========  =====================================  ===========================================================

(the ``CompSymm`` map is the one of ``core.structures``' ``cs``; ``m_max`` is the largest residual group).
An LMM is fitted on whitened data ``W y``, ``W X``, ``W Xk`` with ``W = C^{-1} S^{-1}``; ``W' W = Sigma^{-1}``,
so the Gaussian ``-2 log L`` (ML or REML) of the data is that of the whitened data plus
``2 log|S C| = 2 sum_i log s_i + sum_g log|R_g|`` (:meth:`ResidualModel.log_jacobian`).
Whitened row ``i`` combines rows of observation ``i``'s own residual group only.
"""
from __future__ import annotations

import numpy as np

__all__ = ["AR1", "CAR1", "CompSymm", "ResidualModel"]


class _Groups:
    """Residual groups of ``n`` rows, sorted once by (group, time); arrays below are in sorted order."""

    def __init__(self, codes, times):
        codes = np.asarray(codes)
        if codes.ndim != 1 or codes.size == 0 or not np.issubdtype(codes.dtype, np.integer):
            raise ValueError("residual grouping codes must be a non-empty 1-d integer array")
        n = codes.size
        self.labels, g = np.unique(codes, return_inverse=True)
        if times is None:                      # nlme's ``~ 1 | g``: position within the group, in data order
            order = np.argsort(g, kind="stable")
            first = np.r_[0, np.flatnonzero(np.diff(g[order])) + 1]
            t = np.empty(n)
            t[order] = np.arange(n) - np.repeat(first, np.diff(np.r_[first, n]))
        else:
            t = np.asarray(times, dtype=float)
            if t.shape != (n,):
                raise ValueError(f"residual times have shape {t.shape}; expected ({n},), one per row")
            if not np.all(np.isfinite(t)):
                raise ValueError("residual times contain NaN or infinite values; every row needs a finite time")
        perm = np.lexsort((t, g))
        self.perm = None if np.array_equal(perm, np.arange(n)) else perm   # None: rows already sorted
        self.unperm = None if self.perm is None else np.argsort(perm)
        self.g, self.t, self.n = g[perm], t[perm], n
        self.first = np.r_[True, self.g[1:] != self.g[:-1]]
        self.starts = np.flatnonzero(self.first)
        self.sizes = np.diff(np.r_[self.starts, n])
        self.ginv = np.cumsum(self.first) - 1  # group number (0..G-1) of each sorted row
        self.row = perm                        # original row of each sorted row


class _Correlation:
    """Common interface: ``n_params``, ``initial()``, ``names()``, ``natural(a)``, ``from_natural(dict)``;
    ``bind(groups)`` returns a copy tied to one set of residual groups, with ``whiten_sorted`` and ``logdet``."""

    param = "rho"
    n_params = 1
    _init = 0.0

    def initial(self) -> np.ndarray:
        """Unconstrained starting value, shape ``(1,)`` (nlme's defaults: rho = 0, phi = 0.2)."""
        return self.from_natural({self.param: self._init})

    def names(self) -> list[str]:
        return [self.param]

    def natural(self, a) -> dict:
        """``{param: value}`` from the unconstrained ``a`` (shape ``(1,)``)."""
        return {self.param: float(self._value(float(np.asarray(a, dtype=float).reshape(-1)[0])))}

    def bind(self, groups: _Groups) -> _Correlation:
        if np.all(groups.sizes < 2):
            raise ValueError(f"{type(self).__name__} correlation: every residual group has one row, so the "
                             "correlation parameter is not identifiable; drop the correlation structure")
        out = object.__new__(type(self))
        out.__dict__.update(self.__dict__)
        out._bind(groups)
        return out


class _Markov(_Correlation):
    """``r^|t_i - t_j|``: bidiagonal whitening over time-sorted rows; ``_lags(a)`` gives ``(r, 1 - r^2)`` per gap."""

    def _bind(self, gr: _Groups) -> None:
        nf = np.flatnonzero(~gr.first)               # sorted rows with a predecessor in their group
        dt = gr.t[nf] - gr.t[nf - 1]
        if np.any(dt == 0):
            k = nf[np.argmax(dt == 0)]
            raise ValueError(f"residual group {gr.labels[gr.g[k]]} has two rows (rows {gr.row[k - 1]} and "
                             f"{gr.row[k]}) at time {gr.t[k]:g}; times must be distinct within a group")
        self.dt_u, dt_inv, self.dt_n = np.unique(dt, return_inverse=True, return_counts=True)
        self.lag = np.full(gr.n, self.dt_u.size)     # per sorted row: its gap's index, first rows the extra slot
        self.lag[nf] = dt_inv
        pos = np.arange(gr.n) - np.repeat(gr.starts, gr.sizes)    # position of each sorted row in its group
        self._by_position = [np.flatnonzero(pos == k) for k in range(1, int(gr.sizes.max()))]

    def whiten_sorted(self, a: float, M: np.ndarray, inv_s: np.ndarray | None) -> np.ndarray:
        """``C^{-1} S^{-1} M`` for sorted ``(n, k)`` ``M`` and ``1 / s`` (or None for ``S = I``).

        With ``e = S^{-1} M``: ``e*_1 = e_1``, ``e*_t = (e_t - r_t e_{t-1}) / sqrt(1 - r_t^2)``.
        """
        r, om = self._lags(a)
        w0 = np.r_[om ** -0.5, 1.0][self.lag]            # first rows of groups: r = 0, sd = 1
        w1 = np.r_[r, 0.0][self.lag][1:] * w0[1:]
        if inv_s is not None:
            w0, w1 = w0 * inv_s, w1 * inv_s[:-1]
        out = M * w0[:, None]
        out[1:] -= w1[:, None] * M[:-1]                  # shifted rows: no loop over groups
        return out

    def logdet(self, a: float) -> float:
        """``sum_g log|R_g| = sum_t log(1 - r_t^2)``."""
        return float(self.dt_n @ np.log(self._lags(a)[1]))

    def color_sorted(self, a: float, Z: np.ndarray) -> np.ndarray:
        """``C Z`` (``C C' = R``) for sorted ``(n, k)`` ``Z``: the inverse recursion
        ``e_1 = z_1``, ``e_t = r_t e_{t-1} + sqrt(1 - r_t^2) z_t``, one position of all groups at a time."""
        r, om = self._lags(a)
        rr, sd = np.r_[r, 0.0][self.lag], np.r_[np.sqrt(om), 1.0][self.lag]
        out = Z * sd[:, None]
        for rows in self._by_position:
            out[rows] += rr[rows, None] * out[rows - 1]
        return out


class AR1(_Markov):
    """nlme's ``corAR1``: ``R_ij = rho^|t_i - t_j|`` for integer times, ``rho = a / sqrt(1 + a^2)``."""

    def _value(self, a):
        return a / np.sqrt(1.0 + a * a)

    def from_natural(self, nat: dict) -> np.ndarray:
        rho = float(nat["rho"])
        if not -1.0 < rho < 1.0:
            raise ValueError(f"AR1 rho = {rho} is outside (-1, 1)")
        return np.array([rho / np.sqrt(1.0 - rho * rho)])

    def _bind(self, gr: _Groups) -> None:
        bad = gr.t != np.round(gr.t)
        if np.any(bad):
            k = np.argmax(bad)
            raise ValueError(f"AR1 correlation needs integer times (row {gr.row[k]} has time {gr.t[k]:g}); "
                             "use CAR1 (nlme's corCAR1) for continuous times")
        super()._bind(gr)

    def _lags(self, a):
        with np.errstate(divide="ignore"):     # a = 0: log rho^2 = -inf gives r = 0, 1 - r^2 = 1
            log_q = 2.0 * np.log(abs(a)) - np.log1p(a * a)   # log rho^2; 1 - rho^2 = 1 / (1 + a^2) exactly
        return np.power(self._value(a), self.dt_u), -np.expm1(self.dt_u * log_q)


class CAR1(_Markov):
    """nlme's ``corCAR1``: ``R_ij = phi^|t_i - t_j|`` for real times, ``phi = 1 / (1 + exp(-a))``."""

    param = "phi"
    _init = 0.2

    def _value(self, a):
        return 1.0 / (1.0 + np.exp(-a))

    def from_natural(self, nat: dict) -> np.ndarray:
        phi = float(nat["phi"])
        if not 0.0 < phi < 1.0:
            raise ValueError(f"CAR1 phi = {phi} is outside (0, 1)")
        return np.array([np.log(phi) - np.log1p(-phi)])

    def _lags(self, a):
        log_phi = -np.logaddexp(0.0, -a)
        return np.exp(self.dt_u * log_phi), -np.expm1(2.0 * self.dt_u * log_phi)


class CompSymm(_Correlation):
    """nlme's ``corCompSymm``: ``R_g = (1 - rho) I + rho J``, ``rho`` in ``(-1 / (m_max - 1), 1)``.

    ``m_max`` (largest group) is taken from the data by :meth:`bind` unless given; a given value must be
    at least the largest group.  Whitening uses the symmetric inverse square root
    ``R_g^{-1/2} = (1 - rho)^{-1/2} (I - P) + (1 + (m - 1) rho)^{-1/2} P``, ``P = J / m``.
    """

    def __init__(self, m_max: int | None = None):
        self.m_max = m_max

    def _parts(self, a):
        """``(rho, rho - lo, 1 - rho, lo)`` computed without cancellation at either end."""
        if self.m_max is None:
            raise ValueError("CompSymm needs m_max (the largest residual group) before use; bind it to groups")
        lo = -1.0 / (self.m_max - 1) if self.m_max > 1 else -1.0
        s = np.sqrt(1.0 + a * a)
        one_m_u = 1.0 / (s * (s + a)) if a > 0 else (s - a) / s
        one_p_u = 1.0 / (s * (s - a)) if a < 0 else (s + a) / s
        return lo + (1 - lo) * one_p_u / 2, (1 - lo) * one_p_u / 2, (1 - lo) * one_m_u / 2, lo

    def _value(self, a):
        return self._parts(a)[0]

    def from_natural(self, nat: dict) -> np.ndarray:
        rho = float(nat["rho"])
        lo = self._parts(0.0)[3]
        if not lo < rho < 1.0:
            raise ValueError(f"CompSymm rho = {rho} is outside ({lo:g}, 1), where R is positive definite for "
                             f"groups of up to {self.m_max} rows")
        u = 2.0 * (rho - lo) / (1.0 - lo) - 1.0
        return np.array([u / np.sqrt(1.0 - u * u)])

    def _bind(self, gr: _Groups) -> None:
        big = int(gr.sizes.max())
        if self.m_max is None:
            self.m_max = big
        elif self.m_max < big:
            raise ValueError(f"CompSymm(m_max={self.m_max}) but a residual group has {big} rows")
        self.starts, self.ginv, self.m = gr.starts, gr.ginv, gr.sizes.astype(float)

    def _eigs(self, a):
        """``1 - rho`` and, per group, ``1 + (m - 1) rho = 1 + (m - 1) lo + (m - 1)(rho - lo)``."""
        _, rml, omr, lo = self._parts(a)
        return omr, 1.0 + (self.m - 1) * lo + (self.m - 1) * rml

    def whiten_sorted(self, a: float, M: np.ndarray, inv_s: np.ndarray | None) -> np.ndarray:
        """``R_g^{-1/2} S^{-1} M`` for sorted ``(n, k)`` ``M``; group sums by ``np.add.reduceat``."""
        omr, big = self._eigs(a)
        M = M if inv_s is None else M * inv_s[:, None]
        c1 = omr ** -0.5
        coef = (big ** -0.5 - c1) / self.m      # R^{-1/2} = c1 I + (c2 - c1) J / m
        return c1 * M + np.take(coef[:, None] * np.add.reduceat(M, self.starts, axis=0), self.ginv, axis=0)

    def logdet(self, a: float) -> float:
        omr, big = self._eigs(a)
        return float(np.sum(self.m - 1) * np.log(omr) + np.sum(np.log(big)))

    def color_sorted(self, a: float, Z: np.ndarray) -> np.ndarray:
        """``R_g^{1/2} Z`` for sorted ``(n, k)`` ``Z`` (the symmetric square root)."""
        omr, big = self._eigs(a)
        c1 = np.sqrt(omr)
        coef = (np.sqrt(big) - c1) / self.m
        return c1 * Z + np.take(coef[:, None] * np.add.reduceat(Z, self.starts, axis=0), self.ginv, axis=0)


class ResidualModel:
    """Residual covariance ``sigma^2 S R S`` of an LMM, built once per data set.

    Parameters
    ----------
    codes : (n,) int array
        Residual grouping factor (any integers); ``R`` is block diagonal over it.
    times : (n,) float array or None
        Time of each row for AR1 / CAR1 (ignored by CompSymm); None uses the position within the group
        in data order (nlme's ``~ 1 | g``).
    corr : AR1, CAR1, CompSymm or None
        Within-group correlation; None means independent residuals.
    disp_matrix : (n, m) array or None
        Dispersion model matrix ``D`` without intercept column: ``s_i = exp(D_i . delta)``.
    disp_names : list of str, optional
        Names of the columns of ``D`` (default ``disp1..dispm``).

    The parameter vector is ``par = (a, delta)``: the correlation parameter (if any) then ``delta``,
    all unconstrained reals.
    """

    def __init__(self, codes, times, corr, disp_matrix, disp_names=None):
        self.groups = _Groups(codes, times)
        n = self.groups.n
        self.corr = None if corr is None else corr.bind(self.groups)
        self.n_corr = 0 if corr is None else corr.n_params
        D = np.zeros((n, 0)) if disp_matrix is None else np.asarray(disp_matrix, dtype=float)
        D = D.reshape(n, 1) if D.ndim == 1 and D.size == n else D
        if D.ndim != 2 or D.shape[0] != n:
            raise ValueError(f"disp_matrix has shape {D.shape}; expected ({n}, m), one row per observation")
        if not np.all(np.isfinite(D)):
            raise ValueError("disp_matrix contains NaN or infinite values")
        if D.shape[1] and np.linalg.matrix_rank(np.column_stack([np.ones(n), D])) < D.shape[1] + 1:
            raise ValueError("disp_matrix columns are collinear with the intercept or with each other; drop the "
                             "intercept column (it is absorbed into sigma) and any redundant columns")
        self.D = D
        self.disp_names = list(disp_names) if disp_names is not None else [f"disp{j + 1}" for j in range(D.shape[1])]
        if len(self.disp_names) != D.shape[1]:
            raise ValueError(f"{len(self.disp_names)} disp_names for {D.shape[1]} disp_matrix columns")
        self.n_params = self.n_corr + D.shape[1]

    def initial(self) -> np.ndarray:
        """Starting ``par``: the correlation's default, ``delta = 0``."""
        a = self.corr.initial() if self.corr is not None else np.zeros(0)
        return np.r_[a, np.zeros(self.D.shape[1])]

    def lower_bounds(self) -> np.ndarray:
        return np.full(self.n_params, -np.inf)

    def names(self) -> list[str]:
        return (self.corr.names() if self.corr is not None else []) + self.disp_names

    def _split(self, par):
        par = np.asarray(par, dtype=float).reshape(-1)
        if par.size != self.n_params:
            raise ValueError(f"residual parameter vector has {par.size} entries; expected {self.n_params}")
        return (par[0] if self.n_corr else None), par[self.n_corr:]

    def natural(self, par) -> dict:
        """``{"rho" or "phi": value, "delta": (m,) array}`` (the correlation key only with a correlation)."""
        a, delta = self._split(par)
        out = self.corr.natural([a]) if self.corr is not None else {}
        out["delta"] = delta.copy()
        return out

    def from_natural(self, nat: dict) -> np.ndarray:
        """Inverse of :meth:`natural`."""
        a = self.corr.from_natural(nat) if self.corr is not None else np.zeros(0)
        return np.r_[a, np.asarray(nat.get("delta", np.zeros(self.D.shape[1])), dtype=float)]

    def whiten(self, par, M) -> np.ndarray:
        """``W M = C^{-1} S^{-1} M`` for ``M`` of shape (n,) or (n, k).

        Rows are returned in the original order: output row ``i`` is the whitened row of observation ``i``,
        a combination of the rows of ``i``'s residual group (for AR1 / CAR1, of ``i`` and its time
        predecessor).  ``W' W = Sigma^{-1}`` with ``Sigma = S R S`` in the original row order.
        """
        a, delta = self._split(par)
        M = np.asarray(M, dtype=float)
        vec = M.ndim == 1
        M2 = M.reshape(-1, 1) if vec else M
        if M2.ndim != 2 or M2.shape[0] != self.groups.n:
            raise ValueError(f"whiten: M has shape {M.shape}; expected ({self.groups.n},) or ({self.groups.n}, k)")
        inv_s = np.exp(-(self.D @ delta)) if delta.size else None
        perm = self.groups.perm
        if self.corr is None:
            M2 = M2.copy() if inv_s is None else M2 * inv_s[:, None]
        elif perm is None:
            M2 = self.corr.whiten_sorted(a, M2, inv_s)
        else:
            Ms = self.corr.whiten_sorted(a, np.take(M2, perm, axis=0), None if inv_s is None else inv_s[perm])
            M2 = np.take(Ms, self.groups.unperm, axis=0)
        return M2[:, 0] if vec else M2

    def color(self, par, Z) -> np.ndarray:
        """``S C Z`` for ``Z`` of shape (n,) or (n, k) in the original row order: with ``Z`` standard
        normal the rows have covariance ``S R S`` (the inverse of :meth:`whiten`)."""
        a, delta = self._split(par)
        Z = np.asarray(Z, dtype=float)
        vec = Z.ndim == 1
        Z2 = Z.reshape(-1, 1) if vec else Z
        perm = self.groups.perm
        if self.corr is not None:
            Zs = Z2 if perm is None else np.take(Z2, perm, axis=0)
            Cs = self.corr.color_sorted(a, Zs)
            Z2 = Cs if perm is None else np.take(Cs, self.groups.unperm, axis=0)
        if delta.size:
            Z2 = Z2 * np.exp(self.D @ delta)[:, None]
        return Z2[:, 0] if vec else Z2

    def log_jacobian(self, par) -> float:
        """``2 log|S C| = 2 sum_i D_i . delta + sum_g log|R_g| = log det Sigma``, added to whitened ``-2 log L``."""
        a, delta = self._split(par)
        out = 2.0 * float(np.sum(self.D @ delta)) if delta.size else 0.0
        return out + (self.corr.logdet(a) if self.corr is not None else 0.0)
