"""A fitted cumulative link mixed model as users see it (returned by :func:`mixedfx.clmm`)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from .extended_result import ExtendedMixedModelResult, _not_available, _r_layout
from .glmm_result import wald_z_table
from .summary import Summary

__all__ = ["OrdinalMixedModelResult"]


@dataclass(frozen=True, eq=False)
class OrdinalMixedModelResult(ExtendedMixedModelResult):
    """A fitted ``P(Y <= j) = F(theta_j - x'beta - z'b)``, ``b ~ N(0, G)`` (ordinal's ``clmm``).

    ``thresholds`` are the ``theta_j`` (names ``"1|2"``...), ``fixef`` the ``beta`` (no intercept),
    ``vcov_all`` the covariance of thresholds and coefficients (ordinal's order: thresholds first).
    """

    @property
    def levels(self) -> tuple:
        return self.fit.dist.levels

    @property
    def thresholds(self) -> pd.Series:
        return pd.Series(self.fit.psi, index=list(self.fit.dist.psi_names), name="thresholds")

    @property
    def family_params(self) -> dict:
        return {"thresholds": self.thresholds.to_dict()}

    @property
    def vcov_all(self) -> pd.DataFrame:
        """Covariance of ``(thresholds, beta)`` (delta method from the internal threshold scale)."""
        p = len(self.fit.beta)
        K1 = len(self.fit.psi)
        J = np.zeros((K1 + p, K1 + p))
        J[:K1, :K1] = self.fit.dist.threshold_jacobian(self.fit.psi_internal)
        J[K1:, K1:] = np.eye(p)
        order = list(range(p, p + K1)) + list(range(p))          # fit order: beta, psi
        V = self.fit.vcov_all[np.ix_(order, order)]
        V = J @ V @ J.T
        names = list(self.fit.dist.psi_names) + list(self.fit.design.xnames)
        return pd.DataFrame(V, index=names, columns=names)

    def coef_table(self, ddf: str = "none", part: str = "cond") -> pd.DataFrame:
        """Wald z tests of the coefficients (``part="cond"``) or of the thresholds (``part="thresholds"``)."""
        se = np.sqrt(np.diag(self.vcov_all.to_numpy()))
        K1 = len(self.fit.psi)
        if part == "thresholds":
            return wald_z_table(self.thresholds, se[:K1])
        if part != "cond":
            raise ValueError(f"part must be 'cond' or 'thresholds', got {part!r}")
        return wald_z_table(self.fixef, se[K1:])

    @property
    def se(self) -> pd.Series:
        return self.coef_table()["se"].rename("se")

    def predict(self, newdata=None, type: str = "prob", re_form=None, allow_new_levels: bool = False):
        """``"prob"``: category probabilities (DataFrame, one column per level); ``"class"``: the
        most probable level; ``"link"``: the linear predictor ``x'beta + z'b``; ``"mean"``: the
        expected category number.  ``re_form="~0"`` gives a typical group (``b = 0``)."""
        if type not in ("prob", "class", "link", "mean"):
            raise ValueError(f"type must be 'prob', 'class', 'link' or 'mean', got {type!r}")
        eta = self.predict_link(newdata, re_form, allow_new_levels)
        if type == "link":
            return eta
        psi = self.fit.psi_internal
        ok = np.isfinite(eta)
        P = np.full((len(eta), len(self.levels)), np.nan)
        P[ok] = self.fit.dist.probabilities(eta[ok], psi)
        if type == "mean":
            return P @ np.arange(1, len(self.levels) + 1)
        index = self.fit.design.row_index if newdata is None else getattr(newdata, "index", None)
        probs = pd.DataFrame(P, columns=list(self.levels), index=index if index is not None and
                             len(index) == len(eta) else None)
        if type == "prob":
            return probs
        cls = np.array(self.levels, dtype=object)[np.argmax(np.where(ok[:, None], P, -1.0), axis=1)]
        return pd.Series(np.where(ok, cls, None), index=probs.index, name="class")

    def fitted(self) -> pd.Series:
        """Probability of the observed category per row (ordinal's ``fitted``)."""
        P = self.predict(type="prob").to_numpy()
        k = self.fit.design.y.astype(int) - 1
        return self._series(P[np.arange(len(k)), k], "fitted")

    def _residual_array(self, type: str = "response", level: str = "conditional"):
        raise _not_available("residuals() for ordinal models", "use predict(type='prob') or simulate()")

    def draw_response(self, eta, rng, newdata=None) -> np.ndarray:
        return self.fit.dist.sample(eta, 1.0, self.fit.psi_internal, 1.0, rng)

    def simulate(self, nsim: int = 1, seed=None, newdata=None, use_u: bool = False, params=None) -> pd.DataFrame:
        """Simulated responses as category labels (one column per replicate)."""
        if params is not None:
            raise NotImplementedError("simulate(params=...) is available for lmer and glmer fits, not for clmm; "
                                      "refit the model to data with the thresholds and effects you want instead")
        out = super().simulate(nsim=nsim, seed=seed, newdata=newdata, use_u=use_u)
        labels = np.array(self.levels, dtype=object)
        return out.apply(lambda c: pd.Categorical(labels[c.to_numpy().astype(int) - 1],
                                                  categories=list(self.levels), ordered=True))

    def summary(self) -> Summary:
        method = ("the Laplace approximation" if self.nagq <= 1
                  else f"adaptive Gauss-Hermite quadrature (nAGQ = {self.nagq})")
        title = (f"Cumulative Link Mixed Model fitted with {method}\n"
                 f" link: {self.fit.dist.cdf_link}  threshold: flexible")
        info = pd.DataFrame([[self.loglik, self.aic, self.bic]], columns=["logLik", "AIC", "BIC"], index=[""])
        notes = []
        if self.n_dropped:
            notes.append(f"({self.n_dropped} observation(s) deleted due to missingness)")
        if self.is_singular:
            notes.append("boundary (singular) fit: a variance component is (nearly) zero")
        for m in self.fit.opt.messages:
            notes.append(f"convergence: {m}")
        return Summary(title, self.formula, self.data_name, "", info,
                       pd.Series(dtype=float), self.varcorr, self.nobs, self.ngroups,
                       _r_layout(self.coef_table()), None, tuple(notes), fixed_title="Coefficients:",
                       extra_tables=(("Threshold coefficients:",
                                      _r_layout(self.coef_table(part="thresholds"))[["Estimate", "Std. Error",
                                                                                      "z value"]]),))

    def confint(self, method: str = "wald", level: float = 0.95, parm=None, **kwargs) -> pd.DataFrame:
        """Wald intervals for the thresholds and coefficients."""
        if method != "wald":
            raise _not_available(f"confint(method={method!r})", "use method='wald'")
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level!r}")
        z = stats.norm.ppf(0.5 + level / 2)
        est = pd.concat([self.thresholds, self.fixef])
        se = np.sqrt(np.diag(self.vcov_all.to_numpy()))
        out = pd.DataFrame({"lower": est.to_numpy() - z * se, "upper": est.to_numpy() + z * se}, index=est.index)
        return out if parm is None else out.loc[[parm] if isinstance(parm, str) else list(parm)]

    def __repr__(self) -> str:
        return (f"<OrdinalMixedModelResult {self.formula!r} ({self.fit.dist.cdf_link}, {len(self.levels)} categories), "
                f"nobs={self.nobs}, logLik={self.loglik:.4f}>")
