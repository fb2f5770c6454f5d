"""Building blocks of simulation-based power analysis (simr's ``extend``, ``powerCurve``).

* :func:`extend_data` replicates the data along a grouping factor: a new level copies the rows
  (covariates and within-group design) of an existing level, cycling through the existing levels
  in order, under a new label; with ``within`` every cell of the ``within`` columns is extended
  on its own (e.g. subjects per treatment group).  A subset of size ``n`` keeps the first ``n``
  levels (per cell): the existing ones in their order first, then the copies.
* :func:`clopper_pearson` is the exact binomial interval (R's ``binom.test``), as simr reports.
* :func:`replicate_seeds` gives one independent stream per (size, replicate) from a
  :class:`numpy.random.SeedSequence`, so answers do not depend on the number of workers.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..formula.ast import names_in

__all__ = ["extend_data", "clopper_pearson", "replicate_seeds", "design_variables", "level_order"]


def design_variables(formula) -> set:
    """Columns whose values enter X or a random-effects left-hand side (not grouping factors)."""
    labels = {a for t in formula.fixed.terms for a in t}
    for term in formula.random:
        labels |= {a for t in term.lhs.terms for a in t}
    out: set = set()
    for lab in labels:
        node = formula.atoms.get(lab)
        if node is not None:
            out.update(names_in(node))
    return out


def level_order(values: pd.Series) -> list:
    """Levels as R's ``factor`` orders them: categories, else sorted (else order of appearance)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        present = set(values.dropna())
        return [c for c in values.cat.categories if c in present]
    uniq = list(pd.unique(values.dropna()))
    try:
        return sorted(uniq)
    except TypeError:
        return uniq


def _new_labels(column: pd.Series, count: int, sources: list) -> list:
    """``count`` labels not in ``column``: integers after the largest for integer columns, else
    ``"<source>.<k>"`` strings."""
    if count == 0:
        return []
    if pd.api.types.is_integer_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype):
        top = int(column.max())
        return [top + 1 + i for i in range(count)]
    taken = {str(v) for v in column.dropna().unique()}
    copies: dict = {}
    out = []
    for src in sources:
        k = copies.get(src, 1)
        while f"{src}.{k}" in taken:
            k += 1
        label = f"{src}.{k}"
        taken.add(label)
        copies[src] = k + 1
        out.append(label)
    return out


def extend_data(data: pd.DataFrame, along: str, n: int, within=None) -> tuple[pd.DataFrame, np.ndarray]:
    """The data with ``along`` extended to ``n`` levels (per ``within`` cell), and each row's level rank.

    Returns ``(extended, rank)``: ``extended[rank < k]`` is the design with ``k`` levels (per cell).
    Levels beyond ``n`` already present are kept (their rank is ``>= n``).
    """
    if along not in data.columns:
        raise ValueError(f"along={along!r} is not a column of the data; columns: {', '.join(map(str, data.columns))}")
    within = [] if within is None else ([within] if isinstance(within, str) else list(within))
    for w in within:
        if w not in data.columns:
            raise ValueError(f"within={w!r} is not a column of the data")
        if w == along:
            raise ValueError("within= must name columns other than along=")
    col = data[along]
    if col.isna().any():
        raise ValueError(f"the along= column {along!r} has missing values in the rows used by the fit")
    order = level_order(col)
    if within:
        cells = data[within].astype(str).agg("\x1f".join, axis=1)
        owner = pd.DataFrame({"lev": col.to_numpy(), "cell": cells.to_numpy()}).drop_duplicates()
        if owner["lev"].duplicated().any():
            bad = owner.loc[owner["lev"].duplicated(), "lev"].iloc[0]
            raise ValueError(f"level {bad!r} of {along!r} occurs in several cells of within={within}; each level "
                             "must belong to one cell (e.g. subjects within treatment groups)")
        cell_levels: dict = {}
        for lev in order:
            cell_levels.setdefault(owner.loc[owner["lev"] == lev, "cell"].iloc[0], []).append(lev)
        groups = list(cell_levels.values())
    else:
        groups = [order]
    plan = []          # (source level, rank in its cell) of each new level
    for levs in groups:
        for r in range(len(levs), n):
            plan.append((levs[r % len(levs)], r))
    labels = _new_labels(col, len(plan), [src for src, _ in plan])
    rank = np.empty(len(data), dtype=int)
    for levs in groups:
        for r, lev in enumerate(levs):
            rank[(col == lev).to_numpy()] = r
    pieces, ranks = [data], [rank]
    if plan:
        if isinstance(col.dtype, pd.CategoricalDtype):
            data = data.assign(**{along: col.astype(object)})
            pieces = [data]
        src_rows = {}
        for lev in dict.fromkeys(src for src, _ in plan):
            src_rows[lev] = data.loc[(col == lev).to_numpy()]
        for (src, r), lab in zip(plan, labels):
            block = src_rows[src].copy()
            block[along] = lab
            pieces.append(block)
            ranks.append(np.full(len(block), r, dtype=int))
    out = pd.concat(pieces, ignore_index=True)
    return out, np.concatenate(ranks)


def clopper_pearson(x: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval for a binomial proportion ``x / n`` (R's ``binom.test``)."""
    if n <= 0:
        return float("nan"), float("nan")
    a = 1.0 - level
    lower = 0.0 if x == 0 else float(stats.beta.ppf(a / 2, x, n - x + 1))
    upper = 1.0 if x == n else float(stats.beta.ppf(1 - a / 2, x + 1, n - x))
    return lower, upper


def replicate_seeds(seed, n_sizes: int, nsim: int) -> tuple[int, list[list[np.random.SeedSequence]]]:
    """``(entropy, seeds[size][replicate])``: independent streams spawned from ``seed``."""
    if isinstance(seed, np.random.Generator):
        seed = int(seed.integers(2 ** 63))
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return root.entropy, [child.spawn(nsim) for child in root.spawn(n_sizes)]
