"""Calibrated p-values for the simulated-residual tests by parametric bootstrap (DHARMa's ``refit = TRUE``).

With fitted (plug-in) parameters the simulated-residual tests are conservative: the fit has
adapted to the very data it is checked against, so the observed residuals look better than the
model's own simulations (a correctly specified Poisson GLMM gives a median KS p-value near 0.78;
an LMM's dispersion p-value is close to 1).  Calibration compares each test statistic with its
distribution over data sets for which the fitted model *is* true, each treated exactly as the
observed data were:

1. draw ``B`` responses ``y_b`` from the fitted model (unconditionally: new random effects,
   then the family; :func:`mixedfx.inference.simulate.simulate_array`);
2. refit the model to each ``y_b`` (same design, criterion, family and ``nagq``; started from
   the estimates; GLMMs by :func:`mixedfx.inference.bootstrap_glmm.refit_glmm`, which
   re-estimates a negative binomial's shape);
3. compute the scaled residuals of each refit from ``n`` simulations of the *refitted* model
   (with the same ``use_u`` and ``fitted`` choices as for the data) and the test statistics
   ``T_b``;
4. report ``p = (1 + #{b: T_b >= T}) / (B' + 1)`` with ``T`` the observed statistic and ``B'``
   the refits that succeeded (a parametric-bootstrap p-value: exactly uniform on
   ``{1/(B'+1), ..., 1}`` when the fitted parameters are the true ones, and uniform in the limit
   otherwise; ties count against the data, which keeps it valid for discrete statistics).

The statistics (larger = more extreme): uniformity, the Kolmogorov-Smirnov ``D`` (``D^+``/``D^-``
one-sided); dispersion and zero inflation, ``|log(observed / mean simulated)|`` (two-sided;
``log ratio`` for ``"greater"``, ``-log ratio`` for ``"less"``); outliers, the number outside
the envelope (``"greater"``; ``"less"`` its negative; two-sided: twice the smaller one-sided
p-value, at most 1); quantiles, the smallest BH-adjusted p-value (smaller = more extreme).
Every refit keeps only what these need (its residuals, fitted response and four summaries),
so any alternative, margin, predictor or bin count can be calibrated after the refits.

Refits that raise or do not converge are dropped and counted (``n_failed``, the reasons in
``failed``, one :class:`~mixedfx.inference.bootstrap_glmm.RefitFailureWarning`).  All
responses and every replicate's seed are drawn from the ``seed`` stream before any refit, so the
p-values do not depend on ``n_jobs``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..inference.bootstrap_glmm import _describe, failure_reason, refit_glmm, warn_failures
from ..inference.parallel import STATE, replicate_map
from ..inference.progress import progress_bar
from ..inference.simulate import simulate_array
from ..models import fit_lmm

__all__ = ["Calibration", "calibrate", "bootstrap_pvalue", "ks_statistic", "log_ratio"]


def bootstrap_pvalue(observed: float, null, two_sided_counts: bool = False) -> float:
    """``(1 + #{T_b >= T}) / (B + 1)``; ``two_sided_counts``: ``min(1, 2 min(p_ge, p_le))``.

    Values within a relative ``1e-10`` of ``observed`` count as ties (as extreme)."""
    null = np.asarray(null, dtype=float)
    tol = 1e-10 * max(1.0, abs(observed)) if np.isfinite(observed) else 0.0
    ge = (1.0 + np.sum(null >= observed - tol)) / (null.size + 1.0)
    if not two_sided_counts:
        return float(ge)
    le = (1.0 + np.sum(null <= observed + tol)) / (null.size + 1.0)
    return float(min(1.0, 2.0 * min(ge, le)))


def ks_statistic(residuals, alternative: str = "two-sided") -> np.ndarray:
    """Kolmogorov-Smirnov ``D`` (``D^+`` for ``"greater"``, ``D^-`` for ``"less"``) of each row of
    ``residuals`` against U(0, 1), as :func:`scipy.stats.kstest`."""
    r = np.sort(np.atleast_2d(np.asarray(residuals, dtype=float)), axis=1)
    n = r.shape[1]
    i = np.arange(1, n + 1)
    d_plus = np.max(i / n - r, axis=1)
    d_minus = np.max(r - (i - 1) / n, axis=1)
    if alternative == "greater":
        return d_plus
    if alternative == "less":
        return d_minus
    return np.maximum(d_plus, d_minus)


def log_ratio(observed, expected) -> np.ndarray:
    """``log(observed / expected)``; 0 when both are 0, +-inf when only one is."""
    o, e = np.asarray(observed, dtype=float), np.asarray(expected, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log(o) - np.log(e)
    return np.where((o == 0) & (e == 0), 0.0, out)


@dataclass(frozen=True, eq=False)
class Calibration:
    """What the refits left for calibrating the tests (one row per successful refit).

    Attributes
    ----------
    residuals : (B', n) scaled residuals of each refit.
    fitted : (B', n) the fitted response each refit's tests centre on.
    dispersion : (B', 2) observed variance of ``y_b - fitted_b`` and its mean over the simulations.
    zeros : (B', 2) observed number of zeros and its mean over the simulations.
    requested : B, the refits asked for.  replicates : the replicate numbers kept.
    failed : ``{replicate: reason}`` of the refits dropped.
    """
    residuals: np.ndarray
    fitted: np.ndarray
    dispersion: np.ndarray
    zeros: np.ndarray
    requested: int
    replicates: np.ndarray
    failed: dict = field(default_factory=dict)

    @property
    def n_refits(self) -> int:
        return int(self.residuals.shape[0])

    @property
    def n_failed(self) -> int:
        return len(self.failed)

    def __repr__(self) -> str:
        return f"Calibration(n_refits={self.n_refits}, n_failed={self.n_failed})"

    def apply(self, test, statistic: float, null, name: str, two_sided_counts: bool = False):
        """``test`` (a SimulationTest) with its p-value replaced by the bootstrap p-value of
        ``statistic`` against ``null``; the plug-in p-value stays in ``details``."""
        null = np.asarray(null, dtype=float)
        p = bootstrap_pvalue(float(statistic), null, two_sided_counts)
        details = {**test.details, "pvalue_plugin": float(test.pvalue), "calibration_statistic": float(statistic),
                   "calibration_statistic_name": name, "null_statistics": null, "n_refits": self.n_refits,
                   "n_failed": self.n_failed}
        return replace(test, pvalue=p, details=details,
                       method=f"{test.method}; p-value calibrated by parametric bootstrap ({self.n_refits} refits)")


# ---------------------------------------------------------------- refits
def _refit(fit, y):
    """``fit``'s model refitted to the response ``y`` (same design, criterion, family)."""
    design = replace(fit.design, y=y)
    if hasattr(fit, "dist"):                 # glmmTMB-style and ordinal models
        from ..models.extended import fit_extended, refit_start
        return fit_extended(design, fit.dist, fit.link, hurdle=fit.hurdle, nagq=fit.nagq, start=refit_start(fit),
                            warn=False)
    if getattr(fit, "family", None) is None:
        start = "moments" if getattr(fit, "residual", None) is not None else np.asarray(fit.theta, float)
        return fit_lmm(design, reml=fit.reml, start=start, warn=False)
    return refit_glmm(fit, design)


def _calibration_worker(b: int):
    """Replicate ``b``: (record or None, failure reason or None)."""
    st = STATE
    result = st["result"]
    try:
        new = _refit(result.fit, st["Y"][:, b])
    except (ArithmeticError, ValueError, np.linalg.LinAlgError, RuntimeError) as exc:
        return None, _describe(exc)
    reason = failure_reason(new)
    if reason:
        return None, reason
    try:
        sr = st["residuals"](replace(result, fit=new), n=st["n"], seed=int(st["seeds"][b]), use_u=st["use_u"],
                             fitted=st["fitted"])
    except (ArithmeticError, ValueError, np.linalg.LinAlgError, RuntimeError) as exc:
        return None, _describe(exc)
    disp = sr.test_dispersion().details
    zeros = sr._zero_count_test("two-sided").details       # unchecked: no warning per refit of an LMM
    return (sr.residuals, sr.fitted, (disp["observed_variance"], disp["mean_simulated_variance"]),
            (zeros["observed_zeros"], zeros["mean_simulated_zeros"])), None


def calibrate(result, B: int, seed: int, n: int, use_u: bool, fitted: str, residuals, n_jobs: int = 1,
              progress=None) -> Calibration:
    """Refit ``result`` to ``B`` responses simulated from it and keep what the tests need
    (see the module docstring).  ``seed``: an integer; ``residuals``: the function making a
    model's :class:`~mixedfx.diagnostics.simulated_residuals.SimulatedResiduals` (uncalibrated)."""
    if not hasattr(result, "fit") or not hasattr(result.fit, "design"):
        raise NotImplementedError(f"calibrate= needs a fitted mixedfx model; got {type(result).__name__}")
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, 2 ** 63 - 1, size=B)
    Y = simulate_array(result, B, seed=rng, use_u=False)
    state = {"result": result, "Y": Y, "seeds": seeds, "n": n, "use_u": use_u, "fitted": fitted,
             "residuals": residuals}
    with progress_bar(B, "calibration refits", progress) as bar:
        out = replicate_map(_calibration_worker, state, B, n_jobs, bar)
    failed = {b: reason for b, (_, reason) in enumerate(out) if reason is not None}
    kept = [b for b, (rec, _) in enumerate(out) if rec is not None]
    if not kept:
        raise RuntimeError(f"all {B} calibration refits failed; the first: {failed[0]}")
    warn_failures(failed, B, "calibration refits")
    recs = [out[b][0] for b in kept]
    return Calibration(residuals=np.array([r[0] for r in recs]), fitted=np.array([r[1] for r in recs]),
                       dispersion=np.array([r[2] for r in recs], dtype=float),
                       zeros=np.array([r[3] for r in recs], dtype=float), requested=int(B),
                       replicates=np.asarray(kept, dtype=int), failed=failed)
