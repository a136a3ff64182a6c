"""Stable row keys and the fixed rule that puts a row in the evaluation (test) split.

Why: a quality gate compares a candidate with the champion, and that comparison is only fair on rows
neither model trained on. When the test split follows the training seed, a retraining with another
seed grades the champion partly on rows it learned (docs/architecture.md, "Data flow of a pipeline run").
So which rows are *test* rows is decided by the row alone, never by a seed:

1. **Row key** (`row_keys`): a uint64 per row.
   - With an id column: a hash of that column's value.
   - Otherwise: a hash of the row's content, column by column in order (column names are not part of
     it, so a 2-D array and a DataFrame with the same values get the same keys). Numbers (int, float,
     bool) are hashed as float64 values, so 3, 3.0 and float32 3.0 agree and -0.0 equals 0.0; integers
     beyond 2**53 are hashed exactly as integers. Missing values (None, NaN, NaT, pd.NA) all hash
     alike. Strings are hashed from their UTF-8 bytes (BLAKE2b); dates as their nanosecond
     timestamps; any other object as its ``str()``.
   The hash is BLAKE2b for text and SplitMix64 mixing for numbers and for combining columns: the same
   keys in every process and on every machine (Python's salted ``hash()`` is not used). Identical rows
   get identical keys, so duplicates always fall on the same side of the split.
2. **Test rule** (`test_mask`): a row is a test row when ``key % 10_000 < round(test_fraction * 10_000)``.
   The fraction of test rows is therefore approximate (binomial around ``test_fraction``), and a row
   stays a test row for every seed and every run. The seed may still shuffle the remaining rows into
   training and validation.
3. **Lineage**: a model version stores the keys of the rows it trained on (`save_keys`, a ``.npy``
   read back with ``allow_pickle=False``). The gate scores both models only on test rows whose keys
   the champion never trained on (`unseen_mask`).

Pure NumPy (pandas only for DataFrame input, imported when one is passed): no MLflow here.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from aidevops_ext.errors import ConfigError, DataError

__all__ = ["BUCKETS", "check_fraction", "load_keys", "row_keys", "save_keys", "test_mask", "unseen_mask"]

#: The test rule's resolution: keys are bucketed by ``key % BUCKETS``.
BUCKETS = 10_000

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MISSING = np.uint64(0x6D697373696E6721)  # any fixed value: every missing cell hashes to it
_BIG_INT_TAG = np.uint64(0x0B16B16B16B16B16)  # keeps exact-int hashes apart from float hashes
_TWO53 = 2**53


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: spreads every input bit over the whole 64-bit word (uint64 wraps, by design)."""
    z = z.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        z ^= z >> np.uint64(30)
        z *= _M1
        z ^= z >> np.uint64(27)
        z *= _M2
        z ^= z >> np.uint64(31)
    return z


def _hash_float(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).copy()
    missing = np.isnan(v)
    v[v == 0] = 0.0  # -0.0 and 0.0 are the same value
    v[missing] = 0.0
    out = _mix(v.view(np.uint64))
    out[missing] = _MISSING
    return out


def _hash_int(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values)
    if v.dtype.kind == "u":
        big = v > _TWO53
    else:
        v = v.astype(np.int64, copy=False)
        big = (v > _TWO53) | (v < -_TWO53)
    out = _hash_float(v.astype(np.float64))
    if big.any():
        with np.errstate(over="ignore"):
            out[big] = _mix(v[big].astype(np.uint64) ^ _BIG_INT_TAG)
    return out


def _hash_text(text: str) -> np.uint64:
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8, person=b"aidevops-row").digest()
    return np.uint64(int.from_bytes(digest, "little"))


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, (float, np.floating)) and math.isnan(v):
        return True
    # pd.NA, pd.NaT, np.datetime64("NaT"): compare unequal to themselves or are pandas' NA singletons
    name = type(v).__name__
    if name in ("NAType", "NaTType"):
        return True
    if isinstance(v, (np.datetime64, np.timedelta64)):
        return bool(np.isnat(v))
    return False


def _hash_python_int(v: int) -> np.uint64:
    if abs(v) <= _TWO53:
        return _hash_float(np.array([float(v)]))[0]
    return _mix(np.array([v & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64) ^ _BIG_INT_TAG)[0]


def _hash_objects(values: np.ndarray) -> np.ndarray:
    out = np.empty(len(values), dtype=np.uint64)
    for i, v in enumerate(values):
        if _is_missing(v):
            out[i] = _MISSING
        elif isinstance(v, (bool, np.bool_, int, np.integer)):
            out[i] = _hash_python_int(int(v))
        elif isinstance(v, (float, np.floating)):
            out[i] = _hash_float(np.array([float(v)]))[0]
        elif isinstance(v, (str, np.str_)):
            out[i] = _hash_text("s" + str(v))
        elif isinstance(v, bytes):
            out[i] = _hash_text("b" + v.hex())
        elif isinstance(v, (np.datetime64, np.timedelta64)):
            out[i] = _hash_int(
                np.array([v]).astype(f"{v.dtype.kind == 'M' and 'datetime64' or 'timedelta64'}[ns]").view(np.int64)
            )[0]
        elif type(v).__name__ in ("Timestamp", "Timedelta"):
            out[i] = _hash_python_int(int(v.value))  # pandas' nanoseconds, as for a datetime64[ns] column
        else:
            out[i] = _hash_text("o" + str(v))
    return out


def _hash_column(values: Any) -> np.ndarray:
    """One uint64 per cell of a 1-D column (NumPy array or pandas Series)."""
    if hasattr(values, "dtype") and hasattr(values, "to_numpy") and not isinstance(values, np.ndarray):
        values = _series_values(values)
    a = np.asarray(values)
    kind = a.dtype.kind
    if kind == "f":
        return _hash_float(a)
    if kind in "iu":
        return _hash_int(a)
    if kind == "b":
        return _hash_float(a.astype(np.float64))
    if kind in "mM":
        nat = np.isnat(a)
        out = _hash_int(a.astype(f"{'datetime64' if kind == 'M' else 'timedelta64'}[ns]").view(np.int64))
        out[nat] = _MISSING
        return out
    return _hash_objects(a.astype(object))


def _series_values(s: Any) -> np.ndarray:
    """A pandas column as NumPy: NumPy dtypes as they are, nullable floats/booleans to float64 with NaN, the rest as objects."""
    import pandas as pd  # noqa: PLC0415 -- only when a DataFrame was passed

    dtype = s.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return s.astype(object).to_numpy()
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        if isinstance(dtype, np.dtype):
            return s.to_numpy()
        if pd.api.types.is_integer_dtype(dtype):
            # Nullable integers (Int64 ...) one by one: exact beyond 2**53, pd.NA as missing.
            return s.astype(object).to_numpy()
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        if getattr(dtype, "tz", None) is not None:
            s = s.dt.tz_convert("UTC").dt.tz_localize(None)
        return s.to_numpy()
    return s.to_numpy(dtype=object)


def row_keys(data: Any, id_column: str | None = None) -> np.ndarray:
    """A stable uint64 key per row: a hash of `id_column`'s value, else of the row's content.

    `data` is a 2-D NumPy array (or a 1-D array: one value per row) or a pandas DataFrame; the rule
    is in this module's docstring.
    """
    is_frame = hasattr(data, "columns") and hasattr(data, "iloc")
    if id_column is not None:
        if not is_frame:
            raise ConfigError(
                f"id_column={id_column!r} needs a pandas DataFrame, got {type(data).__name__}; "
                "pass a DataFrame or leave id_column out to key rows by content."
            )
        if id_column not in data.columns:
            raise DataError(
                f"id column {id_column!r} is not in the data; its columns are {[str(c) for c in data.columns][:20]}."
            )
        col = data[id_column]
        if getattr(col, "ndim", 1) != 1:
            raise DataError(
                f"id column {id_column!r} appears more than once in the data; keep one column of that name."
            )
        return _mix(_hash_column(col) ^ _GOLDEN)
    if is_frame:
        n = len(data)
        columns = [data.iloc[:, j] for j in range(data.shape[1])]
    else:
        a = np.asarray(data)
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2:
            raise DataError(f"row_keys needs a 2-D array (rows x columns), got shape {a.shape}; reshape it.")
        n = a.shape[0]
        if a.dtype.kind in "fb":
            # One vectorised pass for the common float case; the same values as column by column.
            return _combine(_hash_float(a.astype(np.float64).T.ravel()).reshape(a.shape[1], n), n)
        columns = [a[:, j] for j in range(a.shape[1])]
    cells = np.stack([_hash_column(c) for c in columns]) if columns else np.empty((0, n), np.uint64)
    return _combine(cells, n)


def _combine(cells: np.ndarray, n: int) -> np.ndarray:
    """Fold column hashes (columns x rows) into one key per row; column order matters."""
    h = np.full(n, _GOLDEN, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for col in cells:
            h = _mix(h * _M1 + col)
    return h


def _check_keys(keys: Any, what: str = "keys") -> np.ndarray:
    a = np.asarray(keys)
    if a.ndim != 1 or a.dtype != np.uint64:
        raise DataError(f"{what} must be a 1-D uint64 array from splitting.row_keys, got {a.dtype} of shape {a.shape}.")
    return a


def test_mask(keys: np.ndarray, test_fraction: float) -> np.ndarray:
    """True for the rows the fixed rule puts in the test split: ``key % 10_000 < round(fraction * 10_000)``."""
    keys = _check_keys(keys)
    fraction = check_fraction("test_fraction", test_fraction)
    return keys % np.uint64(BUCKETS) < np.uint64(round(fraction * BUCKETS))


def check_fraction(name: str, value: Any) -> float:
    """`value` as a float in [0, 1), or ConfigError naming the parameter `name`."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number in [0, 1), got {value!r}.") from None
    if not 0.0 <= v < 1.0:
        raise ConfigError(f"{name} must be in [0, 1), got {value!r}.")
    return v


test_mask.__test__ = False  # type: ignore[attr-defined]  # a rule, not a pytest test


def unseen_mask(test_keys: np.ndarray, champion_train_keys: np.ndarray) -> np.ndarray:
    """True for the test rows whose keys are not among the champion's training keys."""
    test_keys = _check_keys(test_keys, "test_keys")
    champion_train_keys = _check_keys(champion_train_keys, "champion_train_keys")
    return ~np.isin(test_keys, champion_train_keys)


def save_keys(path: str | os.PathLike, keys: np.ndarray) -> Path:
    """Write keys as a uint64 ``.npy`` (no pickle); returns the path."""
    keys = _check_keys(keys)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    np.save(p, keys, allow_pickle=False)
    return p


def load_keys(path: str | os.PathLike) -> np.ndarray:
    """Read keys written by `save_keys` (``allow_pickle=False``)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"row keys file {p} does not exist; check the path or re-register the model to record them.")
    try:
        keys = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        reason = str(exc).splitlines()[0].rstrip(".") if str(exc) else type(exc).__name__
        raise DataError(
            f"{p} is not a .npy array readable without pickle ({reason}); write it with save_keys."
        ) from None
    return _check_keys(keys, f"the keys in {p.name}")
