"""The fitted linear mixed model as users see it: a frozen result with lme4's accessors."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

# the functions behind the methods, imported explicitly: results is the last stage before cli
from ..diagnostics.checks import check as _check
from ..diagnostics.influence import influence as _influence
from ..diagnostics.leverage import hatvalues as _hatvalues
from ..diagnostics.shrinkage import shrinkage as _shrinkage
from ..inference.bootstrap import bootstrap as _bootstrap
from ..inference.fixed import anova_type3 as _anova_type3, coef_table as _coef_table, confint as _confint
from ..inference.profile import profile as _profile
from ..inference.progress import progress_default as _progress_default
from ..inference.simulate import simulate as _simulate
from ..plots.diagnostic import diagnostic_panel as _diagnostic_plot
from ..plots.explorer import explore as _explore
from ..plots.report import report as _html_report
from .predict import predict_eta
from .summary import Summary
from .tables import ranef_frame, residual_lines, structure_lines, structure_params, varcorr_frame

__all__ = ["LinearMixedModelResult", "MixedModelResultBase"]


@dataclass(frozen=True, eq=False)
class MixedModelResultBase:
    """Accessors shared by LMM and GLMM results (lme4's names)."""
    fit: object
    formula: str
    data_name: str | None = None
    #: ``(fitter, data, keyword arguments)`` of the call that made this result, kept for
    #: :meth:`update`: a *reference* to the user's data (not a copy); dropped when pickling
    _origin: tuple | None = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict:
        """Pickle state without the reference to the user's data (and its n-sized arguments)."""
        state = dict(self.__dict__)
        state["_origin"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    # ---------------------------------------------------------------- basics
    @property
    def reml(self) -> bool:
        return self.fit.reml

    @property
    def nobs(self) -> int:
        return self.fit.design.n

    @property
    def n_dropped(self) -> int:
        """Rows dropped for missing values before fitting."""
        return self.fit.design.n_dropped

    @property
    def ngroups(self) -> dict:
        """Number of levels per grouping factor (lme4's ``ngrps``)."""
        out = {}
        for b in self.fit.design.blocks:
            out.setdefault(b.group_label, b.nlevels)
        return out

    @property
    def is_singular(self) -> bool:
        return self.fit.is_singular

    @property
    def converged(self) -> bool:
        return self.fit.opt.converged

    @cached_property
    def theta(self) -> pd.Series:
        """Relative covariance parameters with lme4's names (``Subject.(Intercept)``...)."""
        layout = self.fit.layout
        blocks = self.fit.design.blocks
        names = layout.names([b.group_label for b in blocks], [b.cnames for b in blocks])
        return pd.Series(self.fit.theta, index=names, name="theta")

    @cached_property
    def fixef(self) -> pd.Series:
        return pd.Series(self.fit.beta, index=list(self.fit.design.xnames), name="fixef")

    def vcov(self) -> pd.DataFrame:
        """Covariance matrix of the fixed effects, ``sigma^2 (R_X R_X')^{-1}``."""
        names = list(self.fit.design.xnames)
        return pd.DataFrame(self.fit.vcov, index=names, columns=names)

    @cached_property
    def se(self) -> pd.Series:
        return pd.Series(np.sqrt(np.diag(self.fit.vcov)), index=list(self.fit.design.xnames), name="se")

    # ------------------------------------------------------- variance components
    def _term_covariances(self) -> list[np.ndarray]:
        lams = self.fit.layout.lambdas(self.fit.theta)
        return [self._scale ** 2 * lam @ lam.T for lam in lams]

    @property
    def _scale(self) -> float:
        """Factor multiplying the relative covariance factors (sigma, or 1)."""
        return self.sigma

    @property
    def _residual_sd(self) -> float | None:
        """The residual row of varcorr (None: no residual row)."""
        return self.sigma

    @cached_property
    def varcorr(self) -> pd.DataFrame:
        """``as.data.frame(VarCorr(fit))``: columns ``grp, var1, var2, vcov, sdcor``."""
        blocks = self.fit.design.blocks
        return varcorr_frame([b.group_label for b in blocks], [b.cnames for b in blocks],
                             self._term_covariances(), self._residual_sd)

    def ranef(self, cond_var: bool = True, long: bool = True):
        """Conditional modes of the random effects (BLUPs).

        ``long=True``: R's ``as.data.frame(ranef(fit, condVar=TRUE))`` with columns
        ``grpvar, term, grp, condval, condsd``.  ``long=False``: a dict mapping each
        grouping factor to a DataFrame (levels x terms), as R's ``ranef(fit)``.
        """
        blocks = self.fit.design.blocks
        groups = [b.group_label for b in blocks]
        frame = ranef_frame(groups, [b.cnames for b in blocks], [b.levels for b in blocks],
                            list(self.fit.b), list(self.fit.cond_var) if cond_var else None)
        if long:
            return frame
        out = {}
        for g, sub in frame.groupby("grpvar", sort=False):
            out[g] = sub.pivot(index="grp", columns="term", values="condval").reindex(
                index=list(dict.fromkeys(sub["grp"])), columns=list(dict.fromkeys(sub["term"])))
        return out

    def coef(self) -> dict:
        """Per grouping factor, fixed effects plus that group's random effects (R's ``coef``)."""
        out = {}
        fe = self.fixef
        for g, re in self.ranef(cond_var=False, long=False).items():
            table = pd.DataFrame(np.tile(fe.to_numpy(), (len(re), 1)), index=re.index, columns=fe.index)
            for term in re.columns:
                if term in table.columns:
                    table[term] = table[term] + re[term].to_numpy()
                else:
                    table[term] = re[term].to_numpy()
            out[g] = table
        return out

    def predict_link(self, newdata: pd.DataFrame | None = None, re_form=None,
                     allow_new_levels: bool = False) -> np.ndarray:
        """Linear predictor ``X beta + Z b + offset`` for the fitted rows or ``newdata``."""
        return predict_eta(self.fit, newdata, re_form, allow_new_levels)

    def icc(self, by_group: bool = False, include_uncorrelated_slopes: bool = True):
        """Intraclass correlation: ``{"adjusted", "conditional", "method"}`` as R's ``performance::icc``
        (latent scale for binomial GLMMs); ``by_group=True`` gives one row per grouping factor.
        See :mod:`mixedfx.results.variance` for the formulas."""
        from .variance import icc
        return icc(self, by_group=by_group, include_uncorrelated_slopes=include_uncorrelated_slopes)

    def r2(self, include_uncorrelated_slopes: bool = True) -> dict:
        """Nakagawa's marginal and conditional R2: ``{"marginal", "conditional", "method"}``."""
        from .variance import r2
        return r2(self, include_uncorrelated_slopes=include_uncorrelated_slopes)

    def shrinkage(self, group: str | None = None) -> pd.DataFrame:
        """Per group: size, raw (no-pooling) estimate, BLUP and shrinkage factor; see
        :func:`mixedfx.diagnostics.shrinkage`."""
        return _shrinkage(self, group=group)

    def explore(self, group: str | None = None, method: str = "partial", title: str | None = None):
        """The interactive pooling explorer for this fit's groups (raw estimates, BLUPs, conditional SDs,
        shrinkage factors; a random-slope term as the 2-D ellipse view): a self-contained HTML page that
        notebooks display; ``.save(path)`` writes it.  See :mod:`mixedfx.plots.explorer`."""
        return _explore(self, group=group, method=method, title=title)

    def plot(self, **kwargs):
        """Default diagnostic panel (residuals, Q-Q plots, caterpillar); see :mod:`mixedfx.plots`."""
        return _diagnostic_plot(self, **kwargs)

    def report(self, path=None, title: str | None = None) -> str | None:
        """One self-contained HTML page (summary, variance decomposition, shrinkage, checks, plots).

        With ``path`` the page is written there and None is returned (nothing is echoed in a
        REPL); without it the HTML text is returned."""
        page = _html_report(self, path=path, title=title)
        return None if path is not None else page

    def check(self):
        """Singular terms, convergence, scaling, identifiability and outlying groups; see
        :func:`mixedfx.diagnostics.check`."""
        return _check(self)

    def influence(self, level: str = "obs", method: str = "exact", progress=None, n_jobs: int = 1) -> pd.DataFrame:
        """Case-deletion influence (leverage, Cook's distance, MDFFITS, COVTRACE, COVRATIO, RVC) per
        observation or group; see :func:`mixedfx.diagnostics.influence` (``progress``: a bar,
        see :mod:`mixedfx.inference.progress`; ``n_jobs``: processes for the refits of a GLMM)."""
        return _influence(self, level=level, method=method, progress=progress, n_jobs=n_jobs)

    def hatvalues(self):
        """Leverages: the diagonal of the hat matrix (lme4's ``hatvalues``), one per observation."""
        return _hatvalues(self)

    def confint(self, method: str = "wald", level: float = 0.95, parm=None, nsim: int = 500,
                seed=None, n_jobs: int = 1, progress=None) -> pd.DataFrame:
        """Confidence intervals (DataFrame ``lower, upper`` indexed by lme4's names); see
        :func:`mixedfx.inference.confint`.  ``progress`` (profile and boot): see
        :mod:`mixedfx.inference.progress`."""
        with _progress_default(progress):
            return _confint(self, method=method, level=level, parm=parm, nsim=nsim, seed=seed, n_jobs=n_jobs)

    def profile(self, parm=None, width: float = 3.0, points: int = 9, progress=None) -> pd.DataFrame:
        """Likelihood-profile zeta curves (``param, value, zeta``); see :func:`mixedfx.inference.profile`."""
        return _profile(self, parm=parm, width=width, points=points, progress=progress)

    def simulate(self, nsim: int = 1, seed=None, newdata=None, use_u: bool = False, params=None) -> pd.DataFrame:
        """Responses simulated from the fit (``sim_1``, ... columns); see :func:`mixedfx.inference.simulate`.
        ``params``: replace fixed effects, variance components or sigma, e.g. ``{"beta": {"Days": 5},
        "sd": {"Subject": {"(Intercept)": 24}}, "sigma": 20}`` (see
        :mod:`mixedfx.inference.simulate_params`; lmer and glmer models)."""
        return _simulate(self, nsim=nsim, seed=seed, newdata=newdata, use_u=use_u, params=params)

    def simulated_residuals(self, n: int = 250, seed=None, use_u: bool = False, fitted: str = "population",
                            calibrate: int = 0, n_jobs: int = 1, progress=None):
        """DHARMa's simulation-based scaled residuals (randomized PIT from ``n`` simulations; by
        default new random effects in each, ``use_u=True`` conditions on the fitted modes), with
        ``test_uniformity``, ``test_dispersion``, ``test_zero_inflation``, ``test_outliers``,
        ``test_quantiles`` and ``plot``; see :mod:`mixedfx.diagnostics.simulated_residuals`.
        ``calibrate=B``: p-values calibrated by a parametric bootstrap of ``B`` refits (uniform
        under the fitted model; the plug-in ones are conservative), over ``n_jobs`` processes
        with a ``progress`` bar; see :mod:`mixedfx.diagnostics.simulated_residuals_calibrate`."""
        from dataclasses import replace
        from ..diagnostics.simulated_residuals import simulated_residuals
        from ..plots.simulated_residuals import simulated_residuals_plot
        out = simulated_residuals(self, n=n, seed=seed, use_u=use_u, fitted=fitted, calibrate=calibrate,
                                  n_jobs=n_jobs, progress=progress)
        return replace(out, plotter=simulated_residuals_plot)

    def bootstrap(self, nsim: int = 500, seed=None, use_u: bool = False, progress=None,
                  n_jobs: int = 1) -> pd.DataFrame:
        """Parametric-bootstrap replicates of the parameters (lme4's names), one row each;
        ``n_jobs`` worker processes (the replicates do not depend on it), ``progress`` a tqdm bar
        (None: after ~2 s in a terminal or notebook; see :mod:`mixedfx.inference.progress`)."""
        return _bootstrap(self, nsim=nsim, seed=seed, use_u=use_u, progress=progress, n_jobs=n_jobs)

    def _series(self, values: np.ndarray, name: str) -> pd.Series:
        """Per-observation values as a Series on the data's row index (rows used in the fit)."""
        index = getattr(self.fit.design, "row_index", None)
        if index is None or len(index) != len(values):
            index = pd.RangeIndex(len(values))
        return pd.Series(np.asarray(values, dtype=float), index=index, name=name)

    def refit(self, new_y) -> "MixedModelResultBase":
        """The same model (design, criterion, family) refitted to a new response, as lme4's
        ``refit``; starts from this fit's estimates.  ``new_y``: ``nobs`` numbers in the rows
        of the fit (a Series on the data's index is aligned by label).  For binomial GLMMs
        give proportions (the trials are kept as weights)."""
        from .refit import refit_result
        return refit_result(self, new_y)

    def update(self, formula: str | None = None, **kwargs) -> "MixedModelResultBase":
        """Refit with a new formula and/or arguments on the original data (lme4's ``update``).

        ``formula`` may be a whole formula, or use ``.`` for the old sides: ``". ~ . + x"``
        adds ``x``; ``"log(y) ~ ."`` changes the response.  Other keywords (``reml``, ``weights``,
        ``data``, ``family``...) replace the original call's.  The result keeps a reference to
        the data frame it was fitted to (not a copy; pickles drop it); a result without one
        (loaded or unpickled) needs ``data=``.
        """
        from .refit import update_result
        return update_result(self, formula, **kwargs)

    def save(self, path) -> None:
        """Write the fit to a JSON file that :func:`mixedfx.load` reads back (estimates, names
        and what ``predict(newdata)`` needs; not the data); see :mod:`mixedfx.results.io`."""
        from .io import save
        save(self, path)

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_()

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), default=_json_default, **kwargs)

    @property
    def structure_params(self) -> dict:
        """Per structured random-effects term (``ar1(...)``, ``cs(...)``...; keyed by its text), its
        parameters as glmmTMB reports them: ``sd`` (one per column, or one shared; in the units of the
        random effects, as ``varcorr``) and the structure's own (``rho``; ``kappa`` per unit of time for
        ``ou``; lag correlations for ``toep``)."""
        return structure_params(self.fit.design.blocks, self.fit.layout, self.fit.theta, self._scale)


@dataclass(frozen=True, eq=False)
class LinearMixedModelResult(MixedModelResultBase):
    """A fitted LMM (returned by :func:`mixedfx.lmer`).

    Model: ``y = X beta + Z b + e``, ``b ~ N(0, sigma^2 Lambda Lambda')``,
    ``e ~ N(0, sigma^2 W^{-1})``.  Accessors follow lme4's names (``fixef``,
    ``ranef``, ``varcorr``, ``vcov``, ``coef``, ``predict``...).
    """

    @property
    def sigma(self) -> float:
        return self.fit.sigma

    # ----------------------------------------------------------- likelihoods
    @property
    def objective(self) -> float:
        """The optimized criterion: REML criterion (REML fits) or deviance (ML fits)."""
        return self.fit.objective

    @property
    def reml_criterion(self) -> float | None:
        return self.fit.objective if self.reml else None

    @property
    def deviance(self) -> float:
        """-2 log-likelihood (ML); for REML fits evaluated at the REML estimates,
        as lme4's ``deviance(fit, REML = FALSE)``."""
        return self.fit.objective if not self.reml else self.fit.deviance_ml

    @property
    def loglik(self) -> float:
        """Log-likelihood (REML log-likelihood for REML fits, as lme4's ``logLik``)."""
        return -0.5 * self.fit.objective

    @property
    def df(self) -> int:
        """Number of parameters: fixed effects, theta, sigma and any residual-model parameters."""
        r = getattr(self.fit, "residual", None)
        return len(self.fit.beta) + len(self.fit.theta) + 1 + (0 if r is None else len(r.par))

    @property
    def aic(self) -> float:
        return float(-2 * self.loglik + 2 * self.df)

    @property
    def bic(self) -> float:
        return float(-2 * self.loglik + np.log(self.nobs) * self.df)

    # ----------------------------------------------------- fitted and residuals
    def fitted(self) -> pd.Series:
        """Conditional fitted values ``X beta + Z b (+ offset)``, indexed like the data's rows."""
        return self._series(predict_eta(self.fit), "fitted")

    def residuals(self, type: str = "response", level: str = "conditional") -> pd.Series:
        """Residuals at the ``"conditional"`` level (y minus ``X beta + Z b``) or the ``"marginal"``
        level (y minus ``X beta``).  ``"response"``: raw; ``"pearson"`` and ``"deviance"``:
        ``sqrt(w)`` times raw (lme4's definitions for LMMs, not divided by sigma).  A Series
        indexed like the data's rows (those used in the fit)."""
        return self._series(self._residual_array(type, level), "residuals")

    def _residual_array(self, type: str = "response", level: str = "conditional") -> np.ndarray:
        if level not in ("conditional", "marginal"):
            raise ValueError(f"level must be 'conditional' or 'marginal', got {level!r}")
        fitted = predict_eta(self.fit) if level == "conditional" else self.predict(re_form="~0")
        r = self.fit.design.y - fitted
        if type == "response":
            return r
        if type in ("pearson", "deviance"):
            w = self.fit.design.weights
            return r if w is None else r * np.sqrt(w)
        raise ValueError(f"type must be 'response', 'pearson' or 'deviance', got {type!r}")

    def predict(self, newdata: pd.DataFrame | None = None, re_form=None, allow_new_levels: bool = False,
                interval: str | None = None, level: float = 0.95, se_fit: bool = False):
        """Predictions for the fitted rows or ``newdata``, optionally with standard errors and intervals.

        Parameters
        ----------
        newdata : DataFrame with the model's predictor and grouping columns (None: fitted rows).
        re_form : None (all random effects), ``"~0"`` (none: population level), or a
            formula naming random terms, e.g. ``"~ (1 | Subject)"``.
        allow_new_levels : predict unseen groups with random effects of zero instead of raising.
        interval : None, ``"confidence"`` (for the mean ``x'beta + z'b`` of the terms ``re_form``
            keeps) or ``"prediction"`` (for a new observation: adds the residual variance and the
            variance of the random effects ``re_form`` leaves out).
        level : coverage of the interval.
        se_fit : return standard errors (implied by ``interval``).

        Returns
        -------
        An array of predictions; with ``interval`` or ``se_fit=True`` a DataFrame with columns
        ``fit, se_fit`` (and ``lower, upper``) on newdata's index.  The standard errors include the
        uncertainty of the fixed effects and of the random effects (Henderson's ``C^{-1}``, as
        lme4's condVar), conditional on the variance parameters; unseen levels add ``z'Gz``.  See
        :mod:`mixedfx.results.predict_interval`.
        """
        from .predict_interval import check_interval_args, interval_frame
        check_interval_args(interval, level)
        if interval is not None or se_fit:
            return interval_frame(self, newdata, re_form, allow_new_levels, interval, level, kind="lmm")
        return predict_eta(self.fit, newdata, re_form, allow_new_levels)

    # ------------------------------------------------------------- reporting
    def coef_table(self, ddf: str = "satterthwaite") -> pd.DataFrame:
        """Fixed effects with ``estimate, se, df, t, p`` (``ddf``: ``"satterthwaite"`` as lmerTest,
        ``"kenward-roger"`` (adjusted SE and df, as pbkrtest), ``"residual"``, ``"none"``); see
        :func:`mixedfx.inference.coef_table`."""
        return _coef_table(self, ddf=ddf)

    def anova(self, ddf: str = "satterthwaite") -> pd.DataFrame:
        """Type III F tests per fixed-effect term: ``F, numdf, dendf, p`` (lmerTest's ``anova``)."""
        return _anova_type3(self, ddf=ddf)

    def summary(self, ddf: str = "satterthwaite") -> Summary:
        """lme4-style summary (``print`` it; renders as HTML in notebooks)."""
        title = ("Linear mixed model fit by REML ['lmerMod']" if self.reml
                 else "Linear mixed model fit by maximum likelihood  ['lmerMod']")
        crit = (f"REML criterion at convergence: {self.objective:.1f}" if self.reml
                else f"Deviance: {self.objective:.1f}")
        info = None
        if not self.reml:
            info = pd.DataFrame([[self.aic, self.bic, self.loglik, self.deviance, self.nobs - self.df]],
                                columns=["AIC", "BIC", "logLik", "deviance", "df.resid"], index=[""])
        res = self._residual_array("pearson") / self.sigma
        q = np.quantile(res, [0, 0.25, 0.5, 0.75, 1])
        sr = pd.Series(q, index=["Min", "1Q", "Median", "3Q", "Max"])
        V = self.fit.vcov
        corr = None
        if V.shape[0] > 1:
            sd = np.sqrt(np.diag(V))
            names = list(self.fit.design.xnames)
            abbrev = _abbreviate_all(names)
            corr = pd.DataFrame(V / np.outer(sd, sd), index=names, columns=abbrev)
        notes = []
        if self.n_dropped:
            notes.append(f"({self.n_dropped} observation(s) deleted due to missingness)")
        if self.is_singular:
            notes.append("boundary (singular) fit: a variance component is (nearly) zero or a correlation is +/-1")
        for m in self.fit.opt.messages:
            notes.append(f"convergence: {m}")
        notes.extend(structure_lines(self.fit.design.blocks, self.fit.layout, self.fit.theta))
        if self.fit.residual is not None:
            notes.extend(residual_lines(self.fit.residual))
        ct = self.coef_table(ddf=ddf)
        if str(ddf).lower().replace("_", "-") in ("kr", "kenward-roger"):
            notes.append("t-tests use Kenward-Roger's method: adjusted standard errors and df (as pbkrtest)")
        table = pd.DataFrame({"Estimate": ct["estimate"], "Std. Error": ct["se"], "df": ct["df"],
                              "t value": ct["statistic"], "Pr(>|t|)": ct["p"]})
        if ddf == "none":
            table = table.drop(columns="df").rename(columns={"t value": "z value", "Pr(>|t|)": "Pr(>|z|)"})
        return Summary(title, self.formula, self.data_name, crit, info, sr, self.varcorr, self.nobs,
                       self.ngroups, table, corr, tuple(notes))

    @property
    def residual_params(self) -> dict | None:
        """Estimates of the residual model (``correlation=``, ``disp=``): ``{"rho" | "phi": value,
        "delta": Series}`` with ``delta`` the residual log-SD coefficients (their intercept is
        ``log sigma``); None without a residual model."""
        r = self.fit.residual
        if r is None:
            return None
        out = {k: v for k, v in r.natural.items() if k != "delta"}
        out["delta"] = pd.Series(np.asarray(r.natural["delta"], float), index=list(r.disp_names), name="delta")
        return out

    def __repr__(self) -> str:
        kind = "REML" if self.reml else "ML"
        return (f"<LinearMixedModelResult {self.formula!r} ({kind}), nobs={self.nobs}, "
                f"objective={self.objective:.4f}{', singular' if self.is_singular else ''}>")

    def to_dict(self) -> dict:
        """Plain-Python summary of the fit (JSON-serializable)."""
        return {
            "formula": self.formula, "reml": self.reml, "nobs": self.nobs, "n_dropped": self.n_dropped,
            "ngroups": self.ngroups, "fixef": self.fixef.to_dict(), "se": self.se.to_dict(),
            "vcov": self.fit.vcov.tolist(), "theta": self.theta.to_dict(), "sigma": self.sigma,
            "varcorr": self.varcorr.to_dict(orient="records"),
            "loglik": self.loglik, "aic": self.aic, "bic": self.bic, "deviance": self.deviance,
            "reml_criterion": self.reml_criterion, "objective": self.objective, "df": self.df,
            "is_singular": self.is_singular, "converged": self.converged,
            "optimizer": {"evaluations": self.fit.opt.nfev, "status": self.fit.opt.status,
                          "messages": list(self.fit.opt.messages)},
            "fit_seconds": self.fit.seconds,
        }



def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def _abbreviate_all(names: list[str], width: int = 6) -> list[str]:
    """Distinct short labels: as R's abbreviate, labels that coincide (``poly(x, 2)1`` and
    ``poly(x, 2)2``) are lengthened until they differ (at worst they are the full names)."""
    from collections import Counter

    out = [_abbreviate(n, width) for n in names]
    for w in range(width + 1, max(map(len, names), default=0) + 1):
        dup = {a for a, k in Counter(out).items() if k > 1}
        if not dup:
            return out
        out = [_abbreviate(n, w) if a in dup else a for n, a in zip(names, out)]
    counts = Counter(out)
    return [n if counts[a] > 1 else a for n, a in zip(names, out)]


def _abbreviate(name: str, width: int = 6) -> str:
    """Short column labels like R's abbreviate (``(Intercept)`` -> ``(Intr)``)."""
    if len(name) <= width:
        return name
    if name == "(Intercept)":
        return "(Intr)"
    keep = name[0] + "".join(c for c in name[1:] if c.lower() not in "aeiou")
    return keep[:width]
