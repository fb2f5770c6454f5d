"""Lazy matplotlib access."""
from __future__ import annotations


def plt():
    try:
        import matplotlib.pyplot as pyplot
    except ImportError as exc:   # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install 'mixedfx[plots]'") from exc
    return pyplot


def axes(ax):
    return plt().subplots()[1] if ax is None else ax
