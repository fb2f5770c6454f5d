"""Within-between (Mundlak) decomposition of covariates: ``x = x_between + x_within``.

``x_between`` is the mean of ``x`` in the row's group (missing values ignored) and ``x_within =
x - x_between``.  In ``y ~ x_within + x_between + (1 | g)`` the coefficient of ``x_within`` is the
within-group (fixed-effects) effect and that of ``x_between`` the between-group effect; their
difference is the contextual effect, zero when the group effects are uncorrelated with ``x``
(Mundlak 1978; the regression form of the Hausman test).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .columns import check_numeric_column
from .evaluate import DesignError, check_columns
from .frames import as_pandas

__all__ = ["within_between"]


def within_between(data: pd.DataFrame, columns: str | Sequence[str], group: str | Sequence[str],
                   suffixes: tuple[str, str] = ("_between", "_within")) -> pd.DataFrame:
    """A copy of ``data`` with group-mean (between) and group-centred (within) columns added.

    Parameters
    ----------
    data : the data frame (never modified): pandas, or any frame ``lmer()`` accepts (polars,
        pyarrow, a dict of columns), which is converted to pandas.
    columns : numeric column name(s) to decompose.
    group : the grouping column (or several, for their interaction).
    suffixes : names of the added columns, ``column + suffixes[0]`` (group mean) and
        ``column + suffixes[1]`` (deviation from it).

    Returns
    -------
    A new pandas DataFrame: ``data``'s columns followed by ``x_between, x_within`` for each ``x``.  Rows
    whose group is missing get NaN; missing values of ``x`` are left out of the group means and
    give a NaN ``x_within``.

    Examples
    --------
    >>> wb = within_between(df, "x", group="g")              # doctest: +SKIP
    >>> mfx.lmer("y ~ x_within + x_between + (1 | g)", wb)   # doctest: +SKIP
    """
    data = as_pandas(data, "within_between() data")     # polars, Arrow, dict of columns: a pandas copy
    cols = [columns] if isinstance(columns, str) else list(columns)
    groups = [group] if isinstance(group, str) else list(group)
    if not cols:
        raise ValueError("within_between(): give at least one column to decompose")
    if not groups:
        raise ValueError("within_between(): group= must name the grouping column")
    if len(suffixes) != 2 or not all(isinstance(s, str) and s for s in suffixes) or suffixes[0] == suffixes[1]:
        raise ValueError(f"within_between(): suffixes must be two different non-empty strings, got {suffixes!r}")
    repeated = sorted({c for c in cols if cols.count(c) > 1})
    if repeated:
        raise ValueError(f"within_between(): column(s) {repeated} are listed more than once in columns=")
    check_columns(cols, data, "within_between() column list")
    check_columns(groups, data, "within_between() group=")
    overlap = set(cols) & set(groups)
    if overlap:
        raise ValueError(f"within_between(): {sorted(overlap)} is both a column to decompose and the group")
    for c in cols:
        if isinstance(data[c], pd.DataFrame):
            raise DesignError(f"within_between(): the data have several columns named {c!r}; names must be unique")
        try:
            check_numeric_column(data[c], c, "decomposed")
        except DesignError:
            raise DesignError(f"within_between(): column {c!r} is not numeric (dtype {data[c].dtype}); only numeric "
                              "covariates can be split into group means and deviations (for a factor, decompose "
                              "its dummy columns)") from None
    new = [c + s for c in cols for s in suffixes]
    clash = [n for n in new if n in data.columns]
    if clash:
        raise ValueError(f"within_between(): the output column(s) {clash} already exist in the data; "
                         "choose other suffixes= (or drop those columns)")
    twice = sorted({n for n in new if new.count(n) > 1})
    if twice:
        raise ValueError(f"within_between(): the output names {twice} would be made twice from columns {cols} "
                         f"with suffixes {suffixes!r}; choose other suffixes=")
    out = data.copy()
    # group codes by position (the index may repeat): -1 where a grouping value is missing
    codes = pd.DataFrame({i: data[g].to_numpy() for i, g in enumerate(groups)}).groupby(
        list(range(len(groups))), dropna=True, sort=False, observed=True).ngroup().to_numpy(dtype=float)
    ok = np.isfinite(codes)
    codes = np.where(ok, codes, -1).astype(np.int64)
    G = int(codes.max()) + 1 if ok.any() else 0
    for c in cols:
        x = pd.to_numeric(data[c], errors="coerce").astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        use = ok & np.isfinite(x)
        sums = np.bincount(codes[use], weights=x[use], minlength=G)
        counts = np.bincount(codes[use], minlength=G)
        with np.errstate(invalid="ignore", divide="ignore"):
            gmean = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        means = np.full(len(x), np.nan)
        means[ok] = gmean[codes[ok]]
        out[c + suffixes[0]] = means
        out[c + suffixes[1]] = x - means
    return out
