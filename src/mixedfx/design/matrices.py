"""Model matrices for a term list, with R's treatment contrasts and column names.

Three routes, the first that applies: numeric atoms only (products of covariates); the
hierarchical factor layouts that :mod:`mixedfx.design.coding` codes itself (``a * b``,
``0 + f + x``; the same matrices as formulaic's, without its ~3 ms a call); otherwise
formulaic does the contrast coding (R's full-rank rule: a factor is coded by
contrasts when the term without it is in the model, by indicators otherwise) over
atoms that we evaluated ourselves and pass under synthetic names (``_mfx0``...).
Its column names are then mapped back to R's: ``_mfx0[T.B]:_mfx1`` ->
``recipeB:temp``, ``Intercept`` -> ``(Intercept)``.

Multi-column atoms (the bases ``poly(x, 2)``, ``ns(x, 3)``) enter formulaic as a column of
ones; each column of their terms is then expanded into one column per basis function,
in R's order (within a term the first atom varies fastest) and with R's names
(``poly(x, 2)1:fB``).
"""
from __future__ import annotations

import math

import re
import warnings
from dataclasses import dataclass, replace
from itertools import product

import numpy as np
import pandas as pd
from scipy.linalg import solve_triangular
from scipy.linalg.lapack import dtrtrs

from ..formula.terms import TermList
from .coding import coded_matrix, coded_names, column_terms, factor_levels, plan_coding
from .errors import DesignError

__all__ = ["TermMatrixSpec", "build_term_matrix", "drop_aliased_columns"]

_PIECE = re.compile(r"^(_mfx\d+)(?:\[(?:T\.)?(.*)\])?$")


@dataclass(frozen=True)
class TermMatrixSpec:
    """What is needed to rebuild a term list's matrix on new data."""
    termlist: TermList
    synthetic: dict          # atom label -> synthetic column name
    formulaic_spec: object   # formulaic ModelSpec (None when there are no columns)
    names: tuple[str, ...]   # R column names, after dropping aliased columns
    keep: tuple[int, ...]    # indices of the columns that were kept (after expanding multi-column atoms)
    direct: bool = False     # all atoms numeric: columns are products of atoms (no formulaic)
    #: with multi-column atoms: for each column, (column before expansion, ((atom, basis column), ...))
    expand: tuple | None = None
    #: factors coded here instead of by formulaic (:mod:`mixedfx.design.coding`): per term, each atom's
    #: coding, and ``levels`` (factor atom -> its training levels)
    coding: tuple | None = None
    levels: dict | None = None

    def matrix(self, atom_values: dict, n: int) -> np.ndarray:
        if self.direct:
            full = _direct_matrix(self.termlist, atom_values, n)
        elif self.coding is not None:
            full = coded_matrix(self.termlist, self.coding, self.levels, atom_values, n)
        elif self.formulaic_spec is None:
            return np.ones((n, 1)) if self.termlist.intercept else np.zeros((n, 0))
        else:
            frame = _frame(self.synthetic, atom_values, n)
            full = np.asarray(self.formulaic_spec.get_model_matrix(frame), dtype=float)
        if self.expand is not None:
            full = _expanded(full, self.expand, atom_values)
        return full[:, list(self.keep)]

    @property
    def width(self) -> int:
        """Columns before aliased ones are dropped (after expanding multi-column atoms)."""
        if self.expand is not None:
            return len(self.expand)
        if self.coding is not None:
            return len(column_terms(self.termlist, self.coding, self.levels))
        if self.formulaic_spec is not None:
            return len(self.formulaic_spec.column_names)
        return len(self.termlist.labels())

    def column_terms(self) -> list[int]:
        """For a coded spec (``coding``), each column's term index in ``termlist.terms`` (-1: intercept)."""
        return column_terms(self.termlist, self.coding, self.levels)

    def source_columns(self) -> tuple[int, ...]:
        """For each kept column, its column in formulaic's (or the direct) matrix, before
        multi-column atoms were expanded; columns of one term share their sources' term."""
        if self.expand is None:
            return tuple(self.keep)
        return tuple(self.expand[k][0] for k in self.keep)


def _is_wide(value) -> bool:
    return isinstance(value, np.ndarray) and value.ndim == 2


def _direct_matrix(termlist: TermList, atom_values: dict, n: int) -> np.ndarray:
    """Model matrix of numeric atoms only: an intercept and products of covariates
    (multi-column atoms count as ones here; :func:`_expanded` multiplies them in)."""
    cols = [np.ones(n)] if termlist.intercept else []
    for t in termlist.terms:
        col = np.ones(n)
        for a in t:
            if not _is_wide(atom_values[a]):
                col = col * np.asarray(atom_values[a], dtype=float)
        cols.append(col)
    return np.column_stack(cols) if cols else np.zeros((n, 0))


def _frame(synthetic: dict, atom_values: dict, n: int) -> pd.DataFrame:
    return pd.DataFrame({syn: np.ones(n) if _is_wide(atom_values[label]) else atom_values[label]
                         for label, syn in synthetic.items()}, index=pd.RangeIndex(n))


def _expanded(base: np.ndarray, expand: tuple, atom_values: dict) -> np.ndarray:
    out = np.empty((base.shape[0], len(expand)))
    for j, (src, parts) in enumerate(expand):
        col = base[:, src]
        for atom, c in parts:
            col = col * atom_values[atom][:, c]
        out[:, j] = col
    return out


def _expand_layout(blocks: list, pieces: list[dict], names_in: list[str],
                   atom_values: dict) -> tuple[tuple, list[str]]:
    """Recipe and R names of the columns after expanding multi-column atoms.

    ``blocks``: (term atoms in R's order, its column indices) in column order; ``pieces``:
    for each column, atom -> the R name piece of that atom (``fB``, ``x``); ``names_in``:
    the columns' R names before expanding.  Within a term R varies the first atom
    fastest; formulaic's columns of a term vary its first factor fastest, which is checked.
    """
    expand, names = [], []
    for term, cols in blocks:
        widths = {a: atom_values[a].shape[1] for a in term if _is_wide(atom_values[a])}
        if not widths:
            expand.extend((c, ()) for c in cols)
            names.extend(names_in[c] for c in cols)
            continue
        factors = [a for a in term if a not in widths and not isinstance(atom_values[a], np.ndarray)]
        levels = {a: list(dict.fromkeys(pieces[c][a] for c in cols)) for a in factors}
        sizes = [widths.get(a) or len(levels.get(a, [0])) for a in term]
        expected = [dict(zip(factors, combo)) for combo in
                    (tuple(reversed(c)) for c in product(*[levels[a] for a in reversed(factors)]))]
        if len(expected) != len(cols) or any(pieces[c].get(a) != e[a] for c, e in zip(cols, expected)
                                             for a in factors):
            raise DesignError(f"the term {':'.join(term)!r} combines a multi-column term (poly, bs, ns) with "
                              "factors in a way whose coding is not supported; add the factors' main effects "
                              "or write the interaction differently")
        for digits in (tuple(reversed(c)) for c in product(*[range(k) for k in reversed(sizes)])):
            f_index = 0
            for a in reversed(factors):
                f_index = f_index * len(levels[a]) + digits[term.index(a)]
            src = cols[f_index]
            expand.append((src, tuple((a, d) for a, d in zip(term, digits) if a in widths)))
            names.append(":".join(f"{a}{d + 1}" if a in widths else pieces[src][a] for a, d in zip(term, digits)))
    return tuple(expand), names


def _rename(col: str, back: dict) -> str:
    if col == "Intercept":
        return "(Intercept)"
    return ":".join(_pieces(col, back).values())


def _pieces(col: str, back: dict) -> dict:
    """atom label -> R name piece (``recipeB``, ``temp``) of a formulaic column name."""
    out = {}
    for piece in col.split(":"):
        m = _PIECE.match(piece)
        if m is None:
            out[piece] = piece
            continue
        label = back[m.group(1)]
        out[label] = label + (m.group(2) if m.group(2) is not None else "")
    return out


def build_term_matrix(termlist: TermList, atom_values: dict, n: int,
                      coding: bool = True) -> tuple[np.ndarray, TermMatrixSpec]:
    """Build the model matrix of ``termlist`` from evaluated atoms.

    Parameters
    ----------
    termlist : expanded terms (atom labels).
    atom_values : atom label -> float vector of length n or Categorical.
    n : number of rows.
    coding : code factors here when the layout allows (:mod:`mixedfx.design.coding`); False
        always uses formulaic (the tests' reference).

    Returns
    -------
    (matrix of shape (n, p), spec) with R column names in ``spec.names``.
    """
    used = [a for t in termlist.terms for a in t]
    synthetic = {}
    for a in used:
        if a not in synthetic:
            synthetic[a] = f"_mfx{len(synthetic)}"
    if not termlist.terms:
        mat = np.ones((n, 1)) if termlist.intercept else np.zeros((n, 0))
        names = ("(Intercept)",) if termlist.intercept else ()
        return mat, TermMatrixSpec(termlist, synthetic, None, names, tuple(range(len(names))))
    wide = any(_is_wide(atom_values[a]) for a in synthetic)
    if all(isinstance(atom_values[a], np.ndarray) for a in synthetic):
        # no factor anywhere: no contrasts to code, so skip formulaic (it costs ~4 ms a call)
        mat = _direct_matrix(termlist, atom_values, n)
        names = tuple(termlist.labels())
        if not wide:
            return mat, TermMatrixSpec(termlist, synthetic, None, names, tuple(range(len(names))), direct=True)
        start = 1 if termlist.intercept else 0
        blocks = ([((), [0])] if termlist.intercept else []) + [(t, [start + i]) for i, t in enumerate(termlist.terms)]
        pieces = [{}] * start + [{a: a for a in t} for t in termlist.terms]
        expand, names = _expand_layout(blocks, pieces, list(names), atom_values)
        spec = TermMatrixSpec(termlist, synthetic, None, tuple(names), tuple(range(len(names))), True, expand)
        return _expanded(mat, expand, atom_values), spec
    coding = plan_coding(termlist, atom_values) if coding and not wide else None
    if coding is not None:      # factors with treatment contrasts, no merging of spans: no formulaic (~3 ms)
        levels = factor_levels(termlist, coding, atom_values)
        mat = coded_matrix(termlist, coding, levels, atom_values, n)
        names = tuple(coded_names(termlist, coding, levels))
        return mat, TermMatrixSpec(termlist, synthetic, None, names, tuple(range(len(names))),
                                   coding=coding, levels=levels)
    from formulaic import model_matrix  # imported lazily: the import costs ~0.2 s

    rhs = " + ".join(":".join(synthetic[a] for a in t) for t in termlist.terms)
    rhs = ("1 + " if termlist.intercept else "0 + ") + rhs
    frame = _frame(synthetic, atom_values, n)
    mm = model_matrix(rhs, frame, na_action="raise")
    back = {v: k for k, v in synthetic.items()}
    names = [_rename(c, back) for c in mm.columns]
    mat = np.asarray(mm, dtype=float)
    expand = None
    if wide:
        ours = {frozenset(t): t for t in termlist.terms}
        blocks = []
        for term, idx in mm.model_spec.term_indices.items():
            label = str(term)
            atoms = frozenset() if label in ("1", "Intercept") else frozenset(back.get(p, p) for p in label.split(":"))
            if atoms and atoms not in ours:
                raise DesignError(f"cannot match the model-matrix term {term} to the formula's terms")
            blocks.append((ours[atoms] if atoms else (), list(idx)))
        expand, names = _expand_layout(blocks, [_pieces(c, back) for c in mm.columns], names, atom_values)
        mat = _expanded(mat, expand, atom_values)
    keep = tuple(range(mat.shape[1]))
    return mat, TermMatrixSpec(termlist, synthetic, mm.model_spec, tuple(names), keep, False, expand)


def drop_aliased_columns(X: np.ndarray, spec: TermMatrixSpec, what: str = "fixed-effect",
                         tol: float = 1e-7) -> tuple[np.ndarray, TermMatrixSpec]:
    """Drop columns of X that are linear combinations of earlier columns, as lme4 does.

    A column is aliased when its squared residual after projecting on the kept
    earlier columns is below ``tol`` times its squared norm (a sequential Cholesky
    of X'X with the earliest columns preferred, like R's pivoting QR).  Warns with
    the names of the dropped columns.
    """
    p = X.shape[1]
    if p == 0:
        return X, spec
    kept = independent_columns(_standardized_gram(X), tol)
    if len(kept) == p:
        return X, spec
    dropped = [spec.names[j] for j in range(p) if j not in kept]
    warnings.warn(f"{what} model matrix is rank deficient so dropping {len(dropped)} column(s): "
                  f"{', '.join(dropped)}", RankDeficiencyWarning, stacklevel=4)
    new = replace(spec, names=tuple(spec.names[j] for j in kept), keep=tuple(spec.keep[j] for j in kept))
    return X[:, kept], new


def independent_columns(G: np.ndarray, tol: float = 1e-7) -> list[int]:
    """The columns kept by lme4's aliasing rule, from their Gram matrix ``G`` (standardized to a unit
    diagonal): a sequential Cholesky with the earliest columns preferred (like R's pivoting QR); a
    column whose squared residual on the kept earlier ones is at most ``tol`` times its squared norm
    is aliased.  Shared by the in-memory design and the partitioned one (merged moments)."""
    p = G.shape[0]
    kept: list[int] = []
    L = np.zeros((p, p))
    for j in range(p):
        d = G[j, j]
        k = len(kept)      # L is lower triangular: a triangular solve (p = 1000: 0.3 s, not 11 s)
        row = _solve_lower(L[:k, :k], G[kept, j]) if k else np.zeros(0)
        resid = d - row @ row
        if d <= 0 or resid <= tol * d:
            continue
        L[k, :k] = row
        L[k, k] = np.sqrt(resid)
        kept.append(j)
    return kept


def _solve_lower(L: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``solve_triangular(L, b, lower=True)``: the same LAPACK call (trtrs, arranged as SciPy
    arranges it) without SciPy's per-call checks, which cost more than the solve at small sizes."""
    if L.flags.f_contiguous:
        x, info = dtrtrs(L, b, lower=1)
    else:       # trtrs wants Fortran order: solve the transposed (upper) system, as SciPy does
        x, info = dtrtrs(L.T, b, lower=0, trans=1)
    if info != 0:
        return solve_triangular(L, b, lower=True, check_finite=False)   # its error message
    return x


def _standardized_gram(X: np.ndarray) -> np.ndarray:
    """``X'X`` of X with columns centred (when a constant column is in the model) and scaled.

    Both are column operations that keep the rank, and they make the test invariant to units:
    ``Days + 1e6`` next to an intercept is not aliased, ``Days * 1e-8`` is not zero.
    """
    Xs = np.array(X, dtype=float)
    const = np.all(Xs == Xs[:1], axis=0) & (Xs[0] != 0) if len(Xs) else np.zeros(Xs.shape[1], bool)
    if const.any():
        others = ~const
        Xs[:, others] -= np.array([math.fsum(c) / len(c) for c in Xs[:, others].T.tolist()])[None, :]
    norms = np.sqrt(np.sum(Xs * Xs, axis=0))
    Xs /= np.where(norms > 0, norms, 1.0)[None, :]
    return Xs.T @ Xs


class RankDeficiencyWarning(UserWarning):
    """Aliased fixed-effect columns were dropped."""
