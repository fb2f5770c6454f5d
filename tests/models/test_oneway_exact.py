"""Exact REML answers for balanced one-way designs with large offsets (NIST StRD SmLs style).

The data mirror NIST's SmLs01-09 ANOVA accuracy sets: values such as ``1000000000000.4``,
``1000000000000.3``, ``1000000000000.5`` whose information sits in the last digits, at
offsets 0, 1e6 and 1e12, with 21, 201, 2,001 and 18,009 rows.  Each value is the nearest
double to its decimal (Python's ``float(str)`` rounds correctly), and the reference answers
are computed exactly from the rational values of those doubles (``Fraction(float)``), so
they are exact for the data actually fitted.

For the balanced model ``y_ij = mu + a_i + e_ij`` (k groups of n, N = kn), with
``SSA = n sum_i (ybar_i - ybar)^2``, ``SSE = sum_ij (y_ij - ybar_i)^2``,
``MSA = SSA / (k - 1)`` and ``MSE = SSE / (k (n - 1))``, the REML estimates (when
MSA > MSE) are ``sigma^2 = MSE``, ``tau^2 = (MSA - MSE) / n`` and ``mu = ybar``.  With
``lambda = sigma^2 + n tau^2``, the REML criterion (-2 REML log-likelihood, lme4's
``REMLcrit``) is::

    (N - 1) log(2 pi) + (k - 1) log(lambda) + k (n - 1) log(sigma^2) + log(N)
        + SSE / sigma^2 + SSA / lambda

(``V`` has eigenvalue ``lambda`` once and ``sigma^2`` n - 1 times per group, and
``1' V^{-1} 1 = N / lambda``), which at the estimates (``lambda = MSA``) is::

    (N - 1) (1 + log(2 pi)) + (k - 1) log(MSA) + k (n - 1) log(MSE) + log(N).

The closed form is checked against lme4 on Dyestuff and against a dense evaluation of the
REML likelihood before it is used as the reference.  Everything is compared to 1e-6
relative.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from conftest import load_reference, reference_data

REL = 1e-6
OFFSETS = {"offset0": 0, "offset1e6": 10 ** 6, "offset1e12": 10 ** 12}
# (groups, rows per group): 21 = 7 x 3, 201 = 3 x 67, 2001 = 23 x 87, 18009 = 9 x 2001 (SmLs07-09)
LAYOUTS = {"21rows": (7, 3), "201rows": (3, 67), "2001rows": (23, 87), "18009rows": (9, 2001)}
QUANTITIES = ["sigma", "sd_group", "intercept", "reml_criterion"]


# ----------------------------------------------------------------- data and exact answers
def oneway_decimals(offset: int, k: int, n: int) -> tuple[list[str], list[str]]:
    """Decimal strings and group labels of a balanced SmLs-style design.

    Group centres follow NIST's pattern (tenths digit 4 for the first group, then 3 and 5
    alternately); within a group the tenths digit runs centre, centre - 1, centre + 1,
    centre - 1, ... (n odd keeps the group mean at the centre).
    """
    values, groups = [], []
    for i in range(k):
        centre = 4 if i == 0 else (3 if i % 2 else 5)
        for j in range(n):
            digit = centre if j == 0 else (centre - 1 if j % 2 else centre + 1)
            values.append(f"{offset}.{digit}")
            groups.append(f"g{i + 1:02d}")
    return values, groups


def oneway_data(offset: int, k: int, n: int) -> pd.DataFrame:
    """The design as a DataFrame; ``y`` holds the nearest doubles of the decimals."""
    values, groups = oneway_decimals(offset, k, n)
    return pd.DataFrame({"y": [float(v) for v in values], "g": groups})


def exact_reml(y, g) -> dict:
    """Exact REML estimates of ``y ~ 1 + (1 | g)`` for a balanced design (floats from Fractions)."""
    ys = [Fraction(float(v)) for v in y]
    labels = list(g)
    levels = list(dict.fromkeys(labels))
    members = {lev: [] for lev in levels}
    for v, lev in zip(ys, labels):
        members[lev].append(v)
    sizes = {len(vs) for vs in members.values()}
    assert len(sizes) == 1, "the closed form needs a balanced design"
    k, n = len(levels), sizes.pop()
    N = k * n
    grand = sum(ys) / N
    means = {lev: sum(vs) / n for lev, vs in members.items()}
    ssa = n * sum((m - grand) ** 2 for m in means.values())
    sse = sum((v - means[lev]) ** 2 for lev, vs in members.items() for v in vs)
    msa, mse = ssa / (k - 1), sse / (k * (n - 1))
    assert msa > mse > 0, "design the data so that MSA > MSE (interior REML optimum)"
    tau2 = (msa - mse) / n
    crit = ((N - 1) * (1 + math.log(2 * math.pi)) + (k - 1) * math.log(msa)
            + k * (n - 1) * math.log(mse) + math.log(N))
    return {"sigma": math.sqrt(mse), "sd_group": math.sqrt(tau2), "intercept": float(grand),
            "reml_criterion": crit, "sigma2": float(mse), "tau2": float(tau2), "k": k, "n": n}


def dense_reml_criterion(y: np.ndarray, g: np.ndarray, sigma2: float, tau2: float) -> float:
    """-2 REML log-likelihood of ``y ~ 1 + (1 | g)`` evaluated with dense matrices."""
    N = len(y)
    Z = (g[:, None] == np.unique(g)[None, :]).astype(float)
    V = sigma2 * np.eye(N) + tau2 * Z @ Z.T
    X = np.ones((N, 1))
    Vi = np.linalg.inv(V)
    xvx = X.T @ Vi @ X
    beta = np.linalg.solve(xvx, X.T @ Vi @ y)
    r = y - X @ beta
    return float((N - 1) * math.log(2 * math.pi) + np.linalg.slogdet(V)[1]
                 + np.linalg.slogdet(xvx)[1] + r @ Vi @ r)


def observed(m) -> dict:
    vc = m.varcorr
    return {"sigma": m.sigma, "sd_group": float(vc.loc[vc["grp"] == "g", "sdcor"].iloc[0]),
            "intercept": float(m.fixef["(Intercept)"]), "reml_criterion": m.reml_criterion}


_FITS: dict = {}


def fit_case(offset: int, k: int, n: int):
    key = (offset, k, n)
    if key not in _FITS:
        df = oneway_data(offset, k, n)
        _FITS[key] = (mfx.lmer("y ~ 1 + (1 | g)", df), exact_reml(df["y"], df["g"]))
    return _FITS[key]


# -------------------------------------------------------------- checks of the reference
@pytest.mark.parametrize("offset", list(OFFSETS.values()), ids=list(OFFSETS))
def test_data_are_the_nearest_doubles_of_the_decimals(offset):
    values, _ = oneway_decimals(offset, 7, 3)
    for s, x in zip(values, oneway_data(offset, 7, 3)["y"]):
        exact = Fraction(s)
        err = abs(Fraction(x) - exact)
        for neighbour in (math.nextafter(x, math.inf), math.nextafter(x, -math.inf)):
            assert err <= abs(Fraction(neighbour) - exact)


def test_closed_form_matches_lme4_on_dyestuff():
    ref = load_reference("dyestuff")
    df = reference_data(ref)
    ex = exact_reml(df["Yield"], df["Batch"])
    vc = {row["grp"]: row["sdcor"] for row in ref["varcorr"]}
    assert ex["reml_criterion"] == pytest.approx(ref["REMLcrit"], rel=1e-9)
    assert ex["intercept"] == pytest.approx(ref["fixef"]["(Intercept)"], rel=1e-9)
    assert ex["sigma"] == pytest.approx(ref["sigma"], rel=1e-6)
    assert ex["sd_group"] == pytest.approx(vc["Batch"], rel=1e-6)


def test_closed_form_is_the_dense_reml_optimum():
    df = oneway_data(0, 7, 3)
    y, g = df["y"].to_numpy(), df["g"].to_numpy()
    ex = exact_reml(y, g)
    at_opt = dense_reml_criterion(y, g, ex["sigma2"], ex["tau2"])
    assert at_opt == pytest.approx(ex["reml_criterion"], rel=1e-12)
    for fs, ft in [(1.01, 1), (0.99, 1), (1, 1.01), (1, 0.99), (1.01, 0.99)]:
        assert dense_reml_criterion(y, g, ex["sigma2"] * fs, ex["tau2"] * ft) > at_opt


def test_closed_form_matches_the_fit_on_easy_data():
    """Offset 0, moderate size: the engine and the closed form agree tightly."""
    m, ex = fit_case(0, 7, 3)
    assert m.reml_criterion == pytest.approx(ex["reml_criterion"], rel=1e-9)


# ------------------------------------------------------------ the accuracy family proper
def _check(offset: int, k: int, n: int, quantity: str):
    m, ex = fit_case(offset, k, n)
    got, want = observed(m)[quantity], ex[quantity]
    assert np.isfinite(got), f"{quantity} is not finite: {got}"
    assert got == pytest.approx(want, rel=REL), (
        f"{quantity}: got {got!r}, exact {want!r}, relative error {abs(got - want) / abs(want):.3g}")


@pytest.mark.parametrize("quantity", QUANTITIES)
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("offset", list(OFFSETS))
def test_oneway_exact(offset, layout, quantity):
    _check(OFFSETS[offset], *LAYOUTS[layout], quantity)



@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("offset", list(OFFSETS))
def test_oneway_intercept_to_the_last_digits(offset, layout):
    """The intercept's digits below the offset: relative 1e-6 of ``ybar`` allows an error of
    1e6 at offset 1e12, far above the data's spread, so also bound the error by 1e-6 of
    ``ybar - offset`` plus four units in the last place of ``ybar`` (the best a double can do)."""
    m, ex = fit_case(OFFSETS[offset], *LAYOUTS[layout])
    got, want = observed(m)["intercept"], ex["intercept"]
    tol = REL * abs(want - OFFSETS[offset]) + 4 * math.ulp(want)
    assert abs(got - want) <= tol, f"intercept {got!r} vs exact {want!r}: error {abs(got - want):.3g} > {tol:.3g}"
