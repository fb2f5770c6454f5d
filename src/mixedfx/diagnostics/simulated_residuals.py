"""Simulation-based scaled residuals and their tests (Hartig's DHARMa).

Simulate ``n`` responses per observation from the fitted model (:func:`mixedfx.inference.simulate`;
by default with new random effects in every replicate, ``use_u=False``; ``use_u=True`` conditions
on the fitted conditional modes).  The scaled residual of observation ``i`` is where its observed
value falls in the distribution of its simulations, by the randomized probability integral
transform (PIT; Dunn & Smyth 1996, DHARMa >= 0.3.1):

.. math:: r_i \\sim U\\big(P_i^-, P_i^+\\big), \\quad P_i^- = \\tfrac1n \\#\\{s: y^{(s)}_i < y_i\\},
          \\quad P_i^+ = \\tfrac1n \\#\\{s: y^{(s)}_i \\le y_i\\},

and ``r_i = P_i^-`` when no simulation ties with ``y_i`` (every continuous response).  Under a
correct model the residuals are uniform on (0, 1) whatever the family, so one set of pictures
and tests serves LMMs, GLMMs and glmmTMB-style models.  Binomial responses are compared as counts
of successes (proportion times trials), as DHARMa does.

Tests (DHARMa's definitions):

* uniformity: one-sample Kolmogorov-Smirnov test against U(0, 1) (R's ``ks.test``: exact
  distribution below 100 observations without ties, otherwise the limiting one, and
  ``exp(-2 n D^2)`` for one-sided alternatives);
* dispersion: ``s(x) = var(x - f)`` with ``f`` the fitted (population-level) response; statistic
  ``s(y) / mean_j s(y^{(j)})``, p-value from where ``s(y)`` falls among the ``s(y^{(j)})``:
  two-sided ``min(1, 2 min(mean(s_j <= s_obs), mean(s_j >= s_obs)))``;
* zero inflation: the same with ``s(x) = #{x == 0}``;
* outliers: observations outside the simulation envelope.  ``type="binomial"``: residuals below
  ``1/(n+1)`` or above ``1 - 1/(n+1)``, exact binomial test against the rate ``2/(n+1)``;
  ``type="bootstrap"``: the share of residuals equal to 0 or 1 against its distribution when
  each simulation in turn plays the observed data (DHARMa's default for integer responses
  with at most 500 observations);
* quantiles: for each of the 0.25, 0.5 and 0.75 quantiles, residuals below it are counted in
  bins of the predictor (a chi-square test of ``k_b ~ Bin(n_b, q)``), the three p-values
  combined by Benjamini-Hochberg.  This replaces DHARMa's quantile-regression (qgam) test.

These p-values use the fitted (plug-in) parameters, so they are conservative: the fit adapts to
the data (a correct Poisson GLMM gives a median KS p-value near 0.78).  ``calibrate=B`` refits the
model to ``B`` responses simulated from it and reports each test's parametric-bootstrap p-value
instead (DHARMa's ``refit = TRUE``), uniform under the fitted model; see
:mod:`mixedfx.diagnostics.simulated_residuals_calibrate`.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import stats

from ..inference.simulate import simulate_array
from .simulated_residuals_calibrate import calibrate as _calibrate, ks_statistic, log_ratio

__all__ = ["SimulatedResiduals", "SimulationTest", "scaled_residuals", "simulated_residuals"]

_ALTERNATIVES = {"two-sided": "two-sided", "two.sided": "two-sided", "two_sided": "two-sided",
                 "greater": "greater", "less": "less"}
_BINOMIAL = ("binomial", "betabinomial")


def _alternative(alternative: str) -> str:
    try:
        return _ALTERNATIVES[alternative]
    except (KeyError, TypeError):
        raise ValueError(f"alternative must be 'two-sided', 'greater' or 'less', got {alternative!r}") from None


def _simulation_p(simulated: np.ndarray, observed: float, alternative: str) -> float:
    """Where ``observed`` falls among ``simulated`` (DHARMa's ``getP``)."""
    le, ge = float(np.mean(simulated <= observed)), float(np.mean(simulated >= observed))
    if alternative == "greater":
        return ge
    if alternative == "less":
        return le
    return min(2.0 * min(le, ge), 1.0)


def _ratio(observed: float, expected: float) -> float:
    if expected == 0:
        return float("nan") if observed == 0 else float("inf")
    return float(observed / expected)


def scaled_residuals(simulated, observed, rng=None) -> np.ndarray:
    """Randomized PIT residuals of ``observed`` (n,) within ``simulated`` (n, nsim).

    ``r_i = P(sim < y_i)`` when no simulation equals ``y_i``, else a uniform draw between
    ``P(sim < y_i)`` and ``P(sim <= y_i)`` (one draw per tied row, in row order, from ``rng``).
    """
    sims = np.asarray(simulated, dtype=float)
    y = np.asarray(observed, dtype=float)
    lower = np.mean(sims < y[:, None], axis=1)
    upper = np.mean(sims <= y[:, None], axis=1)
    tied = lower != upper
    out = lower.copy()
    if tied.any():
        rng = np.random.default_rng(rng)
        out[tied] = rng.uniform(lower[tied], upper[tied])
    return out


@dataclass(frozen=True)
class SimulationTest:
    """Outcome of a test on simulated residuals (R's ``htest``): ``statistic``, ``pvalue``,
    ``method``, ``alternative``; ``statistic_name`` says what the statistic is, ``details``
    holds the test's other numbers (expected values, counts, simulated statistics...)."""
    statistic: float
    pvalue: float
    method: str
    alternative: str
    statistic_name: str = "statistic"
    details: dict = field(default_factory=dict, repr=False, compare=False)

    def __repr__(self) -> str:
        extra = "".join(f", {k}={_fmt(v)}" for k, v in self.details.items() if np.ndim(v) == 0)
        return (f"SimulationTest({self.method}: {self.statistic_name}={_fmt(self.statistic)}, "
                f"pvalue={_fmt(self.pvalue)}, alternative={self.alternative!r}{extra})")

    __str__ = __repr__


def _fmt(v) -> str:
    if isinstance(v, (bool, np.bool_, str)):
        return repr(v) if isinstance(v, str) else str(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return f"{float(v):.4g}"


@dataclass(frozen=True, eq=False)
class SimulatedResiduals:
    """Scaled (quantile) residuals from simulations of a fitted model; see the module docstring.

    Attributes
    ----------
    residuals : (n,) scaled residuals in [0, 1].
    simulated : (n, nsim) simulated responses (binomial: counts of successes).
    observed : (n,) observed responses on the same scale.
    fitted : (n,) the fitted response the dispersion test centres on and the plot's x axis
        ranks (a model's population-level prediction; the mean of the simulations otherwise).
    integer_response : whether every observed and simulated value is a whole number.
    simulation : ``"unconditional"`` (new random effects) or ``"conditional"`` (``use_u=True``).
    calibration : None (plug-in p-values) or the refits that calibrate every test's p-value
        (:class:`~mixedfx.diagnostics.simulated_residuals_calibrate.Calibration`; ``calibrate=B``).
    no_zeros : None, or why the model's response can never be 0 (ordinal models; set by
        :func:`simulated_residuals`), which makes :meth:`test_zero_inflation` refuse.
    """
    residuals: np.ndarray
    simulated: np.ndarray
    observed: np.ndarray
    fitted: np.ndarray
    integer_response: bool
    simulation: str = "unconditional"
    seed: object = None
    index: object = field(default=None, repr=False)
    #: the drawing function behind :meth:`plot` (set by the result method; the plots layer owns it)
    plotter: object = field(default=None, repr=False)
    calibration: object = field(default=None, repr=False)
    no_zeros: str | None = field(default=None, repr=False)

    @classmethod
    def from_simulations(cls, simulated, observed, fitted=None, seed=None, simulation: str = "user-supplied",
                         index=None) -> "SimulatedResiduals":
        """Scaled residuals from a simulation matrix made elsewhere (DHARMa's ``createDHARMa``).

        Parameters
        ----------
        simulated : array (n, nsim), one column per replicate, nsim >= 2.
        observed : array (n,).
        fitted : array (n,), optional; default the row means of ``simulated``.
        seed : int, Generator or None: the randomization of tied values.
        """
        sims = np.asarray(simulated, dtype=float)
        y = np.asarray(observed, dtype=float).ravel()
        if sims.ndim != 2:
            raise ValueError(f"simulated must be a 2-d array (observations x replicates), got {sims.ndim} dimension(s)")
        if sims.shape[0] != y.shape[0]:
            raise ValueError(f"simulated has {sims.shape[0]} rows but observed has {y.shape[0]} values; "
                             "give one row of simulations per observation")
        if sims.shape[1] < 2:
            raise ValueError("scaled residuals need at least 2 simulations per observation (n >= 2; 250 is usual)")
        if not (np.all(np.isfinite(sims)) and np.all(np.isfinite(y))):
            raise ValueError("simulated and observed must be finite numbers (no NaN or infinity)")
        f = sims.mean(axis=1) if fitted is None else np.asarray(fitted, dtype=float).ravel()
        if f.shape != y.shape:
            raise ValueError(f"fitted has {f.shape[0]} values but observed has {y.shape[0]}")
        integer = bool(np.all(y == np.round(y)) and np.all(sims == np.round(sims)))
        res = scaled_residuals(sims, y, seed)
        return cls(res, sims, y, f, integer, simulation, seed, index)

    # ---------------------------------------------------------------- basics
    @property
    def n_sim(self) -> int:
        return int(self.simulated.shape[1])

    @property
    def n_obs(self) -> int:
        return int(self.simulated.shape[0])

    def __repr__(self) -> str:
        cal = "" if self.calibration is None else f", calibrated_by={self.calibration.n_refits} refits"
        return (f"SimulatedResiduals(n_obs={self.n_obs}, n_sim={self.n_sim}, simulation={self.simulation!r}, "
                f"integer_response={self.integer_response}{cal})")

    def to_frame(self):
        """``observed``, ``fitted`` and ``residual`` per observation, on the data's row index."""
        import pandas as pd
        return pd.DataFrame({"observed": self.observed, "fitted": self.fitted, "residual": self.residuals},
                            index=self.index)

    # ---------------------------------------------------------------- tests
    def test_uniformity(self, alternative: str = "two-sided") -> SimulationTest:
        """Kolmogorov-Smirnov test of the residuals against U(0, 1) (DHARMa's ``testUniformity``)."""
        alt = _alternative(alternative)
        r = self.residuals
        exact = r.size < 100 and np.unique(r).size == r.size     # R's ks.test rule
        res = stats.kstest(r, "uniform", alternative=alt, method="exact" if exact else "asymp")
        p = float(res.pvalue)
        if not exact and alt != "two-sided":      # R's one-sided limit, exp(-2 n D^2)
            p = float(min(1.0, np.exp(-2.0 * r.size * res.statistic ** 2)))
        name = {"two-sided": "D", "greater": "D^+", "less": "D^-"}[alt]
        out = SimulationTest(float(res.statistic), p,
                             "one-sample Kolmogorov-Smirnov test of the scaled residuals against U(0, 1)"
                             + (" (exact)" if exact else " (asymptotic)"), alt, name)
        cal = self.calibration
        if cal is None:
            return out
        return cal.apply(out, float(ks_statistic(r, alt)[0]), ks_statistic(cal.residuals, alt), name)

    def test_dispersion(self, alternative: str = "two-sided") -> SimulationTest:
        """Simulation-based dispersion test (DHARMa's default ``testDispersion``): the variance of
        ``y - fitted`` over its mean across the simulations; > 1 overdispersion, < 1 underdispersion."""
        alt = _alternative(alternative)
        obs = float(np.var(self.observed - self.fitted, ddof=1))
        sim = np.var(self.simulated - self.fitted[:, None], axis=0, ddof=1)
        out = SimulationTest(_ratio(obs, float(sim.mean())), _simulation_p(sim, obs, alt),
                             "simulation-based dispersion test: variance of residuals observed vs simulated", alt,
                             "dispersion", {"observed_variance": obs, "mean_simulated_variance": float(sim.mean()),
                                            "simulated": sim})
        return self._calibrated_ratio(out, obs, float(sim.mean()), "dispersion", alt)

    def _calibrated_ratio(self, out, obs, expected, which, alt):
        """Calibrate a ratio test (dispersion, zeros) by its log ratio: ``|.|`` two-sided."""
        cal = self.calibration
        if cal is None:
            return out
        table = cal.dispersion if which == "dispersion" else cal.zeros
        sign = {"two-sided": None, "greater": 1.0, "less": -1.0}[alt]
        t, null = float(log_ratio(obs, expected)), log_ratio(table[:, 0], table[:, 1])
        if sign is None:
            return cal.apply(out, abs(t), np.abs(null), "|log ratio|")
        return cal.apply(out, sign * t, sign * null, "log ratio" if sign > 0 else "-log ratio")

    def test_zero_inflation(self, alternative: str = "two-sided") -> SimulationTest:
        """Observed number of zeros against its simulated distribution (DHARMa's ``testZeroInflation``);
        the ratio observed / mean simulated is > 1 for zero inflation.

        Raises ValueError for a response that is never 0 (an ordinal model: categories 1, ..., K),
        where the ratio would be 0/0; count a category with :meth:`test_generic` instead.  For a
        continuous response whose simulations have no exact zeros (an LMM) the test is computed, as
        DHARMa does, with a UserWarning: it then only says whether the data hold any exact zero
        (p = 0 if they do, else ratio NaN and p = 1), not how many zeros the model expects.
        """
        alt = _alternative(alternative)
        if self.no_zeros is not None:
            raise ValueError(
                f"test_zero_inflation does not apply: {self.no_zeros}, so the data and every simulation have no "
                "zeros (the ratio would be 0/0 and p = 1 whatever the fit). To check whether a category is over- "
                "or under-represented, count it: r.test_generic(lambda x: np.sum(x == 1, axis=0)) for the lowest; "
                "test_uniformity(), test_dispersion() and test_quantiles() check the fit as a whole")
        if not self.integer_response and not np.any(self.simulated == 0):
            k = int(np.sum(self.observed == 0))
            warnings.warn(
                f"test_zero_inflation on a continuous response: the simulations have no exact zeros, so the test "
                f"only says whether the data have any ({k} here; two-sided p = 0 if any, else 1), not whether there "
                "are more zeros than the model expects. Exact zeros in a continuous response (a point mass at 0) call "
                "for a hurdle model; test_uniformity(), test_dispersion() and test_quantiles() check the fit",
                UserWarning, stacklevel=2)
        return self._zero_count_test(alt)

    def _zero_count_test(self, alternative: str) -> SimulationTest:
        """The zero-inflation test without :meth:`test_zero_inflation`'s checks (the calibration refits use it)."""
        out = self._generic(lambda x: np.sum(x == 0, axis=0), alternative, "zero-inflation test: observed vs "
                            "simulated number of zeros", "ratio_obs_sim", "zeros")
        d = out.details
        return self._calibrated_ratio(out, d["observed_zeros"], d["mean_simulated_zeros"], "zeros",
                                      _alternative(alternative))

    def test_generic(self, summary, alternative: str = "two-sided", method: str = "simulation test of a summary",
                     statistic_name: str = "ratio_obs_sim", label: str = "summary") -> SimulationTest:
        """Any summary of the response against its simulated distribution (DHARMa's ``testGeneric``).

        ``summary`` maps an (n,) response to a number; given an (n, nsim) array it may return one
        number per column (vectorized), otherwise it is applied column by column.  The p-value
        is the plug-in one even when the residuals are calibrated (the refits keep only what the
        built-in tests need); the ``method`` then says so."""
        out = self._generic(summary, alternative, method, statistic_name, label)
        if self.calibration is not None:
            out = replace(out, method=out.method + " (plug-in p-value: custom summaries are not calibrated)")
        return out

    def _generic(self, summary, alternative, method, statistic_name, label) -> SimulationTest:
        alt = _alternative(alternative)
        obs = float(np.asarray(summary(self.observed)).ravel()[0])
        sim = np.asarray(summary(self.simulated), dtype=float).ravel()
        if sim.size != self.n_sim:
            sim = np.array([float(np.asarray(summary(c)).ravel()[0]) for c in self.simulated.T])
        return SimulationTest(_ratio(obs, float(sim.mean())), _simulation_p(sim, obs, alt), method, alt,
                              statistic_name, {f"observed_{label}": obs, f"mean_simulated_{label}": float(sim.mean()),
                                               "simulated": sim})

    def test_outliers(self, alternative: str = "two-sided", margin: str = "both", type: str = "default",
                      n_boot: int = 100, seed=None) -> SimulationTest:
        """Test for too many (or too few) observations outside the simulation envelope (DHARMa's
        ``testOutliers``).

        Parameters
        ----------
        alternative : ``"two-sided"``, ``"greater"`` (too many outliers) or ``"less"``.
        margin : ``"both"``, ``"upper"`` or ``"lower"``.
        type : ``"binomial"`` (exact binomial test against ``1/(n+1)`` per margin), ``"bootstrap"``
            (each simulation in turn as the data), or ``"default"``: binomial for continuous
            responses and for integer ones with more than 500 observations, bootstrap otherwise.
        n_boot : bootstrap replicates (at most ``n_sim``).
        seed : randomness of the bootstrap; None reuses the integer seed the residuals were made
            with (so repeated calls agree), if any.
        """
        alt = _alternative(alternative)
        if margin not in ("both", "upper", "lower"):
            raise ValueError(f"margin must be 'both', 'upper' or 'lower', got {margin!r}")
        if type not in ("default", "binomial", "bootstrap"):
            raise ValueError(f"type must be 'default', 'binomial' or 'bootstrap', got {type!r}")
        if type == "default":
            type = "bootstrap" if self.integer_response and self.n_obs <= 500 else "binomial"
        if type == "binomial":
            out = self._outliers_binomial(alt, margin)
        else:
            out = self._outliers_bootstrap(alt, margin, n_boot, seed)
        cal = self.calibration
        if cal is None:
            return out
        t, null = _outlier_count(self.residuals, self.n_sim, margin, type), \
            _outlier_count(cal.residuals, self.n_sim, margin, type)
        if alt == "two-sided":
            return cal.apply(out, t, null, "outliers", two_sided_counts=True)
        sign = 1.0 if alt == "greater" else -1.0
        return cal.apply(out, sign * t, sign * null, "outliers" if sign > 0 else "-outliers")

    def _outliers_binomial(self, alt, margin):
        edge = 1.0 / (self.n_sim + 1)
        r = self.residuals
        k = int((margin != "upper") * np.sum(r < edge) + (margin != "lower") * np.sum(r > 1.0 - edge))
        p0 = edge * (2 if margin == "both" else 1)
        res = stats.binomtest(k, self.n_obs, p0, alternative=alt)
        return SimulationTest(float(k), float(res.pvalue), "outlier test: exact binomial test with approximate "
                              f"expectation ({margin} margin{'s' if margin == 'both' else ''})", alt, "outliers",
                              {"observations": self.n_obs, "frequency": k / self.n_obs, "expected_frequency": p0})

    def _outliers_bootstrap(self, alt, margin, n_boot, seed):
        def share(res):
            lo, hi = np.mean(res == 0), np.mean(res == 1)
            return lo + hi if margin == "both" else (hi if margin == "upper" else lo)

        n_boot = int(n_boot)
        if n_boot < 1:
            raise ValueError(f"n_boot must be a positive whole number, got {n_boot}")
        n_boot = min(n_boot, self.n_sim)
        if seed is None and isinstance(self.seed, (int, np.integer)):
            seed = self.seed
        rng = np.random.default_rng(seed)
        others = np.arange(self.n_sim)
        boot = np.empty(n_boot)
        for i in range(n_boot):
            pick = rng.choice(np.delete(others, i), size=self.n_sim, replace=True)
            boot[i] = share(scaled_residuals(self.simulated[:, pick], self.simulated[:, i], rng))
        obs = float(share(self.residuals))
        return SimulationTest(obs * self.n_obs, _simulation_p(boot, obs, alt), "outlier test: bootstrapped "
                              f"expectation ({margin} margin{'s' if margin == 'both' else ''})", alt, "outliers",
                              {"observations": self.n_obs, "frequency": obs, "expected_frequency": float(boot.mean()),
                               "simulated": boot})

    def test_quantiles(self, predictor=None, quantiles=(0.25, 0.5, 0.75), bins: int | None = None) -> SimulationTest:
        """Do the residual quantiles stay at 0.25, 0.5, 0.75 along the predictor?

        The observations are cut into ``bins`` groups of about equal size by ``predictor``
        (default the fitted response; default ``bins`` = ``min(10, n // 25)``, at least 2).  For
        quantile ``q`` the counts ``k_b`` of residuals below ``q`` give
        ``X_q = sum_b (k_b - n_b q)^2 / (n_b q (1 - q))`` ~ chi-square(bins) under the model; the
        p-values are combined by Benjamini-Hochberg (the smallest adjusted one is reported, as
        DHARMa does with its qgam fits).  ``details["pvalues"]`` and ``details["adjusted"]`` hold the
        per-quantile p-values before and after the adjustment.
        """
        x = self.fitted if predictor is None else _numeric_predictor(predictor)
        if x.shape[0] != self.n_obs:
            raise ValueError(f"predictor has {x.shape[0]} values but there are {self.n_obs} residuals")
        q = np.asarray(quantiles, dtype=float).ravel()
        if q.size == 0 or np.any((q <= 0) | (q >= 1)):
            raise ValueError(f"quantiles must lie strictly between 0 and 1, got {quantiles!r}")
        pvals, nbins = _quantile_pvalues(self.residuals, x, q, bins)
        adjusted = _bh(pvals)
        out = SimulationTest(float(adjusted.min()), float(adjusted.min()),
                             f"binned quantile test ({nbins} bins; chi-square per quantile, BH-combined)",
                             "two-sided", "min_adjusted_p", {"bins": nbins, "quantiles": q,
                                                             "pvalues": pvals, "adjusted": adjusted})
        cal = self.calibration
        if cal is None:
            return out
        null = np.array([_bh(_quantile_pvalues(r, x if predictor is not None else f, q, bins)[0]).min()
                         for r, f in zip(cal.residuals, cal.fitted)])
        return cal.apply(out, -float(adjusted.min()), -null, "-min_adjusted_p")

    def tests(self) -> dict:
        """Uniformity, dispersion and outlier tests together (DHARMa's ``testResiduals``)."""
        return {"uniformity": self.test_uniformity(), "dispersion": self.test_dispersion(),
                "outliers": self.test_outliers()}

    def plot(self, ax=None, quantiles=(0.25, 0.5, 0.75), rank: bool = True):
        """DHARMa's two panels: uniform Q-Q plot with the test p-values, and residuals against the
        (rank-transformed) fitted response with binned quantile lines (``ax``: two Axes or None);
        returns the two Axes.  The drawing is :func:`mixedfx.plots.simulated_residuals.simulated_residuals_plot`,
        attached by the model's ``simulated_residuals`` (diagnostics do not import plots)."""
        if self.plotter is None:
            raise RuntimeError("this SimulatedResiduals has no plotter attached (made by from_simulations); draw it "
                               "with mfx.plots.simulated_residuals_plot(r)")
        return self.plotter(self, ax=ax, quantiles=quantiles, rank=rank)


def _numeric_predictor(predictor) -> np.ndarray:
    """``predictor`` of :meth:`SimulatedResiduals.test_quantiles` as finite floats, or a clear error."""
    try:
        x = np.asarray(predictor, dtype=float).ravel()
    except (TypeError, ValueError):
        raise ValueError("predictor must hold numbers (one per observation, e.g. a covariate of the fitted rows); "
                         "for a factor pass its integer codes, e.g. data[col].cat.codes") from None
    if not np.all(np.isfinite(x)):
        raise ValueError(f"predictor has {int(np.sum(~np.isfinite(x)))} missing or infinite value(s); give one "
                         "finite number per observation used by the fit (e.g. the column at r.to_frame().index)")
    return x


def _quantile_pvalues(residuals, x, q, bins) -> tuple[np.ndarray, int]:
    """Per quantile in ``q``, the chi-square p-value of the counts of residuals below it by bin of ``x``."""
    groups = _bin_index(x, bins)
    nb = np.bincount(groups).astype(float)
    pvals = []
    for qq in q:
        kb = np.bincount(groups, weights=(residuals < qq).astype(float), minlength=nb.size)
        chi2 = float(np.sum((kb - nb * qq) ** 2 / (nb * qq * (1 - qq))))
        pvals.append(float(stats.chi2.sf(chi2, nb.size)))
    return np.array(pvals), int(nb.size)


def _outlier_count(residuals, n_sim: int, margin: str, type: str):
    """Residuals outside the envelope per row: below ``1/(n_sim+1)`` / above ``1 - 1/(n_sim+1)``
    (``type="binomial"``) or equal to 0 / 1 (``"bootstrap"``)."""
    r = np.asarray(residuals, dtype=float)
    edge = 1.0 / (n_sim + 1) if type == "binomial" else 0.0
    low = (r < edge) if type == "binomial" else (r == 0)
    high = (r > 1.0 - edge) if type == "binomial" else (r == 1)
    return (margin != "upper") * np.sum(low, axis=-1) + (margin != "lower") * np.sum(high, axis=-1)


def _bin_index(x: np.ndarray, bins) -> np.ndarray:
    n = x.size
    bins = max(2, min(10, n // 25)) if bins is None else int(bins)
    if bins < 1 or bins > n:
        raise ValueError(f"bins must be between 1 and the number of observations ({n}), got {bins}")
    order = np.argsort(x, kind="stable")
    groups = np.empty(n, dtype=int)
    groups[order] = np.arange(n) * bins // n
    return groups


def _bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (R's ``p.adjust(method = "BH")``)."""
    m = p.size
    order = np.argsort(p)[::-1]
    adj = np.minimum.accumulate(p[order] * m / np.arange(m, 0, -1))
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out


def _binomial_trials(result):
    family = getattr(result, "family", None)
    if family is None or getattr(family, "name", None) not in _BINOMIAL:
        return None
    w = result.fit.design.weights
    return np.ones(result.nobs) if w is None else np.round(np.asarray(w, dtype=float))


def _no_zeros_reason(result) -> str | None:
    """Why ``result``'s response can never be 0, or None (see :meth:`SimulatedResiduals.test_zero_inflation`)."""
    if hasattr(type(result), "thresholds"):
        return "an ordinal (clmm) model's response is a category coded 1, ..., K, never 0"
    return None


def _population_response(result):
    """The fitted response without random effects (DHARMa's ``predict(type = "response", re.form = ~0)``),
    or None for ordinal models (whose simulations are category codes)."""
    if hasattr(type(result), "thresholds"):
        return None
    if getattr(result, "family", None) is None:         # LMM
        return np.asarray(result.predict(re_form="~0"), dtype=float)
    return np.asarray(result.predict(type="response", re_form="~0"), dtype=float)


def simulated_residuals(result, n: int = 250, seed=None, use_u: bool = False, fitted: str = "population",
                        calibrate: int = 0, n_jobs: int = 1, progress=None) -> SimulatedResiduals:
    """Scaled residuals of a fitted model from ``n`` simulations (DHARMa's ``simulateResiduals``).

    Parameters
    ----------
    result : a fitted LMM, GLMM or glmmTMB-style result.
    n : simulations per observation (at least 2; DHARMa's default 250).
    seed : int, Generator or None; one stream drives the simulations and the randomization.
    use_u : False (default): every simulation draws new random effects (unconditional, lme4's
        ``re.form = NA``); True: conditional on the fitted conditional modes.
    fitted : ``"population"`` (default): the fitted response with random effects at zero, as
        DHARMa's ``simulateResiduals``; ``"simulations"``: the mean of the simulations, as
        DHARMa's ``createDHARMa`` (ordinal models always use this).
    calibrate : 0 (default): plug-in p-values (conservative, see the module docstring);
        ``B > 0``: refit the model to ``B`` responses simulated from it and report every test's
        parametric-bootstrap p-value ``(1 + #{T_b >= T}) / (B' + 1)`` over the ``B'`` refits that
        succeeded (:mod:`mixedfx.diagnostics.simulated_residuals_calibrate`; 39 or 99 are usual,
        B = 19 gives p-values in steps of 0.05).  The residuals themselves are those of
        ``calibrate=0`` with the same ``seed``.
    n_jobs : worker processes for the refits (``-1``: one per CPU); the p-values do not depend on it.
    progress : a progress bar over the refits (None: after ~2 s in a terminal or notebook; see
        :mod:`mixedfx.inference.progress`).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n (simulations per observation) must be a whole number >= 2, got {n!r}; 250 is usual")
    if fitted not in ("population", "simulations"):
        raise ValueError(f"fitted must be 'population' or 'simulations', got {fitted!r}")
    if isinstance(calibrate, bool) or not isinstance(calibrate, (int, np.integer)) or calibrate < 0:
        raise ValueError(f"calibrate (refits for calibrated p-values) must be a whole number >= 0, got {calibrate!r}; "
                         "0 for plug-in p-values, 39 or 99 for calibrated ones")
    try:
        rng = np.random.default_rng(seed)
    except (TypeError, ValueError):
        raise ValueError(f"seed must be None, a non-negative whole number or a numpy Generator, got {seed!r}") from None
    sims = simulate_array(result, int(n), seed=rng, use_u=bool(use_u))
    y = np.asarray(result.fit.design.y, dtype=float)
    f = _population_response(result) if fitted == "population" else None
    trials = _binomial_trials(result)
    if trials is not None:                      # compare counts of successes, as DHARMa does
        sims = np.round(sims * trials[:, None])
        y = np.round(y * trials)
        f = None if f is None else f * trials
    out = SimulatedResiduals.from_simulations(sims, y, fitted=f, seed=rng, index=result.fit.design.row_index,
                                              simulation="conditional" if use_u else "unconditional")
    out = replace(out, seed=seed, no_zeros=_no_zeros_reason(result))
    if calibrate:        # the refits' seeds come after the data's draws: the residuals are those of calibrate=0
        cal = _calibrate(result, int(calibrate), int(rng.integers(0, 2 ** 63 - 1)), int(n), bool(use_u), fitted,
                         simulated_residuals, n_jobs=n_jobs, progress=progress)
        out = replace(out, calibration=cal)
    return out
