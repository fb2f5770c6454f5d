"""The data as :func:`~mixedfx.design.build_design` reads them: each column fetched once.

On small data the design stage's time goes to pandas' per-call overhead rather than to
arithmetic: every ``df[name]`` costs 10-15 us, ``df.dtypes`` 20 us, and a list selection
``df[cols]`` with pandas' Arrow-backed string labels ~0.4 ms.  :class:`ModelFrame` stands in
for the DataFrame inside the design stage and offers only what that stage uses:

* ``columns`` (the data's column labels, for lookups and messages), ``index`` and ``len()``;
* ``frame[name]``: the column as a pandas Series, read from the data on first use and kept;
* :meth:`ModelFrame.rows`: the same view restricted to the rows of a boolean mask (R's
  ``na.omit``), each column subset when first read.

It never modifies the caller's frame and lives only for one call, so a frame changed between
two fits is read afresh.  pyarrow-backed ``dictionary`` columns of a pandas DataFrame are read
as Categoricals in the dictionary's order, as :func:`~mixedfx.design.frames.as_pandas` reads them.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .frames import arrow_dictionary_as_categorical, is_arrow_dictionary

__all__ = ["ModelFrame"]


class ModelFrame:
    """A read-only, column-at-a-time view of a pandas DataFrame (see the module docstring).

    Parameters
    ----------
    data : the DataFrame (not copied, never modified).
    dictionaries : read pyarrow ``dictionary`` columns as Categoricals (for a DataFrame the
        caller passed in; frames built by ``as_pandas`` have been converted already).
    """
    __slots__ = ("columns", "index", "_data", "_dictionaries", "_mask", "_parent", "_cache")

    def __init__(self, data: pd.DataFrame, dictionaries: bool = True):
        self._data = data
        self._dictionaries = dictionaries
        self.columns = data.columns
        self.index = data.index
        self._mask = None
        self._parent = None
        self._cache: dict = {}

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, name):
        try:
            return self._cache[name]
        except KeyError:
            pass
        if self._parent is not None:
            s = self._parent[name]
            s = s[self._mask]
        else:
            s = self._data[name]
            if self._dictionaries and isinstance(s, pd.Series) and is_arrow_dictionary(s.dtype):
                s = arrow_dictionary_as_categorical(s)
        self._cache[name] = s
        return s

    def rows(self, mask: np.ndarray) -> "ModelFrame":
        """The rows where ``mask`` (a boolean array, one value per row) is true."""
        out = ModelFrame.__new__(ModelFrame)
        out._data = self._data
        out._dictionaries = self._dictionaries
        out.columns = self.columns
        out.index = self.index.take(np.flatnonzero(mask))   # as DataFrame.loc[mask] takes the rows
        out._mask = mask
        out._parent = self
        out._cache = {}
        return out

    def notna(self, names) -> np.ndarray:
        """Boolean array: the rows with a value in every one of the columns ``names``."""
        ok = np.ones(len(self), dtype=bool)
        for name in names:
            ok &= ~np.asarray(pd.isna(self[name].array), dtype=bool)
        return ok
