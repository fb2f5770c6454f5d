"""Power analysis by simulation (simr's ``powerSim`` / ``powerCurve``): :func:`power` and :class:`PowerCurve`.

For every sample size: simulate the response from the model with the chosen parameters (the
tested coefficient set to ``effect``), refit the model to the simulated data, test the fixed
effect and count ``p < alpha``.  Power is the rejection rate among the fits that succeeded, with
an exact (Clopper-Pearson) binomial interval, as simr reports.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import stats

from ..design import build_design
from ..design.columns import vector_argument
from ..design.frames import as_pandas
from ..inference.fixed import anova_type3, coef_table
from ..inference.parallel import STATE, replicate_map
from ..inference.power import clopper_pearson, design_variables, extend_data, level_order, replicate_seeds
from ..inference.progress import progress_bar
from ..inference.simulate import Simulator
from ..inference.simulate_params import resolve_params
from ..inference.terms import term_columns
from ..models import fit_glmm, fit_lmm
from .glmm_result import GeneralizedLinearMixedModelResult
from .lmm_result import LinearMixedModelResult

__all__ = ["power", "PowerCurve"]

_METHODS = {"satterthwaite": "Satterthwaite t-test", "kr": "Kenward-Roger t-test", "z": "Wald z-test",
            "f": "type III F-test (Satterthwaite)", "lrt": "likelihood-ratio test (ML fits)"}
_CONTROL = ("optimizer", "maxeval")


@dataclass(frozen=True, eq=False)
class PowerCurve:
    """Result of :func:`power`: ``table`` (one row per size: ``size`` (levels of ``along``, per
    ``within`` cell; the number of observations without ``along``), ``nobs, nsim, successes, power,
    lower, upper`` (Clopper-Pearson), ``n_failed, n_warned``), the simulated p-values (``pvalues``:
    ``size, sim, p``; NaN for failed fits), the settings used, ``elapsed`` seconds, and the fit
    ``warnings`` and ``errors`` with their counts."""
    table: pd.DataFrame
    pvalues: pd.DataFrame
    test: str
    method: str
    alpha: float
    level: float
    effect: float | None
    along: str | None
    within: tuple | None
    nsim: int
    seed_entropy: object
    elapsed: float
    warnings: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)

    def plot(self, ax=None, target: float | None = 0.8):
        """Power against size with the binomial intervals as error bars (matplotlib); ``target``
        draws a dashed reference line (None: none).  Returns the Axes."""
        from ..plots.power import power_plot
        return power_plot(self, ax=ax, target=target)

    def __repr__(self) -> str:
        head = (f"Power for {self.test!r} ({_METHODS[self.method]}, alpha = {self.alpha:g})"
                + (f", effect {self.effect:g}" if self.effect is not None else "")
                + (f", along {self.along!r}" if self.along is not None else "")
                + (f" within {', '.join(self.within)}" if self.within else ""))
        lines = [head, f"{self.nsim} simulations per size, {100 * self.level:g}% Clopper-Pearson intervals, "
                       f"{self.elapsed:.1f} s", self.table.to_string(index=False)]
        if self.warnings:
            lines.append("fit warnings: " + "; ".join(f"{k} (x{v})" for k, v in self.warnings.items()))
        if self.errors:
            lines.append("fit errors: " + "; ".join(f"{k} (x{v})" for k, v in self.errors.items()))
        return "\n".join(lines)


def _base_data(result, data):
    """The rows used by the fit, as pandas, with array ``weights=``/``offset=`` turned into columns."""
    origin = result._origin
    call = dict(origin[2]) if origin is not None else {}
    if data is None:
        if origin is None:
            raise ValueError("power(): this result has no reference to its data (it was loaded, unpickled or made "
                             "directly); pass data=...")
        data = origin[1]
    data = as_pandas(data, "data")
    extra = {}
    for what in ("weights", "offset"):
        value = call.get(what)
        if value is not None and not isinstance(value, str):
            name = f".power_{what}"
            data = data.assign(**{name: vector_argument(value, data, what)})
            extra[what] = name
        elif value is not None:
            extra[what] = value
    d = result.fit.design
    if d.n_dropped or len(data) != d.n:
        if not data.index.is_unique:
            raise ValueError("power(): the data have repeated index labels and rows were dropped for missing "
                             "values; call reset_index() on the data or drop those rows first")
        data = data.loc[d.row_index]
    return data.reset_index(drop=True), extra, {k: call[k] for k in _CONTROL if k in call}


def _test_columns(result, test) -> tuple[str, list[int], bool]:
    names = list(result.fit.design.xnames)
    if test is None:
        rest = [n for n in names if n != "(Intercept)"]
        if not rest:
            raise ValueError("power(): the model has no fixed effect besides the intercept to test; give test=")
        test = rest[0]
    if test in names:
        return test, [names.index(test)], True
    terms = term_columns(result.fit.design)
    if test in terms:
        cols = terms[test]
        return test, cols, len(cols) == 1
    raise ValueError(f"power(): test={test!r} is neither a fixed-effect coefficient ({', '.join(names)}) nor a term "
                     f"({', '.join(terms)})")


def _check_method(method, lmm: bool, single: bool, test: str) -> str:
    if method is None:
        return ("satterthwaite" if lmm else "z") if single else ("f" if lmm else "lrt")
    aliases = {"kenward-roger": "kr", "lr": "lrt", "wald": "z", "t": "satterthwaite"}
    method = str(method).lower()
    method = aliases.get(method, method)
    allowed = (["satterthwaite", "kr", "z", "lrt"] if single else ["f", "lrt"]) if lmm else \
        (["z", "lrt"] if single else ["lrt"])
    if method not in allowed:
        raise ValueError(f"power(): method={method!r} is not available for {test!r} in this model; choose one of "
                         f"{', '.join(allowed)}")
    return method


def _sizes(sizes, along, nlevels: int) -> list[int]:
    if along is None:
        if sizes is not None:
            raise ValueError("power(): sizes= needs along= (the grouping factor whose number of levels varies)")
        return [nlevels]
    if sizes is None:
        lo = min(3, nlevels)
        return sorted({int(round(v)) for v in np.linspace(lo, nlevels, 5)})
    out = []
    for s in np.atleast_1d(sizes).tolist():
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not float(s).is_integer() or s < 1:
            raise ValueError(f"power(): sizes must be whole numbers >= 1 (numbers of levels of {along!r}), got {s!r}")
        out.append(int(s))
    return out


def _prepare(result, sub, extra, sp, formula, family, cols):
    """Design, simulator and (for LRTs) the reduced design for one subset of the extended data."""
    design = build_design(formula, sub, weights=extra.get("weights"), offset=extra.get("offset"),
                          lmm=family is None, family=family)
    if list(design.xnames) != list(result.fit.design.xnames):
        raise ValueError(f"the fixed-effects columns on the subset differ from the model's "
                         f"({', '.join(design.xnames)} vs {', '.join(result.fit.design.xnames)}): "
                         "a factor level is missing at this size; use larger sizes")
    rows = sub.loc[design.row_index]
    sim = Simulator(result, rows, params=sp, weights=design.weights, offset=design.offset)
    keep = [j for j in range(design.X.shape[1]) if j not in cols]
    reduced = replace(design, X=design.X[:, keep], xnames=tuple(design.xnames[j] for j in keep))
    same = [(b.group_label, tuple(b.cnames)) for b in design.blocks] == \
        [(b.group_label, tuple(b.cnames)) for b in result.fit.design.blocks]
    return {"design": design, "sim": sim, "reduced": reduced, "same_terms": same}


def _fit(design, y, job, reml):
    d = replace(design, y=y)
    if job["family"] is None:
        return LinearMixedModelResult(fit_lmm(d, reml=reml, **job["control"]), job["formula"])
    start = {"theta": job["theta"]} if job["start_ok"] else None
    fit = fit_glmm(d, job["family"], nagq=job["nagq"], start=start, **job["control"])
    return GeneralizedLinearMixedModelResult(fit, job["formula"])


def _pvalue(prep, y, job) -> float:
    method, cols, name = job["method"], job["cols"], job["test"]
    lmm = job["family"] is None
    if method == "lrt":
        job = dict(job, start_ok=job["start_ok"] and prep["same_terms"])
        full = _fit(prep["design"], y, job, reml=False)
        small = _fit(prep["reduced"], y, dict(job, start_ok=False), reml=False)
        stat = max(small.fit.objective - full.fit.objective, 0.0)
        return float(stats.chi2.sf(stat, len(cols)))
    job = dict(job, start_ok=job["start_ok"] and prep["same_terms"])
    res = _fit(prep["design"], y, job, reml=job["reml"] if lmm else False)
    j = cols[0]
    if method == "z":
        est, se = res.fit.beta[j], np.sqrt(res.fit.vcov[j, j])
        return float(2 * stats.norm.sf(abs(est / se)))
    if method == "f":
        return float(anova_type3(res, "satterthwaite").loc[name, "p"])
    table = coef_table(res, "kenward-roger" if method == "kr" else "satterthwaite")
    return float(table["p"].iloc[j])


def _run_task(k: int) -> tuple:
    """(p, warning messages, error message) of task ``k`` = (size index, replicate); the tasks and
    everything they need are in :data:`mixedfx.inference.parallel.STATE`."""
    job = STATE
    i, r = job["tasks"][k]
    prep = job["preps"][i]
    msgs, err, p = [], None, np.nan
    if isinstance(prep, str):
        return p, msgs, prep
    rng = np.random.default_rng(job["seeds"][i][r])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            p = _pvalue(prep, prep["sim"].draw(rng), job)
            if not np.isfinite(p):
                err, p = "the test gave no p-value", np.nan
        except Exception as exc:    # noqa: BLE001 - a failed fit is counted (n_failed) and listed
            err = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    msgs = list(dict.fromkeys(f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in caught))
    return p, msgs, err


def power(model, test: str | None = None, effect: float | None = None, along: str | None = None, sizes=None,
          nsim: int = 100, seed=None, alpha: float = 0.05, method: str | None = None, within=None, params=None,
          data=None, level: float = 0.95, progress=None, n_jobs: int = 1) -> PowerCurve:
    """Power to detect a fixed effect, by simulation (simr's ``powerSim`` / ``powerCurve``).

    Parameters
    ----------
    model : a result of :func:`mixedfx.lmer` or :func:`mixedfx.glmer` (lme4's families).
    test : the coefficient (``"Days"``) or term (``"treatment"``) to test; default: the first
        fixed effect after the intercept (as simr).
    effect : the value of the tested coefficient in the simulations (simr's ``fixef(m)["x"] <- value``);
        None keeps the fitted value.
    along : a grouping factor (a data column that is not a covariate) whose number of levels varies;
        the data are extended to ``max(sizes)`` levels by copying existing levels' rows under new
        labels (simr's ``extend(along=)``); size ``n`` uses the first ``n`` levels.  None: the
        data as they are (one size).
    sizes : numbers of levels of ``along`` (per ``within`` cell); default: 5 sizes from 3 to the
        current number.
    nsim : simulations per size.
    seed : int, :class:`numpy.random.SeedSequence` or None; one stream per (size, replicate), so the
        answer does not depend on ``n_jobs``.
    alpha : significance level.
    method : ``"satterthwaite"`` (LMM default: lmerTest's t-test), ``"kr"`` (Kenward-Roger),
        ``"z"`` (Wald z; the GLMM default), ``"lrt"`` (likelihood ratio against the model without the
        tested columns, both fitted by ML), ``"f"`` (type III Satterthwaite F; the LMM default for a
        multi-column term; GLMM terms use ``"lrt"``).
    within : column(s) whose cells are extended separately (e.g. ``along="Subject",
        within="Group"``: ``sizes`` subjects per group).
    params : further parameter changes for the simulation (``beta``, ``sd``, ``corr``, ``varcorr``,
        ``theta``, ``sigma``), as in ``simulate(params=...)``.
    data : the data, when the result has no reference to them (loaded results).
    level : confidence level of the Clopper-Pearson intervals.
    progress, n_jobs : a tqdm bar (see :mod:`mixedfx.inference.progress`) and forked worker processes.

    Returns
    -------
    PowerCurve
    """
    t0 = time.perf_counter()
    fit = model.fit
    family = getattr(model, "family", None)
    if hasattr(fit, "dist") or getattr(family, "estimated", False):
        raise NotImplementedError("power() is available for lmer models and glmer models with lme4's families "
                                  "(binomial, poisson, gamma, inverse_gaussian, gaussian); not for negbin or "
                                  "glmmTMB-style families")
    if getattr(fit, "residual", None) is not None:
        raise NotImplementedError("power() is not available for models with correlation= or disp=")
    if isinstance(nsim, bool) or not isinstance(nsim, (int, float, np.integer, np.floating)) \
            or not float(nsim).is_integer() or nsim < 1:
        raise ValueError(f"power(): nsim must be a whole number >= 1, got {nsim!r}")
    for name, value in (("alpha", alpha), ("level", level)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0 < value < 1:
            raise ValueError(f"power(): {name} must be a number strictly between 0 and 1, got {value!r}")
    nsim = int(nsim)
    lmm = family is None
    test, cols, single = _test_columns(model, test)
    method = _check_method(method, lmm, single, test)
    params = dict(params or {})
    if effect is not None:
        if not single:
            raise ValueError(f"power(): effect= sets one coefficient, but {test!r} has {len(cols)} columns; set "
                             "them with params={'beta': {...}}")
        beta = params.get("beta", {})
        if not isinstance(beta, (dict, pd.Series)):
            raise ValueError("power(): with effect=, give params['beta'] as a dict by coefficient name")
        params["beta"] = {**dict(beta), fit.design.xnames[cols[0]]: effect}
    sp = resolve_params(model, params)
    base, extra, control = _base_data(model, data)
    formula = fit.design.spec.formula
    within_cols = None if within is None else ((within,) if isinstance(within, str) else tuple(within))
    for w in within_cols or ():
        if w not in base.columns:
            raise ValueError(f"power(): within={w!r} is not a column of the data")
    if along is not None:
        if along not in base.columns:
            raise ValueError(f"power(): along={along!r} is not a column of the data")
        if along in design_variables(formula):
            raise ValueError(f"power(): along={along!r} is a covariate of the model (its values enter the fixed "
                             "effects or a random-effects term); along= must be a grouping factor such as a "
                             "subject or item column")
        nlev = len(level_order(base[along])) if within_cols is None else \
            int(base.groupby(list(within_cols))[along].nunique().min())
    elif within is not None:
        raise ValueError("power(): within= needs along=")
    else:
        nlev = fit.design.n
    sizes = _sizes(sizes, along, nlev)
    if along is not None:
        ext, rank = extend_data(base, along, max(sizes), within_cols)
    entropy, seeds = replicate_seeds(seed, len(sizes), nsim)
    preps, nobs = [], []
    for s in sizes:
        sub = base if along is None else ext.loc[rank < s].reset_index(drop=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                preps.append(_prepare(model, sub, extra, sp, formula, family, cols))
            nobs.append(preps[-1]["design"].n)
        except ValueError as exc:           # DesignError is a ValueError
            preps.append(f"size {s}: {str(exc).splitlines()[0]}")
            nobs.append(len(sub))
    job = dict(preps=preps, seeds=seeds, family=family, formula=model.formula, control=control, method=method,
               cols=cols, test=test, reml=bool(getattr(fit, "reml", False)), nagq=getattr(fit, "nagq", 1),
               theta=np.asarray(fit.theta, float), start_ok=not lmm)
    tasks = [(i, r) for i in range(len(sizes)) for r in range(nsim)]
    out = _execute(job, tasks, progress, n_jobs)
    pv = np.array([o[0] for o in out]).reshape(len(sizes), nsim)
    if not np.isfinite(pv).any():
        first = next(o[2] for o in out if o[2] is not None)
        raise RuntimeError(f"power(): every simulated fit failed; the first error: {first}")
    warn_count: dict = {}
    err_count: dict = {}
    rows = []
    for i, s in enumerate(sizes):
        chunk = out[i * nsim:(i + 1) * nsim]
        for _, msgs, err in chunk:
            for m in msgs:
                warn_count[m] = warn_count.get(m, 0) + 1
            if err is not None:
                err_count[err] = err_count.get(err, 0) + 1
        ok = np.isfinite(pv[i])
        x, n = int((pv[i][ok] < alpha).sum()), int(ok.sum())
        lo, hi = clopper_pearson(x, n, level)
        rows.append({"size": s, "nobs": nobs[i], "nsim": nsim, "successes": x,
                     "power": x / n if n else np.nan, "lower": lo, "upper": hi, "n_failed": nsim - n,
                     "n_warned": sum(1 for _, msgs, _ in chunk if msgs)})
    pvalues = pd.DataFrame({"size": np.repeat(sizes, nsim), "sim": np.tile(np.arange(1, nsim + 1), len(sizes)),
                            "p": pv.ravel()})
    return PowerCurve(table=pd.DataFrame(rows), pvalues=pvalues, test=test, method=method, alpha=float(alpha),
                      level=float(level), effect=None if effect is None else float(effect), along=along,
                      within=within_cols, nsim=nsim, seed_entropy=entropy, elapsed=time.perf_counter() - t0,
                      warnings=warn_count, errors=err_count)


def _execute(job, tasks, progress, n_jobs) -> list:
    with progress_bar(len(tasks), "power", progress) as bar:
        return replicate_map(_run_task, dict(job, tasks=tasks), len(tasks), n_jobs, bar)
