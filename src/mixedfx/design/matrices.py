"""Model matrices for a term list, with R's treatment contrasts and column names.

formulaic does the contrast coding (R's full-rank rule: a factor is coded by
contrasts when the term without it is in the model, by indicators otherwise) over
atoms that we evaluated ourselves and pass under synthetic names (``_mfx0``...).
Its column names are then mapped back to R's: ``_mfx0[T.B]:_mfx1`` ->
``recipeB:temp``, ``Intercept`` -> ``(Intercept)``.
"""
from __future__ import annotations

import math

import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.linalg import solve_triangular

from ..formula.terms import TermList

__all__ = ["TermMatrixSpec", "build_term_matrix", "drop_aliased_columns"]

_PIECE = re.compile(r"^(_mfx\d+)(?:\[(?:T\.)?(.*)\])?$")


@dataclass(frozen=True)
class TermMatrixSpec:
    """What is needed to rebuild a term list's matrix on new data."""
    termlist: TermList
    synthetic: dict          # atom label -> synthetic column name
    formulaic_spec: object   # formulaic ModelSpec (None when there are no columns)
    names: tuple[str, ...]   # R column names, after dropping aliased columns
    keep: tuple[int, ...]    # indices of formulaic's columns that were kept
    direct: bool = False     # all atoms numeric: columns are products of atoms (no formulaic)

    def matrix(self, atom_values: dict, n: int) -> np.ndarray:
        if self.direct:
            return _direct_matrix(self.termlist, atom_values, n)[:, list(self.keep)]
        if self.formulaic_spec is None:
            return np.ones((n, 1)) if self.termlist.intercept else np.zeros((n, 0))
        frame = _frame(self.synthetic, atom_values, n)
        mm = self.formulaic_spec.get_model_matrix(frame)
        return np.asarray(mm, dtype=float)[:, list(self.keep)]


def _direct_matrix(termlist: TermList, atom_values: dict, n: int) -> np.ndarray:
    """Model matrix of numeric atoms only: an intercept and products of covariates."""
    cols = [np.ones(n)] if termlist.intercept else []
    for t in termlist.terms:
        col = np.asarray(atom_values[t[0]], dtype=float)
        for a in t[1:]:
            col = col * np.asarray(atom_values[a], dtype=float)
        cols.append(col)
    return np.column_stack(cols) if cols else np.zeros((n, 0))


def _frame(synthetic: dict, atom_values: dict, n: int) -> pd.DataFrame:
    return pd.DataFrame({syn: atom_values[label] for label, syn in synthetic.items()},
                        index=pd.RangeIndex(n))


def _rename(col: str, back: dict) -> str:
    if col == "Intercept":
        return "(Intercept)"
    out = []
    for piece in col.split(":"):
        m = _PIECE.match(piece)
        if m is None:
            out.append(piece)
            continue
        label = back[m.group(1)]
        out.append(label + (m.group(2) if m.group(2) is not None else ""))
    return ":".join(out)


def build_term_matrix(termlist: TermList, atom_values: dict, n: int) -> tuple[np.ndarray, TermMatrixSpec]:
    """Build the model matrix of ``termlist`` from evaluated atoms.

    Parameters
    ----------
    termlist : expanded terms (atom labels).
    atom_values : atom label -> float vector of length n or Categorical.
    n : number of rows.

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
    if all(isinstance(atom_values[a], np.ndarray) for a in synthetic):
        # no factor anywhere: no contrasts to code, so skip formulaic (it costs ~4 ms a call)
        mat = _direct_matrix(termlist, atom_values, n)
        names = tuple(termlist.labels())
        return mat, TermMatrixSpec(termlist, synthetic, None, names, tuple(range(len(names))), direct=True)
    from formulaic import model_matrix  # imported lazily: the import costs ~0.2 s

    rhs = " + ".join(":".join(synthetic[a] for a in t) for t in termlist.terms)
    rhs = ("1 + " if termlist.intercept else "0 + ") + rhs
    frame = _frame(synthetic, atom_values, n)
    mm = model_matrix(rhs, frame, na_action="raise")
    back = {v: k for k, v in synthetic.items()}
    names = [_rename(c, back) for c in mm.columns]
    mat = np.asarray(mm, dtype=float)
    keep = tuple(range(mat.shape[1]))
    return mat, TermMatrixSpec(termlist, synthetic, mm.model_spec, tuple(names), keep)


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
    XtX = _standardized_gram(X)
    kept: list[int] = []
    L = np.zeros((p, p))
    for j in range(p):
        d = XtX[j, j]
        if kept:
            k = len(kept)      # L is lower triangular: a triangular solve (p = 1000: 0.3 s, not 11 s)
            row = solve_triangular(L[:k, :k], XtX[kept, j], lower=True, check_finite=False)
            resid = d - row @ row
        else:
            row = np.zeros(0)
            resid = d
        if d <= 0 or resid <= tol * d:
            continue
        k = len(kept)
        L[k, :k] = row
        L[k, k] = np.sqrt(resid)
        kept.append(j)
    if len(kept) == p:
        return X, spec
    dropped = [spec.names[j] for j in range(p) if j not in kept]
    warnings.warn(f"{what} model matrix is rank deficient so dropping {len(dropped)} column(s): "
                  f"{', '.join(dropped)}", RankDeficiencyWarning, stacklevel=4)
    new = TermMatrixSpec(spec.termlist, spec.synthetic, spec.formulaic_spec,
                         tuple(spec.names[j] for j in kept), tuple(spec.keep[j] for j in kept), spec.direct)
    return X[:, kept], new


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
