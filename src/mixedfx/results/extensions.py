"""Registry through which later stages (inference, diagnostics) add methods to results.

Imports flow one way (results never imports inference); ``mixedfx.inference`` registers
its functions here when it is imported (``import mixedfx`` does so), and result methods
such as ``coef_table(ddf=...)`` look them up.
"""
from __future__ import annotations

from typing import Callable

__all__ = ["register", "lookup"]

_REGISTRY: dict[str, Callable] = {}


def register(name: str):
    def deco(func: Callable) -> Callable:
        _REGISTRY[name] = func
        return func
    return deco


def lookup(name: str) -> Callable:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise RuntimeError(f"{name} is provided by mixedfx.inference; import mixedfx (not only "
                           "mixedfx.results) to enable it") from None
