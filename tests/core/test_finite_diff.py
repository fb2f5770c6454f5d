"""Finite-difference derivatives (core/finite_diff.py) against analytic ones."""
from __future__ import annotations

import numpy as np
import pytest

from mixedfx.core.finite_diff import central_derivatives


def _f(x):
    """A smooth non-quadratic function with a known gradient and Hessian."""
    return float(np.exp(0.3 * x[0]) * np.cos(x[1]) + x[0] ** 2 * x[2] + np.log1p(x[1] ** 2 + x[2] ** 2))


def _analytic(x):
    a, b, c = x
    e = np.exp(0.3 * a)
    d = 1 + b * b + c * c
    g = np.array([0.3 * e * np.cos(b) + 2 * a * c, -e * np.sin(b) + 2 * b / d, a * a + 2 * c / d])
    H = np.array([[0.09 * e * np.cos(b) + 2 * c, -0.3 * e * np.sin(b), 2 * a],
                  [-0.3 * e * np.sin(b), -e * np.cos(b) + (2 * d - 4 * b * b) / d ** 2, -4 * b * c / d ** 2],
                  [2 * a, -4 * b * c / d ** 2, (2 * d - 4 * c * c) / d ** 2]])
    return g, H


@pytest.mark.parametrize("pairs", [2, 4])
def test_central_derivatives_match_analytic_ones_to_second_order(pairs):
    x = np.array([0.4, -0.7, 1.3])
    g, H = _analytic(x)
    count = [0]

    def f(z):
        count[0] += 1
        return _f(z)
    errs = []
    for h in (1e-2, 5e-3):
        count[0] = 0
        gh, Hh = central_derivatives(f, x, np.full(3, h), pairs=pairs)
        assert count[0] == 1 + 2 * 3 + pairs * 3
        errs.append((np.max(np.abs(gh - g)), np.max(np.abs(Hh - H))))
        np.testing.assert_allclose(Hh, Hh.T)
    assert errs[0][0] < 1e-4 and errs[0][1] < 1e-3
    # halving h divides both errors by about 4: second order
    assert 3.0 < errs[0][0] / errs[1][0] < 5.0 and 3.0 < errs[0][1] / errs[1][1] < 5.0


def test_pairs_must_be_two_or_four():
    with pytest.raises(ValueError, match="pairs must be 2 or 4"):
        central_derivatives(_f, np.zeros(3), np.full(3, 1e-3), pairs=3)
