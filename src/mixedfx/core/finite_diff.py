"""Central finite differences for small parameter vectors (theta, variance parameters)."""
from __future__ import annotations

import numpy as np

__all__ = ["central_derivatives", "gradient_hessian", "richardson_derivative", "richardson_hessian", "deriv12_hessian"]


def gradient_hessian(grad, x: np.ndarray, h):
    """Hessian as central differences of an analytic gradient.

    Column ``j`` is ``(g(x + h_j e_j) - g(x - h_j e_j)) / (2 h_j)`` (``2 m`` gradients, error
    O(h^2)); the result is symmetrized.  Returns ``(H, asym)`` with ``asym`` the largest
    ``|H_ij - H_ji|`` before symmetrizing (an estimate of the differencing error), or None when
    ``grad`` returns None at some point.
    """
    x = np.asarray(x, float)
    m = x.size
    h = np.broadcast_to(np.asarray(h, float), (m,))
    H = np.empty((m, m))
    for j in range(m):
        step = np.zeros(m)
        step[j] = h[j]
        gp, gm = grad(x + step), grad(x - step)
        if gp is None or gm is None:
            return None
        H[:, j] = (np.asarray(gp) - np.asarray(gm)) / (2.0 * h[j])
    return 0.5 * (H + H.T), float(np.max(np.abs(H - H.T))) if m else 0.0


def central_derivatives(f, x: np.ndarray, h: np.ndarray, f0: float | None = None,
                        pairs: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and Hessian of a scalar ``f`` at ``x`` with per-coordinate steps ``h``.

    ``g_i = (f(x + h_i e_i) - f(x - h_i e_i)) / (2 h_i)``;
    ``H_ii = (f(x + h_i e_i) - 2 f(x) + f(x - h_i e_i)) / h_i^2``; with ``pairs=4``
    ``H_ij = [f(x+a+b) - f(x+a-b) - f(x-a+b) + f(x-a-b)] / (4 h_i h_j)`` (``a = h_i e_i``,
    ``b = h_j e_j``), and with ``pairs=2`` (lme4's ``deriv12`` layout, reusing the axis points)
    ``H_ij = [f(x+a+b) + f(x-a-b) - f(x+a) - f(x-a) - f(x+b) - f(x-b) + 2 f(x)] / (2 h_i h_j)``.
    All O(h^2); ``1 + 2m + pairs m(m-1)/2`` evaluations for ``m`` coordinates.
    """
    if pairs not in (2, 4):
        raise ValueError("pairs must be 2 or 4")
    x = np.asarray(x, float)
    h = np.broadcast_to(np.asarray(h, float), x.shape)
    m = x.size
    f0 = f(x) if f0 is None else f0
    E = np.diag(h)
    fp = np.array([f(x + E[i]) for i in range(m)])
    fm = np.array([f(x - E[i]) for i in range(m)])
    g = (fp - fm) / (2 * h)
    H = np.empty((m, m))
    for i in range(m):
        H[i, i] = (fp[i] - 2 * f0 + fm[i]) / h[i] ** 2
        for j in range(i):
            if pairs == 4:
                cross = (f(x + E[i] + E[j]) - f(x + E[i] - E[j]) - f(x - E[i] + E[j])
                         + f(x - E[i] - E[j])) / (4 * h[i] * h[j])
            else:
                cross = (f(x + E[i] + E[j]) + f(x - E[i] - E[j]) - fp[i] - fm[i] - fp[j] - fm[j]
                         + 2 * f0) / (2 * h[i] * h[j])
            H[i, j] = H[j, i] = cross
    return g, H


def richardson_derivative(f, x, i, h, r=4):
    """Richardson-extrapolated central difference of f (scalar or array) along coordinate i."""
    table = []
    for k in range(r):
        hk = h / 2 ** k
        e = np.zeros_like(x)
        e[i] = hk
        table.append((np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * hk))
    for m in range(1, r):
        table = [(4 ** m * table[k + 1] - table[k]) / (4 ** m - 1) for k in range(len(table) - 1)]
    return table[0]


def richardson_hessian(f, x, h):
    """Central second differences, Richardson-extrapolated once (O(h^4))."""
    def once(hs):
        return central_derivatives(f, x, hs)[1]
    return (4 * once(h / 2) - once(h)) / 3


def deriv12_hessian(f, x: np.ndarray, h: float = 1e-4) -> np.ndarray:
    """Second-order central-difference Hessian with lme4's step (``deriv12``, h = 1e-4).

    Diagonal: ``(f(x+a) - 2 f(x) + f(x-a)) / h^2``.  Off-diagonal, reusing those values:
    ``[f(x+a+b) + f(x-a-b) - f(x+a) - f(x-a) - f(x+b) - f(x-b) + 2 f(x)] / (2 h^2)``, which is
    ``2 a'Hb / (2 h^2)`` up to O(h^2), like the four-point formula, with 2 evaluations per pair
    instead of 4 (grouseticks: 57 PIRLS solutions instead of 99).
    """
    m = len(x)
    f0 = f(x)
    H = np.empty((m, m))
    e = np.eye(m) * h
    fp = [f(x + e[i]) for i in range(m)]
    fm = [f(x - e[i]) for i in range(m)]
    for i in range(m):
        H[i, i] = (fp[i] - 2 * f0 + fm[i]) / h ** 2
        for j in range(i):
            H[i, j] = H[j, i] = (f(x + e[i] + e[j]) + f(x - e[i] - e[j]) - fp[i] - fm[i] - fp[j] - fm[j]
                                 + 2 * f0) / (2 * h * h)
    return H
