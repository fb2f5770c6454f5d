"""A fitted glmmTMB-style GLMM as users see it (``glmer`` with a family beyond lme4's, ``zi=`` or ``disp=``).

The model has up to three linear predictors: the conditional mean
``g(mu) = X beta + Z b + offset``, the zero-inflation (hurdle: zero) probability
``logit(p) = X_zi beta_zi`` and the log dispersion ``log phi = X_d beta_d``; ``b ~ N(0, G)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special, stats

from .glmm_result import FullLikelihood, wald_z_table
from .lmm_result import MixedModelResultBase, _abbreviate_all
from .summary import Summary

__all__ = ["ExtendedMixedModelResult"]

PREDICT_TYPES = ("link", "response", "conditional", "zprob", "zlink", "disp")


def _not_available(what: str, instead: str = "") -> NotImplementedError:
    return NotImplementedError(f"{what} is not available for glmmTMB-style models (zero inflation, hurdles, "
                               f"dispersion models and the families beyond lme4's){'; ' + instead if instead else ''}")


@dataclass(frozen=True, eq=False)
class ExtendedMixedModelResult(FullLikelihood, MixedModelResultBase):
    """A fitted glmmTMB-style GLMM (see the module docstring).

    ``fixef`` holds the conditional-model coefficients (R's names), ``fixef_zi`` and
    ``fixef_disp`` those of the other parts; ``family_params`` the dispersion (when it is a
    single number) and family parameters on their natural scales; ``objective`` is the Laplace
    (or quadrature) ``-2 log L`` with every normalizing constant, comparable with glmmTMB's.
    """

    # ------------------------------------------------------------- basics
    @property
    def family(self):
        """The response distribution (``name``, ``psi_names``, ``logpdf``, ``sample``...)."""
        return self.fit.dist

    @property
    def link(self):
        return self.fit.link

    @property
    def nagq(self) -> int:
        return self.fit.nagq

    @property
    def _scale(self) -> float:
        return 1.0

    @property
    def _constant_dispersion(self) -> bool:
        return self.fit.dist.has_dispersion and self.fit.design.part("disp") is None

    @property
    def sigma(self) -> float | None:
        """glmmTMB's ``sigma()``: the dispersion ``phi`` when it is one number (the NB size, the beta
        precision, the t / gaussian / lognormal scale, the Tweedie phi); 1 without a dispersion;
        None with a dispersion model (``disp=``: one value per row, see ``predict(type="disp")``)."""
        if not self.fit.dist.has_dispersion:
            return 1.0
        return float(self.fit.phi[0]) if self._constant_dispersion else None

    @property
    def _residual_sd(self):
        if self.fit.dist.name == "gaussian" and self._constant_dispersion:
            return self.sigma
        return None

    @property
    def family_params(self) -> dict:
        """The dispersion (when one number) under its name and the family parameters, natural scales:
        e.g. ``{"phi": 1.4}`` (nbinom2), ``{"sigma": 25.1, "df": 4.2}`` (t), ``{"phi": 1.2, "power": 1.6}``."""
        out = {}
        if self.fit.dist.has_dispersion and self._constant_dispersion:
            out[self.fit.dist.dispersion_name] = self.sigma
        for name, v in zip(self.fit.dist.psi_names, self.fit.psi):
            out[name] = float(v)
        return out

    # ------------------------------------------------------- coefficients
    def _part_series(self, values, names, label) -> pd.Series:
        return pd.Series(np.asarray(values, float), index=list(names), name=label)

    @property
    def fixef_zi(self) -> pd.Series:
        """Zero-inflation (hurdle: zero-probability) coefficients, logit scale (empty without ``zi=``)."""
        zi = self.fit.design.part("zi")
        return self._part_series(self.fit.beta_zi, zi.names if zi is not None else (), "fixef_zi")

    @property
    def fixef_disp(self) -> pd.Series:
        """Log-dispersion coefficients (an intercept ``log phi`` without ``disp=``; empty without a dispersion)."""
        disp = self.fit.design.part("disp")
        names = disp.names if disp is not None else ("(Intercept)",) * len(self.fit.beta_disp)
        return self._part_series(self.fit.beta_disp, names, "fixef_disp")

    @property
    def vcov_all(self) -> pd.DataFrame:
        """Covariance of every estimated coefficient and family parameter (internal scale for the
        latter, e.g. ``log df``): labels ``name``, ``zi~name``, ``disp~name``, ``psi~name``."""
        names = list(self.fit.names_all)
        return pd.DataFrame(self.fit.vcov_all, index=names, columns=names)

    def _part_table(self, part: str) -> pd.DataFrame:
        names = list(self.fit.names_all)
        se_all = np.sqrt(np.diag(self.fit.vcov_all))
        if part == "cond":
            est, idx = self.fixef, range(len(self.fit.beta))
        elif part == "zi":
            est = self.fixef_zi
            idx = [i for i, nm in enumerate(names) if nm.startswith("zi~")]
        elif part == "disp":
            est = self.fixef_disp
            idx = [i for i, nm in enumerate(names) if nm.startswith("disp~")]
        else:
            raise ValueError(f"part must be 'cond', 'zi' or 'disp', got {part!r}")
        return wald_z_table(est, se_all[list(idx)])

    def coef_table(self, ddf: str = "none", part: str = "cond") -> pd.DataFrame:
        """Wald z tests (``estimate, se, df, statistic, p``) of one part: ``"cond"``, ``"zi"``, ``"disp"``."""
        return self._part_table(part)

    # ------------------------------------------------------ likelihoods
    @property
    def df(self) -> int:
        """Estimated parameters: theta, every coefficient, free family parameters (glmmTMB's df)."""
        return self.fit.n_params

    # ------------------------------------------------------- predictions
    def _parts_for(self, newdata):
        """``(zeta, phi)`` per row of the fit or of ``newdata``."""
        fit = self.fit
        if newdata is None:
            return (None if fit.zprob is None else special.logit(fit.zprob)), fit.phi
        zi, disp = fit.design.part("zi"), fit.design.part("disp")
        zeta = None
        if zi is not None:
            zeta = zi.matrix(newdata) @ fit.beta_zi + (zi.offset_for(newdata) if zi.formula.offsets else 0.0)
        if disp is not None:
            phi = np.exp(disp.matrix(newdata) @ fit.beta_disp
                         + (disp.offset_for(newdata) if disp.formula.offsets else 0.0))
        else:
            phi = np.full(len(newdata), np.exp(fit.beta_disp[0]) if len(fit.beta_disp) else 1.0)
        return zeta, phi

    def _moments(self, mu, zeta, phi, w):
        """``(E y, Var y, conditional mean)`` with zero inflation / hurdle (see :meth:`predict`)."""
        d, psi = self.fit.dist, self.fit.psi_internal
        m = d.mean(mu, phi, psi)
        v = d.variance(mu, phi, psi, w) if getattr(d, "binomial_type", False) else d.variance(mu, phi, psi)
        p = 0.0 if zeta is None else special.expit(zeta)
        if self.fit.hurdle:
            p0 = np.exp(d.logp0(mu, phi, psi, w)[0])
            cond = m / (1.0 - p0)
            second = (v + m * m) / (1.0 - p0)
            if zeta is None:
                return cond, second - cond * cond, cond
            mean = (1.0 - p) * cond
            return mean, (1.0 - p) * second - mean * mean, cond
        mean = (1.0 - p) * m
        return mean, (1.0 - p) * (v + m * m) - mean * mean, m

    def predict(self, newdata: pd.DataFrame | None = None, type: str = "link", re_form=None,
                allow_new_levels: bool = False, interval: str | None = None, level: float = 0.95,
                se_fit: bool = False):
        """Predictions as glmmTMB's ``predict``.

        ``type``: ``"link"`` (conditional linear predictor), ``"response"`` (``E y``: for zero
        inflation ``(1 - p) mu``; hurdle ``(1 - p) mu / (1 - f(0))``), ``"conditional"`` (the
        mean of the non-inflated distribution; hurdle: of the zero-truncated one), ``"zprob"``
        (``p``), ``"zlink"`` (``logit p``) or ``"disp"`` (the dispersion ``phi``).  ``re_form``
        and ``allow_new_levels`` as for :meth:`predict_link` (new levels get ``b = 0``).

        ``interval`` / ``se_fit=True`` (a DataFrame ``fit, se_fit, lower, upper``) are available
        for ``type="link"`` at the population level (``re_form="~0"``: ``x'V x`` with ``V`` the
        conditional block of ``vcov_all``) and at new levels (adding ``z'Gz``); groups seen in
        fitting raise NotImplementedError (the joint covariance of fixed and random effects is
        not computed for these models).
        """
        if type not in PREDICT_TYPES:
            raise ValueError(f"type must be one of {', '.join(map(repr, PREDICT_TYPES))}, got {type!r}")
        from .predict_interval import check_interval_args, interval_frame
        check_interval_args(interval, level)
        if interval is not None or se_fit:
            return interval_frame(self, newdata, re_form, allow_new_levels, interval, level, kind="extended",
                                  type=type)
        if newdata is not None:
            from ..design.frames import as_pandas
            newdata = as_pandas(newdata, "newdata")
        zeta, phi = self._parts_for(newdata)
        if type in ("zprob", "zlink"):
            if zeta is None:
                raise ValueError(f"type={type!r} needs a zero-inflation or hurdle part (zi=)")
            return special.expit(zeta) if type == "zprob" else zeta
        if type == "disp":
            if not self.fit.dist.has_dispersion:
                raise ValueError(f"the {self.fit.dist.name} family has no dispersion parameter")
            return np.asarray(phi, float).copy()
        eta = self.predict_link(newdata, re_form, allow_new_levels)
        if type == "link":
            return eta
        w = self._trials(newdata)
        mean, _, cond = self._moments(self.link.inverse(eta), zeta, phi, w)
        return mean if type == "response" else cond

    def _trials(self, newdata):
        w = self.fit.design.weights
        if newdata is not None or w is None:
            return np.ones(self.nobs if newdata is None else len(newdata))
        return w

    def fitted(self) -> pd.Series:
        """``E y`` per row (glmmTMB's ``fitted``: ``predict(type="response")``)."""
        return self._series(self.predict(type="response"), "fitted")

    def residuals(self, type: str = "response", level: str = "conditional") -> pd.Series:
        """``"response"`` (``y - E y``) or ``"pearson"`` (divided by ``sqrt(Var y)``, zero inflation
        and hurdle included), at the conditional modes."""
        if level != "conditional":
            raise ValueError("level must be 'conditional' for glmmTMB-style models")
        return self._series(self._residual_array(type), "residuals")

    def _residual_array(self, type: str = "response", level: str = "conditional") -> np.ndarray:
        if type not in ("response", "pearson"):
            raise ValueError(f"type must be 'response' or 'pearson' for glmmTMB-style models, got {type!r} (deviance "
                             "residuals are not defined for these families)")
        zeta, phi = self._parts_for(None)
        mean, var, _ = self._moments(self.fit.mu, zeta, phi, self._trials(None))
        r = self.fit.design.y - mean
        return r if type == "response" else r / np.sqrt(var)

    # ------------------------------------------------------- simulation
    def draw_response(self, eta, rng, newdata=None) -> np.ndarray:
        """One response per row given the conditional linear predictor ``eta``: zero inflation or
        hurdle zeros with probability ``p``, otherwise a draw from the (zero-truncated) distribution."""
        d, psi = self.fit.dist, self.fit.psi_internal
        zeta, phi = self._parts_for(newdata)
        w = self._trials(newdata)
        mu = self.link.inverse(eta)
        y = d.sample(mu, phi, psi, w, rng)
        if self.fit.hurdle:                      # zero-truncated: redraw the zeros
            phi_a = np.broadcast_to(phi, mu.shape)
            w_a = np.broadcast_to(w, mu.shape)
            for _ in range(10_000):
                zero = y == 0
                if not zero.any():
                    break
                y[zero] = d.sample(mu[zero], phi_a[zero], psi, w_a[zero], rng)
            else:
                raise FloatingPointError("simulating the zero-truncated distribution: means too close to 0")
        if zeta is not None:
            y = np.where(rng.random(len(mu)) < special.expit(zeta), 0.0, y)
        return y

    # --------------------------------------------------------- reporting
    def summary(self) -> Summary:
        method = "Laplace Approximation" if self.nagq <= 1 else f"Adaptive Gauss-Hermite Quadrature, nAGQ = {self.nagq}"
        fam = self.fit.dist.name
        zi = self.fit.design.part("zi")
        title = (f"Generalized linear mixed model fit by maximum likelihood ({method}) ['glmmTMB-style']\n"
                 f" Family: {fam}  ( {self.link.name} )")
        info = pd.DataFrame([[self.aic, self.bic, self.loglik, self.objective, self.nobs - self.df]],
                            columns=["AIC", "BIC", "logLik", "-2logLik", "df.resid"], index=[""])
        q = np.quantile(self._residual_array("pearson"), [0, 0.25, 0.5, 0.75, 1])
        extra = []
        if zi is not None:
            extra.append(("Zero-inflation model:" if not self.fit.hurdle else "Zero-inflation (hurdle) model:",
                          _r_layout(self._part_table("zi"))))
        if self.fit.design.part("disp") is not None:
            extra.append(("Dispersion model:", _r_layout(self._part_table("disp"))))
        notes = []
        if self.n_dropped:
            notes.append(f"({self.n_dropped} observation(s) deleted due to missingness)")
        if self.is_singular:
            notes.append("boundary (singular) fit: a variance component is (nearly) zero")
        for name, v in self.family_params.items():
            notes.append(f"{_param_label(fam, name)}: {v:.6g}")
        if self.fit.vcov_method != "hessian":
            notes.append("convergence: the Hessian is not positive definite; standard errors are not available")
        for m in self.fit.opt.messages:
            notes.append(f"convergence: {m}")
        V = self.fit.vcov
        corr = None
        if V.shape[0] > 1 and np.all(np.isfinite(V)):
            sd = np.sqrt(np.diag(V))
            names = list(self.fit.design.xnames)
            corr = pd.DataFrame(V / np.outer(sd, sd), index=names, columns=_abbreviate_all(names))
        return Summary(title, self.formula, self.data_name, "", info,
                       pd.Series(q, index=["Min", "1Q", "Median", "3Q", "Max"]), self.varcorr, self.nobs,
                       self.ngroups, _r_layout(self._part_table("cond")), corr, tuple(notes),
                       fixed_title="Conditional model:", extra_tables=tuple(extra))

    def confint(self, method: str = "wald", level: float = 0.95, parm=None, **kwargs) -> pd.DataFrame:
        """Wald (default) or profile-likelihood (``method="profile"``) intervals for every coefficient
        (``zi~``, ``disp~`` labels for the other parts) and family parameter (on the internal scale,
        e.g. ``log df``, then transformed); profiles also give the SDs of scalar random-effect terms
        (:mod:`mixedfx.inference.profile_extended`)."""
        if method == "profile":
            from ..inference.profile_extended import profile_confint
            return profile_confint(self, level=level, parm=parm)
        if method != "wald":
            raise _not_available(f"confint(method={method!r})", "use method='wald' or 'profile'")
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level!r}")
        z = stats.norm.ppf(0.5 + level / 2)
        names = list(self.fit.names_all)
        est = np.concatenate([self.fit.beta, self.fit.beta_zi, self.fit.beta_disp,
                              self.fit.psi_internal if any(n.startswith("psi~") for n in names) else []])
        se = np.sqrt(np.diag(self.fit.vcov_all))
        lo, hi = est - z * se, est + z * se
        labels = [n[4:] if n.startswith("psi~") else n for n in names]
        out = pd.DataFrame({"lower": lo, "upper": hi}, index=labels)
        for j, n in enumerate(names):
            if n.startswith("psi~"):
                a, b = self.fit.dist.psi_to_natural(np.array([lo[j], hi[j]]))
                out.loc[n[4:]] = (min(a, b), max(a, b))
        if parm is not None:
            parm = [parm] if isinstance(parm, str) else list(parm)
            missing = [p for p in parm if p not in out.index]
            if missing:
                raise ValueError(f"unknown parameter(s) {missing}; choose from {list(out.index)}")
            out = out.loc[parm]
        return out

    def __repr__(self) -> str:
        extra = (", zi" if self.fit.design.part("zi") is not None else "") + \
                (", disp" if self.fit.design.part("disp") is not None else "")
        return (f"<ExtendedMixedModelResult {self.formula!r} ({self.fit.dist.name}, {self.link.name}{extra}), "
                f"nobs={self.nobs}, -2logLik={self.objective:.4f}>")

    def to_dict(self) -> dict:
        return {
            "formula": self.formula, "family": self.fit.dist.name, "link": self.link.name, "nagq": self.nagq,
            "nobs": self.nobs, "n_dropped": self.n_dropped, "ngroups": self.ngroups,
            "fixef": self.fixef.to_dict(), "fixef_zi": self.fixef_zi.to_dict(), "fixef_disp": self.fixef_disp.to_dict(),
            "family_params": self.family_params, "vcov_all": self.fit.vcov_all.tolist(),
            "names_all": list(self.fit.names_all), "theta": self.theta.to_dict(),
            "varcorr": self.varcorr.to_dict(orient="records"), "loglik": self.loglik, "minus2loglik": self.objective,
            "aic": self.aic, "bic": self.bic, "df": self.df, "is_singular": self.is_singular,
            "converged": self.converged, "fit_seconds": self.fit.seconds,
        }

    # ------------------------------------------------ clear refusals
    def _latent_variance(self):
        """``(sigma2_e, description)``: the distribution's residual variance on the latent scale
        (its ``latent_variance``), for :meth:`icc` and :meth:`r2`; not defined with zero inflation,
        a hurdle or a dispersion model (no single residual variance)."""
        fit = self.fit
        if fit.design.part("zi") is not None or fit.hurdle or fit.design.part("disp") is not None:
            raise _not_available("icc() and r2() with zero inflation, a hurdle or a dispersion model",
                                 "the latent-scale residual variance is not one number there")
        lv = getattr(fit.dist, "latent_variance", None)
        if lv is None:
            raise _not_available(f"icc() and r2() for the {fit.dist.name} family",
                                 "its latent-scale residual variance is not defined here")
        phi = float(fit.phi[0]) if len(fit.phi) else 1.0
        return lv(self.link.name, self._null_mean, phi, fit.psi_internal)

    def _null_mean(self) -> float:
        """``exp(b0)`` of the null model (same random effects and family, fixed part ``~ 1``): the
        ``lambda`` of Nakagawa et al.'s (2017) log-normal approximation for count families."""
        from dataclasses import replace

        from ..models.extended import fit_extended
        d = self.fit.design
        null = replace(d, X=np.ones((d.n, 1)), xnames=("(Intercept)",))
        return float(np.exp(fit_extended(null, self.fit.dist, self.link, warn=False).beta[0]))

    def icc(self, by_group: bool = False, include_uncorrelated_slopes: bool = True):
        """Adjusted and conditional ICC on the latent scale, where the family defines one (see
        :mod:`mixedfx.results.variance`)."""
        from .variance import icc
        return icc(self, by_group=by_group, include_uncorrelated_slopes=include_uncorrelated_slopes)

    def r2(self, include_uncorrelated_slopes: bool = True) -> dict:
        """Nakagawa's marginal and conditional R2 on the latent scale, where the family defines one."""
        from .variance import r2
        return r2(self, include_uncorrelated_slopes=include_uncorrelated_slopes)

    def influence(self, *args, **kwargs):
        raise _not_available("influence()")

    def hatvalues(self, *args, **kwargs):
        raise _not_available("hatvalues()")

    def profile(self, *args, **kwargs):
        raise _not_available("profile() curves", "confint(method='profile') gives profile intervals")

    def bootstrap(self, *args, **kwargs):
        raise _not_available("bootstrap()", "simulate() and refit() are available")

    def shrinkage(self, *args, **kwargs):
        raise _not_available("shrinkage()", "ranef() gives the conditional modes")

    def marginal_effects(self, *args, **kwargs):
        raise _not_available("marginal_effects()")


def _param_label(family: str, name: str) -> str:
    return {"phi": f"Dispersion parameter for {family} family (phi)", "sigma": f"Scale parameter for {family} family "
            "(sigma)", "df": "Student-t degrees of freedom (df)", "power": "Tweedie power"}.get(name, name)


def _r_layout(ct: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"Estimate": ct["estimate"], "Std. Error": ct["se"], "z value": ct["statistic"],
                         "Pr(>|z|)": ct["p"]})
