"""Plots of fitted models (matplotlib, imported lazily).  Every function takes ``ax=None`` and
returns the Axes (or Figure) it drew on.

>>> import mixedfx as mfx
>>> m = mfx.lmer("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))
>>> ax = mfx.plots.caterpillar(m)          # doctest: +SKIP
"""
from .diagnostic import binned_residuals, diagnostic_panel, qq, residuals_vs_fitted
from .effects import caterpillar, ranef_ellipse, shrinkage_plot
from .pooling import conditional_vs_marginal, design_effect_curve, pooling_spectrum
from .profile import profile_plot
from .power import power_plot
from .report import report
from .simulated_residuals import simulated_residuals_plot

__all__ = ["binned_residuals", "caterpillar", "conditional_vs_marginal", "design_effect_curve", "diagnostic_panel",
           "pooling_spectrum", "power_plot", "profile_plot", "qq", "ranef_ellipse", "report", "residuals_vs_fitted",
           "shrinkage_plot", "simulated_residuals_plot"]
