"""Pass 1 of a partitioned fit: survey each pandas partition, merge the surveys, learn the spec.

Every function here takes one pandas partition (or small summaries) and is pure, so a
scheduler can retry or move it freely.  The client flow is::

    plan = survey_plan(formula, weights="w", offset="o")
    survey = merge_surveys([partition_survey(part, plan, i, k) for i, part in enumerate(parts)])
    spec = spec_from_survey(plan, survey)          # the frozen DesignSpec, global levels
    arrays = [evaluate_partition(spec, part, weights="w") for part in parts]

A survey holds, over a partition's complete rows (the rows :func:`build_design` keeps): the
row counts and per-column missing counts, each column's kind, the values seen in every
column a factor or grouping factor can come from (for categoricals also the category order),
the observed combinations of the variables of interaction groupings, a few distinct values of
the other numeric columns (enough to evaluate the template), for every ``scale()`` the
count, mean and M2 of its argument (merged with Chan's formulas), and for every ``poly()`` the
count, mean and centred power sums of its argument over the rows where it is known (as R's model
frame fits it), from which :mod:`~mixedfx.design.polymoments` gives R's coefficients.

Refused with a clear error (v1): ``bs()``, ``ns()`` (their knots are quantiles of the whole data),
a stateful transform inside another (``scale(scale(x))``, ``poly(scale(x), 2)``),
``weights=``/``offset=`` given as arrays (give a column name).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..formula.ast import Call, children, deparse, names_in
from ..formula.terms import ModelFormula
from .bases import BASES
from .columns import string_columns
from .design import DesignSpec, MissingDataWarning, missing_text
from .evaluate import _CONSTANTS, AtomState, DesignError, _Evaluator, evaluate_atom
from .learn import _formula, evaluate_partition, learn_spec, scale_calls
from .modelframe import ModelFrame
from .polymoments import merge_power_sums, poly_from_power_sums, poly_settings, power_sums

__all__ = ["SurveyPlan", "Survey", "survey_plan", "partition_survey", "merge_surveys", "template_frame",
           "spec_from_survey", "missing_message", "evaluate_partition", "MissingDataWarning"]

_FACTOR_CALLS = ("factor", "as.factor", "ordered", "numFactor")
_SAMPLES = 3        # distinct values kept per partition of a numeric (non-factor) column


@dataclass(frozen=True)
class SurveyPlan:
    """What to survey: the formula, the model's columns and its stateful transforms."""
    formula: ModelFormula
    columns: tuple[str, ...]             # columns whose missing values drop a row
    factor_sources: frozenset            # numeric columns used as factors (grouping, factor())
    linked: tuple[tuple[str, ...], ...]  # variables of interaction groupings (observed combinations)
    scales: dict                         # scale() label -> ((center, scale) settings, argument node)
    weights: str | None = None
    offset: str | None = None
    polys: dict = field(default_factory=dict)   # poly() label -> (argument node, degree, raw)


def survey_plan(formula, weights=None, offset=None) -> SurveyPlan:
    """The plan of pass 1 for a formula; refuses what a partitioned fit cannot learn yet."""
    f = _formula(formula)
    for what, value in (("weights", weights), ("offset", offset)):
        if value is not None and not isinstance(value, str):
            raise DesignError(f"{what}= must be a column name on partitioned data (an array cannot be split "
                              "with the partitions); add it as a column and pass its name")
    polys = {}
    for node in f.atoms.values():
        for sub in _calls(node):
            if sub.func == "poly":
                label = deparse(sub)
                arg, degree, raw = poly_settings(sub, label)
                if any(c.func in ("scale", *BASES) for c in _calls(arg)):
                    raise DesignError(f"{label!r}: a stateful transform inside poly() needs a pass per nesting "
                                      "level; on partitioned data compute the inner transform as a column first")
                polys[label] = (arg, degree, raw)
            elif sub.func in BASES:
                raise DesignError(f"{deparse(sub)!r}: {sub.func}() is not supported on partitioned data yet (its "
                                  "knots are quantiles of the whole data); compute the basis columns first, or "
                                  "fit in memory")
    nodes = [f.response, *f.atoms.values(), *f.offsets]
    calls = scale_calls(nodes)
    ev = _Evaluator(pd.DataFrame(), AtomState(), True)
    scales = {}
    for label, node in calls.items():
        pos, kw = ev.arguments(node, label)
        center = ev.scale_setting(kw.get("center", pos[1] if len(pos) > 1 else None), "center", label)
        scl = ev.scale_setting(kw.get("scale", pos[2] if len(pos) > 2 else None), "scale", label)
        scales[label] = ((center, scl), pos[0])
    sources = set()
    for node in f.atoms.values():
        for sub in _calls(node):
            if sub.func in _FACTOR_CALLS:
                sources.update(names_in(sub))
    linked = []
    for term in f.random:
        sources.update(term.group)
        if len(term.group) > 1:
            linked.append(tuple(term.group))
    variables = [v for v in f.variables if v not in _CONSTANTS]
    cols = tuple(dict.fromkeys([*variables, *(c for c in (weights, offset) if c)]))
    return SurveyPlan(f, cols, frozenset(sources), _merge_linked(linked), scales, weights, offset, polys)


def _calls(node):
    stack = [node]
    while stack:
        n = stack.pop()
        if n is None:
            continue
        if isinstance(n, Call):
            yield n
        stack.extend(children(n))


def _merge_linked(groups: list[tuple[str, ...]]) -> tuple[tuple[str, ...], ...]:
    """Union the variable sets that share a variable (their observed tuples project onto each pair)."""
    sets: list[list[str]] = []
    for g in groups:
        hit = [s for s in sets if set(s) & set(g)]
        merged = list(dict.fromkeys([v for s in hit for v in s] + list(g)))
        sets = [s for s in sets if s not in hit] + [merged]
    return tuple(tuple(s) for s in sets)


@dataclass
class Survey:
    """Pass-1 summary of one partition or of several merged (see the module docstring)."""
    n: int
    n_complete: int
    missing: dict                 # column -> rows with a missing value
    kinds: dict                   # column -> "numeric" | "bool" | "categorical" | "text"
    values: dict                  # column -> unique values seen (complete rows)
    categories: dict              # categorical column -> category order
    tuples: dict                  # linked variables -> DataFrame of observed combinations
    scale: dict                   # scale() label -> (n, mean, M2) of its argument
    poly: dict                    # poly() label -> (n, mean, power sums, distinct values), rows with x known
    where: dict = field(default_factory=dict)   # column -> where its kind was first seen

    @property
    def n_dropped(self) -> int:
        return self.n - self.n_complete


def _kind(s: pd.Series) -> str:
    dt = s.dtype
    if isinstance(dt, pd.CategoricalDtype):
        return "categorical"
    if dt.kind == "b":
        return "bool"
    if dt.kind in "iuf":
        return "numeric"
    return "text"


def partition_survey(part: pd.DataFrame, plan: SurveyPlan, index: int | None = None,
                     total: int | None = None) -> Survey | None:
    """Survey one pandas partition; None when it has no rows."""
    where = "the partition" if index is None else f"partition {index}" + (f" of {total}" if total else "")
    data = string_columns(part)
    missing_cols = [c for c in plan.columns if c not in data.columns]
    if missing_cols:
        raise DesignError(f"column {missing_cols[0]!r} is not in {where}; every partition needs the model's columns")
    if len(data) == 0:
        return None
    frame = ModelFrame(data)
    missing = {c: int(np.asarray(pd.isna(frame[c].array), dtype=bool).sum()) for c in plan.columns}
    ok = frame.notna(plan.columns)
    sub = data.iloc[np.flatnonzero(ok)]
    kinds = {c: _kind(data[c]) for c in plan.columns}
    values, categories, tuples, scale = {}, {}, {}, {}
    for c in plan.columns:
        s = sub[c]
        if kinds[c] == "categorical":
            categories[c] = tuple(data[c].cat.categories)
            values[c] = pd.unique(s.astype(object).to_numpy())
        elif kinds[c] != "numeric" or c in plan.factor_sources:
            values[c] = pd.unique(s.to_numpy())
        else:
            values[c] = pd.unique(s.to_numpy())[:_SAMPLES]
    for group in plan.linked:
        tuples[group] = sub[list(group)].astype(object).drop_duplicates().reset_index(drop=True)
    for label, (_, arg) in plan.scales.items():
        if len(sub) == 0:
            scale[label] = (0, 0.0, 0.0)
            continue
        x = evaluate_atom(arg, sub, AtomState(), training=True)
        if not isinstance(x, np.ndarray):
            raise DesignError(f"{label!r}: its argument {deparse(arg)!r} is not numeric")
        x = np.broadcast_to(np.asarray(x, float), (len(sub),))
        mean = float(np.mean(x))
        scale[label] = (len(x), mean, float(np.sum((x - mean) ** 2)))
    poly = {lab: power_sums(data, arg, lab, degree) for lab, (arg, degree, _) in plan.polys.items()}
    return Survey(len(data), len(sub), missing, kinds, values, categories, tuples, scale, poly,
                  {c: where for c in plan.columns})


def _chan(a: tuple, b: tuple) -> tuple:
    na, ma, qa = a
    nb, mb, qb = b
    if nb == 0:
        return a
    if na == 0:
        return b
    n = na + nb
    d = mb - ma
    return n, ma + d * nb / n, qa + qb + d * d * na * nb / n


def merge_surveys(surveys) -> Survey:
    """Merge partition surveys (None entries, from empty partitions, are skipped)."""
    parts = [s for s in surveys if s is not None]
    if not parts:
        raise DesignError("every partition is empty: the data have no rows")
    out = parts[0]
    for s in parts[1:]:
        out = _merge_two(out, s)
    return out


def _merge_two(a: Survey, b: Survey) -> Survey:
    for c, kind in b.kinds.items():
        if a.kinds.get(c, kind) != kind:
            raise DesignError(f"column {c!r} is {a.kinds[c]} in {a.where.get(c, 'one partition')} but {kind} in "
                              f"{b.where.get(c, 'another')}; every partition needs the same column types")
    cats = dict(a.categories)
    for c, order in b.categories.items():
        cats[c] = tuple(dict.fromkeys(cats.get(c, ()) + order))
    values = {}
    for c in a.values.keys() | b.values.keys():
        va, vb = a.values.get(c), b.values.get(c)
        both = [v for v in (va, vb) if v is not None and len(v)]
        if not both:
            values[c] = va if va is not None else vb
            continue
        merged = pd.unique(np.concatenate([np.asarray(v, dtype=object) if a.kinds[c] != "numeric" else v
                                           for v in both]))
        values[c] = merged
    tuples = {g: pd.concat([a.tuples[g], b.tuples[g]], ignore_index=True).drop_duplicates().reset_index(drop=True)
              for g in a.tuples}
    scale = {lab: _chan(a.scale[lab], b.scale[lab]) for lab in a.scale}
    poly = {lab: merge_power_sums(a.poly[lab], b.poly[lab]) for lab in a.poly}
    missing = {c: a.missing[c] + b.missing[c] for c in a.missing}
    where = {**b.where, **a.where}
    return Survey(a.n + b.n, a.n_complete + b.n_complete, missing, dict(a.kinds), values, cats, tuples, scale, poly,
                  where)


def missing_message(survey: Survey) -> str | None:
    """:func:`build_design`'s MissingDataWarning text for the merged survey, or None without missing rows."""
    if not survey.n_dropped:
        return None
    report = sorted([(repr(c), k) for c, k in survey.missing.items() if k], key=lambda c: -c[1])
    return missing_text(survey.n_dropped, survey.n, report)


def template_frame(plan: SurveyPlan, survey: Survey) -> pd.DataFrame:
    """A small frame with every level of every factor (and every observed combination of the
    variables of interaction groupings); its numeric values are observed values (cycled)."""
    if survey.n_complete == 0:
        raise DesignError(f"no complete rows: all {survey.n} rows have a missing value in the model's variables")
    linked_cols = {c: g for g in plan.linked for c in g}
    sizes = [len(survey.tuples[g]) for g in plan.linked]
    sizes += [len(survey.values[c]) for c in plan.columns if c not in linked_cols]
    n = max(sizes + [2])
    out = {}
    for c in plan.columns:
        if c in linked_cols:
            t = survey.tuples[linked_cols[c]]
            vals = t[c].to_numpy()[np.arange(n) % len(t)]
        else:
            vals = np.resize(np.asarray(survey.values[c]), n)
        kind = survey.kinds[c]
        if kind == "categorical":
            out[c] = pd.Categorical(np.asarray(vals, dtype=object), categories=list(survey.categories[c]))
        elif kind == "numeric":
            out[c] = np.asarray(vals)
        elif kind == "bool":
            out[c] = np.asarray(vals, dtype=bool)
        else:
            out[c] = np.asarray(vals, dtype=object)
    return pd.DataFrame(out)


def spec_from_survey(plan: SurveyPlan, survey: Survey, aliased=()) -> DesignSpec:
    """The frozen DesignSpec of the whole data from its merged survey (:func:`learn_spec` on the template)."""
    moments = {lab: (settings, *survey.scale[lab]) for lab, (settings, _) in plan.scales.items()}
    bases = {lab: poly_from_power_sums(survey.poly[lab], degree, raw, lab)
             for lab, (_, degree, raw) in plan.polys.items()}
    return learn_spec(plan.formula, template_frame(plan, survey), moments, aliased,
                      weights=plan.weights, offset=plan.offset, bases=bases)
