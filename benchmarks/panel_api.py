"""Panel API benchmark: the Monitor panel's endpoints at 100,000 and at 10,000,000 logged requests.

    python benchmarks/panel_api.py [--requests 100000] [--big 10000000] [--calls 200] [--repeats 3] [--keep]

Set-up (a temporary workspace): `aidevops run ci` registers ci-digits; it is deployed locally and sent
2,000 real requests (half labelled), and the deployment is stopped. Its request log is then grown to
--requests rows by copying those logged rows (a recursive CTE inside SQLite) with timestamps spread over the
hour before them, and their rollups are folded from the same rows by serving/rollups.py. The
deployment is started again (the server's compactor is off: AIDEVOPS_COMPACT_SECONDS, so the grown log
stays) and a real Jupyter server with the extension serves the API on 127.0.0.1 (token auth). Then the
deployment is stopped again, the log grown to --big rows over the week before (the longest chart), and
everything is timed again.

Timed at each size, one client, sequential calls after 5 warm-up calls: the wall median and p95, and the
CPU each call cost in the Jupyter server and the model server (the steadier figure on a shared machine);
summary and series in --repeats rounds, each round's median printed:
  summary   GET /aidevops/api/deployments/NAME/monitor   the latest monitor pass (what the panel polls)
  series    GET .../series                                60 one-minute buckets over the last hour + accuracy curve
  panel     GET .../series?minutes=10&buckets=120         what the Monitor panel polls every 3 s
  recompute GET .../monitor?refresh=1                     a full monitor pass on demand (drift, quality, alerts)
  peer      pandas: read the hour's request log and compute the same request statistics
            (count, error rate, latency percentiles), the way a notebook dashboard polling the log would
  inproc    the series computed in this process (deploy/observe.py), without Jupyter
At the big size also: a week's series (1000 buckets), the monitor's first-pass window count (the rollups'
sum, what a restarted server does), the request-log writer's sustained insert rate (rows/s through
RequestLog, batched, rollups included, into the big file, and without rollups for comparison; --repeats runs
each, with rows per CPU second), and the file's bytes per logged row. Targets: summary and series <= 20 ms
at 100k, series <= 200 ms and a monitor pass <= 100 ms at 10M, insert >= 50,000 rows/s.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from aidevops_ext import db as deploydb
from aidevops_ext.deploy import observe
from aidevops_ext.serving import ServingConfig, rollups
from aidevops_ext.serving import requestlog as requestlog_module
from aidevops_ext.serving.requestlog import RequestLog
from aidevops_ext.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
MODEL = "ci-digits"
NAME = "bench-panel"
TARGET_MS = 20.0
BIG_SERIES_MS = 200.0
BIG_PASS_MS = 100.0
INSERT_TARGET = 50_000
CHUNK = 1_000_000
WEEK = 7 * 86400
OPTIONS = {  # --option: (default, what it sets)
    "requests": (100_000, "logged requests at the first size"),
    "big": (10_000_000, "logged requests at the second size (a week of them)"),
    "calls": (200, "timed summary calls a round; the other endpoints get a tenth (at least 20)"),
    "writer-rows": (200_000, "single-row requests a request-log writer run writes"),
    "repeats": (3, "rounds of the summary and series timings, and writer runs each way"),
}
ENDPOINTS = {  # name: (path under deployments/NAME, query, what it is)
    "summary": ("monitor", {}, "GET monitor (the latest pass, what the panel polls)"),
    "series": ("series", {}, "GET series (60 one-minute buckets of the last hour + accuracy curve)"),
    "panel": ("series", {"minutes": 10, "buckets": 120}, "GET series?minutes=10&buckets=120 (the panel's chart)"),
    "week": ("series", {"minutes": 7 * 24 * 60, "buckets": 1000}, "GET series?minutes=10080&buckets=1000 (a week)"),
    "recompute": ("monitor", {"refresh": "1"}, "GET monitor?refresh=1 (a full monitor pass now)"),
}
REPEATED = ("summary", "series")  # the figures: timed in --repeats rounds to show how steady they are


def aidevops(root: Path, *args: str) -> str:
    # the compactor off: it would cut the grown log back to the default retention (100,000 rows)
    env = dict(os.environ, AIDEVOPS_HOME=str(root), MPLBACKEND="Agg", AIDEVOPS_COMPACT_SECONDS="1e9")
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        env.pop(var, None)
    out = subprocess.run(
        [sys.executable, "-m", "aidevops_ext.cli", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if out.returncode:
        sys.exit(f"aidevops {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return out.stdout


def make_room(db: Path, ids: int) -> None:
    """Move every logged request `ids` ids up (their rollups' newest ids with them), so that older copies can
    take the ids below: ids then grow with time, as in a log the server wrote."""
    conn = deploydb.connect(db)
    try:
        conn.execute("BEGIN")
        conn.execute("UPDATE request_log SET id = -id")  # through negative ids: no move lands on a row not yet moved
        conn.execute("UPDATE request_log SET id = ? - id", (ids,))
        conn.execute("UPDATE request_rollup SET last_id = last_id + ?", (ids,))
        conn.execute("COMMIT")
    finally:
        conn.close()


def grow_log(
    db: Path, target: int, end: float, span: float, tag: str, first_id: int | None = None
) -> tuple[int, float]:
    """Copy NAME's logged rows until the log holds `target` requests, timestamps spread evenly over [end - span,
    end), with ids from `first_id` on (ids no row holds; default: after the newest), and write the rollups of
    the copies; (rows in the log, seconds it took)."""
    t0 = time.perf_counter()
    conn = deploydb.connect(db)
    try:
        conn.execute("PRAGMA cache_size=-400000")  # 400 MB: the indexes' pages stay in memory while appending
        cols = [r[1] for r in conn.execute("PRAGMA table_info(request_log)") if r[1] not in ("id", "request_id", "ts")]
        have, newest = conn.execute("SELECT count(*), COALESCE(max(id), 0) FROM request_log").fetchone()
        first = newest + 1 if first_id is None else first_id
        n = target - have
        if n <= 0:
            return have, 0.0
        conn.execute("DROP TABLE IF EXISTS temp.template")
        conn.execute(
            f"CREATE TEMP TABLE template AS SELECT row_number() OVER (ORDER BY id) - 1 AS k, {', '.join(cols)} "
            "FROM request_log WHERE deployment = ? AND request_id NOT LIKE 'bench-%' ORDER BY id",
            (NAME,),
        )
        kinds = conn.execute("SELECT count(*) FROM temp.template").fetchone()[0]
        step = span / n
        for lo in range(0, n, CHUNK):
            conn.execute("BEGIN")
            conn.execute(
                f"WITH RECURSIVE seq(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM seq WHERE i < ?) "
                f"INSERT INTO request_log (id, request_id, ts, {', '.join(cols)}) "
                f"SELECT ? + i, printf('bench-{tag}-%010d', i), ? + i * ?, {', '.join('t.' + c for c in cols)} "
                f"FROM seq JOIN temp.template t ON t.k = seq.i % ?",
                (lo, min(lo + CHUNK, n) - 1, first, end - span, step, kinds),
            )
            conn.execute("COMMIT")
        conn.execute("BEGIN")
        _write_rollups(conn, first, n, end - span, step, kinds)
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        total = conn.execute("SELECT count(*) FROM request_log").fetchone()[0]
    finally:
        conn.close()
    return total, time.perf_counter() - t0


def _write_rollups(conn: sqlite3.Connection, first_id: int, n: int, t0: float, step: float, kinds: int) -> None:
    """The rollups of the n copied rows (ids first_id.., row i a copy of template row i % kinds at t0 + i*step),
    folded by serving/rollups.py from the template's columns; they share no bucket with the rows logged before
    them, which are newer."""
    tmpl = conn.execute(
        "SELECT deployment, model, version, status, latency_ms, COALESCE(input_rows, 0), predictions "
        "FROM temp.template ORDER BY k"
    ).fetchall()
    names = sorted({(t[0] or "", t[1], t[2]) for t in tmpl})
    code = np.array([names.index((t[0] or "", t[1], t[2])) for t in tmpl])
    labels: list[str] = []
    per_row = []
    for t in tmpl:
        counts: dict[str, int] = {}
        preds = json.loads(t[6]) if t[6] and t[3] == 200 else None
        if isinstance(preds, list) and preds and all(isinstance(p, (int, str)) for p in preds):
            for p in preds:
                counts[str(p)] = counts.get(str(p), 0) + 1
        labels += [c for c in counts if c not in labels]
        per_row.append(counts)
    classes = np.array([[c.get(label, 0) for label in labels] for c in per_row]).reshape(len(tmpl), len(labels))
    k = np.arange(n, dtype=np.int64) % kinds

    def class_counts(group_of: np.ndarray, groups: int) -> list[dict | None]:
        by_class = np.stack([np.bincount(group_of, classes[k, c], groups) for c in range(len(labels))], 1)
        return [{labels[c]: int(by_class[g, c]) for c in np.flatnonzero(by_class[g])} or None for g in range(groups)]

    column = np.array([t[3:6] for t in tmpl], np.float64)  # status, latency, input rows
    folded = rollups.fold(
        names,
        code[k],
        ts=t0 + np.arange(n, dtype=np.float64) * step,
        status=column[k, 0].astype(np.int64),
        latency_ms=column[k, 1],
        input_rows=column[k, 2],
        first_id=first_id,
        classes=class_counts if labels else lambda _group_of, groups: [None] * groups,
    )
    rollups.write(conn, folded)


def writer_rate(db: Path, rows: int, *, with_rollups: bool = True, tag: str = "") -> tuple[float, float]:
    """Rows/s the request-log writer sustains into `db`: `rows` single-row digits requests queued, then written
    in its batches (rollups included unless `with_rollups` is False), as model and deployment bench-writer
    (kept out of the charted deployment's rows). (rows per wall second, rows per CPU second of this process:
    the writer is one CPU-bound thread, so the second is what it sustains on a core of its own)."""
    log = RequestLog(db, ServingConfig(log_queue_size=rows + 1))
    log.bind("bench-writer")
    rng = np.random.default_rng(0)
    X = rng.integers(0, 16, (256, 1, 64)).astype(np.float32)
    now = time.time()
    prefix = secrets.token_hex(6)  # request ids as the server makes them: a random prefix and a counter
    for i in range(rows):
        log.offer(
            (
                f"{prefix}-{tag}{i}",
                now + i / rows,
                "bench-writer",
                "1",
                None,
                "mlflow",
                200,
                1.5,
                X[i % 256],
                np.array([i % 10]),
                None,
            )
        )
    record = requestlog_module.rollups.record
    if not with_rollups:
        requestlog_module.rollups.record = lambda *a, **k: 0
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        log.flush()
        return rows / (time.perf_counter() - wall), rows / (time.process_time() - cpu)
    finally:
        requestlog_module.rollups.record = record


def first_pass_count(db: Path, version: str) -> float:
    """Milliseconds the monitor's first window count takes (a restarted server: the version's rollups summed)."""
    conn = deploydb.connect(db)
    try:
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            rollups.logged_rows(conn, MODEL, version, deployment=NAME)
            times.append((time.perf_counter() - t0) * 1000)
        return statistics.median(times)
    finally:
        conn.close()


def file_bytes(db: Path) -> int:
    return sum(Path(f"{db}{s}").stat().st_size for s in ("", "-wal") if Path(f"{db}{s}").exists())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_pid(root: Path) -> int | None:
    """The pid of NAME's model server in workspace `root` (other work on the machine may run deployments too)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                args = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            here = {str(root).encode(), str(root.resolve()).encode()}
            if b"aidevops_ext.deploy.child" in args and NAME.encode() in args and here & set(args):
                return int(entry.name)
    return None


def pandas_peer(db: Path, model: str):
    import numpy as np
    import pandas as pd

    def run():
        with sqlite3.connect(db) as conn:
            frame = pd.read_sql_query(
                "SELECT ts, status, latency_ms FROM request_log WHERE model = ? AND ts >= ?",
                conn,
                params=(model, time.time() - 3600),
            )
        lat = frame["latency_ms"].to_numpy()
        return {
            "requests": len(frame),
            "error_rate": float((frame["status"] >= 500).mean()),
            "p50": float(np.percentile(lat, 50)),
            "p95": float(np.percentile(lat, 95)),
            "p99": float(np.percentile(lat, 99)),
        }

    return run


@dataclass
class Timing:
    median: float  # ms, wall
    p95: float  # ms, wall
    cpu: float  # ms of CPU a call in the Jupyter server (or in this process, for what runs here)
    server_cpu: float = math.nan  # ms of CPU a call in the model server, its background work included


def timed(fn, calls: int, lab: int | None = None, server: int | None = None) -> Timing:
    """`calls` sequential calls after 5 warm-up calls: wall median and p95, and the CPU they cost a call in the
    process `lab` (this one when None) and in `server`. On a shared machine the wall figures wait for a core;
    the CPU figures do not."""
    for _ in range(5):
        fn()
    times = []
    cpu0 = time.process_time() if lab is None else cpu_seconds(lab)
    server0 = cpu_seconds(server) if server else math.nan
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    cpu = ((time.process_time() if lab is None else cpu_seconds(lab)) - cpu0) * 1000 / calls
    server_cpu = ((cpu_seconds(server) - server0) * 1000 / calls) if server else math.nan
    times.sort()
    return Timing(statistics.median(times), times[int(0.95 * (len(times) - 1))], cpu, server_cpu)


def endpoint(client: httpx.Client, path: str, query: dict):
    return lambda: client.get(f"deployments/{NAME}/{path}", params=query).raise_for_status()


def measure(
    root: Path, client: httpx.Client, db: Path, args: argparse.Namespace, lab_pid: int, *, week: bool = False
) -> dict[str, list[Timing]]:
    """Start the deployment, time the panel's endpoints against it, stop it: {name: [Timing of each round]}.
    REPEATED endpoints are timed in args.repeats rounds (alternated with the others' first round)."""
    aidevops(root, "deploy", f"{MODEL}@champion", "--name", NAME)
    try:
        for _ in range(120):
            summary = client.get(f"deployments/{NAME}/monitor", params={"refresh": "1"})
            if summary.status_code == 200 and summary.json().get("status") == "ok":
                break
            time.sleep(1)
        summary = summary.json()
        series = client.get(f"deployments/{NAME}/series", params={"minutes": 60, "buckets": 60}).json()
        print(
            f"  monitor: status {summary['status']}, window of {summary['logged_rows']} rows of v{summary['version']}, "
            f"{summary.get('completed_windows')} completed windows; the hour's series charts "
            f"{sum(series['requests']['requests'])} requests"
        )
        server = server_pid(root)
        few = max(20, args.calls // 10)
        out: dict[str, list[Timing]] = {}
        for round_ in range(args.repeats):
            for name, (path, query, _what) in ENDPOINTS.items():
                if (name == "week" and not week) or (round_ and name not in REPEATED):
                    continue
                calls = args.calls if name == "summary" else few
                out.setdefault(name, []).append(timed(endpoint(client, path, query), calls, lab_pid, server))
        out["peer"] = [timed(pandas_peer(db, MODEL), few)]
        ws = Workspace(root)
        out["inproc"] = [timed(lambda: observe.series(ws, NAME), few)]
        return out
    finally:
        aidevops(root, "undeploy", NAME)


def median_of(rounds: list[Timing]) -> Timing:
    return Timing(*(statistics.median(getattr(r, f) for r in rounds) for f in ("median", "p95", "cpu", "server_cpu")))


def writer_runs(db: Path, rows: int, runs: int) -> dict[bool, list[tuple[float, float]]]:
    """`runs` writer runs with rollups and as many without, alternated: neither gets the warmer cache or the
    quieter minute every time. {with rollups: [(rows/s, rows per CPU second), ...]}."""
    out: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for i in range(runs):
        for with_rollups in (False, True):
            out[with_rollups].append(writer_rate(db, rows, with_rollups=with_rollups, tag=f"{i}{int(with_rollups)}"))
    return out


def report(sizes: list[tuple[str, dict[str, list[Timing]]]]) -> None:
    print(f"\n{'endpoint':<10} {'rows':>11} {'median ms':>10} {'p95 ms':>8} {'CPU ms':>7} {'server':>7}   what")
    what = {name: text for name, (_p, _q, text) in ENDPOINTS.items()}
    what["peer"] = "pandas read of the hour's log + request stats (CPU: this process)"
    what["inproc"] = "series in-process, deploy/observe.py (CPU: this process)"
    for label, result in sizes:
        for key, text in what.items():
            if key not in result:
                continue
            m = median_of(result[key])
            print(f"{key:<10} {label:>11} {m.median:>10.2f} {m.p95:>8.2f} {m.cpu:>7.2f} {m.server_cpu:>7.2f}   {text}")
            if len(result[key]) > 1:
                walls = " / ".join(f"{r.median:.2f}" for r in result[key])
                cpus = " / ".join(f"{r.cpu:.2f}" for r in result[key])
                print(f"{'':<10} {'':>11} rounds: {walls} ms wall, {cpus} ms CPU in Jupyter")
    print(
        "CPU ms: a call's CPU in the Jupyter server (peer, inproc: in this process); server: in the model server,\n"
        "its own background work (monitor passes) included, which the series never calls"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for option, (default, text) in OPTIONS.items():
        ap.add_argument(f"--{option}", type=int, default=default, help=text)
    ap.add_argument("--keep", action="store_true", help="Keep the temporary workspace.")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="aidevops-panel-bench-"))
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    shutil.copytree(ROOT / "pipelines", root / "pipelines")
    lab = None
    try:
        t0 = time.time()
        aidevops(root, "run", "ci")
        aidevops(root, "deploy", f"{MODEL}@champion", "--name", NAME)
        aidevops(root, "simulate", NAME, "--rate", "400", "--duration", "5", "--feedback", "0.5")
        time.sleep(2)  # the request log's last batch
        aidevops(root, "undeploy", NAME)
        db = root / ".aidevops" / "deploy.db"
        with sqlite3.connect(db) as conn:
            oldest = conn.execute("SELECT min(ts) FROM request_log WHERE deployment = ?", (NAME,)).fetchone()[0]
            logged = conn.execute("SELECT count(*) FROM request_log").fetchone()[0]
        if not logged < args.requests <= args.big:
            sys.exit(
                f"--requests must be over the {logged} logged requests it grows from, and --big at least --requests."
            )
        hour_end = math.floor(oldest / deploydb.ROLLUP_SECONDS) * deploydb.ROLLUP_SECONDS
        # ids as a server would have given them, in time order: the week's copies, the hour's, the real requests
        week = args.big - args.requests
        make_room(db, week + args.requests - logged)
        total, took = grow_log(db, args.requests, hour_end, 3600.0, "hour", first_id=week + 1)
        print(f"set-up {time.time() - t0:.0f} s: {total} logged requests of {MODEL} in {db} (grown in {took:.1f} s)")

        port, token = free_port(), secrets.token_hex(16)
        env = dict(os.environ, AIDEVOPS_HOME=str(root))
        lab = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_server",
                f"--port={port}",
                "--ServerApp.ip=127.0.0.1",
                f"--IdentityProvider.token={token}",
                "--allow-root",
                f"--ServerApp.root_dir={root}",
                "--no-browser",
            ],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}/aidevops/api/"
        with httpx.Client(base_url=base, headers={"Authorization": f"token {token}"}, timeout=120) as client:
            for _ in range(240):
                try:
                    if client.get("deployments").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.5)
            print(f"\n{total:,} logged requests:")
            small = measure(root, client, db, args, lab.pid)

            big, took = grow_log(db, args.big, hour_end - 3600.0, WEEK - 3600.0, "week", first_id=1)
            print(f"\ngrew the log to {big:,} requests over a week in {took:.0f} s")
            with sqlite3.connect(db) as conn:
                version = conn.execute(
                    "SELECT version FROM request_rollup WHERE deployment = ? GROUP BY version "
                    "ORDER BY sum(requests) DESC LIMIT 1",
                    (NAME,),
                ).fetchone()[0]
                charted = conn.execute(
                    "SELECT sum(requests) FROM request_rollup WHERE deployment = ?", (NAME,)
                ).fetchone()[0]
            print(f"  rollups count {charted:,} requests of {NAME} (the log holds {big:,})")
            runs = writer_runs(db, args.writer_rows, args.repeats)
            with sqlite3.connect(db) as conn:
                rows = conn.execute("SELECT count(*) FROM request_log").fetchone()[0]
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                rollup_rows = conn.execute("SELECT count(*) FROM request_rollup").fetchone()[0]
                try:
                    rollup_bytes = conn.execute(
                        "SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'request_rollup%'"
                    ).fetchone()[0]
                except sqlite3.OperationalError:  # SQLite without the dbstat table
                    rollup_bytes = None
            size = file_bytes(db)
            first_count = first_pass_count(db, version)
            print(f"\n{big:,} logged requests:")
            large = measure(root, client, db, args, lab.pid, week=True)

        report([(f"{total:,}", small), (f"{big:,}", large)])
        print(f"monitor's first window count at {big:,} rows (rollups summed): {first_count:.2f} ms")
        rate, rate_cpu = (statistics.median(r[j] for r in runs[True]) for j in (0, 1))
        bare, bare_cpu = (statistics.median(r[j] for r in runs[False]) for j in (0, 1))
        print(
            f"request-log writer, {args.writer_rows:,} single-row requests a run into the {big:,}-row file, "
            f"median of {args.repeats}: {rate:,.0f} rows/s with rollups, {bare:,.0f} without ({rate / bare:.2f}x); "
            f"per CPU second {rate_cpu:,.0f} with rollups, {bare_cpu:,.0f} without"
        )
        for with_rollups, label in ((True, "with rollups"), (False, "without")):
            print(
                f"  runs {label}: "
                + ", ".join(f"{wall:,.0f} rows/s ({cpu:,.0f} per CPU s)" for wall, cpu in runs[with_rollups])
            )
        print(
            f"file: {size / 1e9:.2f} GB for {rows:,} logged requests = {size / rows:.0f} bytes per logged row "
            f"(rollups: {rollup_rows:,} rows"
            + (
                f", {rollup_bytes / 1e6:.1f} MB = {rollup_bytes / rows:.1f} bytes per logged row)"
                if rollup_bytes
                else ")"
            )
        )
        checks = [
            ("summary median at 100k", small["summary"], TARGET_MS),
            ("series median at 100k", small["series"], TARGET_MS),
            (f"series median at {big:,}", large["series"], BIG_SERIES_MS),
            (f"monitor pass (recompute) median at {big:,}", large["recompute"], BIG_PASS_MS),
        ]
        for text, rounds, target in checks:
            m = median_of(rounds)
            print(
                f"{'PASS' if m.median <= target else 'FAIL'}: {text} {m.median:.2f} ms "
                f"(target <= {target:.0f} ms; {m.cpu:.2f} ms of CPU a call in Jupyter, {m.server_cpu:.2f} in the server)"
            )
        print(
            f"{'PASS' if rate >= INSERT_TARGET else 'FAIL'}: sustained insert {rate:,.0f} rows/s "
            f"({rate_cpu:,.0f} per CPU second; target >= {INSERT_TARGET:,})"
        )
    finally:
        if lab is not None:
            lab.terminate()
            lab.wait(30)
        subprocess.run(
            [sys.executable, "-m", "aidevops_ext.cli", "undeploy", "--all"],
            cwd=root,
            env=dict(os.environ, AIDEVOPS_HOME=str(root)),
            capture_output=True,
            timeout=120,
        )
        if args.keep:
            print(f"workspace kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
