"""R's names for fitted terms."""
from __future__ import annotations

__all__ = ["group_names"]


def group_names(labels: list[str]) -> list[str]:
    """R's names for the VarCorr list: repeated groups get ``.1``, ``.2`` (``make.unique``)."""
    seen: dict[str, int] = {}
    out = []
    for lab in labels:
        if lab in seen:
            seen[lab] += 1
            out.append(f"{lab}.{seen[lab]}")
        else:
            seen[lab] = 0
            out.append(lab)
    return out
