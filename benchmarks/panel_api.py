"""Panel API benchmark: the Monitor panel's summary endpoint with 100,000 logged requests.

    python benchmarks/panel_api.py [--requests 100000] [--calls 200] [--keep]

Set-up (a temporary workspace): `aidevops run ci` registers ci-digits; it is deployed locally and sent
2,000 real requests (half labelled), then the request log is grown to --requests rows by copying those
logged rows with timestamps spread over the last hour (what an hour of traffic at ~28 req/s leaves).
A real Jupyter server with the extension serves the API on 127.0.0.1 (token auth).

Timed, one client, sequential calls, median and p95 of --calls after 5 warm-up calls:
  ours      GET /aidevops/api/deployments/NAME/monitor   the latest monitor pass (what the panel polls)
  series    GET /aidevops/api/deployments/NAME/series    60 one-minute buckets over the whole log + accuracy curve
  recompute GET .../monitor?refresh=1                    a full monitor pass on demand (drift, quality, alerts)
  peer      pandas: read the hour's request log (100k rows) and compute the same request statistics
            (count, error rate, latency percentiles), the way a notebook dashboard polling the log would
Also printed: the model server's CPU seconds spent answering the --calls summary polls (from
/proc/<pid>/stat), i.e. what polling costs the server. Target: ours <= 20 ms median.
"""

from __future__ import annotations

import argparse
import json
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
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
MODEL = "ci-digits"
NAME = "bench-panel"
TARGET_MS = 20.0


def aidevops(root: Path, *args: str) -> str:
    env = dict(os.environ, AIDEVOPS_HOME=str(root), MPLBACKEND="Agg")
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


def grow_log(db: Path, target: int) -> int:
    """Copy the logged rows until the log holds `target` requests, timestamps spread over the last hour."""
    with sqlite3.connect(db) as conn:
        cols = [r[1] for r in conn.execute("PRAGMA table_info(request_log)") if r[1] not in ("id",)]
        have = conn.execute("SELECT count(*) FROM request_log").fetchone()[0]
        rows = conn.execute(f"SELECT {', '.join(cols)} FROM request_log ORDER BY id").fetchall()
        now, ts_at = time.time(), cols.index("ts")
        rid_at = cols.index("request_id")
        batch = []
        for i in range(target - have):
            row = list(rows[i % len(rows)])
            row[ts_at] = now - 3600 + 3600 * i / max(target - have, 1) - 5
            row[rid_at] = f"bench-{i}"
            batch.append(row)
        conn.executemany(f"INSERT INTO request_log ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", batch)
        return conn.execute("SELECT count(*) FROM request_log").fetchone()[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(fn, calls: int) -> tuple[float, float]:
    for _ in range(5):
        fn()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_pid(url: str) -> int | None:
    """The deployment server's pid (the benchmark runs one deployment; `url` is kept for the call sites)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                args = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(b"aidevops_ext.deploy.child" in a for a in args):
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--calls", type=int, default=200)
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
        dep = json.loads(aidevops(root, "deployments", NAME, "--json"))
        dep = dep[0] if isinstance(dep, list) else dep
        url = dep.get("url") or dep["deployment"]["url"]
        aidevops(root, "simulate", NAME, "--rate", "400", "--duration", "5", "--feedback", "0.5")
        db = root / ".aidevops" / "deploy.db"
        time.sleep(2)  # the request log's last batch
        total = grow_log(db, args.requests)
        print(f"set-up {time.time() - t0:.0f} s: {total} logged requests of {MODEL} in {db}")

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
            summary = client.get(f"deployments/{NAME}/monitor", params={"refresh": "1"}).json()
            series = client.get(f"deployments/{NAME}/series", params={"minutes": 60, "buckets": 60}).json()
            charted = sum(series["requests"]["requests"])
            print(
                f"monitor summary: status {summary['status']}, {summary['logged_rows']} logged rows of v{summary['version']}; "
                f"series charts {charted} requests"
            )

            pid = server_pid(url)
            cpu0 = cpu_seconds(pid) if pid else None
            ours = timed(lambda: client.get(f"deployments/{NAME}/monitor").raise_for_status(), args.calls)
            cpu = (cpu_seconds(pid) - cpu0) if pid else float("nan")
            ser = timed(lambda: client.get(f"deployments/{NAME}/series").raise_for_status(), max(20, args.calls // 10))
            recompute = timed(
                lambda: client.get(f"deployments/{NAME}/monitor", params={"refresh": "1"}).raise_for_status(),
                max(20, args.calls // 10),
            )
        peer = timed(pandas_peer(db, MODEL), max(20, args.calls // 10))

        print(f"\n{'endpoint':<12} {'median ms':>10} {'p95 ms':>8}   what")
        print(f"{'ours':<12} {ours[0]:>10.2f} {ours[1]:>8.2f}   GET monitor (latest pass), {args.calls} calls")
        print(
            f"{'series':<12} {ser[0]:>10.2f} {ser[1]:>8.2f}   GET series (60 buckets over {charted} requests + accuracy curve)"
        )
        print(f"{'recompute':<12} {recompute[0]:>10.2f} {recompute[1]:>8.2f}   GET monitor?refresh=1 (a full pass now)")
        print(f"{'peer':<12} {peer[0]:>10.2f} {peer[1]:>8.2f}   pandas read of the hour's log + request stats")
        print(f"\nratio ours/peer {ours[0] / peer[0]:.3f}; ours/recompute {ours[0] / recompute[0]:.3f}")
        print(
            f"model server CPU for {args.calls} summary polls: {cpu * 1000:.0f} ms "
            f"({cpu * 1000 / args.calls:.2f} ms a poll; at one poll per 5 s: {cpu / args.calls / 5 * 100:.3f} % of a core)"
        )
        print(
            f"{'PASS' if ours[0] <= TARGET_MS else 'FAIL'}: summary median {ours[0]:.2f} ms (target <= {TARGET_MS:.0f} ms)"
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
