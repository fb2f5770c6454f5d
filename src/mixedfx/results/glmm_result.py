"""The fitted GLMM as users see it (returned by :func:`mixedfx.glmer`)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from .lmm_result import MixedModelResultBase, _abbreviate_all
from .marginal import marginal_mean, marginal_slopes
from .summary import Summary

__all__ = ["GeneralizedLinearMixedModelResult", "FullLikelihood", "wald_z_table"]


class FullLikelihood:
    """``objective`` (``-2 log L`` with every constant, Laplace or quadrature), ``loglik``, ``aic``
    and ``bic`` from ``fit.objective`` and the result's ``df`` (GLMMs and glmmTMB-style models)."""

    @property
    def objective(self) -> float:
        """-2 log-likelihood (Laplace or adaptive Gauss-Hermite), all constants included."""
        return self.fit.objective

    @property
    def loglik(self) -> float:
        return -0.5 * self.fit.objective

    @property
    def aic(self) -> float:
        return float(self.fit.objective + 2 * self.df)

    @property
    def bic(self) -> float:
        return float(self.fit.objective + np.log(self.nobs) * self.df)


def wald_z_table(est: pd.Series, se) -> pd.DataFrame:
    """``estimate, se, df (inf), statistic (z), p`` for estimates and standard errors."""
    se = np.asarray(se, float)
    z = est.to_numpy() / se
    out = pd.DataFrame({"estimate": est.to_numpy(), "se": se, "df": np.inf, "statistic": z,
                        "p": 2 * stats.norm.sf(np.abs(z))}, index=est.index)
    out.attrs["statistic"] = "z"
    return out


@dataclass(frozen=True, eq=False)
class GeneralizedLinearMixedModelResult(FullLikelihood, MixedModelResultBase):
    """A fitted GLMM: ``g(E[y | b]) = X beta + Z b + offset``, ``b ~ N(0, phi Lambda Lambda')``.

    ``objective`` and ``loglik`` are on the true log-likelihood scale (all constants),
    whether by Laplace (``nagq = 1``) or quadrature (``nagq > 1``); ``deviance`` is lme4's
    ``deviance()``, the sum of unit deviances at the conditional modes.
    """

    @property
    def family(self):
        return self.fit.family

    @property
    def nagq(self) -> int:
        return self.fit.nagq

    @property
    def sigma(self) -> float:
        """Residual SD ``sqrt(phi)`` for families with a dispersion, 1 otherwise (as lme4's sigma)."""
        return float(np.sqrt(self.fit.phi)) if self.family.has_dispersion else 1.0

    @property
    def _scale(self) -> float:
        return self.sigma

    @property
    def _residual_sd(self):
        return self.sigma if self.family.has_dispersion else None

    # ----------------------------------------------------------- likelihoods

    @property
    def deviance(self) -> float:
        """Sum of unit deviances ``sum w d(y, mu)`` at the conditional modes (lme4's ``deviance()``)."""
        return self.fit.deviance

    @property
    def df(self) -> int:
        return (len(self.fit.beta) + len(self.fit.theta) + int(self.family.has_dispersion)
                + int(getattr(self.family, "estimated", False)))


    # ----------------------------------------------------- fitted and residuals
    def fitted(self) -> pd.Series:
        """Conditional means ``mu`` on the response scale (lme4's ``fitted``), indexed like the
        data's rows."""
        return self._series(self.fit.mu.copy(), "fitted")

    def residuals(self, type: str = "deviance", level: str = "conditional") -> pd.Series:
        """``"deviance"`` (default, as lme4), ``"pearson"``, ``"response"`` or ``"working"``.

        Pearson: ``(y - mu) sqrt(w / V(mu))``; deviance: ``sign(y - mu) sqrt(w d(y, mu))``;
        working: ``(y - mu) / (dmu/deta)``.  ``level="marginal"`` uses ``mu = g^{-1}(X beta)``
        (random effects at zero) instead of the conditional means.  A Series indexed like the
        data's rows (those used in the fit).
        """
        return self._series(self._residual_array(type, level), "residuals")

    def _residual_array(self, type: str = "deviance", level: str = "conditional") -> np.ndarray:
        if level not in ("conditional", "marginal"):
            raise ValueError(f"level must be 'conditional' or 'marginal', got {level!r}")
        y, fam = self.fit.design.y, self.family
        eta = self.fit.eta if level == "conditional" else self.predict(re_form="~0")
        mu = self.fit.mu if level == "conditional" else fam.link.inverse(eta)
        w = np.ones(self.fit.design.n) if self.fit.design.weights is None else self.fit.design.weights
        r = y - mu
        if type == "response":
            return r
        if type == "pearson":
            return r * np.sqrt(w / fam.variance(mu))
        if type == "deviance":
            return np.sign(r) * np.sqrt(np.maximum(w * fam.unit_deviance(y, mu), 0.0))
        if type == "working":
            return r / fam.link.mu_eta(eta)
        raise ValueError(f"type must be 'deviance', 'pearson', 'response' or 'working', got {type!r}")

    def predict(self, newdata: pd.DataFrame | None = None, type: str = "link", re_form=None,
                allow_new_levels: bool = False, marginal: bool = False, interval: str | None = None,
                level: float = 0.95, se_fit: bool = False):
        """Predictions on the ``"link"`` or ``"response"`` scale.

        ``marginal=True`` gives population-averaged means: the random effects are integrated
        out, ``E[g^{-1}(x'beta + z'b)]`` with ``b ~ N(0, G)``, by Gauss-Hermite quadrature (on
        the link scale the result is ``g`` of that mean).  The conditional prediction for a
        typical group (``b = 0``) is ``re_form="~0"``.

        ``interval`` (``"confidence"`` or ``"prediction"``), ``level`` and ``se_fit=True`` give a
        DataFrame ``fit, se_fit`` (and ``lower, upper``) on newdata's index, computed on the link
        scale (working weights of the converged PIRLS fit, conditional on theta) and mapped by the
        inverse link for ``type="response"`` (``se_fit`` by the delta method).  ``"prediction"``
        is the interval for the linear predictor of a new observation's group (it adds ``z'Gz``
        for the terms ``re_form`` leaves out); with ``type="response"`` it is refused except for
        the gaussian family with the identity link.  See :mod:`mixedfx.results.predict_interval`.
        """
        if type not in ("link", "response"):
            raise ValueError(f"type must be 'link' or 'response', got {type!r}")
        from .predict_interval import check_interval_args, interval_frame
        check_interval_args(interval, level)
        if interval is not None or se_fit:
            if marginal:
                raise NotImplementedError("se_fit and intervals are not available with marginal=True (population-"
                                          "averaged means); they are for the conditional predictions (re_form)")
            return interval_frame(self, newdata, re_form, allow_new_levels, interval, level, kind="glmm", type=type)
        if marginal:
            mu = marginal_mean(self, newdata)
            return mu if type == "response" else self.family.link.link(mu)
        eta = self.predict_link(newdata, re_form, allow_new_levels)
        return eta if type == "link" else self.family.link.inverse(eta)

    def marginal_effects(self) -> pd.DataFrame:
        """Conditional and population-averaged slopes of each covariate, on the link scale.

        The conditional slope is the coefficient (the effect within a group).  The
        population-averaged slope is the average over the data of the derivative of
        ``g(E[mu])`` with respect to the covariate, with the random effects integrated out; for
        a logit it is flatter, by about ``sqrt(1 + 0.346 tau^2)`` for a random intercept.
        Average marginal effects on the response scale are given for both.
        """
        return marginal_slopes(self)

    # ------------------------------------------------------------- reporting
    def coef_table(self, ddf: str = "none") -> pd.DataFrame:
        """Wald z tests of the fixed effects: ``estimate, se, df, statistic, p``, the columns of
        the LMM table (GLMMs have no denominator df: ``df`` is infinite; ``statistic`` is z)."""
        return wald_z_table(self.fixef, self.se.to_numpy())

    def summary(self) -> Summary:
        method = "Laplace Approximation" if self.nagq <= 1 else f"Adaptive Gauss-Hermite Quadrature, nAGQ = {self.nagq}"
        title = (f"Generalized linear mixed model fit by maximum likelihood ({method}) ['glmerMod']\n"
                 f" Family: {self.family.name}  ( {self.family.link.name} )")
        info = pd.DataFrame([[self.aic, self.bic, self.loglik, self.objective, self.nobs - self.df]],
                            columns=["AIC", "BIC", "logLik", "-2logLik", "df.resid"], index=[""])
        q = np.quantile(self._residual_array("pearson") / (self.sigma if self.family.has_dispersion else 1.0),
                        [0, 0.25, 0.5, 0.75, 1])
        V = self.fit.vcov
        corr = None
        if V.shape[0] > 1:
            sd = np.sqrt(np.diag(V))
            names = list(self.fit.design.xnames)
            corr = pd.DataFrame(V / np.outer(sd, sd), index=names, columns=_abbreviate_all(names))
        notes = []
        if self.n_dropped:
            notes.append(f"({self.n_dropped} observation(s) deleted due to missingness)")
        if self.is_singular:
            notes.append("boundary (singular) fit: a variance component is (nearly) zero")
        if self.family.has_dispersion:
            notes.append(f"Dispersion phi = {self.fit.phi:.6g} (sigma = {self.sigma:.6g}), by maximum likelihood")
        for m in self.fit.opt.messages:
            notes.append(f"convergence: {m}")
        return Summary(title, self.formula, self.data_name, "", info,
                       pd.Series(q, index=["Min", "1Q", "Median", "3Q", "Max"]), self.varcorr, self.nobs,
                       self.ngroups, _r_layout(self.coef_table()), corr, tuple(notes))

    def __repr__(self) -> str:
        return (f"<GeneralizedLinearMixedModelResult {self.formula!r} ({self.family.name}, {self.family.link.name}, "
                f"nagq={self.nagq}), nobs={self.nobs}, -2logLik={self.objective:.4f}>")

    def to_dict(self) -> dict:
        return {
            "formula": self.formula, "family": self.family.name, "link": self.family.link.name, "nagq": self.nagq,
            "nobs": self.nobs, "n_dropped": self.n_dropped, "ngroups": self.ngroups,
            "fixef": self.fixef.to_dict(), "se": self.se.to_dict(), "vcov": self.fit.vcov.tolist(),
            "vcov_method": self.fit.vcov_method, "theta": self.theta.to_dict(), "sigma": self.sigma,
            "phi": self.fit.phi, "varcorr": self.varcorr.to_dict(orient="records"),
            "loglik": self.loglik, "minus2loglik": self.objective, "aic": self.aic, "bic": self.bic,
            "deviance": self.deviance, "df": self.df, "is_singular": self.is_singular,
            "converged": self.converged,
            "optimizer": {"evaluations": [self.fit.opt_stage1.nfev, self.fit.opt.nfev],
                          "status": self.fit.opt.status, "messages": list(self.fit.opt.messages)},
            "fit_seconds": self.fit.seconds,
        }


def _r_layout(ct: pd.DataFrame) -> pd.DataFrame:
    """The coefficient table in lme4's summary layout (z tests)."""
    return pd.DataFrame({"Estimate": ct["estimate"], "Std. Error": ct["se"], "z value": ct["statistic"],
                         "Pr(>|z|)": ct["p"]})
