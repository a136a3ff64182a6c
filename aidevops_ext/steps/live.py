"""The handover of labelled live rows to a retraining run, as one Parquet file.

`aidevops retrain` (aidevops_ext/loop.py) writes the rows the deployment logged that have a feedback
label with `write_live_table`: every input column as the model received it (numbers, category text,
missing values), the label in the spec's `data.target` column and, when the spec names `data.id`,
that column holding the logged row's id (`"<request_id>:<row>"`). The file is content-addressed, so the
same labelled rows are the same path and a cached step stays cached.

The run gets its path as the pipeline param `live_data`; the shipped split step (`aidevops:split`)
reads it with `append_live_rows`, which is the one place live rows enter training data: they go to the
training side only, never to the test split, so the gate still judges every model on the original
held-out rows, and at most the share of the training rows the file carries (the spec's
`retrain.max_live_share`, written into the file's Parquet metadata by `aidevops retrain`), the newest rows
first. The opt-in itself (`retrain.live_labels`) is decided before a file is written (aidevops_ext/loop.py). Their keys join the training keys, so the
gate of this run and of every later one knows they were trained on (aidevops_ext/splitting.py): a
live row identical in its inputs to a table row takes that row's key, and when that row is a test row
the evaluate step leaves it out of the comparison.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import splitting
from ..datasection import DataSection
from ..errors import DataError
from ..trainer.data import share_cap

LIVE_PARAM = "live_data"
LIVE_ID_PREFIX = "live:"  # live rows' ids in data.id: never a customer's own id
SHARE_KEY = b"aidevops.max_live_share"  # Parquet metadata: the largest share of the training rows live rows may be


def live_table(frame: pd.DataFrame, row_ids: list[str], labels: list[Any], section: DataSection) -> pd.DataFrame:
    """The logged input rows with their labels in `section.target` (and their row ids in `section.id`)."""
    if len(frame) != len(row_ids) or len(frame) != len(labels):
        raise DataError(
            f"{len(frame)} live rows came with {len(row_ids)} ids and {len(labels)} labels; they must match."
        )
    table = frame.reset_index(drop=True).copy()
    if section.id and section.id not in table.columns:
        table[section.id] = [LIVE_ID_PREFIX + str(r) for r in row_ids]
    table[section.target] = pd.Series(labels, dtype=None).to_numpy()
    return table


def write_live_table(table: pd.DataFrame, folder: Path, *, max_share: float | None = None) -> Path:
    """Write `table` as `<folder>/live-<content hash>.parquet` (an existing identical file is reused), with
    `max_share` (0 < x <= 1) in its metadata when given."""
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".live-{id(table)}.parquet.tmp"
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    if max_share is not None:
        arrow = arrow.replace_schema_metadata(
            {**(arrow.schema.metadata or {}), SHARE_KEY: repr(float(max_share)).encode()}
        )
    pq.write_table(arrow, tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()[:16]
    path = folder / f"live-{digest}.parquet"
    tmp.replace(path)
    return path


def live_share(path: str | Path) -> float | None:
    """The share cap a handover file carries (None: none)."""
    import pyarrow.parquet as pq  # noqa: PLC0415

    try:
        raw = (pq.read_schema(path).metadata or {}).get(SHARE_KEY)
        return float(raw) if raw is not None else None
    except (OSError, ValueError):
        return None


def read_live_table(path: str | Path, table: pd.DataFrame, section: DataSection) -> pd.DataFrame:
    """The live rows of `path`, with the table's columns in the table's order and its numeric dtypes."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"The live rows file {path} (param '{LIVE_PARAM}') does not exist; run `aidevops retrain` "
            "again, or set the param to null."
        )
    try:
        live = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise DataError(
            f"The live rows file {path} cannot be read as Parquet ({type(exc).__name__}); run `aidevops retrain` again."
        ) from None
    missing = [c for c in table.columns if c not in live.columns and c != section.id]
    if missing:
        raise DataError(
            f"The live rows in {path.name} lack the table's columns {missing[:10]}; the deployed model "
            "received other inputs than this pipeline's table has, so retrain with the pipeline that made it."
        )
    if section.id and section.id not in live.columns:
        live[section.id] = [f"{LIVE_ID_PREFIX}{i}" for i in range(len(live))]
    live = live[list(table.columns)]
    for name in table.columns:  # logged JSON numbers may read back as other numeric types: take the table's
        if pd.api.types.is_numeric_dtype(table[name]) and not pd.api.types.is_bool_dtype(table[name]):
            values = pd.to_numeric(live[name], errors="coerce")
            lossless = table[name].dtype.kind == "f" or (values.notna().all() and bool((values % 1 == 0).all()))
            # an integer column with missing or fractional live values: floats, as pandas would make it
            live[name] = values.astype(table[name].dtype if lossless else "float64")
    if live[section.target].isna().any():
        raise DataError(
            f"{int(live[section.target].isna().sum())} live rows in {path.name} have no label; "
            "only labelled rows belong in the handover."
        )
    return live.reset_index(drop=True)


def live_keys(live: pd.DataFrame, table: pd.DataFrame, table_keys: np.ndarray, section: DataSection) -> np.ndarray:
    """Row keys of the live rows: the key of a table row with the same inputs (a test row's first), else a hash
    of their inputs."""
    drop = [c for c in (section.target, section.id) if c]
    inputs = [c for c in table.columns if c not in drop]
    own = splitting.row_keys(live[inputs]) if len(live) else np.zeros(0, np.uint64)
    if not len(live):
        return own
    content, table_keys = splitting.row_keys(table[inputs]), np.asarray(table_keys, np.uint64)
    # Inputs shared by several table rows: a test row's key wins, so the gate leaves that test row out.
    order = np.argsort(splitting.test_mask(table_keys, section.test_fraction), kind="stable")
    by_content = dict(zip(content[order].tolist(), table_keys[order].tolist()))
    return np.asarray([by_content.get(k, k) for k in own.tolist()], dtype=np.uint64)


def append_live_rows(
    train: pd.DataFrame,
    train_keys: np.ndarray,
    table: pd.DataFrame,
    table_keys: np.ndarray,
    live_data: str | Path | None,
    section: DataSection,
) -> tuple[pd.DataFrame, np.ndarray, int]:
    """(training rows, their keys, live rows added): the table's training side plus the labelled live rows."""
    if not live_data:
        return train, train_keys, 0
    live = read_live_table(live_data, table, section)
    cap = share_cap(len(train), live_share(live_data))
    live = live.iloc[len(live) - min(cap, len(live)) :].reset_index(drop=True)  # the newest rows are last
    keys = live_keys(live, table, table_keys, section)
    merged = pd.concat([train, live], ignore_index=True) if len(live) else train
    return merged, np.concatenate([np.asarray(train_keys, np.uint64), keys]), int(len(live))
