"""The result of :func:`mixedfx.gee`: population-averaged coefficients with sandwich standard errors."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import stats

from ..core.gee import corr_matrix, fit_gee, quasi_loglik, vcov_kinds
from ..design import DesignError
from ..design.frames import as_pandas
from ..inference.terms import term_columns
from .summary import format_table

__all__ = ["GEEResult", "GEESummary", "VCOV_TYPES", "check_vcov_type"]

#: covariance types of :meth:`GEEResult.vcov` (canonical names)
VCOV_TYPES = ("robust", "naive", "mancl-derouen", "kauermann-carroll")
_VCOV_ALIASES = {"san.se": "robust", "sandwich": "robust", "robust": "robust", "naive": "naive",
                 "model": "naive", "model-based": "naive", "mancl-derouen": "mancl-derouen", "md": "mancl-derouen",
                 "kauermann-carroll": "kauermann-carroll", "kc": "kauermann-carroll"}


def check_vcov_type(kind) -> str:
    """The canonical covariance type for ``kind`` (aliases: san.se, sandwich, model, md, kc)."""
    key = kind.strip().lower() if isinstance(kind, str) else None
    if key not in _VCOV_ALIASES:
        raise ValueError(f"unknown standard-error type {kind!r}; use one of 'robust' (alias 'san.se'), 'naive', "
                         "'mancl-derouen' ('md') or 'kauermann-carroll' ('kc')")
    return _VCOV_ALIASES[key]


_STD_ERR_TEXT = {"robust": "robust (sandwich)", "naive": "model-based (naive)",
                 "mancl-derouen": "Mancl-DeRouen bias-corrected sandwich",
                 "kauermann-carroll": "Kauermann-Carroll bias-corrected sandwich"}


@dataclass(frozen=True)
class GEESummary:
    """What ``g.summary()`` shows (geepack's ``summary.geeglm`` layout); ``str()`` gives the text."""
    call: str
    coefficients: pd.DataFrame
    std_err: str
    corstr: str
    scale: float
    link: str
    corr_params: pd.Series
    n_clusters: int
    max_cluster_size: int
    nobs: int
    converged: bool
    iterations: int
    notes: tuple = ()

    def __str__(self) -> str:
        out = ["", "Call:", self.call, "", " Coefficients:"]
        tab = self.coefficients.copy()
        stars = [_stars(p) for p in tab["Pr(>|W|)"]]
        lines = format_table(tab, digits=5).split("\n")
        out.append(lines[0])
        out.extend(f"{ln} {s}".rstrip() for ln, s in zip(lines[1:], stars))
        out.append("---")
        out.append("Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1")
        out.append(f"Std.err: {_STD_ERR_TEXT[self.std_err]}")
        out.append("")
        out.append(f"Correlation structure = {self.corstr} ")
        out.append("Estimated Scale Parameters:")
        out.append("")
        out.append(format_table(pd.DataFrame({"Estimate": [self.scale]}, index=["(Intercept)"]), digits=4))
        out.append("  Link = identity ")
        if len(self.corr_params):
            out.append("")
            out.append("Estimated Correlation Parameters:")
            out.append(format_table(pd.DataFrame({"Estimate": self.corr_params.to_numpy()},
                                                 index=self.corr_params.index), digits=4))
        out.append(f"Number of clusters:   {self.n_clusters}  Maximum cluster size: {self.max_cluster_size} ")
        out.append(f"Number of obs: {self.nobs}; "
                   + (f"converged in {self.iterations} iterations" if self.converged
                      else f"NOT converged after {self.iterations} iterations"))
        out.extend(self.notes)
        return "\n".join(out)

    def _repr_html_(self) -> str:
        return "<pre>" + str(self).replace("&", "&amp;").replace("<", "&lt;") + "</pre>"


def _stars(p: float) -> str:
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else "." if p < 0.1 else ""


class GEEResult:
    """A fitted GEE (population-averaged) model; see :func:`mixedfx.gee`.

    Attributes
    ----------
    coef, se : pandas Series named by R's coefficient names (``se`` of the fit's ``std_err``
        type, robust by default).
    corr_params : Series of working-correlation parameters (geepack's ``alpha`` names).
    scale : the scale (dispersion) ``phi``; ``phi`` is an alias.
    nobs, n_clusters, cluster_sizes, converged, iterations, corstr, family.
    """

    def __init__(self, model, std_err: str = "robust", data_name: str | None = None, data=None):
        self._m = model
        self.std_err = check_vcov_type(std_err)
        self.data_name = data_name
        self._vcov_cache: dict = {}
        self._data = data       # the caller's frame, not a copy (emmeans' grid); pickles drop it

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_data"] = None
        return state

    # basic pieces ------------------------------------------------------------
    @property
    def formula(self) -> str:
        return self._m.formula

    @property
    def family(self):
        return self._m.family

    @property
    def corstr(self) -> str:
        return self._m.corstr

    @property
    def groups(self) -> str:
        return self._m.groups

    @property
    def time(self) -> str | None:
        return self._m.time

    @property
    def coef(self) -> pd.Series:
        return pd.Series(self._m.solution.beta.copy(), index=list(self._m.xnames), name="Estimate")

    @property
    def params(self) -> pd.Series:
        """Alias of :attr:`coef`."""
        return self.coef

    @property
    def se(self) -> pd.Series:
        return pd.Series(np.sqrt(np.diag(self._vcov(self.std_err))), index=list(self._m.xnames), name="Std.err")

    @property
    def scale(self) -> float:
        return float(self._m.solution.phi)

    phi = scale

    @property
    def corr_params(self) -> pd.Series:
        a = self._m.solution.alpha
        return pd.Series(a.copy(), index=self._alpha_names(), name="alpha", dtype=float)

    def _alpha_names(self) -> list[str]:
        if self.corstr == "independence":
            return []
        if self.corstr != "unstructured":
            return ["alpha"]
        T = self._m.layout.n_waves
        return [f"alpha.{a}:{b}" for a in range(1, T + 1) for b in range(a + 1, T + 1)]

    @property
    def nobs(self) -> int:
        return len(self._m.y)

    @property
    def n_dropped(self) -> int:
        return self._m.n_dropped

    @property
    def n_clusters(self) -> int:
        return self._m.layout.n_clusters

    @property
    def cluster_sizes(self) -> pd.Series:
        """Rows per cluster, indexed by the cluster values of ``groups``."""
        return pd.Series(self._m.layout.sizes.copy(), index=pd.Index(self._m.cluster_labels, name=self.groups),
                         name="size")

    @property
    def converged(self) -> bool:
        return bool(self._m.solution.converged)

    @property
    def iterations(self) -> int:
        return int(self._m.solution.iterations)

    # covariances -------------------------------------------------------------
    def _vcov(self, kind: str) -> np.ndarray:
        if kind not in self._vcov_cache:
            m, sol = self._m, self._m.solution
            if kind == "robust":
                v = sol.vcov_robust
            elif kind == "naive":
                v = sol.vcov_naive
            else:
                v = vcov_kinds(sol, m.y, m.X, m.offset, m.weights, m.family, m.layout, m.corstr, (kind,))[kind]
            self._vcov_cache[kind] = v
        return self._vcov_cache[kind]

    def vcov(self, type: str | None = None) -> pd.DataFrame:
        """Covariance of the coefficients.

        Parameters
        ----------
        type : str, optional
            ``"robust"`` (alias ``"san.se"``, the sandwich), ``"naive"`` (model-based, trusts the
            working correlation), ``"mancl-derouen"`` (``"md"``) or ``"kauermann-carroll"``
            (``"kc"``), the bias-corrected sandwiches for few clusters.  Default: the fit's
            ``std_err``.
        """
        kind = self.std_err if type is None else check_vcov_type(type)
        names = list(self._m.xnames)
        return pd.DataFrame(self._vcov(kind).copy(), index=names, columns=names)

    def coef_table(self, type: str | None = None) -> pd.DataFrame:
        """geepack's coefficient table: Estimate, Std.err, Wald (``z^2``), Pr(>|W|) (chi-square, 1 df)."""
        kind = self.std_err if type is None else check_vcov_type(type)
        b = self._m.solution.beta
        se = np.sqrt(np.diag(self._vcov(kind)))
        wald = (b / se) ** 2
        return pd.DataFrame({"Estimate": b, "Std.err": se, "Wald": wald, "Pr(>|W|)": stats.chi2.sf(wald, 1)},
                            index=list(self._m.xnames))

    def conf_int(self, level: float = 0.95, type: str | None = None) -> pd.DataFrame:
        """Wald intervals ``b +- z se`` with the chosen standard errors."""
        if not 0 < level < 1:
            raise ValueError(f"level must be between 0 and 1, got {level!r}")
        t = self.coef_table(type)
        z = stats.norm.ppf(0.5 + level / 2)
        lo, hi = f"{100 * (1 - level) / 2:.3g} %", f"{100 * (1 + level) / 2:.3g} %"
        return pd.DataFrame({lo: t["Estimate"] - z * t["Std.err"], hi: t["Estimate"] + z * t["Std.err"]})

    # tests -------------------------------------------------------------------
    def wald_test(self, L, rhs=None, type: str | None = None) -> pd.Series:
        """Joint Wald chi-square test of ``L beta = rhs``.

        ``L`` is a term label (``"trt"``: all its columns), a list of coefficient names, or a
        contrast matrix (rows of length p).  Returns ``Df``, ``X2``, ``P(>|Chi|)``.
        """
        names = list(self._m.xnames)
        p = len(names)
        if isinstance(L, str):
            cols = term_columns(self._m.design).get(L)
            if cols is None:
                if L in names:
                    cols = [names.index(L)]
                else:
                    terms = list(term_columns(self._m.design))
                    raise ValueError(f"{L!r} is neither a term ({', '.join(terms)}) nor a coefficient")
            Lm = np.eye(p)[cols]
        elif isinstance(L, (list, tuple)) and all(isinstance(x, str) for x in L):
            bad = [x for x in L if x not in names]
            if bad:
                raise ValueError(f"unknown coefficient(s) {bad}; the coefficients are {names}")
            Lm = np.eye(p)[[names.index(x) for x in L]]
        else:
            Lm = np.atleast_2d(np.asarray(L, dtype=float))
            if Lm.shape[1] != p:
                raise ValueError(f"the contrast matrix needs {p} columns (one per coefficient), got {Lm.shape[1]}")
        r = np.zeros(len(Lm)) if rhs is None else np.asarray(rhs, float).reshape(-1)
        if len(r) != len(Lm):
            raise ValueError(f"rhs has {len(r)} values for {len(Lm)} contrasts")
        kind = self.std_err if type is None else check_vcov_type(type)
        d = Lm @ self._m.solution.beta - r
        V = Lm @ self._vcov(kind) @ Lm.T
        x2 = float(d @ np.linalg.pinv(V) @ d)
        df = int(np.linalg.matrix_rank(V))
        return pd.Series({"Df": df, "X2": x2, "P(>|Chi|)": float(stats.chi2.sf(x2, df))})

    def anova(self, method: str = "sequential", type: str | None = None) -> pd.DataFrame:
        """Wald chi-square tests per formula term: Df, X2, P(>|Chi|).

        Parameters
        ----------
        method : str
            ``"sequential"`` (default, geepack's ``anova.geeglm``): term i is tested in the model
            refitted with terms 1..i (same working correlation), terms added first to last.
            ``"marginal"``: every term tested in the full model (all its columns zero; like
            ``car::Anova(type = 3)`` with a robust covariance), no refits.
        type : str, optional
            The covariance of the tests (see :meth:`vcov`); default the fit's ``std_err``.
        """
        terms = term_columns(self._m.design)
        if method == "marginal":
            rows = {t: self.wald_test(t, type=type) for t in terms}
        elif method == "sequential":
            rows = self._sequential_wald(terms, self.std_err if type is None else check_vcov_type(type))
        else:
            raise ValueError(f"method must be 'sequential' or 'marginal', got {method!r}")
        out = pd.DataFrame(rows).T
        out["Df"] = out["Df"].astype(int)
        return out

    def _sequential_wald(self, terms: dict, kind: str) -> dict:
        m = self._m
        in_terms = {j for cols in terms.values() for j in cols}
        base = [j for j in range(m.X.shape[1]) if j not in in_terms]       # the intercept
        rows, cols = {}, list(base)
        names = list(terms)
        for i, t in enumerate(names):
            cols = cols + list(terms[t])
            if i == len(names) - 1:
                b, V = m.solution.beta, self._vcov(kind)
                idx = list(terms[t])
            else:
                X = m.X[:, cols]
                sol = fit_gee(m.y, X, m.offset, m.weights, m.family, m.layout, m.corstr, maxiter=m.maxiter,
                              tol=m.tol)
                b = sol.beta
                V = {"robust": sol.vcov_robust, "naive": sol.vcov_naive}.get(kind)
                if V is None:
                    V = vcov_kinds(sol, m.y, X, m.offset, m.weights, m.family, m.layout, m.corstr, (kind,))[kind]
                idx = list(range(len(cols) - len(terms[t]), len(cols)))
            d = b[idx]
            x2 = float(d @ np.linalg.solve(V[np.ix_(idx, idx)], d))
            rows[t] = pd.Series({"Df": len(idx), "X2": x2, "P(>|Chi|)": float(stats.chi2.sf(x2, len(idx)))})
        return rows

    # QIC ---------------------------------------------------------------------
    @cached_property
    def _independence_bread(self) -> np.ndarray:
        m = self._m
        if m.corstr == "independence":
            return m.solution.bread
        sol = fit_gee(m.y, m.X, m.offset, m.weights, m.family, m.layout, "independence", maxiter=m.maxiter,
                      tol=m.tol)
        return sol.bread

    @property
    def qic(self) -> pd.Series:
        """geepack's ``QIC()``: QIC, QICu, Quasi Lik, CIC, params, QICC.

        ``Quasi Lik`` is the unscaled quasi-likelihood at the fitted means (weighted by the
        prior weights); ``CIC = trace(Omega_I V_R)`` with ``Omega_I`` the inverse model-based
        covariance of the independence fit and ``V_R`` this fit's robust covariance;
        ``QIC = -2 (Q - CIC)``, ``QICu = -2 (Q - p)``, ``QICC = QIC + 2 k (k + 1) / (K - k - 1)``
        with ``k = p + len(corr_params)`` and K clusters.
        """
        m = self._m
        q = quasi_loglik(m.family, m.y, m.solution.mu, m.weights)
        cic = float(np.trace(self._independence_bread @ m.solution.vcov_robust))
        p = m.X.shape[1]
        k = p + len(m.solution.alpha)
        qic = -2 * (q - cic)
        K = self.n_clusters
        qicc = qic + 2 * k * (k + 1) / (K - k - 1) if K - k - 1 > 0 else np.inf
        return pd.Series({"QIC": qic, "QICu": -2 * (q - p), "Quasi Lik": q, "CIC": cic, "params": p, "QICC": qicc})

    # predictions -------------------------------------------------------------
    def _unsort(self, v_sorted: np.ndarray, name: str) -> pd.Series:
        out = np.empty_like(v_sorted)
        out[self._m.order] = v_sorted
        return pd.Series(out, index=self._m.row_labels, name=name)

    def fitted(self) -> pd.Series:
        """Fitted means of the rows used, in data order (labelled by the data's index)."""
        return self._unsort(self._m.solution.mu, "fitted")

    def residuals(self, type: str = "response") -> pd.Series:
        """``"response"`` (``y - mu``) or ``"pearson"`` (``(y - mu) / sqrt(V(mu))``) residuals, in data order."""
        m = self._m
        r = m.y - m.solution.mu
        if type == "pearson":
            r = r / np.sqrt(m.family.variance(m.solution.mu))
        elif type != "response":
            raise ValueError(f"type must be 'response' or 'pearson', got {type!r}")
        return self._unsort(r, type)

    def predict(self, newdata=None, type: str = "link") -> pd.Series:
        """Population-averaged predictions: ``type="link"`` (``X b + offset``) or ``"response"``.

        Without ``newdata`` the fitted rows (data order).  ``newdata`` needs the formula's
        predictors (and offset variables); ``groups``/``time`` are not needed.
        """
        if type not in ("link", "response"):
            raise ValueError(f"type must be 'link' or 'response', got {type!r}")
        m = self._m
        if newdata is None:
            return self._unsort(m.solution.eta if type == "link" else m.solution.mu, "fit")
        nd = newdata if isinstance(newdata, pd.DataFrame) else as_pandas(newdata, "newdata")
        X = m.spec.fixed_matrix(nd)
        off = m.spec.offset(nd)
        eta = X @ m.solution.beta + off
        if not np.all(np.isfinite(eta)):
            raise DesignError("newdata gives missing or infinite predictors; fill or drop those rows")
        val = eta if type == "link" else m.family.link.inverse(eta)
        return pd.Series(val, index=nd.index, name="fit")

    def working_corr(self) -> pd.DataFrame:
        """The working correlation matrix over all times (positions), labelled by their values."""
        m = self._m
        T = m.layout.n_waves
        R = corr_matrix(m.corstr, m.solution.alpha, np.arange(T), T)
        return pd.DataFrame(R, index=list(m.wave_labels), columns=list(m.wave_labels))

    # display -----------------------------------------------------------------
    def _call(self) -> str:
        fam = self.family
        link = "" if fam.link.name == type(fam)(link=None).link.name else f"(link = {fam.link.name!r})"
        data = f", data = {self.data_name}" if self.data_name else ""
        time = f", time = {self.time!r}" if self.time else ""
        return (f"gee(formula = {self.formula!r}, family = {fam.name!r}{link}{data}, groups = {self.groups!r}"
                f"{time}, corstr = {self.corstr!r})")

    def summary(self) -> GEESummary:
        notes = []
        if self.n_dropped:
            notes.append(f"({self.n_dropped} row(s) with missing values dropped)")
        if not self._m.solution.corr_pd:
            notes.append("Warning: the working correlation matrix is not positive definite")
        return GEESummary(self._call(), self.coef_table(), self.std_err, self.corstr, self.scale,
                          self.family.link.name, self.corr_params, self.n_clusters,
                          int(self._m.layout.sizes.max()), self.nobs, self.converged, self.iterations, tuple(notes))

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_()

    def __repr__(self) -> str:
        status = "" if self.converged else ", NOT converged"
        return (f"<GEEResult {self.formula!r}, {self.family.name}, corstr={self.corstr!r}: {self.nobs} obs in "
                f"{self.n_clusters} clusters of {self.groups!r}{status}>")

    def to_dict(self) -> dict:
        """Plain numbers: coefficients, standard errors (robust and naive), corr_params, scale, QIC."""
        return {"formula": self.formula, "family": self.family.name, "link": self.family.link.name,
                "corstr": self.corstr, "std_err": self.std_err, "coef": self.coef.to_dict(),
                "se": self.se.to_dict(), "se_robust": dict(zip(self._m.xnames, np.sqrt(np.diag(self._vcov("robust"))))),
                "se_naive": dict(zip(self._m.xnames, np.sqrt(np.diag(self._vcov("naive"))))),
                "corr_params": self.corr_params.to_dict(), "scale": self.scale, "qic": self.qic.to_dict(),
                "nobs": self.nobs, "n_clusters": self.n_clusters, "converged": self.converged,
                "iterations": self.iterations}
