"""The workspace's `deploy.db`: one way to open it, and the numbered migrations of every table in it.

Every module that keeps state in deploy.db (deployments and history, alert state and events, the request
log and feedback, retrainings) opens it with `connect`, so the file is created once, private to its owner
(it holds admin tokens), in WAL mode, with one busy timeout and one set of pragmas, and at the layout this
code knows (docs/architecture.md §3).

The layout is versioned by `PRAGMA user_version`. `MIGRATIONS` is the only place a table is defined or
changed: (version, SQL) pairs, in order. A database at version N runs N+1.. in one transaction when it is
opened, so the CLI, the supervisor, the server and a notebook can race to open it and only one migrates.
Version 1 is the layout aidevops wrote before the file was versioned; such a file (user_version 0, tables
present) is recognised and brought up without losing rows: version 1 creates the tables it lacks and the
columns that older aidevops versions had not added yet are added in place. A file from a newer aidevops
is refused rather than written with a layout this code does not know.

Never edit a released migration: append one. Standard library only (the model server imports this).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from .errors import AidevopsError

# One busy timeout for every writer: the longest wait any of them needed (the store's, 15 s). The request log
# writes off the request path, so waiting on a notebook's or the CLI's transaction never delays a response.
BUSY_TIMEOUT_S = 15.0
WAL_SIZE_LIMIT_BYTES = 4 * 1024 * 1024  # what SQLite checkpoints at by default (1000 pages of 4 KB)

# Request rollups (serving/rollups.py, migration 4): the bucket width and the latency histogram's bin edges. Both
# are part of the stored data: never change them (a new layout is a new migration). Bin 0 holds latencies under
# 0.01 ms, bin k those in [edge k-1, edge k), the last one those from 118 s up: four bins per doubling, so a
# percentile read from the histogram is within 19 % (one bin) of the exact one.
ROLLUP_SECONDS = 5
LATENCY_EDGES_MS: tuple[float, ...] = tuple(0.01 * 2.0 ** (k / 4) for k in range(95))


def _latency_bin_sql(column: str, lo: int, hi: int) -> str:
    """The histogram bin of `column` in SQL (the number of edges in [lo, hi) at or below it, plus lo): a nested
    CASE halving the edges, so the migration's backfill compares each row about seven times, not 95."""
    if lo >= hi:
        return str(lo)
    mid = (lo + hi) // 2
    return (
        f"CASE WHEN {column} < {LATENCY_EDGES_MS[mid]!r} THEN {_latency_bin_sql(column, lo, mid)} "
        f"ELSE {_latency_bin_sql(column, mid + 1, hi)} END"
    )


MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
-- deploy/store.py: one row per deployment name, and every change made to it.
CREATE TABLE IF NOT EXISTS deployments (
    name TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    ref TEXT NOT NULL,
    alias TEXT,
    target TEXT NOT NULL DEFAULT 'local',
    host TEXT,
    port INTEGER,
    follow REAL NOT NULL DEFAULT 0,
    alias_version TEXT,
    active_version TEXT,
    previous_version TEXT,
    canary_version TEXT,
    canary_share REAL NOT NULL DEFAULT 0,
    supervisor_pid INTEGER,
    server_pid INTEGER,
    state TEXT NOT NULL,
    desired TEXT NOT NULL DEFAULT 'running',
    restarts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    admin_token TEXT,
    log_path TEXT,
    options TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deployment_history (
    id INTEGER PRIMARY KEY,
    deployment TEXT NOT NULL,
    ts REAL NOT NULL,
    operation TEXT NOT NULL,
    from_version TEXT,
    to_version TEXT,
    reason TEXT NOT NULL DEFAULT '',
    actor TEXT NOT NULL,
    ok INTEGER NOT NULL DEFAULT 1,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX IF NOT EXISTS deployment_history_event ON deployment_history (deployment, ts, operation);
-- monitoring/alertstore.py: the state of each alert rule, and every transition.
CREATE TABLE IF NOT EXISTS alert_state (
    deployment TEXT NOT NULL,
    rule TEXT NOT NULL,
    state TEXT NOT NULL,
    since REAL NOT NULL,
    value REAL,
    features TEXT NOT NULL DEFAULT '[]',
    model TEXT,
    version TEXT,
    detail TEXT NOT NULL DEFAULT '{}',
    updated REAL NOT NULL,
    PRIMARY KEY (deployment, rule)
);
CREATE TABLE IF NOT EXISTS alert_events (
    id INTEGER PRIMARY KEY,
    deployment TEXT NOT NULL,
    rule TEXT NOT NULL,
    event TEXT NOT NULL,
    at REAL NOT NULL,
    metric TEXT,
    value REAL,
    threshold REAL,
    features TEXT NOT NULL DEFAULT '[]',
    action TEXT,
    message TEXT NOT NULL,
    model TEXT,
    version TEXT,
    handled_by TEXT,
    handled_at REAL
);
CREATE INDEX IF NOT EXISTS alert_events_deployment ON alert_events (deployment, id);
-- serving/requestlog.py (written), serving/livedata.py (read): logged requests and feedback labels.
CREATE TABLE IF NOT EXISTS request_log (
    id INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL,
    ts REAL NOT NULL,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    alias TEXT,
    protocol TEXT NOT NULL,
    status INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    n_rows INTEGER,
    n_features INTEGER,
    input_rows INTEGER,
    row_step INTEGER,
    inputs BLOB,
    predictions TEXT,
    error TEXT,
    frame TEXT
);
CREATE INDEX IF NOT EXISTS request_log_request_id ON request_log (request_id);
-- The live window and the Monitor panel read the newest rows of a model (version) by id, and a time range by ts:
-- without these, each read sorted every logged row of the model (170 ms at 100,000 rows; 4 ms with them).
-- They replace (model, version, ts), which no query used once they existed; dropping it spares the writer.
DROP INDEX IF EXISTS request_log_model_ts;
CREATE INDEX IF NOT EXISTS request_log_model_version_id ON request_log (model, version, id);
CREATE INDEX IF NOT EXISTS request_log_model_time ON request_log (model, ts);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL,
    row INTEGER NOT NULL,
    label TEXT NOT NULL,
    ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_request_id ON feedback (request_id);
-- loop.py: every retraining, from the alert that caused it to the deployment change.
CREATE TABLE IF NOT EXISTS retrains (
    id INTEGER PRIMARY KEY,
    deployment TEXT NOT NULL,
    model TEXT NOT NULL,
    trigger TEXT NOT NULL,
    alert_event_id INTEGER,
    rule TEXT,
    status TEXT NOT NULL,
    started REAL NOT NULL,
    finished REAL,
    pipeline TEXT,
    pipeline_run_id TEXT,
    from_version TEXT,
    version TEXT,
    gate_passed INTEGER,
    champion_moved INTEGER,
    switched_to TEXT,
    training_rows INTEGER,
    live_rows INTEGER,
    extra_data TEXT,
    actor TEXT,
    message TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS retrains_deployment ON retrains (deployment, id);
""",
    ),
    (
        2,
        """
-- The deployment whose server logged a request or stored a label (NULL: a plain `aidevops serve`), so two
-- deployments of one model keep their own monitoring data and their own retention (serving/compaction.py).
ALTER TABLE request_log ADD COLUMN deployment TEXT;
ALTER TABLE feedback ADD COLUMN deployment TEXT;
-- What a logged row weighs on disk, about (its blobs and text plus a fixed share for the other columns and
-- the indexes): retention by size sums it over the deployment_time index, never reading the row itself.
ALTER TABLE request_log ADD COLUMN size_bytes INTEGER;
-- Rows logged before: they belong to their model's deployment when the model has exactly one.
UPDATE request_log SET
    deployment = CASE WHEN (SELECT count(*) FROM deployments d WHERE d.model = request_log.model) = 1
        THEN (SELECT d.name FROM deployments d WHERE d.model = request_log.model) END,
    size_bytes = 320 + COALESCE(length(inputs), 0) + COALESCE(length(predictions), 0)
        + COALESCE(length(frame), 0) + COALESCE(length(error), 0);
UPDATE feedback SET deployment = (SELECT r.deployment FROM request_log r WHERE r.request_id = feedback.request_id)
WHERE EXISTS (SELECT 1 FROM request_log r WHERE r.request_id = feedback.request_id);
-- A deployment's newest rows of a version (the live window), its time range (charts, retention by age and rows).
CREATE INDEX IF NOT EXISTS request_log_deployment_version_id ON request_log (deployment, version, id);
CREATE INDEX IF NOT EXISTS request_log_deployment_time ON request_log (deployment, ts, size_bytes);
CREATE INDEX IF NOT EXISTS feedback_deployment_time ON feedback (deployment, ts);
""",
    ),
    (
        3,
        """
-- serving/shadow.py: a shadow version's answers to mirrored live requests, beside the active version's
-- (same request id, so feedback labels judge both); at most RETAIN_ROWS rows per deployment are kept.
CREATE TABLE IF NOT EXISTS shadow_log (
    id INTEGER PRIMARY KEY,
    deployment TEXT,
    request_id TEXT NOT NULL,
    ts REAL NOT NULL,
    model TEXT NOT NULL,
    active_version TEXT NOT NULL,
    shadow_version TEXT NOT NULL,
    n_rows INTEGER NOT NULL,
    agreed INTEGER NOT NULL,
    active_predictions TEXT,
    shadow_predictions TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS shadow_log_deployment_version ON shadow_log (deployment, shadow_version, id);
""",
    ),
    (
        4,
        f"""
-- serving/rollups.py: per 5-second bucket of one deployment's ('' for a plain `aidevops serve`) model version,
-- what the Monitor panel charts, so charts and window counts never read the raw rows: requests, 5xx errors,
-- 4xx refusals, input rows of answered requests, latency sum/min/max and a histogram on LATENCY_EDGES_MS
-- (sparse text "bin:count bin:count"), predicted classes ({{"class": count}} JSON, classifiers only), and the
-- newest request_log id counted. The request-log writer updates it in the transaction that inserts the rows.
CREATE TABLE IF NOT EXISTS request_rollup (
    deployment TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    requests INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    refused INTEGER NOT NULL,
    input_rows INTEGER NOT NULL,
    latency_sum_ms REAL NOT NULL,
    latency_min_ms REAL NOT NULL,
    latency_max_ms REAL NOT NULL,
    latency_bins TEXT NOT NULL,
    classes TEXT,
    last_id INTEGER NOT NULL,
    PRIMARY KEY (deployment, bucket, model, version)
) WITHOUT ROWID;
-- Rows logged before: their rollups from the rows themselves (classes are not backfilled: predictions are JSON).
INSERT INTO request_rollup (deployment, bucket, model, version, requests, errors, refused, input_rows,
    latency_sum_ms, latency_min_ms, latency_max_ms, latency_bins, classes, last_id)
SELECT deployment, bucket, model, version, sum(requests), sum(errors), sum(refused), sum(input_rows),
    sum(latency_sum_ms), min(latency_min_ms), max(latency_max_ms), group_concat(bin || ':' || requests, ' '),
    NULL, max(last_id)
FROM (
    SELECT COALESCE(deployment, '') AS deployment, CAST(ts / {ROLLUP_SECONDS} AS INTEGER) * {ROLLUP_SECONDS} AS bucket,
        model, version, {_latency_bin_sql("latency_ms", 0, len(LATENCY_EDGES_MS))} AS bin, count(*) AS requests,
        sum(status >= 500) AS errors, sum(status >= 400 AND status < 500) AS refused,
        sum(CASE WHEN status = 200 THEN COALESCE(input_rows, 0) ELSE 0 END) AS input_rows,
        sum(latency_ms) AS latency_sum_ms, min(latency_ms) AS latency_min_ms, max(latency_ms) AS latency_max_ms,
        max(id) AS last_id
    FROM request_log GROUP BY 1, 2, 3, 4, 5
)
GROUP BY deployment, bucket, model, version;
""",
    ),
)

CURRENT = MIGRATIONS[-1][0]


def connect(
    path: Path | str, *, readonly: bool = False, migrations: Sequence[tuple[int, str]] = MIGRATIONS
) -> sqlite3.Connection:
    """A connection to deploy.db at `path` (autocommit, rows as tuples), usable from any one thread at a time.

    Read-write (the default) creates the file (0600) and its folder, makes an existing file private again,
    and migrates it to the current version. `readonly=True` creates and changes nothing (the file must
    exist): for reading a workspace one cannot or should not write. `migrations` is for tests.
    """
    path = Path(path)
    latest = migrations[-1][0] if migrations else 0
    if readonly:
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro",
            uri=True,
            timeout=BUSY_TIMEOUT_S,
            isolation_level=None,
            check_same_thread=False,
        )
    else:
        _create_private(path)
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA foreign_keys=ON")  # no table declares one yet; a later migration may rely on it
        if not readonly:
            # WAL: readers never block the writer (the server logs while the CLI and panels read). NORMAL is
            # durable in WAL mode except for the last transactions at a power cut, never corrupting.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            # After a checkpoint the -wal file is cut back to this size: a burst of writes (a flood of
            # requests, a compaction pass) leaves no big WAL file behind.
            conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
        version = _version(conn)
        if not readonly and version == 0 and _is_empty(conn):
            # Pages freed by compaction go back to the file system (PRAGMA incremental_vacuum). SQLite takes
            # this only before the first table; an older file is converted once, after its migration below.
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        if version > latest:
            raise AidevopsError(
                f"{path} was written by a newer aidevops (deploy.db version {version}; this one knows up to "
                f"{latest}): upgrade aidevops (`pip install -U aidevops-ext`) before using this workspace."
            )
        if version < latest and not readonly:
            migrate(conn, migrations)
            if int(conn.execute("PRAGMA auto_vacuum").fetchone()[0]) != 2:
                _make_incremental(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def bound_wal(conn: sqlite3.Connection, path: Path | str) -> None:
    """Checkpoint and truncate `path`'s -wal file once it has grown past twice WAL_SIZE_LIMIT_BYTES.

    SQLite's own checkpoints are passive: under a steady stream of writes from several connections (a flood:
    the request log, labels and the compactor) one seldom finds the log free of readers, the -wal file can only
    restart from its beginning after one does, and it grows meanwhile. A TRUNCATE checkpoint waits for the
    readers (the busy timeout) and then empties it. Only background writers call this; serving never waits.
    """
    try:
        size = os.path.getsize(f"{path}-wal")
    except OSError:
        return
    if size > 2 * WAL_SIZE_LIMIT_BYTES:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


def inserted_id(cur: sqlite3.Cursor) -> int:
    """The rowid of the row an INSERT through `cur` just added."""
    if cur.lastrowid is None:
        raise RuntimeError("the statement inserted no row")  # sqlite3 sets it for every INSERT
    return cur.lastrowid


def migrate(conn: sqlite3.Connection, migrations: Sequence[tuple[int, str]] = MIGRATIONS) -> int:
    """Bring the database to the newest version in one transaction; the version it ends at.

    Another process may be migrating the same file: the write lock is taken first and the version read
    again under it, so each migration runs once.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = _version(conn)
        start = version
        for number, sql in migrations:
            if number <= version:
                continue
            if number == 1 and start == 0:  # maybe a file from before versioning: columns first, as indexes use them
                _add_missing_columns(conn, sql)
            for statement in _statements(sql):
                conn.execute(statement)
            version = number
        if version != start:
            conn.execute(f"PRAGMA user_version={int(version)}")  # transactional: part of the same commit
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return version


def _version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _is_empty(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0


def _make_incremental(conn: sqlite3.Connection, path: Path) -> None:
    """Turn on incremental vacuum in a file created without it (one VACUUM: it rewrites the file once).

    Best effort: while another connection is writing, the VACUUM is skipped and tried at the next upgrade;
    without it freed pages are still reused, so the file stops growing, it only does not shrink.
    """
    try:
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("VACUUM")
    except sqlite3.OperationalError as exc:
        logging.getLogger("aidevops").info("%s keeps auto_vacuum off for now (%s)", path, exc)


def _create_private(path: Path) -> None:
    """Create the file readable by its owner only before SQLite writes to it, and keep it (and WAL files) so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))  # SQLite gives -wal/-shm the file's mode
    for suffix in ("", "-wal", "-shm"):
        p = Path(f"{path}{suffix}")
        try:
            if p.exists() and (p.stat().st_mode & 0o077):  # one written by aidevops before it was created private
                os.chmod(p, 0o600)
        except OSError:  # another user's file: reading it still works
            pass


def _statements(sql: str) -> list[str]:
    """The statements of a migration, one by one (`executescript` would commit the migration's transaction)."""
    out, pending = [], ""
    for line in sql.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            out.append(pending.strip())
            pending = ""
    if pending.strip() and not all(ln.strip().startswith("--") or not ln.strip() for ln in pending.splitlines()):
        raise ValueError(f"migration ends with an incomplete statement: {pending.strip()[:80]}")
    return out


def _add_missing_columns(conn: sqlite3.Connection, baseline: str) -> None:
    """Add the columns of version 1 that a table written by an older, unversioned aidevops lacks (rows kept).

    The columns' declarations come from SQLite itself (the baseline built in memory), not from parsing its text.
    """
    scratch = sqlite3.connect(":memory:")
    try:
        for statement in _statements(baseline):
            scratch.execute(statement)
        tables = [r[0] for r in scratch.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
            if not have:  # not there at all: the baseline creates it whole
                continue
            for _cid, name, decl, notnull, default, pk in scratch.execute(f"PRAGMA table_info({table})"):
                if name in have:
                    continue
                if pk or (notnull and default is None):  # SQLite cannot add these to a table with rows
                    raise AidevopsError(
                        f"Table {table} of deploy.db lacks column {name}, which cannot be added in place: "
                        f"move the file aside (`mv deploy.db deploy.db.old`) and redeploy."
                    )
                conn.execute(
                    f"ALTER TABLE {table} ADD COLUMN {name} {decl}"
                    + (" NOT NULL" if notnull else "")
                    + (f" DEFAULT {default}" if default is not None else "")
                )
    finally:
        scratch.close()
