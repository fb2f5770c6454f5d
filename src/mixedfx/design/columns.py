"""Reading DataFrame columns and vector arguments as a formula needs them.

pandas holds data that R would never pass to a model formula: dates, durations,
complex numbers, numbers stored with dtype ``object``, integer column labels,
Series whose index differs from the data's.  Each is either converted by a
documented rule or rejected with a :class:`DesignError` naming the column or
argument and saying what to do; none is silently read as something else.

* dates, times and durations: an error when used as numbers (convert them first);
  inside ``factor()`` and as grouping factors their text is the level;
* complex numbers: an error;
* numbers with dtype ``object``: an error when used as numbers (``pd.to_numeric``);
  inside ``factor()`` the levels are the numbers in numeric order;
* booleans with dtype ``object``: a factor with levels ``FALSE``/``TRUE``;
* non-string column labels: written as text (column ``3`` is ``` `3` ``` in a formula);
* ``weights=``/``offset=`` Series: aligned on the data's index, as pandas aligns
  (an error when some rows of the data have no value).
"""
from __future__ import annotations

import collections

import numpy as np
import pandas as pd

from .errors import DesignError

__all__ = ["column_values", "string_columns", "vector_argument", "check_numeric_column", "row_label", "finite_vector"]

_NUMBER_KINDS = ("integer", "floating", "mixed-integer-float", "decimal")
_TEMPORAL_KINDS = ("datetime", "datetime64", "date", "timedelta", "timedelta64", "time", "period")


def row_label(index: pd.Index, i: int):
    """The label of row ``i`` as a plain Python value (``5``, not ``np.int64(5)``) for messages."""
    v = index[i]
    return v.item() if isinstance(v, np.generic) else v


def require_finite_rows(values: np.ndarray, index: pd.Index, subject: str, advice: str,
                        show_value: bool = True) -> None:
    """A DesignError naming ``subject``, how many rows are not finite, the first one's label (and
    value), and ``advice``, unless every row of ``values`` (n,) or (n, k) is finite."""
    bad = ~np.isfinite(values)
    if bad.ndim > 1:
        bad = bad.any(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        value = f", value {values[i]}" if show_value else ""
        raise DesignError(f"{subject} is not finite in {int(bad.sum())} row(s) (first: row "
                          f"{row_label(index, i)!r}{value}); {advice}")


def _temporal_error(name: str, dtype) -> DesignError:
    return DesignError(
        f"column {name!r} holds dates, times or durations ({dtype}), which a formula cannot use as numbers. "
        f"Convert it first, e.g. data[{name!r}] = (data[{name!r}] - data[{name!r}].min()).dt.days for days since "
        f"the start (.dt.total_seconds() for durations), or write factor({name}) for one level per value")


def _complex_error(name: str, dtype) -> DesignError:
    return DesignError(f"column {name!r} holds complex numbers ({dtype}); a mixed model needs real numbers: put "
                       "the real part, imaginary part or modulus (np.real, np.imag, np.abs) in columns of their own")


def _object_number_error(name: str) -> DesignError:
    return DesignError(f"column {name!r} holds numbers stored with dtype object; convert it with "
                       f"data[{name!r}] = pd.to_numeric(data[{name!r}]) to use it as a covariate, or write "
                       f"factor({name}) to use its values as factor levels")


def _is_temporal(dtype) -> bool:
    return getattr(dtype, "kind", "") in "mM" or isinstance(dtype, (pd.DatetimeTZDtype, pd.PeriodDtype))


def column_values(s: pd.Series, name: str, as_factor: bool = False):
    """A column as the evaluator uses it: a numeric/bool array, a Categorical or an object array.

    ``as_factor`` is true inside ``factor()``, where dates and object-dtype numbers are
    acceptable (as levels); elsewhere they raise a :class:`DesignError`.
    """
    if isinstance(s, pd.DataFrame):
        raise DesignError(f"the data have {s.shape[1]} columns named {name!r}; column names must be unique")
    dt = s.dtype
    if isinstance(dt, pd.CategoricalDtype):
        return pd.Categorical(s)
    if getattr(dt, "kind", "") == "c":
        raise _complex_error(name, dt)
    if _is_temporal(dt):
        if as_factor:
            return s.astype(str).to_numpy(dtype=object)
        raise _temporal_error(name, dt)
    if dt.kind in "biuf":
        return s.to_numpy()
    if str(dt) == "boolean":
        return s.to_numpy(dtype=bool)
    if pd.api.types.is_numeric_dtype(dt):
        return s.to_numpy(dtype=float)
    values = s.to_numpy(dtype=object)
    inferred = pd.api.types.infer_dtype(values, skipna=True)
    if inferred in _NUMBER_KINDS:
        if as_factor:
            return pd.to_numeric(s).to_numpy()
        raise _object_number_error(name)
    if inferred == "boolean":
        return values.astype(bool)
    if inferred in _TEMPORAL_KINDS:
        if as_factor:
            return s.astype(str).to_numpy(dtype=object)
        raise _temporal_error(name, f"dtype object, {inferred} values")
    if inferred.startswith("complex"):
        raise _complex_error(name, "dtype object")
    return values


def string_columns(data: pd.DataFrame) -> pd.DataFrame:
    """``data`` with every column label a string, as R names columns (``3`` becomes ``"3"``)."""
    cols = data.columns
    if isinstance(cols, pd.MultiIndex):
        raise DesignError("the data have hierarchical (MultiIndex) column labels; flatten them first, e.g. "
                          "data.columns = ['_'.join(map(str, c)) for c in data.columns]")
    if isinstance(cols.dtype, pd.StringDtype) and not cols.hasnans:     # pandas' str labels: no need to look
        return data
    if all(isinstance(c, str) for c in cols):
        return data
    new = [c if isinstance(c, str) else str(c) for c in cols]
    clash = sorted(k for k, v in collections.Counter(new).items() if v > 1)
    if clash:
        raise DesignError(f"column labels {', '.join(map(repr, clash[:5]))} clash once the non-string labels are "
                          "written as text (e.g. 3 and '3'); give the columns distinct string names")
    out = data.copy(deep=False)
    out.columns = new
    return out


def check_numeric_column(s: pd.Series, col: str, what: str) -> None:
    """Raise unless a ``weights=``/``offset=`` column holds numbers."""
    if isinstance(s, pd.DataFrame):
        raise DesignError(f"the data have {s.shape[1]} columns named {col!r}; column names must be unique")
    dt = s.dtype
    ok = (pd.api.types.is_bool_dtype(dt) or pd.api.types.is_numeric_dtype(dt)) and getattr(dt, "kind", "") != "c"
    if not ok and dt.kind == "O":
        ok = pd.api.types.infer_dtype(s.to_numpy(dtype=object), skipna=True) in _NUMBER_KINDS + ("boolean", "empty")
    if not ok:
        sample = s.dropna()
        example = f", e.g. {sample.iloc[0]!r}" if len(sample) else ""
        raise DesignError(f"the {what} column {col!r} is not numeric (dtype {dt}{example}); {what} must be numbers")


def _align(series: pd.Series, data: pd.DataFrame, what: str) -> np.ndarray:
    """A Series matched to the data's rows by index label, as pandas aligns."""
    idx = series.index
    if idx.equals(data.index):
        return series.to_numpy()
    if not idx.is_unique:
        raise DesignError(f"{what}= is a Series whose index differs from the data's and has duplicate labels, so "
                          f"its values cannot be matched to rows; pass {what}=series.to_numpy() to use them in order")
    missing = data.index.difference(idx)
    if len(missing):
        raise DesignError(f"{what}= is a Series whose index does not match the data's: {len(missing)} of the data's "
                          f"row labels (e.g. {', '.join(map(repr, list(missing[:3])))}) are not in it. Values are "
                          f"matched by index label, as pandas does; reindex the Series, or pass "
                          f"{what}=series.to_numpy() to use the values in row order")
    return series.reindex(data.index).to_numpy()


def vector_argument(value, data: pd.DataFrame, what: str) -> np.ndarray:
    """A ``weights=``/``offset=`` array or Series as floats with one value per row of ``data``."""
    if isinstance(value, pd.DataFrame):
        if value.shape[1] != 1:
            raise DesignError(f"{what}= is a DataFrame with {value.shape[1]} columns; give a single column")
        value = value.iloc[:, 0]
    if isinstance(value, pd.Series):
        dt = value.dtype
        if getattr(dt, "kind", "") == "c" or _is_temporal(dt):
            raise DesignError(f"{what}= must be real numbers, not {dt}")
        check_numeric_column(value, value.name if value.name is not None else "(Series)", what)
        value = _align(value, data, what)
    try:
        arr = np.asarray(value)
    except Exception as exc:   # ragged lists and the like
        raise DesignError(f"{what}= could not be read as an array of numbers ({exc})") from None
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.ravel()
    if arr.ndim != 1:
        raise DesignError(f"{what}= must be a column name or one number per row of the data "
                          f"(got an array of shape {arr.shape})")
    kind = arr.dtype.kind
    if kind == "c" or kind in "mM":
        raise DesignError(f"{what}= must be real numbers, not {arr.dtype}")
    if kind in "OUS":
        if pd.api.types.infer_dtype(arr, skipna=True) not in _NUMBER_KINDS + ("boolean", "empty"):
            bad = next((v for v in arr if not isinstance(v, (int, float, np.number, bool, np.bool_))
                        and v is not None), None)
            raise DesignError(f"{what}= is not numeric (e.g. {bad!r}); {what} must be numbers")
        arr = pd.to_numeric(pd.Series(arr, dtype=object)).to_numpy()
    if len(arr) != len(data):
        raise DesignError(f"{what}= has length {len(arr)} but the data have {len(data)} rows")
    return arr.astype(float)


def finite_vector(value, what: str, size: int, meaning: str) -> np.ndarray:
    """``value`` as a finite float vector of length ``size``, or a ValueError naming ``what``
    (used for ``start=`` values and ``refit(new_y)``)."""
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be numbers, got {value!r}") from None
    if arr.ndim > 1:
        raise ValueError(f"{what} must be a flat list of {size} numbers, got an array of shape {arr.shape}")
    arr = arr.ravel()
    if len(arr) != size:
        raise ValueError(f"{what} has {len(arr)} value(s); this model has {size} {meaning}")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"{what} contains NaN or infinite values (position(s) "
                         f"{', '.join(map(str, np.flatnonzero(bad)[:5]))}); give finite numbers")
    return arr
