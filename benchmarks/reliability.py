"""Reliability figures of local deployments: time back after kill -9, and requests served during version switches.

    python benchmarks/reliability.py [--kills 3] [--switches 20] [--pause 0.05] [--concurrency 4] [--workers 1]

The tests (tests/deploy/test_reliability.py) prove that these things happen; how fast they happen is
measured here, because a shared, busy machine must not fail a test. A scratch workspace gets a fresh
SQLite registry with `dig` v1 (champion) and v2, built by the deploy tests' own helpers
(tests/deploy/conftest.py, whose load generator also drives the server: both protocols, --concurrency
connections). Then, on real supervised servers on 127.0.0.1:

- kill -9: --kills times, a fresh deployment's server is killed; timed from the kill until the
  supervisor's new server answers /v2/health/ready. A fresh deployment each time, because the supervisor
  restarts the first death at once and later ones with backoff. Target: back within 5 s.
- switches: --switches version switches (v2, v1, v2, ...) with --pause seconds after each, while the
  load generator runs; printed: requests sent during the switching, requests/s, non-2xx answers,
  connection errors, answers per version. Target: >= 200 requests during 20 switches, none non-2xx.

With --workers N every deployment runs N server processes (`deploy --workers N`): the kill -9 is then of
the process supervising them, and each switch reaches all of them before it is answered.

Exit status 1 when a request failed or a server did not come back at all (those are bugs, not
timings); the targets are printed beside the figures. Run it on a quiet machine, more than once.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.deploy.conftest builds the registry and drives the load

from aidevops_ext.deploy import manager  # noqa: E402
from aidevops_ext.workspace import Workspace  # noqa: E402
from tests.deploy.conftest import (  # noqa: E402
    ENV_VARS,
    MODEL,
    LoadGenerator,
    ready,
    register_versions,
    request_rows,
)

RESTART_TARGET_S = 5.0
REQUESTS_TARGET = 200  # during 20 switches
GIVE_UP_S = 120.0  # a server not back by then counts as not coming back


def time_back_after_kill(ws: Workspace, name: str, workers: int = 1) -> float | None:
    """Seconds from kill -9 of a fresh deployment's server (with `workers` workers: the process supervising
    them) until its replacement is ready; None if it never is."""
    manager.deploy(ws, f"{MODEL}@champion", name=name, reason="reliability benchmark", workers=workers)
    before = manager.get(ws, name)
    os.kill(before.server_pid, signal.SIGKILL)
    killed = time.perf_counter()
    try:
        while time.perf_counter() - killed < GIVE_UP_S:
            dep = manager.get(ws, name)
            if dep.server_pid not in (None, before.server_pid) and dep.state == "running" and ready(before.url):
                return time.perf_counter() - killed
            time.sleep(0.01)
        return None
    finally:
        manager.undeploy(ws, name, reason="reliability benchmark done")


def switches_under_load(ws: Workspace, switches: int, pause: float, concurrency: int, workers: int = 1) -> dict:
    """Switch versions `switches` times under load; what the load generator saw, and for how long."""
    dep = manager.deploy(
        ws, f"{MODEL}@champion", name="bench-switch", reason="reliability benchmark", workers=workers
    ).deployment
    try:
        with LoadGenerator(dep.url, MODEL, request_rows(), concurrency=concurrency) as load:
            sent0, t0 = load.stats.sent, time.perf_counter()
            for i in range(switches):
                manager.deploy(
                    ws,
                    f"{MODEL}/{'2' if i % 2 == 0 else '1'}",
                    name="bench-switch",
                    reason=f"switch {i + 1} of {switches}",
                )
                time.sleep(pause)
            seconds, sent = time.perf_counter() - t0, load.stats.sent - sent0
        stats = load.stats
        return {
            "sent": sent,
            "seconds": seconds,
            "non_2xx": stats.non_2xx,
            "statuses": dict(stats.statuses),
            "errors": dict(stats.errors),
            "versions": dict(stats.versions),
        }
    finally:
        manager.undeploy(ws, "bench-switch", reason="reliability benchmark done")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=3, help="kill -9 measurements, each on a fresh deployment")
    ap.add_argument("--switches", type=int, default=20, help="version switches under load")
    ap.add_argument("--pause", type=float, default=0.05, help="seconds after each switch (as the test does)")
    ap.add_argument("--concurrency", type=int, default=4, help="load generator connections")
    ap.add_argument("--workers", type=int, default=1, help="server processes of each deployment (deploy --workers)")
    args = ap.parse_args()
    if min(args.kills, args.switches, args.concurrency, args.workers) < 1 or args.pause < 0:
        ap.error("--kills, --switches, --concurrency and --workers must be positive and --pause not negative")
    with tempfile.TemporaryDirectory(prefix="aidevops-reliability-") as tmp:
        root = Path(tmp)
        for var in ENV_VARS:  # a scratch workspace: nothing of the caller's MLflow or aidevops settings
            os.environ.pop(var, None)
        os.environ.update(
            AIDEVOPS_HOME=str(root),
            AIDEVOPS_ACTOR="reliability-benchmark",
            AIDEVOPS_DEPLOY_WATCH_PID=str(os.getpid()),  # supervisors stop if this script dies
            MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
        )
        os.chdir(root)  # MLflow's Default experiment writes under the working folder
        ws = Workspace(root)
        print("building the registry (dig v1, v2) ...", flush=True)
        register_versions(ws, broken=False)
        try:
            backs = [time_back_after_kill(ws, f"bench-kill-{i}", args.workers) for i in range(args.kills)]
            load = switches_under_load(ws, args.switches, args.pause, args.concurrency, args.workers)
        finally:
            manager.undeploy_all(ws, reason="reliability benchmark done")
    failed = False
    print(f"deployments with {args.workers} worker(s)")
    timed = [b for b in backs if b is not None]
    if timed:
        print(
            f"kill -9, back serving after: median {statistics.median(timed):.2f} s, min {min(timed):.2f} s, "
            f"max {max(timed):.2f} s over {len(timed)} kills (target <= {RESTART_TARGET_S:.0f} s: "
            f"{'met' if max(timed) <= RESTART_TARGET_S else 'missed'})"
        )
    if len(timed) < len(backs):
        print(f"kill -9: {len(backs) - len(timed)} of {len(backs)} servers were not back after {GIVE_UP_S:.0f} s")
        failed = True
    rate = load["sent"] / load["seconds"] if load["seconds"] > 0 else 0.0
    target = REQUESTS_TARGET * args.switches / 20
    print(
        f"{args.switches} switches in {load['seconds']:.2f} s: {load['sent']} requests ({rate:.0f}/s; target >= "
        f"{target:.0f}: {'met' if load['sent'] >= target else 'missed'}); the whole load run (warm-up included): "
        f"statuses {load['statuses']}, connection errors {load['errors']}, answers by version {load['versions']}"
    )
    if load["non_2xx"] or load["errors"]:
        print("switches: some requests failed")
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
