"""Which fixed-effect columns belong to which formula term (for F tests), with R's term labels."""
from __future__ import annotations

__all__ = ["term_columns"]


def term_columns(design) -> dict:
    """``{term label: [column indices in X]}`` for every term but the intercept (aliased columns dropped)."""
    spec = design.spec.fixed
    back = {v: k for k, v in spec.synthetic.items()}
    kept: dict = {}     # column before multi-column atoms (poly, ns) were expanded -> columns of X
    for j, orig in enumerate(spec.source_columns()):
        kept.setdefault(orig, []).append(j)
    out: dict = {}
    if spec.coding is not None:         # factors coded by mixedfx.design.coding: each column's term
        for orig, term in enumerate(spec.column_terms()):
            if term >= 0 and orig in kept:
                out.setdefault(":".join(spec.termlist.terms[term]), []).extend(kept[orig])
        return out
    if spec.direct or spec.formulaic_spec is None:
        start = 1 if spec.termlist.intercept else 0
        for i, t in enumerate(spec.termlist.terms):
            if start + i in kept:
                out.setdefault(":".join(t), []).extend(kept[start + i])
        return out
    for term, idx in spec.formulaic_spec.term_indices.items():
        label = str(term)
        if label in ("1", "Intercept"):
            continue
        r_label = ":".join(back.get(piece, piece) for piece in label.split(":"))
        cols = [j for i in idx for j in kept.get(i, [])]
        if cols:
            out[r_label] = cols
    return out


def type3_contrasts(design) -> dict:
    """lmerTest's type III contrast matrix per term.

    For a term T the contrast is T's own columns plus, for every term T' that contains T,
    T' columns averaged over the levels of T''s extra factors (each treatment-contrast
    column weighted ``1 / n_levels``; an extra covariate is set to 0, so it adds nothing).
    With treatment contrasts this makes e.g. the test of ``temp`` in ``recipe * temp`` the
    slope averaged over recipes, and the test of ``recipe`` the recipe differences at
    ``temp = 0``, as ``lmerTest::anova(type = 3)``.
    """
    import numpy as np

    spec = design.spec.fixed
    levels = design.spec.state.levels
    cols = term_columns(design)
    names = list(design.xnames)
    p = len(names)
    terms = {":".join(t): t for t in spec.termlist.terms}
    out = {}
    for label, own in cols.items():
        T = terms[label]
        L = np.zeros((len(own), p))
        for r, j in enumerate(own):
            L[r, j] = 1.0
            pieces = names[j].split(":")
            for label2, T2 in terms.items():
                extra = [a for a in T2 if a not in T]
                if label2 == label or not set(T) <= set(T2) or not extra:
                    continue
                if any(a not in levels for a in extra):
                    continue               # an extra covariate: evaluated at 0
                weight = 1.0
                for a in extra:
                    weight /= len(levels[a])
                pos = [T2.index(a) for a in T]
                for j2 in cols.get(label2, []):
                    pieces2 = names[j2].split(":")
                    if len(pieces2) == len(T2) and [pieces2[i] for i in pos] == pieces:
                        L[r, j2] = weight
        out[label] = L
    return out
