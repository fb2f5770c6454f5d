"""Fits on Dask DataFrames (issue 13): the only stage that imports dask.

``mfx.lmer(formula, ddf)`` with a dask DataFrame, or a Parquet/CSV path or glob, comes here
(:func:`lmer_dask`).  The workers run the plain pandas/numpy pass functions of
:mod:`mixedfx.models.partitioned`; only small summaries travel to the client.
"""
from .glmm import DaskGeneralizedLinearMixedModelResult, glmer_dask
from .lmm import DaskLinearMixedModelResult, lmer_dask, read_frame

__all__ = ["lmer_dask", "DaskLinearMixedModelResult", "read_frame", "glmer_dask",
           "DaskGeneralizedLinearMixedModelResult"]
