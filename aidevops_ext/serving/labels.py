"""Which feedback labels are stored: only labels for rows this server logged and answered, one per row.

A label joins the training data of a retraining (loop.py), so a label for a request that does not exist
(made up, expired from the log, never sampled into it, or refused with an error) is refused; so is a label
for a row past the end of its request, and a second label for a row already labelled: the first label of a
(request id, row) is kept, later ones are refused and counted, in one body as across bodies. Only rows in
deploy.db count: the request log writes a request still in its queue before it screens a label that names
it (serving/requestlog.py), so a label never outlives a log entry dropped under a flood.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

_CHUNK = 500  # ids per IN (...): far under SQLite's variable limit


def screen(
    conn: sqlite3.Connection,
    rows: Sequence[tuple[str, int, Any]],
    models: Iterable[str],
    deployment: str | None = None,
) -> tuple[list[tuple[str, int, Any]], dict[str, int]]:
    """(rows to store, refused counts by reason: unknown, row, duplicate) for labels [(request_id, row, label)].

    Logged requests count when they were answered 200 by one of `models` and, for a server of a deployment,
    logged by that deployment.
    """
    models = tuple(sorted(set(models)))
    ids = sorted({rid for rid, _, _ in rows})
    known = known_ids(conn, ids, models, deployment)
    labelled: set[tuple[str, int]] = set()
    if known:
        for i in range(0, len(ids), _CHUNK):
            chunk = [rid for rid in ids[i : i + _CHUNK] if rid in known]
            if chunk:
                holes = ",".join("?" * len(chunk))
                labelled.update(
                    conn.execute(f"SELECT request_id, row FROM feedback WHERE request_id IN ({holes})", chunk)
                )
    keep: list[tuple[str, int, Any]] = []
    refused = {"unknown": 0, "row": 0, "duplicate": 0}
    for rid, row, label in rows:
        n_rows = known.get(rid, -1)
        if n_rows == -1:
            refused["unknown"] += 1
        elif n_rows is not None and row >= n_rows:
            refused["row"] += 1
        elif (rid, row) in labelled:
            refused["duplicate"] += 1
        else:
            labelled.add((rid, row))
            keep.append((rid, row, label))
    return keep, {why: n for why, n in refused.items() if n}


def known_ids(
    conn: sqlite3.Connection,
    ids: Sequence[str],
    models: Iterable[str],
    deployment: str | None = None,
) -> dict[str, int | None]:
    """Request id -> its row count (None: not recorded) for the `ids` logged in deploy.db and answered 200 by one
    of `models` (and `deployment`, when given)."""
    models = tuple(sorted(set(models)))
    known: dict[str, int | None] = {}
    if not models:
        return known
    marks = ",".join("?" * len(models))
    # `+`: found by request id (one index probe per id); steering by deployment or model would walk every
    # logged request of the deployment for each label body (up to its retention's max_rows)
    scope = f"+model IN ({marks})" + (" AND +deployment = ?" if deployment is not None else "")
    extra: list[Any] = [*models, *([deployment] if deployment is not None else [])]
    ids = list(ids)
    for i in range(0, len(ids), _CHUNK):
        chunk = ids[i : i + _CHUNK]
        holes = ",".join("?" * len(chunk))
        for rid, n_rows in conn.execute(
            f"SELECT request_id, n_rows FROM request_log WHERE request_id IN ({holes}) AND status = 200 AND {scope}",
            [*chunk, *extra],
        ):
            known[rid] = n_rows
    return known
