"""Treatment-contrast coding of factors without formulaic, for the common full-rank layouts.

formulaic (``matrices.build_term_matrix``) chooses, term by term, how each factor enters the
model matrix: by its contrasts (``k - 1`` columns, the first level the reference) or by all
``k`` indicators.  Its rule is patsy's: a term spans the products of its covariates with, for
each factor, either nothing or the factor's contrasts; what earlier terms (and the intercept)
already span is removed, and what remains is merged into as few pieces as possible.  That call
costs ~3 ms even for a 48-row data set, more than the rest of a small fit.

This module codes the two outcomes that need no merging, which cover hierarchical formulas
(``a * b``, ``x + f + f:x``, ``0 + f + x``):

* **contrasts**: everything the term spans except "all its factors as contrasts" is already
  spanned, so every factor of the term is coded by its contrasts (``recipeB:temp``);
* **one factor in full**: the term has exactly one factor and nothing the term spans is spanned
  yet (``0 + f``, or ``f:x`` without ``x``), so that factor is coded by all its indicators.

Any other layout (``a:b`` without main effects, ...) returns None from :func:`plan_coding`
and goes to formulaic.  Columns of a term vary its first atom fastest and are named as R names
them (``recipeB:temp``); ``tests/design/test_coding.py`` checks matrix and names against
formulaic on random formulas.
"""
from __future__ import annotations

from itertools import combinations, product

import numpy as np
import pandas as pd

from .errors import DesignError

__all__ = ["plan_coding", "coded_matrix", "coded_names", "column_terms", "factor_levels"]

NUMERIC, CONTRASTS, FULL = "num", "contr", "full"


def _is_factor(value) -> bool:
    return isinstance(value, pd.Categorical)


def plan_coding(termlist, atom_values: dict) -> tuple | None:
    """Per term, the coding of each of its atoms (:data:`NUMERIC`, :data:`CONTRASTS`, :data:`FULL`),
    or None when some term needs formulaic's merging (see the module notes) or has a
    multi-column atom.

    A span element is a pair: the term's covariates (in every element of its span) and the set
    of its factors that enter by their contrasts.
    """
    spanned: set = set()
    if termlist.intercept:
        spanned.add((frozenset(), frozenset()))
    plan = []
    for term in termlist.terms:
        values = [atom_values[a] for a in term]
        if any(isinstance(v, np.ndarray) and v.ndim == 2 for v in values):
            return None
        factors = [a for a, v in zip(term, values) if _is_factor(v)]
        covs = frozenset(a for a, v in zip(term, values) if not _is_factor(v))
        span = {(covs, frozenset(sub)) for r in range(len(factors) + 1)
                for sub in combinations(factors, r)}
        left = span - spanned
        full = frozenset(factors)
        if left == {(covs, full)}:
            coding = tuple(CONTRASTS if a in full else NUMERIC for a in term)
        elif len(factors) == 1 and left == span:
            coding = tuple(FULL if a in full else NUMERIC for a in term)
        else:
            return None
        spanned |= span
        plan.append(coding)
    return tuple(plan)


def factor_levels(termlist, coding, atom_values: dict) -> dict:
    """The training levels of every coded factor (atom label -> tuple of level labels)."""
    out = {}
    for term, codes in zip(termlist.terms, coding):
        for a, c in zip(term, codes):
            if c != NUMERIC and a not in out:
                out[a] = tuple(str(x) for x in atom_values[a].categories)
    return out


def _codes(value: pd.Categorical, levels: tuple, atom: str) -> np.ndarray:
    """Row codes into the training ``levels`` (new data may list its categories differently)."""
    cats = [str(x) for x in value.categories]
    if tuple(cats) == levels:
        return value.codes
    pos = pd.Index(levels, dtype=object).get_indexer(cats)
    codes = np.where(value.codes >= 0, pos[np.maximum(value.codes, 0)], -1)
    unseen = sorted({cats[c] for c in value.codes[(codes < 0) & (value.codes >= 0)]})
    if unseen:
        raise DesignError(f"the factor {atom!r} has level(s) {unseen} that the fitted data did not have; "
                          f"its levels are {list(levels)}")
    return codes


def _term_columns(term, codes, levels: dict):
    """For each column of the term: ``((atom, level index), ...)`` for its factors, first atom fastest."""
    choices = []
    for a, c in zip(term, codes):
        if c == NUMERIC:
            continue
        k = len(levels[a])
        choices.append((a, range(1, k) if c == CONTRASTS else range(k)))
    out = []
    for combo in product(*[rng for _, rng in reversed(choices)]):
        out.append(tuple((a, lv) for (a, _), lv in zip(choices, reversed(combo))))
    return out


def coded_matrix(termlist, coding, levels: dict, atom_values: dict, n: int) -> np.ndarray:
    """The model matrix (intercept first, then each term's columns) of a planned coding.

    One pass over the rows per term: a row's factor codes give its column within the term (the
    first factor varying fastest; a factor's reference level under contrasts gives none), where
    it takes the product of the term's covariates.
    """
    widths = [len(_term_columns(t, c, levels)) for t, c in zip(termlist.terms, coding)]
    start = 1 if termlist.intercept else 0
    X = np.zeros((n, start + sum(widths)), order="F")     # column-major, as formulaic's matrices
    if termlist.intercept:
        X[:, 0] = 1.0
    row_codes = {a: _codes(atom_values[a], levels[a], a) for a in levels}
    for term, codes, width in zip(termlist.terms, coding, widths):
        num = None
        for a, c in zip(term, codes):
            if c == NUMERIC:
                v = np.asarray(atom_values[a], dtype=float)
                num = v if num is None else num * v
        col = np.zeros(n, np.int64)
        keep = np.ones(n, bool)
        stride = 1
        for a, c in zip(term, codes):
            if c == NUMERIC:
                continue
            k = len(levels[a])
            # int64 before any arithmetic: pandas keeps codes as int8 below 128 levels, and a column
            # index of an interaction (code times the product of the earlier factors' widths) is larger
            idx = row_codes[a].astype(np.int64) - (1 if c == CONTRASTS else 0)
            keep &= idx >= 0
            col += np.maximum(idx, 0) * stride
            stride *= k - 1 if c == CONTRASTS else k
        rows = np.flatnonzero(keep)
        X[rows, start + col[rows]] = 1.0 if num is None else num[rows]
        start += width
    return X


def coded_names(termlist, coding, levels: dict) -> list[str]:
    """R's column names: ``(Intercept)``, ``recipeB``, ``recipeB:temp``."""
    names = ["(Intercept)"] if termlist.intercept else []
    for term, codes in zip(termlist.terms, coding):
        for col in _term_columns(term, codes, levels):
            lv = dict(col)
            names.append(":".join(a + levels[a][lv[a]] if a in lv else a for a in term))
    return names


def column_terms(termlist, coding, levels: dict) -> list[int]:
    """For each column, the index of its term in ``termlist.terms`` (-1 for the intercept)."""
    out = [-1] if termlist.intercept else []
    for i, (term, codes) in enumerate(zip(termlist.terms, coding)):
        out.extend([i] * len(_term_columns(term, codes, levels)))
    return out
