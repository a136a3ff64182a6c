"""Reference profile of a training DataFrame: numeric columns and text-category columns side by side.

`build_frame_profile(frame, predictions)` is what the register step stores with any model version
(JSON artifact, URI in the model-version tag `aidevops.reference_profile`) and what the model server
compares live traffic with. Its `features` list mixes two kinds, told apart by `"kind"`:

- numeric (`kind: "numeric"`): exactly the fields of profile.build_profile (quantile bins, counts,
  percentiles, moments, missing rate), so the numeric drift code reads both profiles alike;
- category (`kind: "category"`): `categories` (the most frequent values as strings, most frequent
  first, at most `max_categories`), their `counts`, `other_count` (present values of the rarer
  categories left out), `n_categories` (distinct values seen), `missing_rate`, and `unseen_rate`: the
  Good-Turing estimate (share of present values whose category occurs once) of how often fresh data
  from the same distribution shows a category the reference never saw: the baseline for the live
  unseen-category rate. `bin_edges` is empty, so readers that only know numeric features skip them.

Which columns are categories is decided from dtypes alone: object, string, category and bool columns
are categories; every other integer or float column is numeric; other dtypes (dates, durations) are
listed under `skipped` and not profiled.

Speed: numeric columns are copied a block at a time into contiguous rows (a pandas column is already
contiguous inside its block) and sorted there, so extra memory stays at about two blocks whatever the
frame's size; category columns are hashed once by pandas.factorize and counted with np.bincount, never
row by row in Python. Two threads share the blocks and the category columns.
`python benchmarks/monitoring.py --frame` measures this and drift on a wide mixed table.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from aidevops_ext.errors import ConfigError, DataError

from .profile import _check_bins, _prediction_summary, _summaries, category_labels

__all__ = [
    "FRAME_PROFILE_VERSION",
    "MAX_CATEGORIES",
    "build_frame_profile",
    "category_columns",
    "category_labels",
    "factorize",
]

FRAME_PROFILE_VERSION = 2  # version 1 profiles hold numeric features only
MAX_CATEGORIES = 100  # categories kept per column; the rest are summed in other_count
_BLOCK_BYTES = 256 * 1024 * 1024  # float64 scratch per block of numeric columns


def category_columns(frame: pd.DataFrame) -> tuple[list[str], list[str], list[str]]:
    """Column names split by dtype into (numeric, category, skipped)."""
    numeric, category, skipped = [], [], []
    for name, dtype in frame.dtypes.items():
        kind = getattr(dtype, "kind", "O")
        if isinstance(dtype, pd.CategoricalDtype) or kind in "bOSU" or pd.api.types.is_string_dtype(dtype):
            category.append(name)
        elif kind in "iuf":
            numeric.append(name)
        else:
            skipped.append(name)
    return numeric, category, skipped


def factorize(column: pd.Series) -> tuple[np.ndarray, Any]:
    """(codes, distinct values) of a column by hashing, missing values coded -1; values that cannot be
    hashed (lists, dicts from JSON) are compared by their text, the only case that walks the rows in Python."""
    try:
        return pd.factorize(column, use_na_sentinel=True)
    except TypeError:
        return pd.factorize(
            column.map(lambda v: v if isinstance(v, (str, int, float, bool)) or v is None else str(v)),
            use_na_sentinel=True,
        )


def _category_summary(column: pd.Series, max_categories: int) -> dict:
    """Counts of each distinct value of one column, hashed once (pandas.factorize) and counted by np.bincount."""
    n = len(column)
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = column.cat.codes.to_numpy()
        uniques = column.cat.categories
    else:
        codes, uniques = factorize(column)
    present = codes >= 0
    counts = np.bincount(codes[present], minlength=len(uniques))
    merged: dict[str, int] = {}
    for label, k in zip(category_labels(uniques), counts.tolist()):  # 1 and "1" are one category once stringified
        if k:
            merged[label] = merged.get(label, 0) + k
    order = sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))
    kept = order[:max_categories]
    n_present = int(present.sum())
    singletons = sum(1 for _, k in order if k == 1)
    return {
        "kind": "category",
        "categories": [c for c, _ in kept],
        "counts": [int(k) for _, k in kept],
        "other_count": int(n_present - sum(k for _, k in kept)),
        "n_categories": len(order),
        "missing_rate": float((n - n_present) / n) if n else 0.0,
        "unseen_rate": float(singletons / n_present) if n_present else 0.0,
        "bin_edges": [],
    }


def _numeric_block(frame: pd.DataFrame, names: list[str], n_bins: int) -> list[dict]:
    """Profile a block of numeric columns: each copied as one contiguous row, sorted in place."""
    n = len(frame)
    S = np.empty((len(names), n), dtype=np.float64)
    for i, name in enumerate(names):
        S[i] = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
    S.sort(axis=1)
    return [{"name": str(name), "kind": "numeric", **s} for name, s in zip(names, _summaries(S, n, n_bins))]


def build_frame_profile(
    frame: pd.DataFrame,
    predictions: Any = None,
    *,
    n_bins: int = 10,
    task: str | None = None,
    max_categories: int = MAX_CATEGORIES,
) -> dict:
    """JSON-able reference profile of a training DataFrame (and of the model's predictions, if given).

    `predictions` need not come from the frame's rows (the model's predictions on a validation
    split show what unseen data gets); classification vs regression is inferred from their dtype
    unless `task` says.
    """
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"frame must be a pandas DataFrame, got {type(frame).__name__}; pass the training table.")
    n_bins = _check_bins(n_bins)
    if isinstance(max_categories, bool) or not isinstance(max_categories, (int, np.integer)) or max_categories < 1:
        raise ConfigError(f"max_categories must be a positive integer, got {max_categories!r}.")
    if len(frame) == 0:
        raise DataError("the frame has no rows; a reference profile needs data.")
    names = [str(c) for c in frame.columns]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"the frame has repeated column names {dup[:10]}; give every column its own name.")
    numeric, category, skipped = category_columns(frame)
    by_name: dict[str, dict] = {}
    per_block = max(1, min(max(len(numeric), 1), _BLOCK_BYTES // (8 * len(frame))))
    blocks = [numeric[i : i + per_block] for i in range(0, len(numeric), per_block)]
    # NumPy's sort, most of the summaries and pandas' hashing of Arrow strings release the GIL: two
    # workers use both cores of the 2-core machines the register step runs on
    with ThreadPoolExecutor(2 if (os.cpu_count() or 1) > 1 else 1) as pool:
        for feats in pool.map(lambda b: _numeric_block(frame, b, n_bins), blocks):
            by_name.update({f["name"]: f for f in feats})
        cats = pool.map(lambda name: _category_summary(frame[name], int(max_categories)), category)
        by_name.update({str(name): {"name": str(name), **summary} for name, summary in zip(category, cats)})
    skipped_names = [str(c) for c in skipped]
    return {
        "profile_version": FRAME_PROFILE_VERSION,
        "n_rows": int(len(frame)),
        "n_bins": n_bins,
        "features": [by_name[n] for n in names if n in by_name],  # the frame's column order
        "skipped": skipped_names,
        "predictions": None if predictions is None else _prediction_summary(predictions, n_bins, task),
    }
