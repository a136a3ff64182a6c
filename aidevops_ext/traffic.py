"""A traffic simulator: replay a model's test rows against a deployment at a steady rate, optionally shifted
(drift) from some moment on, and post ground-truth labels for a share of the requests (feedback).

A table's model (a pipeline with a `data:` section) gets its test split as `dataframe_split` bodies;
drift there moves numeric columns by standard deviations and category columns' frequencies
(`shift_frame`), so the monitor's numeric and category drift both see it.

Used by `aidevops simulate`, the monitor notebook and the closed-loop tests. Requests go over plain
HTTP/1.1 keep-alive connections (one per worker thread) to the server's MLflow route; feedback names the
request id the server answered with (X-Request-ID) and carries the deployment's feedback token
(aidevops_ext/tokens.py). A failed request (connection error, non-2xx) is counted and its first messages
kept: the zero-downtime tests read `failed`.
"""

from __future__ import annotations

import http.client
import json
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from .errors import ConfigError, DataError

MAX_RATE = 5000.0


@dataclass
class TrafficResult:
    """What a simulation sent and how it went."""

    url: str
    sent: int = 0
    ok: int = 0
    failed: int = 0
    drifted: int = 0  # requests whose rows were shifted
    feedback_sent: int = 0
    feedback_failed: int = 0
    duration_s: float = 0.0
    latency_ms_p50: float | None = None
    latency_ms_p99: float | None = None
    errors: list[str] = field(default_factory=list)  # the first few failures, for the message
    versions: dict[str, int] = field(default_factory=dict)  # answered requests by model version

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ReplayRows:
    """Rows to replay with their true labels: a float matrix, or a pandas DataFrame sent as `dataframe_split`
    (a table's model: every column with its own type, categories as text, missing values as null)."""

    X: Any
    y: np.ndarray | None
    source: str

    @property
    def is_frame(self) -> bool:
        return hasattr(self.X, "columns")


def rows_for_model(root: Path, model: str) -> ReplayRows:
    """The test split of the pipeline that registers `model` (same dataset, fractions and seed), else an error.

    A pipeline with a `data:` section (the shipped split step) replays the test table of its newest run."""
    from . import splitting  # noqa: PLC0415
    from .pipeline.spec import spec_for_model  # noqa: PLC0415
    from .trainer import data  # noqa: PLC0415

    spec = spec_for_model(Path(root), model)
    if spec is None:
        raise ConfigError(
            f"no pipeline in {Path(root) / 'pipelines'} registers '{model}', so there are no rows to "
            "replay; pass --data with a dataset name or a CSV/Parquet file."
        )
    if spec.data is not None:
        return _test_table_rows(Path(root), spec)
    p = spec.params
    ds = data.load_dataset(str(p.get("dataset", "digits")), target=p.get("target"))
    split = data.train_val_test_split(
        ds.X,
        ds.y,
        val_fraction=float(p.get("val_fraction", 0.1)),
        test_fraction=float(p.get("test_fraction", 0.2)),
        seed=int(p.get("seed", 0)),
        keys=splitting.row_keys(ds.X),
    )  # the fixed key rule, as 01_prepare_data
    return ReplayRows(split.X_test, split.y_test, f"test split of {ds.name} (pipeline {spec.name})")


def _test_table_rows(root: Path, spec: Any) -> ReplayRows:
    """The test split (features and target) the shipped split step wrote in the newest run of `spec`."""
    import pandas as pd  # noqa: PLC0415

    from .datasection import features_and_target, parse_data  # noqa: PLC0415
    from .pipeline.records import iter_runs  # noqa: PLC0415
    from .steps.generic import TEST_TABLE  # noqa: PLC0415
    from .workspace import Workspace  # noqa: PLC0415

    section = parse_data(spec.data)
    if section is None:
        raise ConfigError(f"pipeline '{spec.name}' has no 'data' section, so it writes no test table to replay.")
    split_steps = [n for n, st in spec.steps.items() if Path(st.notebook).name == "split.ipynb"] or ["split"]
    for run in iter_runs(Workspace(root), spec.name):
        for step in split_steps:
            path = Path(run["run_dir"], step, TEST_TABLE)
            if path.is_file():
                X, y = features_and_target(pd.read_parquet(path), section, f"Test table {path}")
                return ReplayRows(
                    X.reset_index(drop=True), y.to_numpy(), f"test split of pipeline {spec.name} (run {run['run_id']})"
                )
    raise ConfigError(
        f"pipeline '{spec.name}' has no run with a test split yet; run `aidevops run {spec.name}` first, "
        "or pass --data with a CSV/Parquet file."
    )


def rows_from_dataset(source: str, target: str | None = None) -> ReplayRows:
    """Every row of a dataset (built-in name or file) with its labels."""
    from .trainer import data  # noqa: PLC0415

    ds = data.load_dataset(source, target=target)
    return ReplayRows(ds.X, ds.y, ds.name)


def _check(rate: Any, duration: Any, drift: Any, feedback: Any, drift_after: Any, batch: Any) -> None:
    def number(name: str, v: Any, lo: float, hi: float, hint: str) -> None:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
            raise ConfigError(f"{name} must be {hint}, got {v!r}.")

    number("--rate", rate, 0.01, MAX_RATE, f"requests per second between 0.01 and {MAX_RATE:g}")
    number("--duration", duration, 0.0, 7 * 86400, "seconds between 0 and a week")
    number("--drift", drift, -1000.0, 1000.0, "a shift in standard deviations (e.g. 1.5)")
    number("--feedback", feedback, 0.0, 1.0, "the share of requests labelled, between 0 and 1")
    number("--drift-after", drift_after, 0.0, 7 * 86400, "seconds (>= 0)")
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= 1000:
        raise ConfigError(f"--batch must be an integer between 1 and 1000 rows per request, got {batch!r}.")


def shift_for(X: np.ndarray, drift: float, features: Sequence[int] | None = None) -> np.ndarray:
    """The per-feature offset that moves each chosen feature by `drift` of its standard deviations."""
    std = np.nanstd(np.asarray(X, dtype=np.float64), axis=0)
    shift = drift * np.where(std > 0, std, 0.0)
    if features is not None:
        keep = np.zeros(X.shape[1], bool)
        keep[list(features)] = True
        shift = np.where(keep, shift, 0.0)
    return shift.astype(np.float32)


def category_moves(values: Any, share: float, rng: np.random.Generator) -> np.ndarray:
    """A category column with its frequencies moved: each present value, with probability `share`, becomes the
    category of the mirrored frequency rank (the most common becomes the rarest and back); missing stays missing."""
    import pandas as pd  # noqa: PLC0415

    col = pd.Series(values).reset_index(drop=True)
    ranked = col.value_counts(dropna=True).index.tolist()  # most frequent first
    out = col.to_numpy(dtype=object, copy=True)
    if len(ranked) < 2 or share <= 0:
        return out
    mirror = dict(zip(ranked, reversed(ranked)))
    move = col.notna().to_numpy() & (rng.random(len(col)) < min(1.0, share))
    out[move] = [mirror[v] for v in col[move]]
    return out


def shift_frame(frame: Any, drift: float, features: Sequence[str] | None = None, seed: int = 0) -> Any:
    """`frame` drifted by `drift`: numeric columns moved by `drift` of their standard deviations (in the replayed
    rows, the reference's stand-in), category columns' frequencies moved (`category_moves`, share |drift| / 3)."""
    import pandas as pd  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    out = frame.copy()
    chosen = list(frame.columns) if features is None else list(features)
    for name in chosen:
        col = frame[name]
        if pd.api.types.is_bool_dtype(col):
            continue
        if pd.api.types.is_numeric_dtype(col):
            std = float(np.nanstd(col.to_numpy(dtype=np.float64)))
            out[name] = col.astype(np.float64) + drift * (std if std > 0 else 0.0)
        else:
            out[name] = pd.Series(category_moves(col, abs(drift) / 3.0, rng), index=frame.index, dtype=object)
    return out


def _indices(features: Sequence[int] | Sequence[str] | None) -> list[int] | None:
    """Drift features of array rows: column indices (names belong to table rows)."""
    if features is None:
        return None
    indices = [f for f in features if isinstance(f, (int, np.integer))]
    if len(indices) != len(features):
        raise ConfigError("--drift-features of rows without column names takes feature indices like 0,3,5.")
    return [int(f) for f in indices]


def _frame_rows(frame: Any) -> list[list]:
    """JSON-able rows (missing values as None, NumPy scalars as Python ones) in column order."""
    cells = frame.astype(object).where(frame.notna(), None)
    return [[_jsonable(v) for v in row] for row in cells.itertuples(index=False, name=None)]


def simulate(
    url: str,
    rows: ReplayRows,
    *,
    rate: float,
    duration: float,
    drift: float = 0.0,
    drift_features: Sequence[int] | Sequence[str] | None = None,
    drift_after: float = 0.0,
    feedback: float = 0.0,
    feedback_token: str | None = None,
    batch: int = 1,
    seed: int = 0,
    stop: threading.Event | None = None,
    progress: Callable[[TrafficResult], None] | None = None,
) -> TrafficResult:
    """Send `rate` requests per second for `duration` seconds to the server at `url`; see the module docstring.
    With `feedback`, that share of the answered requests gets its true labels, sent with `feedback_token`."""
    _check(rate, duration, drift, feedback, drift_after, batch)
    columns = None
    frame_rows: list[list[Any]] = []
    drifted_rows: list[list[Any]] | None = None
    matrix = np.empty((0, 0), dtype=np.float32)
    if rows.is_frame:  # a table's model: rows go as dataframe_split, drifted rows prepared once
        columns = [str(c) for c in rows.X.columns]
        names = (
            None
            if drift_features is None
            else [columns[f] if isinstance(f, (int, np.integer)) else str(f) for f in drift_features]
        )
        if not len(rows.X):
            raise DataError("there are no rows to replay; give a dataset with at least one row.")
        frame_rows = _frame_rows(rows.X)
        drifted_rows = _frame_rows(shift_frame(rows.X, drift, names, seed)) if drift else None
        n_rows = len(frame_rows)
    else:
        matrix = np.asarray(rows.X, dtype=np.float32)
        if matrix.ndim != 2 or not len(matrix):
            raise DataError("there are no rows to replay; give a dataset with at least one row.")
        n_rows = len(matrix)
    if feedback and rows.y is None:
        raise ConfigError(
            "--feedback needs true labels, and these rows have none; drop --feedback or use a labelled dataset."
        )
    if feedback and not feedback_token:
        raise ConfigError("Feedback needs the deployment's feedback token; pass the one `aidevops token NAME` prints.")
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or not parts.port:
        raise ConfigError(f"{url!r} is not a server address like http://127.0.0.1:8080.")
    host, port = parts.hostname, parts.port
    shift = shift_for(matrix, drift, _indices(drift_features)) if drift and columns is None else None
    result = TrafficResult(url=url)
    lock = threading.Lock()
    latencies: list[float] = []
    stop = stop or threading.Event()
    workers = max(1, min(16, math.ceil(rate / 250)))
    t0 = time.monotonic()
    total = int(round(rate * duration))

    def work(w: int) -> None:
        rng = np.random.default_rng(seed * 1009 + w)
        conn = http.client.HTTPConnection(host, port, timeout=30)
        i = w
        try:
            while i < total and not stop.is_set():
                due = t0 + i / rate
                wait = due - time.monotonic()
                if wait > 0 and stop.wait(wait):
                    break
                idx = rng.integers(0, n_rows, size=batch)
                late = time.monotonic() - t0 >= drift_after
                if columns is not None:
                    source = drifted_rows if drifted_rows is not None and late else frame_rows
                    shifted = source is not frame_rows
                    body = json.dumps({"dataframe_split": {"columns": columns, "data": [source[k] for k in idx]}})
                else:
                    chunk = matrix[idx]
                    shifted = False
                    if shift is not None and late:
                        chunk, shifted = chunk + shift, True
                    body = json.dumps({"inputs": chunk.tolist()})
                start = time.perf_counter()
                status, answer, version, rid = _post(conn, parts, "/invocations", body)
                elapsed = (time.perf_counter() - start) * 1000
                with lock:
                    result.sent += 1
                    result.drifted += int(shifted)
                    if status == 200:
                        result.ok += 1
                        latencies.append(elapsed)
                        if version:
                            result.versions[version] = result.versions.get(version, 0) + 1
                    else:
                        result.failed += 1
                        if len(result.errors) < 5:
                            result.errors.append(f"{status}: {answer[:200]}")
                if status == 200 and rid and feedback and rng.random() < feedback:
                    labels = [_jsonable(v) for v in np.asarray(rows.y)[idx]]
                    fb, _, _, _ = _post(
                        conn, parts, "/feedback", json.dumps({"request_id": rid, "labels": labels}), feedback_token
                    )
                    with lock:
                        if fb == 200:
                            result.feedback_sent += 1
                        else:
                            result.feedback_failed += 1
                i += workers
                if progress is not None and w == 0 and i % (workers * 50) == 0:
                    progress(result)
        finally:
            conn.close()

    threads = [
        threading.Thread(target=work, args=(w,), name=f"aidevops-traffic-{w}", daemon=True) for w in range(workers)
    ]
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    except KeyboardInterrupt:
        stop.set()
        for t in threads:
            t.join()
    result.duration_s = time.monotonic() - t0
    if latencies:
        result.latency_ms_p50, result.latency_ms_p99 = (float(v) for v in np.percentile(latencies, [50, 99]))
    return result


def _post(
    conn: http.client.HTTPConnection, parts: Any, path: str, body: str, token: str | None = None
) -> tuple[int, str, str | None, str | None]:
    """(status, body text, model version, the server's request id) of one POST; connection failures are status 0
    (retried once on a stale socket)."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    for attempt in (0, 1):
        try:
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            text = resp.read().decode("utf-8", "replace")
            return resp.status, text, resp.getheader("X-Model-Version"), resp.getheader("X-Request-ID")
        except (ConnectionError, http.client.HTTPException, OSError) as exc:
            conn.close()
            # A keep-alive socket the server closed while idle fails on first use: one fresh try. The request
            # was never processed, so retrying is safe; a second failure is a real one.
            if attempt == 1 or not isinstance(
                exc, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
            ):
                return 0, f"{type(exc).__name__}: {exc}", None, None
    return 0, "unreachable", None, None


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v
