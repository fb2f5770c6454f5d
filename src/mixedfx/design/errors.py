"""The design stage's error class (its own module so every design module can raise it)."""
from __future__ import annotations

__all__ = ["DesignError"]


class DesignError(ValueError):
    """The data do not fit the formula (missing column, wrong type, bad values)."""
