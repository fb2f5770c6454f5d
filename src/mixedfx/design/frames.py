"""Data frames of any supported kind as the pandas DataFrame the design stage reads.

Accepted wherever the library takes data (``lmer``/``glmer`` ``data=``, ``predict``,
``simulate`` and marginal ``newdata=``):

* a pandas DataFrame: used as it is (not copied, never modified), except that pyarrow-backed
  ``dictionary`` columns (``dtype_backend="pyarrow"``) are read as Categoricals in their order;
* a polars DataFrame or LazyFrame (a LazyFrame is collected), read column by column
  through narwhals: numeric columns without missing values are not copied;
* a pyarrow Table (or RecordBatch), through ``Table.to_pandas`` (numeric columns without
  missing values in one chunk are not copied);
* a dict (any mapping) of equal-length columns: lists, numpy arrays, pandas Series
  (which must share one index), polars Series, pyarrow arrays;
* any other eager frame narwhals knows (modin, cuDF), through its ``to_pandas``.

Column types follow R's reading of a data frame:

* polars ``Enum`` and Arrow ``dictionary`` columns are factors whose levels keep the
  declared order (as a pandas Categorical does);
* polars ``Categorical`` columns have no level order of their own (polars keeps one
  global string pool): they are read as strings, so their levels sort as R's
  ``factor()`` sorts a character vector;
* integers with missing values become floats with NaN, booleans with missing values
  ``True``/``False``/``None``, and missing values are dropped as R's ``na.omit`` drops them;
* polars ``Decimal`` becomes float; dates, times and durations stay temporal (a formula
  then asks for them to be converted, as it does for pandas).

polars and Arrow have no row index: the frame gets a RangeIndex, so row labels (in
``simulate()`` and in missing-value messages) are positions 0..n-1.  An Arrow table
written from pandas gets its pandas index back (pyarrow keeps it in the schema).

``weights=``/``offset=`` given as a polars Series or a pyarrow Array/ChunkedArray are
positional (one value per row of the data, in order); a pandas Series is matched to the
rows by index label.
"""
from __future__ import annotations

import sys
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .errors import DesignError

__all__ = ["as_pandas", "as_vector", "type_name"]

_KINDS = "a data frame (pandas, polars, pyarrow Table or dict of columns)"


def type_name(obj) -> str:
    """``numpy.ndarray``, ``polars.Series``, ``list``: a type as users write it, with its module."""
    t = type(obj)
    mod = t.__module__ or ""
    if mod == "builtins":
        return t.__qualname__
    top = mod.split(".")[0]
    if getattr(sys.modules.get(top), t.__name__, None) is t:
        return f"{top}.{t.__name__}"
    return f"{mod}.{t.__qualname__}"


def _hint(obj) -> str:
    from narwhals import dependencies as nwd

    if isinstance(obj, pd.Series) or nwd.is_polars_series(obj) or _is_arrow_array(obj):
        return "; this is a single column: make it a frame first (e.g. series.to_frame())"
    if isinstance(obj, np.ndarray):
        return "; wrap it with column names first, e.g. pd.DataFrame(array, columns=[...])"
    if isinstance(obj, (list, tuple)):
        return "; give a dict of columns ({'y': [...], 'g': [...]}) or build pd.DataFrame(rows) first"
    if type(obj).__module__.startswith("dask"):
        return ("; this is a dask (out-of-memory) frame: mfx.lmer fits it directly, and so does mfx.glmer for the "
                "binomial and Poisson families (pip install \"mixedfx[dask]\"; see the Dask page of the docs); other "
                "functions need it in memory first (.compute())")
    if nwd.is_into_lazyframe(obj) or nwd.is_narwhals_lazyframe(obj):
        return ("; this is a lazy (out-of-memory) frame: bring it into memory first "
                "(e.g. .compute() for dask, .collect() or .to_pandas()/.to_arrow())")
    return ""


def _unsupported(obj, what: str) -> TypeError:
    return TypeError(f"{what} must be {_KINDS}, got {type_name(obj)}{_hint(obj)}")


def _is_arrow_array(obj) -> bool:
    pa = sys.modules.get("pyarrow")
    return pa is not None and isinstance(obj, (pa.Array, pa.ChunkedArray))


def as_pandas(data, what: str = "data") -> pd.DataFrame:
    """``data`` of any supported kind as a pandas DataFrame (see the module docstring).

    Parameters
    ----------
    data : pandas/polars DataFrame, polars LazyFrame, pyarrow Table or RecordBatch, or a
        dict of equal-length columns.
    what : the argument's name for messages (``"data"``, ``"newdata"``).

    Raises
    ------
    TypeError
        For any other type, naming the type and its module.
    DesignError
        For a dict whose columns differ in length or are not one-dimensional.
    """
    if isinstance(data, pd.DataFrame):
        return _arrow_dictionaries(data)
    if isinstance(data, Mapping):
        return _from_mapping(data, what)
    from narwhals import dependencies as nwd

    pa = sys.modules.get("pyarrow")
    if pa is not None and isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if nwd.is_pyarrow_table(data):
        return data.to_pandas(split_blocks=True)   # split blocks: numeric columns are not copied
    if nwd.is_narwhals_dataframe(data) or nwd.is_narwhals_lazyframe(data):
        return as_pandas(data.to_native(), what)
    if nwd.is_polars_lazyframe(data):
        data = data.collect()
    if nwd.is_polars_dataframe(data):
        return _from_polars(data)
    if nwd.is_into_dataframe(data) and not isinstance(data, (np.ndarray, pd.Series)) \
            and not nwd.is_into_lazyframe(data):
        import narwhals.stable.v2 as nw
        frame = nw.from_native(data, eager_only=True, pass_through=True)
        if isinstance(frame, nw.DataFrame):
            return frame.to_pandas()
    raise _unsupported(data, what)


def _arrow_dictionaries(df: pd.DataFrame) -> pd.DataFrame:
    """pyarrow-backed ``dictionary`` columns (``dtype_backend="pyarrow"``) as Categoricals that keep
    the dictionary's level order; the caller's frame is not modified (a shallow copy is changed)."""
    cols = [j for j, dt in enumerate(df.dtypes) if is_arrow_dictionary(dt)]
    if not cols:
        return df
    out = df.copy(deep=False)
    for j in cols:
        out.isetitem(j, arrow_dictionary_as_categorical(df.iloc[:, j]))
    return out


def is_arrow_dictionary(dtype) -> bool:
    """Whether a column's dtype is a pyarrow-backed ``dictionary`` (``dtype_backend="pyarrow"``)."""
    return isinstance(dtype, pd.ArrowDtype) and str(dtype.pyarrow_dtype).startswith("dictionary<")


def arrow_dictionary_as_categorical(s: pd.Series) -> pd.Series:
    """A pyarrow ``dictionary`` Series as a Categorical Series with the dictionary's level order."""
    return pd.Series(s.array.__arrow_array__().to_pandas().array, index=s.index, name=s.name)


def _from_polars(df) -> pd.DataFrame:
    import narwhals.stable.v2 as nw

    frame = nw.from_native(df, eager_only=True)
    cols = {name: _column(frame.get_column(name)) for name in frame.columns}
    return pd.DataFrame(cols, index=pd.RangeIndex(frame.shape[0]), copy=False)


def _column(s):
    """One narwhals Series (polars-backed) as a numpy array or pandas Categorical."""
    import narwhals.stable.v2 as nw

    dt = s.dtype
    if isinstance(dt, nw.Enum):
        return pd.Categorical(s.to_numpy(), categories=pd.Index(list(dt.categories), dtype=object))
    if isinstance(dt, nw.Categorical):
        return s.cast(nw.String).to_numpy()
    if isinstance(dt, nw.Decimal):
        return s.cast(nw.Float64).to_numpy()
    if isinstance(dt, nw.Datetime) and dt.time_zone:
        return pd.DatetimeIndex(s.to_numpy()).tz_localize("UTC").tz_convert(dt.time_zone)
    if dt.is_numeric() or dt.is_temporal() or isinstance(dt, (nw.Boolean, nw.String)):
        return s.to_numpy()
    out = np.empty(len(s), dtype=object)   # nested, binary, object: one Python value per row
    out[:] = s.to_list()
    return out


def _dict_column(value, key, what: str):
    """One value of a dict of columns as something pandas reads as a column."""
    from narwhals import dependencies as nwd

    if isinstance(value, (pd.Series, pd.Categorical, pd.Index, pd.api.extensions.ExtensionArray)):
        return value
    if nwd.is_polars_series(value):
        import narwhals.stable.v2 as nw
        return _column(nw.from_native(value, series_only=True))
    if _is_arrow_array(value):
        import pyarrow as pa
        arr = pa.chunked_array([value]) if isinstance(value, pa.Array) else value
        ser = arr.to_pandas()
        return ser.array if isinstance(ser.dtype, pd.api.extensions.ExtensionDtype) else ser.to_numpy()
    if isinstance(value, np.ndarray):
        if value.ndim != 1:
            raise DesignError(f"column {key!r} of the {what} dict is a {value.ndim}-dimensional array "
                              f"(shape {value.shape}); each column needs one value per row (a 1-d array or list)")
        return value
    if isinstance(value, (list, tuple, range)):
        return list(value)
    if isinstance(value, (str, bytes, int, float, complex, bool, np.generic)) or value is None:
        raise DesignError(f"column {key!r} of the {what} dict is a single value ({value!r}); give one value per "
                          f"row (a list or array)")
    raise DesignError(f"column {key!r} of the {what} dict is a {type_name(value)}; give a list, numpy array or "
                      "Series (pandas, polars or pyarrow) with one value per row")


def _from_mapping(data: Mapping, what: str) -> pd.DataFrame:
    cols = {key: _dict_column(value, key, what) for key, value in data.items()}
    lengths = {key: len(col) for key, col in cols.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{k!r}: {n}" for k, n in list(lengths.items())[:6])
        raise DesignError(f"the columns of the {what} dict differ in length ({shown}); every column needs one "
                          "value per row")
    indexes = [col.index for col in cols.values() if isinstance(col, pd.Series)]
    if any(not ix.equals(indexes[0]) for ix in indexes[1:]):
        raise DesignError(f"the pandas Series in the {what} dict have different indexes, so their rows cannot "
                          "be matched; give them one index (or pass series.to_numpy() to use row order)")
    n = next(iter(lengths.values()), 0)
    index = indexes[0] if indexes else pd.RangeIndex(n)
    return pd.DataFrame(cols, index=index, copy=False)


def as_vector(value, what: str):
    """A ``weights=``/``offset=`` value ready for the design stage.

    polars Series and pyarrow arrays become numpy arrays (positional: these have no
    index; missing values are NaN or None); a polars or Arrow frame becomes a pandas
    DataFrame.  Everything else (a column name, a pandas Series, an array) is returned
    unchanged.
    """
    if value is None or isinstance(value, (str, pd.Series, pd.DataFrame, np.ndarray, list, tuple)):
        return value
    from narwhals import dependencies as nwd

    if nwd.is_narwhals_series(value):
        value = value.to_native()
    if nwd.is_polars_series(value):
        import narwhals.stable.v2 as nw
        out = _column(nw.from_native(value, series_only=True))
        return np.asarray(out, dtype=object) if isinstance(out, pd.Categorical) else out
    if _is_arrow_array(value):
        import pyarrow as pa
        return (pa.chunked_array([value]) if isinstance(value, pa.Array) else value).to_numpy()
    if nwd.is_polars_dataframe(value) or nwd.is_polars_lazyframe(value) or nwd.is_pyarrow_table(value):
        frame = as_pandas(value, f"{what}=")
        return frame.iloc[:, 0].to_numpy() if frame.shape[1] == 1 else frame
    return value
