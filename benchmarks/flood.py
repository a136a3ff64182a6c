"""Flood: maximum-rate predictions and feedback against one local deployment whose retention is small.

    python benchmarks/flood.py [--seconds 20] [--rounds 2] [--concurrency 8] [--batch 50] [--max-rows 2000] [--max-mb 2]

A scratch workspace gets a small MLP (16 features, 3 classes) in the deployment cache and a deployment
`flood` whose `monitor:` section sets `retention: {max_rows, max_age_days: 1, max_mb}`. Its server is
the real deployment child (`python -m aidevops_ext.deploy.child`, uvloop, httptools, one worker) on
127.0.0.1, with the compactor at the server's default (every 30 s, and once a tenth of a budget was written;
`--compact-seconds` changes the interval). Then, in one run, `--rounds` times:
1. no flood: a probe sends one single-row prediction every 10 ms for `--seconds` and records each latency;
2. flood: the same probe while a generator process keeps `--concurrency` connections busy with
   `--batch`-row predictions, each followed by feedback labelling every row of it (the token from
   `aidevops token flood`), for `--seconds`. deploy.db's size (with -wal and -shm) is sampled every 0.25 s.
Prints the probe's p50/p99 over each kind of phase and their ratio (target p99 <= 2x), the flood's request and label
rates, the CPU the server and the flood's client used, deploy.db's largest and final size against the retention, the
rows kept, and the bytes one logged request weighs on disk. Linux only (CPU affinity): the server gets CPU 0, the
clients the other CPUs, when there are at least two.

The flood's client speaks HTTP/1.1 itself on uvloop and runs at the idle scheduling class. A flood is only at the
maximum rate when the server's core is the one that is full (the printed server CPU near 1.00): an httpx client
spends about what the server does a request, so it filled its own core at a sixth of the server's rate, and the
probe, which shares that core, then timed its own wait for the CPU instead of the server.

tests/serving/test_flood.py runs the same flood (without timing assertions) through `Flood`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
NAME = "flood"
COUNTED = ("predictions", "feedback", "labels", "deferred", "refused", "errors")  # the generator's answers, by kind
N_FEATURES = 16


def make_model(path: Path, seed: int = 0) -> Path:
    """A small standardised MLP classifier with a reference profile, saved as the server loads it."""
    from aidevops_ext import trainer
    from aidevops_ext.monitoring.profile import build_profile

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(600, N_FEATURES)).astype(np.float32)
    y = np.digitize(X[:, 0] + 0.5 * X[:, 1], [-0.5, 0.5])
    est = trainer.Scaled(
        trainer.MLPClassifier(hidden_layer_sizes=(16,), epochs=5, batch_size=64, random_state=seed, backend="numpy")
    )
    est.fit(X, y, progress=False)
    names = [f"f{i}" for i in range(N_FEATURES)]
    profile = build_profile(X, names, predictions=est.predict(X))
    return trainer.save_model(est, path, profile=profile, metadata={"feature_names": names, "name": NAME})


def make_deployment(root: Path, retention: dict, model_file: Path | None = None) -> Path:
    """A workspace at `root` with deployment `flood` (model `flood` v1 from the deployment cache); its deploy.db."""
    from aidevops_ext.deploy.store import Deployment, DeployStore
    from aidevops_ext.deploy.versions import cache_dir
    from aidevops_ext.workspace import Workspace

    ws = Workspace(root)
    ws.state.mkdir(parents=True, exist_ok=True)
    cached = cache_dir(ws, NAME, "1") / "model.npz"
    cached.parent.mkdir(parents=True, exist_ok=True)
    if model_file is None:
        make_model(cached)
    else:
        cached.write_bytes(model_file.read_bytes())
    monitor = {"window": 500, "min_rows": 200, "retention": retention}
    now = time.time()
    DeployStore(ws).put(
        Deployment(
            name=NAME,
            model=NAME,
            ref=f"{NAME}/1",
            state="running",
            created=now,
            updated=now,
            active_version="1",
            options=json.dumps({"monitor": monitor}),
        )
    )
    return ws.deploy_db


def db_bytes(db: Path) -> int:
    """deploy.db's size on disk with its -wal and -shm files."""
    return sum(os.path.getsize(f"{db}{s}") for s in ("", "-wal", "-shm") if os.path.exists(f"{db}{s}"))


def _env(root: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AIDEVOPS_"))}
    env.update(AIDEVOPS_HOME=str(root), PYTHONPATH=str(REPO), OPENBLAS_NUM_THREADS="1", **extra)
    return env


def _cpus() -> tuple[set[int] | None, set[int] | None]:
    """(server CPUs, client CPUs): CPU 0 and the others when there are two or more, else no pinning."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return None, None
    return ({cpus[0]}, set(cpus[1:])) if len(cpus) >= 2 else (None, None)


SERVER_CPUS, CLIENT_CPUS = _cpus()  # before main() narrows this process's own affinity


class Flood:
    """The deployment's server (start/stop) and the two load phases."""

    def __init__(self, root: Path, *, compact_seconds: float = 1.0, monitor_seconds: float = 5.0) -> None:
        self.root = Path(root)
        self.db = self.root / ".aidevops" / "deploy.db"
        self.compact_seconds = compact_seconds
        self.monitor_seconds = monitor_seconds
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self, timeout: float = 90.0) -> None:
        server_cpus = SERVER_CPUS
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(2048)
        sock.set_inheritable(True)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        log = open(self.root / "flood-server.log", "wb")  # noqa: SIM115 - the child keeps writing to it
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aidevops_ext.deploy.child",
                NAME,
                "--workspace",
                str(self.root),
                "--fd",
                str(sock.fileno()),
            ],
            env=_env(
                self.root,
                AIDEVOPS_COMPACT_SECONDS=str(self.compact_seconds),
                AIDEVOPS_MONITOR_SECONDS=str(self.monitor_seconds),
            ),
            pass_fds=(sock.fileno(),),
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=(lambda: os.sched_setaffinity(0, server_cpus)) if server_cpus else None,
        )
        sock.close()
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited: {(self.root / 'flood-server.log').read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/ping", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the server did not answer: {(self.root / 'flood-server.log').read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def token(self) -> str:
        from aidevops_ext.tokens import ensure_feedback_token
        from aidevops_ext.workspace import Workspace

        return ensure_feedback_token(Workspace(self.root), NAME)

    def generator(self, seconds: float, concurrency: int, batch: int) -> subprocess.Popen:
        """The flood's client process: prints {"predictions", "feedback", "labels", "errors"} when done."""
        client_cpus = CLIENT_CPUS
        args = [self.url, str(seconds), str(concurrency), str(batch)]
        return subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--generate", *args],
            env=_env(self.root, FLOOD_FEEDBACK_TOKEN=self.token()),  # a token is never put on a command line
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: _generator_process(client_cpus),
        )

    def flood(self, seconds: float, concurrency: int = 8, batch: int = 50, sample_every: float = 0.25) -> dict:
        """Run the flood for `seconds`; its counts and deploy.db's sampled sizes."""
        sizes: list[int] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(sample_every):
                sizes.append(db_bytes(self.db))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        cpu0, wall0 = self.server_cpu_seconds(), time.monotonic()
        gen = self.generator(seconds, concurrency, batch)
        out, _ = gen.communicate(timeout=seconds + 120)
        cpu1, wall1 = self.server_cpu_seconds(), time.monotonic()
        stop.set()
        sampler.join()
        if gen.returncode != 0:
            raise RuntimeError(f"the flood generator failed ({gen.returncode})")
        server_cpu = (cpu1 - cpu0) / (wall1 - wall0) if cpu0 is not None and cpu1 is not None else float("nan")
        return {**json.loads(out.strip().splitlines()[-1]), "sizes": sizes, "server_cpu": server_cpu}

    def server_cpu_seconds(self) -> float | None:
        """CPU seconds the server process has used, all its threads (Linux /proc; None elsewhere)."""
        if self.proc is None:
            return None
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def probe(self, seconds: float, every: float = 0.01) -> np.ndarray:
        """Latencies (ms) of single-row predictions sent one at a time, one every `every` seconds."""
        return asyncio.run(_probe(self.url, seconds, every))

    def counts(self) -> dict[str, int]:
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True) as conn:
            return {
                "request_log": conn.execute("SELECT count(*) FROM request_log").fetchone()[0],
                "feedback": conn.execute("SELECT count(*) FROM feedback").fetchone()[0],
                "logged_bytes": conn.execute("SELECT COALESCE(SUM(size_bytes), 0) FROM request_log").fetchone()[0],
            }


async def _probe(url: str, seconds: float, every: float) -> np.ndarray:
    import httpx

    body = json.dumps({"inputs": [[0.1] * N_FEATURES]}).encode()
    headers = {"Content-Type": "application/json"}
    out = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        end = time.monotonic() + seconds
        nxt = time.monotonic()
        while time.monotonic() < end:
            t0 = time.perf_counter()
            r = await client.post("/invocations", content=body, headers=headers)
            out.append((time.perf_counter() - t0) * 1000.0)
            if r.status_code != 200:
                raise RuntimeError(f"probe got {r.status_code}: {r.text[:200]}")
            nxt += every
            await asyncio.sleep(max(0.0, nxt - time.monotonic()))
    return np.asarray(out)


def _generator_process(cpus: set[int] | None) -> None:
    """The flood's client shares the probe's CPUs at the idle scheduling class (nice 19 where there is none): it
    floods whenever the probe waits, but the probe's clock reads the server's delay, not its own wait for a CPU the
    generator holds."""
    if cpus:
        os.sched_setaffinity(0, cpus)
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        os.nice(19)


class _Connection:
    """One keep-alive HTTP/1.1 connection, written by hand: the flood's client must cost far less a request than
    the server, or it measures its own CPU (an httpx client spends about as much a request as the server does)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    async def post(self, path: str, body: bytes, headers: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
        self.writer.write(
            b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n%s\r\n%s"
            % (path.encode(), self.host.encode(), len(body), headers, body)
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head[:-4].split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            fields[name.strip().lower()] = value.strip()
        return status, fields, await self.reader.readexactly(int(fields.get(b"content-length", b"0")))


async def _generate(url: str, token: str, seconds: float, concurrency: int, batch: int) -> dict:
    """Closed-loop clients: predict a batch, label every row of it, again, until time is up."""
    import orjson

    host = url.split("://", 1)[1]
    address, port = host.rsplit(":", 1)
    rng = np.random.default_rng(1)
    bodies = [orjson.dumps({"inputs": rng.normal(size=(batch, N_FEATURES)).round(4).tolist()}) for _ in range(8)]
    counts: dict[str, float] = dict.fromkeys(COUNTED, 0)
    counts.update(predict_ms=0.0, feedback_ms=0.0)
    cpu = time.process_time()  # the flood's own, not this process's start-up
    end = time.monotonic() + seconds
    headers = b"Content-Type: application/json\r\nAuthorization: Bearer %s\r\n" % token.encode()

    async def worker(k: int) -> None:
        conn = _Connection(*await asyncio.open_connection(address, int(port)), host)
        i = k
        try:
            while time.monotonic() < end:
                i += 1
                t0 = time.perf_counter()
                status, fields, body = await conn.post("/invocations", bodies[i % len(bodies)], headers)
                t1 = time.perf_counter()
                counts["predict_ms"] += (t1 - t0) * 1000.0
                if status != 200:
                    counts["errors"] += 1
                    continue
                counts["predictions"] += 1
                labels = [int(v) for v in orjson.loads(body)["predictions"]]
                feedback = orjson.dumps({"request_id": fields[b"x-request-id"].decode(), "labels": labels})
                status, fields, body = await conn.post("/feedback", feedback, headers)
                counts["feedback_ms"] += (time.perf_counter() - t1) * 1000.0
                if status == 200:
                    counts["feedback"] += 1
                    counts["labels"] += int(orjson.loads(body).get("accepted", 0))
                elif status == 503 and b"retry-after" in fields:
                    counts["deferred"] += 1  # over the retention until the compactor's next pass: the server's answer
                elif status == 422:
                    counts["refused"] += 1  # labels for a request the log dropped while over its retention
                else:
                    counts["errors"] += 1
        finally:
            conn.writer.close()

    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    counts["client_cpu"] = (time.process_time() - cpu) / seconds
    return counts


def _fast_event_loop() -> None:
    try:
        import uvloop  # the server's own event loop (uvicorn[standard]); plain asyncio where it is missing
    except ImportError:
        return
    uvloop.install()


def _p(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if values.size else float("nan")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--rounds", type=int, default=2, help="alternating no-flood / flood phases")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--batch", type=int, default=50, help="rows per flood prediction (each row gets a label)")
    p.add_argument("--max-rows", type=int, default=2000)
    p.add_argument("--max-mb", type=float, default=2.0)
    p.add_argument("--compact-seconds", type=float, default=30.0, help="compaction interval (the server's default)")
    p.add_argument("--monitor-seconds", type=float, default=5.0, help="live monitor interval (the default: 5)")
    p.add_argument("--workspace", type=Path, default=None, help="scratch folder (default: a temporary one)")
    p.add_argument("--generate", nargs=4, metavar=("URL", "SECONDS", "CONCURRENCY", "BATCH"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.generate:
        url, seconds, concurrency, batch = args.generate
        token = os.environ["FLOOD_FEEDBACK_TOKEN"]
        _fast_event_loop()
        print(json.dumps(asyncio.run(_generate(url, token, float(seconds), int(concurrency), int(batch)))))
        return 0

    client_cpus = CLIENT_CPUS
    if client_cpus:
        os.sched_setaffinity(0, client_cpus)
    root = args.workspace or Path(tempfile.mkdtemp(prefix="aidevops-flood-"))
    retention = {"max_rows": args.max_rows, "max_age_days": 1, "max_mb": args.max_mb}
    make_deployment(root, retention)
    flood = Flood(root, compact_seconds=args.compact_seconds, monitor_seconds=args.monitor_seconds)
    flood.start()
    try:
        flood.probe(2.0)  # warm-up
        quiet, loud, rounds = [], [], []
        totals: dict[str, float] = dict.fromkeys(COUNTED, 0)
        totals.update(predict_ms=0.0, feedback_ms=0.0, server_cpu=0.0, client_cpu=0.0)
        largest = 0
        for _ in range(args.rounds):  # alternating phases: the machine's other load drifts over both alike
            quiet.append(flood.probe(args.seconds))
            box: dict = {}
            thread = threading.Thread(
                target=lambda box=box: box.update(flood.flood(args.seconds, args.concurrency, args.batch)),
                daemon=True,
            )
            thread.start()
            time.sleep(1.0)  # the generator is up and busy
            loud.append(flood.probe(args.seconds - 1.0))
            thread.join()
            for key in totals:
                totals[key] += box[key]
            largest = max(largest, *box["sizes"])
            rounds.append((_p(quiet[-1], 99), _p(loud[-1], 99)))
        time.sleep(2.5)  # one more compaction pass after the last writes
        after = db_bytes(flood.db)
        kept = flood.counts()
    finally:
        flood.stop()
    q, f = np.concatenate(quiet), np.concatenate(loud)
    flooded = args.rounds * args.seconds
    per_row = kept["logged_bytes"] / kept["request_log"] if kept["request_log"] else float("nan")
    try:
        load = "load average " + " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        load = ""
    print(
        f"machine: {os.cpu_count()} CPUs, {load}; server pinned to {SERVER_CPUS or 'any'}, clients {client_cpus or 'any'}"
    )
    print(f"retention: {retention}; compaction every {args.compact_seconds:g} s")
    print(
        f"flood: {args.rounds} x {args.seconds:g} s, {args.concurrency} connections, {args.batch}-row predictions each "
        f"labelled: {totals['predictions'] / flooded:.0f} predictions/s, {totals['labels'] / flooded:.0f} labels/s, "
        f"{totals['deferred']} label bodies deferred (503, over the retention), {totals['refused']} refused (422, "
        f"their request's log entry dropped), {totals['errors']} errors; mean {totals['predict_ms'] / max(totals['predictions'], 1):.1f} ms a prediction, "
        f"{totals['feedback_ms'] / max(totals['feedback'], 1):.1f} ms a feedback"
    )
    print(
        f"CPU during the flood: server {totals['server_cpu'] / args.rounds:.2f} of a core (1.00: saturated), "
        f"flood client {totals['client_cpu'] / args.rounds:.2f}"
    )
    print(f"probe without flood: n={q.size} p50={_p(q, 50):.2f} ms p99={_p(q, 99):.2f} ms")
    print(f"probe during flood:  n={f.size} p50={_p(f, 50):.2f} ms p99={_p(f, 99):.2f} ms")
    print(
        f"p99 ratio (flood / no flood): {_p(f, 99) / _p(q, 99):.2f}x (target <= 2x); per round: "
        + ", ".join(f"{b:.1f}/{a:.1f} ms" for a, b in rounds)
    )
    print(
        f"deploy.db with -wal/-shm: largest {largest / 2**20:.1f} MB during the flood, "
        f"{after / 2**20:.1f} MB after; retention max_mb {args.max_mb:g}"
    )
    print(
        f"kept: {kept['request_log']} logged requests ({kept['logged_bytes'] / 2**20:.2f} MB by size_bytes), "
        f"{kept['feedback']} labels; one logged {args.batch}-row request ~{per_row:.0f} bytes"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
