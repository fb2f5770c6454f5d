"""``lmer`` on a dask DataFrame: the passes over the partitions, the fit on the client, a result without rows.

The passes (:mod:`mixedfx.models.partitioned`, run on the workers and tree-reduced,
:mod:`mixedfx.cluster.passes`): 1 survey (missing values, levels, ``scale()``/``poly()``
statistics) -> the frozen spec; 2 column moments -> aliasing, checks, standardization; 3 the
blocks of ``A = [Z F]' W [Z F]``; 4 the moment start's statistics.  The client then optimizes the
same criterion as :func:`mixedfx.lmer` on the summed blocks, so the estimates equal the in-memory
ones up to rounding.

:class:`DaskLinearMixedModelResult` has the estimates, ``summary``/``coef_table`` (Satterthwaite
from the summed blocks), ``ranef``, ``varcorr``, ``predict(pandas)``; ``fitted()``,
``residuals()`` and ``predict(dask frame)`` are lazy dask Series (``map_partitions``).
``summary()`` computes the scaled residuals' quantiles with one extra pass (the residuals, one float
per row, come to the client).  Methods that need the rows in memory (leverages, influence,
simulate, bootstrap, check, Kenward-Roger, refit) raise NotImplementedError.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..core.blocksum import block_buckets, finish_block_buckets, sum_blocks
from ..core.scaled_workspace import ScaledWorkspace
from ..core.start import StartStats
from ..design import DesignError, MissingDataWarning
from ..models import partitioned as P
from ..results.io import LoadedBlock, LoadedDesign, LoadedFit
from ..results.lmm_result import LinearMixedModelResult
from . import outputs
from .passes import broadcast, is_dask_frame, map_reduce, map_reduce_buckets, partitions, release_worker_memory

__all__ = ["lmer_dask", "DaskLinearMixedModelResult", "read_frame", "DaskFit"]

_NO_ROWS = ("this method needs the fitted rows in memory, which a fit on a Dask DataFrame does not keep; on Dask: "
            "estimates, summary(), coef_table()/anova() (Satterthwaite), ranef(), varcorr(), predict(), fitted(), "
            "residuals() (dask Series). Fit in memory (mfx.lmer on a pandas frame) for {what}")


def read_frame(data):
    """A dask DataFrame from a dask DataFrame, or a Parquet/CSV path or glob (``dd.read_parquet``/``read_csv``)."""
    import dask.dataframe as dd
    if is_dask_frame(data):
        return data
    if isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        if path.lower().endswith(".csv"):
            return dd.read_csv(path)
        if path.lower().endswith(".parquet") or os.path.isdir(path):
            return dd.read_parquet(path)
        raise DesignError(f"data={path!r}: give a dask DataFrame, or a path or glob ending in .parquet or .csv "
                          "(or a Parquet directory)")
    raise TypeError(f"data must be a dask DataFrame or a .parquet/.csv path, not {type(data).__name__}")


@dataclass(frozen=True)
class DaskFit(LoadedFit):
    """The numbers of a fit on Dask plus the summed blocks (``fresh_workspace`` rebuilds the
    criterion from them: Satterthwaite, profiles)."""
    sums: object = field(default=None, repr=False, compare=False)
    internal: object = None     # the optimum in standardized units (a loaded fit has none)
    scaling: object = None

    def fresh_workspace(self, reml: bool | None = None) -> ScaledWorkspace:
        if self.sums is None:
            raise NotImplementedError("this fit was made without its summed blocks; refit to use this method")
        blocks = self.design.blocks
        ws = ScaledWorkspace.from_blocks(self.sums, self.scaling, [b.p for b in blocks],
                                         [len(b.levels) for b in blocks], reml=self.reml if reml is None else reml,
                                         structures=self.extra["structures"])
        return ws.update_internal(self.internal.theta)

    def light(self) -> LoadedFit:
        """The fit shipped to the workers for per-row outputs (no blocks)."""
        keep = {f: getattr(self, f) for f in LoadedFit.__dataclass_fields__}
        return LoadedFit(**keep)


def _terms(spec) -> list:
    """The formula's random terms in the spec's (lme4's) order: unstructured terms of one grouping
    factor keep their formula order (a stable sort by levels)."""
    free = list(spec.formula.random)
    out = []
    for group, _, _ in spec.random:
        t = next(t for t in free if tuple(t.group) == tuple(group))
        free.remove(t)
        out.append(t)
    return out


def _result(pf: P.PartitionedFit, formula, data_name, ddf, seconds: float) -> "DaskLinearMixedModelResult":
    spec = pf.spec
    blocks = tuple(LoadedBlock(t, lv, cn, ls) for t, (_, lv, ls), cn in zip(_terms(spec), spec.random, pf.cnames))
    design = LoadedDesign(pf.n, pf.n_dropped, pf.xnames, blocks, spec)
    o = pf.optimum
    fit = DaskFit(design=design, reml=o.reml, theta=o.theta, beta=o.beta, sigma=o.sigma, vcov=o.vcov, b=o.b,
                  cond_var=o.cond_var, objective=o.objective, opt=o.opt, is_singular=o.is_singular, seconds=seconds,
                  deviance_ml=o.deviance_ml, internal=o.internal, scaling=o.scaling,
                  extra={"structures": pf.structures, "counts": pf.counts, "weights": pf.weights}, sums=pf.sums)
    return DaskLinearMixedModelResult(fit, formula, data_name, ddf=ddf)


def lmer_dask(formula: str, data, reml: bool = True, weights: str | None = None, offset: str | None = None,
              start="moments", data_name: str | None = None, split_every: int = 8, bucket_bytes: float | None = None,
              **control):
    """Fit a linear mixed model on a dask DataFrame (or a Parquet/CSV path or glob): the same model and
    estimates as :func:`mixedfx.lmer` on the concatenated data (up to rounding).

    ``weights``/``offset`` must be column names.  ``control``: ``optimizer``, ``maxeval``, ``blas_threads``.
    The passes run on the active dask scheduler (a ``distributed.Client`` if one is running).
    ``bucket_bytes``: the target size of one bucket of the summed ``Ar0`` (pass 3 reduces it in buckets of
    term-0 levels so that no process holds it twice; default
    :data:`mixedfx.models.partitioned.BUCKET_BYTES`).
    """
    import time
    t0 = time.perf_counter()
    for bad in ("correlation", "disp"):
        if control.get(bad) is not None:
            raise NotImplementedError(f"{bad}= is not supported on Dask data yet; fit in memory")
        control.pop(bad, None)
    if not isinstance(reml, bool):
        raise TypeError(f"reml must be True or False, not {reml!r}")
    ddf = read_frame(data)
    if data_name is None:
        data_name = os.fspath(data) if isinstance(data, (str, os.PathLike)) else None
    parts = partitions(ddf)
    plan = P.survey_plan(formula, weights, offset)
    survey = map_reduce(parts, P.partition_survey, P.merge_surveys, broadcast(plan), split_every=split_every)
    if survey is None:
        P.merge_surveys([])             # the "every partition is empty" error
    msg = P.missing_message(survey)
    if msg is not None:
        warnings.warn(msg, MissingDataWarning, stacklevel=3)
    spec = P.spec_from_survey(plan, survey)
    m = map_reduce(parts, P.partition_moments, P.merge_moments, broadcast(spec), weights, split_every=split_every)
    if m is None:
        P.merge_moments([])
    spec, m = P.relearn_without_aliased(plan, survey, spec, m)
    P.check_partitioned_model(spec, m, weights is not None)
    g = P.needs_ones_check(m)
    spec_b = broadcast(spec)
    if g is not None:
        r = map_reduce(parts, P.partition_ones_residual, max, spec_b, g, weights, split_every=split_every)
        g = g if r < 1e-12 else None
    scaling = P.scaling_from_moments(spec, m, ones=g)
    scaling_b = broadcast(scaling)
    sums, stats = _blocks_and_start(parts, spec, spec_b, m, scaling, scaling_b, weights, start, split_every,
                                    bucket_bytes)
    if not isinstance(start, str) and hasattr(start, "fit"):
        start = start.fit.theta
    release_worker_memory()
    pf = P.fit_partitioned(spec, m, sums, scaling, stats, survey, plan, reml=reml, start=start, **control)
    return _result(pf, formula, data_name, ddf, time.perf_counter() - t0)


def _blocks_and_start(parts, spec, spec_b, m, scaling, scaling_b, weights, start, split_every, bucket_bytes):
    """Passes 3 and 4: the summed blocks (``Ar0`` reduced in buckets of term-0 levels, assembled as one CSC
    matrix on the client) and the moment start's statistics (count tables read from ``A`` when it holds them,
    else built per partition and reduced in the same buckets)."""
    levels = P.ar0_level_edges(spec, m, bucket_bytes)
    if levels is None:
        sums = map_reduce(parts, P.partition_block_sums, sum_blocks, spec_b, scaling_b, weights,
                          split_every=split_every)
    else:
        p0 = len(spec.random[0][2].names)
        out = map_reduce_buckets(parts, P.partition_block_sums, block_buckets, sum_blocks, levels * p0, spec_b,
                                 scaling_b, weights, split_every=split_every)
        sums = None if out is None else finish_block_buckets(*out)
    if not (isinstance(start, str) and start == "moments"):
        return sums, None
    beta, centre = P.start_beta(sums, m, scaling)
    pairs = P.start_table_pairs(spec, m, scaling, weights is not None)
    args = (spec_b, scaling_b, beta, centre, weights)
    if levels is None or len(levels) == 2 or all((0, j) in pairs for j in range(1, len(spec.random))):
        stats = map_reduce(parts, P.partition_start_stats, StartStats.merge_all, *args, split_every=split_every,
                           skip=pairs)
    else:
        out = map_reduce_buckets(parts, P.partition_start_stats, StartStats.buckets, StartStats.merge_all, levels,
                                 *args, split_every=split_every, skip=pairs)
        stats = None if out is None else StartStats.finish_buckets(*out)
    return sums, P.start_with_tables(stats, sums, spec, pairs)


class DaskLinearMixedModelResult(LinearMixedModelResult):
    """A linear mixed model fitted on a dask DataFrame (see :mod:`mixedfx.cluster.lmm`).

    Per-row outputs are lazy dask Series on the data's partitions (rows dropped for missing values
    are absent, as in memory); call ``.compute()`` to get pandas.
    """

    def __init__(self, fit, formula, data_name=None, ddf=None):
        super().__init__(fit, formula, data_name)
        self._ddf = ddf

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_ddf"] = None            # a lazy frame is tied to its scheduler; keep the estimates
        return state

    def _frame(self):
        if self._ddf is None:
            raise ValueError("this result has no dask frame (it was pickled); predict(newdata) works")
        return self._ddf

    @property
    def _weights_column(self):
        return self.fit.extra.get("weights")

    def fitted(self):
        """Conditional fitted values as a dask Series (complete rows, the data's index)."""
        meta = pd.Series(dtype=float, name="fitted")
        return self._frame().map_partitions(outputs.fitted_partition, self.fit.light(), self._weights_column,
                                            meta=meta)

    def residuals(self, type: str = "response", level: str = "conditional"):
        """Residuals as a dask Series (see :meth:`LinearMixedModelResult.residuals`)."""
        if level not in ("conditional", "marginal"):
            raise ValueError(f"level must be 'conditional' or 'marginal', got {level!r}")
        if type not in ("response", "pearson", "deviance"):
            raise ValueError(f"type must be 'response', 'pearson' or 'deviance', got {type!r}")
        meta = pd.Series(dtype=float, name="residuals")
        return self._frame().map_partitions(outputs.residual_partition, self.fit.light(), self._weights_column,
                                            type, level, meta=meta)

    def _residual_array(self, type: str = "response", level: str = "conditional") -> np.ndarray:
        """One pass: the residuals on the client (summary's quantiles)."""
        return self.residuals(type, level).compute().to_numpy()

    def predict(self, newdata=None, re_form=None, allow_new_levels: bool = False, interval: str | None = None,
                level: float = 0.95, se_fit: bool = False):
        """Predictions: a dask Series for ``newdata=None`` (the fitted rows) or a dask frame; the in-memory
        result's array (and intervals) for a pandas frame."""
        if newdata is None or is_dask_frame(newdata):
            if interval is not None or se_fit:
                raise NotImplementedError("intervals and standard errors on Dask data are not available yet; "
                                          "pass a pandas frame as newdata")
            if newdata is None and re_form is None:
                return self.fitted().rename("predict")
            frame = self._frame() if newdata is None else newdata
            meta = pd.Series(dtype=float, name="predict")
            return frame.map_partitions(outputs.predict_partition, self.fit.light(), re_form, allow_new_levels,
                                        meta=meta)
        return super().predict(newdata, re_form, allow_new_levels, interval, level, se_fit)

    def coef_table(self, ddf: str = "satterthwaite") -> pd.DataFrame:
        if ddf in ("kenward-roger", "kr"):
            raise NotImplementedError(_NO_ROWS.format(what="Kenward-Roger"))
        return super().coef_table(ddf)

    def _no_rows(self, what):
        raise NotImplementedError(_NO_ROWS.format(what=what))

    def hatvalues(self, *a, **k):
        self._no_rows("leverages")

    def influence(self, *a, **k):
        self._no_rows("influence")

    def simulate(self, *a, **k):
        self._no_rows("simulate")

    def bootstrap(self, *a, **k):
        self._no_rows("bootstrap")

    def check(self, *a, **k):
        self._no_rows("check()")

    def refit(self, *a, **k):
        self._no_rows("refit")
