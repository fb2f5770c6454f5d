"""The theta layout of a design: each random-effects term's covariance structure."""
from __future__ import annotations

from ..core.covariance import ThetaLayout
from ..core.structures import make_structure

__all__ = ["block_structures", "layout_of"]


def block_structures(blocks) -> tuple:
    """One :class:`~mixedfx.core.structures.CovStructure` per design block (``us`` unless the
    formula wrapped the term in a structure such as ``ar1(...)``)."""
    return tuple(make_structure(getattr(b.term, "structure", "us"), b.p, getattr(b, "times", None))
                 for b in blocks)


def layout_of(blocks) -> ThetaLayout:
    """The :class:`~mixedfx.core.covariance.ThetaLayout` of a design's blocks."""
    return ThetaLayout(tuple(b.p for b in blocks), block_structures(blocks))
