"""One prediction thread per foreign pyfunc model, which predicts the requests queued at once in one call.

Why: a scikit-learn pipeline's predict costs milliseconds per call whatever the row count (pandas column
handling, validation, one tree walk per call), and its OpenMP loops, started from several request threads
at once on shared cores, mostly wait on each other. So each row-wise `PyfuncModel`
(app.Server.predict_foreign) gets one thread that runs with `threads` OpenMP/BLAS threads, takes every
request waiting in its queue, and predicts those that can go together as one DataFrame. Nothing waits for a batch to fill: a lone request is predicted at once, and
requests merge only when they arrive while the previous call runs (docs/architecture.md, "Data flow
of a request").

Requests merge only when the answer cannot change: the model's flavor predicts each row on its own
(`ROW_WISE_LOADERS`), the requests have no params, and their frames have the same columns and dtypes,
so MLflow's schema enforcement sees the same columns it would see one request at a time. The merged
output must be one array with one entry per row, else each request is predicted alone; a merged call
that raises is also retried one request at a time, so a bad request gets its own error and the others
their predictions.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from typing import Any

import anyio
import numpy as np
import pandas as pd

log = logging.getLogger("aidevops.serving")

# Flavors whose pyfunc predict maps each input row to its output row independently of the others.
ROW_WISE_LOADERS = frozenset({"mlflow.sklearn"})
MAX_BATCH_ROWS = 4096  # a merged call stays a few milliseconds; bigger requests go alone
_STOP = object()


def row_wise(pyfunc: Any) -> bool:
    """Whether the model's pyfunc flavor predicts rows independently (so concurrent requests may merge)."""
    try:
        loader = pyfunc.metadata.flavors["python_function"]["loader_module"]
    except (AttributeError, KeyError, TypeError):
        return False
    return loader in ROW_WISE_LOADERS


def predict_jobs(
    model: Any, jobs: list[tuple[Any, dict | None]], merge: bool = True
) -> list[tuple[Any, BaseException | None]]:
    """(predictions, None) or (None, error) for each (data, params), merging what may merge (see module doc)."""
    results: list[tuple[Any, BaseException | None] | None] = [None] * len(jobs)
    groups: dict[tuple, list[int]] = {}
    for i, (data, params) in enumerate(jobs):
        if merge and not params and isinstance(data, pd.DataFrame) and len(data):
            key = (tuple(data.columns), tuple(map(str, data.dtypes)))
            groups.setdefault(key, []).append(i)
        else:
            results[i] = _alone(model, data, params)
    for members in groups.values():
        merged = _merged(model, [jobs[i][0] for i in members]) if len(members) > 1 else None
        for j, i in enumerate(members):
            results[i] = (merged[j], None) if merged is not None else _alone(model, jobs[i][0], None)
    return results  # type: ignore[return-value]


def _alone(model: Any, data: Any, params: dict | None) -> tuple[Any, BaseException | None]:
    try:
        return model.predict(data, params), None
    except Exception as exc:  # noqa: BLE001 - handed to the request that sent this input
        return None, exc


def _merged(model: Any, frames: list[pd.DataFrame]) -> list[np.ndarray] | None:
    """Each frame's slice of one predict over all of them, or None when that cannot be trusted."""
    try:
        preds = model.predict(pd.concat(frames, ignore_index=True), None)
    except Exception:  # noqa: BLE001 - some request is bad: the caller predicts each alone
        return None
    sizes = [len(f) for f in frames]
    if not isinstance(preds, np.ndarray) or preds.ndim == 0 or len(preds) != sum(sizes):
        return None
    bounds = np.cumsum([0, *sizes])
    return [preds[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


class PredictThread:
    """The prediction thread of one model: `await predict(data, params)` from the event loop."""

    def __init__(self, model: Any, threads: int | None = 1, merge: bool | None = None) -> None:
        self.model = model
        self.threads = threads
        self.merge = row_wise(getattr(model, "pyfunc", None)) if merge is None else merge
        self.requests = 0
        self.batches = 0  # queue drains: requests / batches is how many requests went together on average
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = False

    async def predict(self, data: Any, params: dict | None) -> Any:
        """The model's predictions for one request (its error re-raised here)."""
        if self._stopped:  # a request that picked this model just before it was unloaded: still answer it
            return await anyio.to_thread.run_sync(self.model.predict, data, params)
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._start()
        self._queue.put((data, params, future, loop))
        return await future

    def stop(self) -> None:
        """End the thread after the requests already queued (later ones run in a worker thread)."""
        self._stopped = True
        if self._thread is not None:
            self._queue.put(_STOP)

    def _start(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, daemon=True, name=f"predict-{self.model.name}-v{self.model.version}"
                    )
                    self._thread.start()

    def _run(self) -> None:
        _limit_threads(self.threads)
        stop = False
        while not stop:
            first = self._queue.get()
            if first is _STOP:
                return
            batch, rows = [first], _rows(first[0])
            while rows < MAX_BATCH_ROWS:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is _STOP:
                    stop = True
                    break
                batch.append(job)
                rows += _rows(job[0])
            try:
                results = predict_jobs(self.model, [(d, p) for d, p, _, _ in batch], self.merge)
            except Exception as exc:  # noqa: BLE001 - a bug here must answer every queued request (500), not hang it
                results = [(None, exc)] * len(batch)
            self.requests += len(batch)
            self.batches += 1
            for (_, _, future, loop), (preds, error) in zip(batch, results):
                try:
                    loop.call_soon_threadsafe(_settle, future, preds, error)
                except RuntimeError:  # the loop closed: the server is shutting down
                    pass


def _rows(data: Any) -> int:
    try:
        return len(data)
    except TypeError:
        return 1


def _settle(future: asyncio.Future, preds: Any, error: BaseException | None) -> None:
    if future.done():  # the client went away and the request was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(preds)


def _limit_threads(n: int | None) -> None:
    """OpenMP's thread count is per calling thread: set it here, where the model runs."""
    if not n:
        return
    try:
        from threadpoolctl import threadpool_limits  # noqa: PLC0415

        threadpool_limits(n)
    except Exception:  # noqa: BLE001 - threadpoolctl is optional; predictions work without the limit
        log.debug("could not limit the prediction thread's thread pools", exc_info=True)
