"""Central finite differences for small parameter vectors (theta, variance parameters)."""
from __future__ import annotations

import numpy as np

__all__ = ["central_derivatives"]


def central_derivatives(f, x: np.ndarray, h: np.ndarray, f0: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and Hessian of a scalar ``f`` at ``x`` with per-coordinate steps ``h``.

    ``g_i = (f(x + h_i e_i) - f(x - h_i e_i)) / (2 h_i)``;
    ``H_ii = (f(x + h_i e_i) - 2 f(x) + f(x - h_i e_i)) / h_i^2``;
    ``H_ij = [f(x+a+b) - f(x+a-b) - f(x-a+b) + f(x-a-b)] / (4 h_i h_j)`` (``a = h_i e_i``,
    ``b = h_j e_j``).  All O(h^2); ``1 + 2m + 2m(m-1)`` evaluations for ``m`` coordinates.
    """
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
            H[i, j] = H[j, i] = (f(x + E[i] + E[j]) - f(x + E[i] - E[j]) - f(x - E[i] + E[j])
                                 + f(x - E[i] - E[j])) / (4 * h[i] * h[j])
    return g, H
