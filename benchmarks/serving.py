"""The model server against `mlflow models serve` and a bare Starlette + orjson app, same model, same load.

    python benchmarks/serving.py [--workspace DIR] [--model models:/ci-digits@champion] [--seconds 10] [--rounds 2]
    python benchmarks/serving.py --tabular [--pipeline ci|default] [--seconds 10] [--rounds 2]
    python benchmarks/serving.py --oip-only [--workspace DIR] [--seconds 10] [--rounds 2]
    python benchmarks/serving.py --workers-only [--workspace DIR] [--worker-counts 1,2,4,8]

Without --workspace, a scratch workspace is made by running the `ci` pipeline (registers `ci-digits`,
alias `champion`, a 64-feature MLP with a tensor signature). Then three servers run the same registered
model, one uvicorn worker each, on 127.0.0.1:
- MLflow:  `mlflow models serve -m URI --env-manager local` (its defaults: asyncio + h11, access log);
- ours:    `python -m aidevops_ext.serving URI` (uvloop, httptools, no access log; request log on, as deployed);
- bare:    a minimal Starlette app doing the same predict: orjson.loads + np.array + predict + orjson.dumps,
           on uvicorn with uvloop, httptools and no access log (the floor for this stack).
All three get OPENBLAS_NUM_THREADS=1 (ours sets it itself; small matrix products only lose from more).

wrk (one thread, 8 connections; installed with apt-get when missing and running as root) drives each
server in turn, alternating, for `--seconds` per run: single-row bodies, then 1000-row bodies, for
`--rounds` rounds. Every server must answer the same predictions first, and every run must have no
non-2xx answer. Prints req/s, rows/s, p50/p99 (median over rounds) and the ratios the targets are about:
ours >= 8x MLflow single-row req/s with p99 <= 10 ms, >= 8x MLflow rows/s on batches, >= 0.8x bare.
Then ours once more, with --grpc-port: the same batch as Open Inference Protocol JSON, binary HTTP (the binary
tensor data extension) and gRPC, req/s and rows/s of each (serving_oip.py; --oip-only runs just that).
Then ours with 1 and 2 workers (`--workers N`; 4 and 8 too where the machine has more cores), single rows,
wrk pinned by taskset to the last CPU (--workers-only runs just that).
The machine's other load moves the numbers: run it on a quiet machine, more than once.

--tabular: a foreign MLflow model instead. `aidevops new` makes a project from the tabular template in a
scratch folder and `aidevops run PIPELINE` (ci by default: quicker; default registers churn-classifier)
trains and registers its scikit-learn Pipeline (imputation, one-hot categories, HistGradientBoosting).
The model is served by ours and by `mlflow models serve --env-manager local` twice: as a user runs it
("mlflow"), and with OMP_NUM_THREADS=1 as well ("mlflow-omp1", the peer with our thread setting). wrk
sends single-row `dataframe_split` bodies holding a null and category strings. Prints req/s, p50/p99,
ours / each MLflow, the model's bare predict time (pyfunc.predict of that row, one thread: the floor)
and the load average. Target: ours >= 2x MLflow single-row req/s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# wrk's request script: POST the file named by WRK_BODY (LUA_POST), as JSON (LUA); serving_oip.py adds its headers.
LUA_POST = """
local f = io.open(os.getenv("WRK_BODY"), "rb")
local body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.body = body
"""
LUA = LUA_POST + 'wrk.headers["Content-Type"] = "application/json"\n'
BARE_APP = """
import os
import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
from aidevops_ext.trainer import load_model

model = load_model(os.environ["BARE_MODEL_FILE"])


async def invocations(request):
    X = np.array(orjson.loads(await request.body())["inputs"], dtype=np.float32)
    return Response(orjson.dumps({"predictions": model.predict(X)}, option=orjson.OPT_SERIALIZE_NUMPY),
                    media_type="application/json")


async def ping(request):
    return Response("\\n", media_type="application/json")


app = Starlette(routes=[Route("/invocations", invocations, methods=["POST"]), Route("/ping", ping)])
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path:
        return path
    if os.geteuid() != 0:
        sys.exit("wrk is not installed; install it (apt-get install -y wrk) and run again.")
    print("installing wrk with apt-get ...", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, stdout=subprocess.DEVNULL)
    return shutil.which("wrk") or sys.exit("wrk did not install.")


def make_workspace(root: Path) -> None:
    for folder in ("notebooks", "pipelines"):
        shutil.copytree(REPO / folder, root / folder)
    print(f"running the ci pipeline in {root} to register ci-digits ...", flush=True)
    env = {**os.environ, "AIDEVOPS_HOME": str(root), "MPLBACKEND": "Agg"}
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        env.pop(var, None)
    subprocess.run(
        [sys.executable, "-c", "from aidevops_ext.cli import main; main()", "run", "ci"],
        cwd=root,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def model_file(ws: Path, uri: str) -> Path:
    """The .npz behind the registered model (for the bare app)."""
    code = textwrap.dedent(f"""
        import mlflow.artifacts
        from pathlib import Path
        from aidevops_ext import registry
        from aidevops_ext.serving.loader import parse_uri, resolve_version
        from aidevops_ext.workspace import Workspace
        ws = Workspace(Path({str(ws)!r})); ref = parse_uri({uri!r}); registry.configure(ws)
        print(mlflow.artifacts.download_artifacts(artifact_uri=ref.pinned(resolve_version(ref, ws)), dst_path={str(ws / "bench-model")!r}))
    """)
    out = subprocess.run([sys.executable, "-c", code], env=_env(ws), capture_output=True, text=True, check=True)
    return next(Path(out.stdout.strip().splitlines()[-1]).glob("data/*.npz"))


def _env(ws: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    env.update(
        AIDEVOPS_HOME=str(ws),
        MLFLOW_TRACKING_URI=f"sqlite:///{ws / '.aidevops' / 'mlflow.db'}",
        OPENBLAS_NUM_THREADS="1",
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
        PYTHONPATH=str(REPO),
        **extra,
    )
    return env


def start(name: str, cmd: list[str], env: dict, port: int, logdir: Path) -> subprocess.Popen:
    log = open(logdir / f"{name}.log", "wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=logdir)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{name} exited: {(logdir / f'{name}.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    sys.exit(f"{name} did not start")


def predictions(port: int, body: bytes) -> list:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())["predictions"]


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def run_wrk(
    wrk: str, port: int, body_file: Path, lua: Path, seconds: int, path: str = "/invocations", pin: str | None = None
) -> dict:
    """wrk -t1 -c8 against the server; `pin`: the CPU list (taskset -c) wrk runs on."""
    pinned = ["taskset", "-c", pin] if pin is not None else []
    out = subprocess.run(
        [*pinned, wrk, "-t1", "-c8", f"-d{seconds}s", "--latency", "-s", str(lua), f"http://127.0.0.1:{port}{path}"],
        env={**os.environ, "WRK_BODY": str(body_file)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {p: _ms(v) for p, v in re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M)}
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "p50": lat["50"],
        "p99": lat["99"],
        "non2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(1) if errors else "",
    }


def ours_cmd(uri: str, port: int, *options: str) -> list[str]:
    """Our server on 127.0.0.1:port for `uri`, logging warnings only, with more command-line options."""
    return [sys.executable, "-m", "aidevops_ext.serving", uri, "--host", "127.0.0.1", "--port", str(port), *options]


def mlflow_cmd(uri: str, port: int) -> list[str]:
    """`mlflow models serve` of `uri` on 127.0.0.1:port, in this environment."""
    serve = [sys.executable, "-m", "mlflow", "models", "serve", "-m", uri, "--env-manager", "local"]
    return [*serve, "--host", "127.0.0.1", "-p", str(port)]


def wrk_2xx(wrk: str, port: int, body_file: Path, lua: Path, seconds: int, what: str, **options: Any) -> dict:
    """run_wrk, exiting with a sentence naming `what` when any response was not a 2xx."""
    r = run_wrk(wrk, port, body_file, lua, seconds, **options)
    if r["non2xx"]:
        sys.exit(f"{what} answered {r['non2xx']} non-2xx responses")
    return r


def alternating(names: Iterable[str], rnd: int) -> list[str]:
    """The servers in order on even rounds, reversed on odd ones: neither goes first every time."""
    order = list(names)
    return order if rnd % 2 == 0 else order[::-1]


def medians(results: dict[Any, list[dict]]) -> dict[Any, dict[str, float]]:
    """Median req/s, p50 and p99 over the rounds, per key."""
    return {k: {f: statistics.median(r[f] for r in v) for f in ("rps", "p50", "p99")} for k, v in results.items()}


def stop(procs: Iterable[subprocess.Popen], wait: float = 15) -> None:
    """Terminate every server, then wait for each, killing one still up after `wait` seconds."""
    procs = list(procs)
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            proc.kill()


def make_tabular_project(root: Path, pipeline: str) -> str:
    """`aidevops new --template tabular` + `aidevops run PIPELINE` in root; the registered model's name."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "AIDEVOPS_HOME")
    }
    env.update(MPLBACKEND="Agg", PYTHONPATH=str(REPO))
    cli = [sys.executable, "-c", "from aidevops_ext.cli import main; main()"]
    subprocess.run([*cli, "new", str(root), "--template", "tabular"], env=env, check=True, stdout=subprocess.DEVNULL)
    print(f"running the tabular project's {pipeline} pipeline in {root} ...", flush=True)
    subprocess.run([*cli, "run", pipeline], cwd=root, env=env, check=True, stdout=subprocess.DEVNULL)
    text = (root / "pipelines" / f"{pipeline}.yaml").read_text()
    return re.search(r"^model:\s*(\S+)", text, re.M).group(1)


FLOOR_CODE = """
import json, statistics, sys, time
import mlflow
from mlflow.pyfunc.scoring_server import infer_and_parse_data
from threadpoolctl import threadpool_limits
model = mlflow.pyfunc.load_model(sys.argv[1])
threadpool_limits(1)  # after loading: threadpoolctl limits the OpenMP/BLAS libraries already loaded
schema = model.metadata.get_input_schema()
print(json.dumps({"columns": schema.input_names()}), flush=True)
body = json.loads(sys.stdin.readline())
frame = infer_and_parse_data(body, schema)
times = []
for _ in range(300):
    t = time.perf_counter(); model.predict(frame); times.append(time.perf_counter() - t)
print(json.dumps({"median_ms": statistics.median(times) * 1e3, "min_ms": min(times) * 1e3}))
"""


def tabular_bodies(root: Path, columns: list[str], n_rows: int = 200) -> tuple[bytes, bytes]:
    """A single-row dataframe_split body (a null in a numeric column, category strings) and an n-row one."""
    import pandas as pd  # noqa: PLC0415

    table = pd.read_csv(root / "data" / "customers.csv")[columns]
    numeric = [c for c in columns if pd.api.types.is_numeric_dtype(table[c])]
    text = [c for c in columns if c not in numeric]
    pick = table[table[numeric].isna().any(axis=1) & table[text].notna().all(axis=1)].head(1)

    def body(frame: pd.DataFrame) -> bytes:  # pandas writes missing values as null
        rows = json.loads(frame.to_json(orient="split", index=False))["data"]
        return json.dumps({"dataframe_split": {"columns": columns, "data": rows}}).encode()

    return body(pick), body(table.head(n_rows))


def main_tabular(args: argparse.Namespace, wrk: str) -> int:
    scratch = Path(tempfile.mkdtemp(prefix="aidevops-bench-tabular-"))
    project = scratch / "churn"
    name = make_tabular_project(project, args.pipeline)
    uri = f"models:/{name}@champion"
    env = _env(project)
    floor = subprocess.Popen(
        [sys.executable, "-c", FLOOR_CODE, uri], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    columns = json.loads(floor.stdout.readline())["columns"]
    single, batch = tabular_bodies(project, columns)
    floor.stdin.write(single.decode() + "\n")
    floor.stdin.close()
    bare = json.loads(floor.stdout.readline())
    floor.wait()
    (scratch / "single.json").write_bytes(single)
    lua = scratch / "post.lua"
    lua.write_text(LUA)
    ports = {name: free_port() for name in ("mlflow", "mlflow-omp1", "ours")}

    commands = {
        "mlflow": (mlflow_cmd(uri, ports["mlflow"]), env),
        "mlflow-omp1": (mlflow_cmd(uri, ports["mlflow-omp1"]), {**env, "OMP_NUM_THREADS": "1"}),
        "ours": (ours_cmd(uri, ports["ours"], "--log-level", "warning", "--follow-alias", "0"), env),
    }
    procs: dict[str, subprocess.Popen] = {}
    results: dict[str, list[dict]] = {}
    load_before = os.getloadavg()
    try:
        for server, (cmd, server_env) in commands.items():
            print(f"starting {server} ...", flush=True)
            procs[server] = start(server, cmd, server_env, ports[server], scratch)
        answers = {server: predictions(port, batch) for server, port in ports.items()}
        assert answers["ours"] == answers["mlflow"] == answers["mlflow-omp1"], "the servers disagree on the predictions"
        same = {server: predictions(port, single) for server, port in ports.items()}
        assert same["ours"] == same["mlflow"], "the servers disagree on the single row"
        print(
            f"all servers answer the same {len(answers['ours'])} predictions (nulls and categories included)\n",
            flush=True,
        )
        for rnd in range(args.rounds):
            for server in alternating(ports, rnd):
                r = wrk_2xx(wrk, ports[server], scratch / "single.json", lua, args.seconds, server)
                results.setdefault(server, []).append(r)
                print(
                    f"round {rnd + 1} {server:12s} {r['rps']:9.1f} req/s  p50 {r['p50']:8.2f} ms  "
                    f"p99 {r['p99']:8.2f} ms {r['socket_errors']}",
                    flush=True,
                )
    finally:
        stop(procs.values())
    load_after = os.getloadavg()
    med = medians(results)
    print(
        f"\n{uri} ({args.pipeline} pipeline of the tabular template), single-row dataframe_split, median of "
        f"{args.rounds} rounds x {args.seconds} s, wrk -t1 -c8, one server process each, {os.cpu_count()} cores\n"
    )
    print(f"{'server':12s} {'req/s':>10s} {'p50 ms':>9s} {'p99 ms':>9s}")
    for server in ports:
        m = med[server]
        print(f"{server:12s} {m['rps']:10.1f} {m['p50']:9.2f} {m['p99']:9.2f}")
    print()
    for peer in ("mlflow", "mlflow-omp1"):
        ratio = med["ours"]["rps"] / med[peer]["rps"]
        print(
            f"ours / {peer + ',':13s} single-row req/s {ratio:6.2f}x  (target >= 2x: {'met' if ratio >= 2 else 'NOT met'})"
        )
    print(
        f"the model's bare predict (pyfunc.predict of the row, one thread): median {bare['median_ms']:.2f} ms, "
        f"min {bare['min_ms']:.2f} ms = at most {1000 / bare['median_ms']:.0f} req/s one request per call"
    )
    print(f"load average before {load_before[0]:.2f} / after {load_after[0]:.2f} (1 min)")
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", type=Path, help="a workspace with the model registered (default: make one)")
    ap.add_argument("--model", default="models:/ci-digits@champion")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batch-rows", type=int, default=1000)
    ap.add_argument("--tabular", action="store_true", help="the tabular template's scikit-learn model instead")
    ap.add_argument("--pipeline", default="ci", help="with --tabular: the project's pipeline to run (ci or default)")
    ap.add_argument(
        "--workers-only", action="store_true", help="only the workers section: ours with 1, 2, ... worker processes"
    )
    ap.add_argument(
        "--worker-counts",
        default=None,
        help="comma-separated worker counts for the workers section (default: 1,2 and, with more cores, 4,8 up to them)",
    )
    ap.add_argument(
        "--oip-only",
        action="store_true",
        help="only the Open Inference Protocol section: batch bodies as JSON, binary HTTP and gRPC on ours",
    )
    args = ap.parse_args()

    wrk = ensure_wrk()
    if args.tabular:
        return main_tabular(args, wrk)
    scratch = Path(tempfile.mkdtemp(prefix="aidevops-bench-serving-"))
    ws = args.workspace.resolve() if args.workspace else scratch / "ws"
    if not args.workspace:
        ws.mkdir()
        make_workspace(ws)
    npz = None if args.workers_only else model_file(ws, args.model)

    import numpy as np
    from sklearn.datasets import load_digits

    X = load_digits().data.astype(np.float32)
    n_features = X.shape[1]
    rng = np.random.default_rng(0)
    rows = X[rng.integers(0, len(X), args.batch_rows)] + rng.normal(0, 0.01, (args.batch_rows, n_features)).astype(
        np.float32
    )
    bodies = {
        "single": (json.dumps({"inputs": rows[:1].tolist()}).encode(), 1),
        "batch": (json.dumps({"inputs": rows.tolist()}).encode(), args.batch_rows),
    }
    if args.oip_only:
        oip_protocols(args, wrk, ws, rows, scratch)
        shutil.rmtree(scratch, ignore_errors=True)
        return 0
    for name, (body, _) in bodies.items():
        (scratch / f"{name}.json").write_bytes(body)
    lua = scratch / "post.lua"
    lua.write_text(LUA)
    if args.workers_only:
        worker_scaling(args, wrk, ws, scratch, lua)
        shutil.rmtree(scratch, ignore_errors=True)
        return 0
    (scratch / "bare_app.py").write_text(BARE_APP)

    ports = {name: free_port() for name in ("mlflow", "ours", "bare")}
    commands = {
        "mlflow": mlflow_cmd(args.model, ports["mlflow"]),
        "ours": ours_cmd(args.model, ports["ours"], "--log-level", "warning"),
        "bare": [
            sys.executable,
            "-m",
            "uvicorn",
            "bare_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(ports["bare"]),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
            "--workers",
            "1",
            "--app-dir",
            str(scratch),
        ],
    }
    procs: dict[str, subprocess.Popen] = {}
    try:
        for name, cmd in commands.items():
            print(f"starting {name} ...", flush=True)
            procs[name] = start(name, cmd, _env(ws, BARE_MODEL_FILE=str(npz)), ports[name], scratch)
        answers = {name: predictions(port, bodies["batch"][0]) for name, port in ports.items()}
        assert answers["ours"] == answers["mlflow"] == answers["bare"], "the servers disagree on the predictions"
        print(f"all three servers answer the same {len(answers['ours'])} predictions\n", flush=True)
        results: dict[tuple[str, str], list[dict]] = {}
        for rnd in range(args.rounds):
            for scenario in ("single", "batch"):
                for name in alternating(ports, rnd):
                    body = scratch / f"{scenario}.json"
                    r = wrk_2xx(wrk, ports[name], body, lua, args.seconds, f"{name} (the {scenario} run)")
                    results.setdefault((name, scenario), []).append(r)
                    print(
                        f"round {rnd + 1} {scenario:6s} {name:6s} {r['rps']:9.1f} req/s  p50 {r['p50']:8.2f} ms  "
                        f"p99 {r['p99']:8.2f} ms {r['socket_errors']}",
                        flush=True,
                    )
    finally:
        stop(procs.values())

    med = medians(results)
    print(
        f"\nmedian of {args.rounds} rounds x {args.seconds} s, wrk -t1 -c8, one uvicorn worker each, "
        f"{n_features} features, batch = {args.batch_rows} rows\n"
    )
    print(f"{'server':8s} {'body':7s} {'req/s':>10s} {'rows/s':>11s} {'p50 ms':>9s} {'p99 ms':>9s}")
    for scenario, (_, n_rows) in bodies.items():
        for name in ports:
            m = med[(name, scenario)]
            print(f"{name:8s} {scenario:7s} {m['rps']:10.1f} {m['rps'] * n_rows:11.0f} {m['p50']:9.2f} {m['p99']:9.2f}")
    single = lambda n: med[(n, "single")]  # noqa: E731
    batch = lambda n: med[(n, "batch")]  # noqa: E731
    checks = [
        ("ours / MLflow, single-row req/s", single("ours")["rps"] / single("mlflow")["rps"], 8.0),
        ("ours / MLflow, batch rows/s", batch("ours")["rps"] / batch("mlflow")["rps"], 8.0),
        ("ours / bare Starlette, single-row req/s", single("ours")["rps"] / single("bare")["rps"], 0.8),
        ("ours / bare Starlette, batch rows/s", batch("ours")["rps"] / batch("bare")["rps"], 0.8),
    ]
    print()
    for label, ratio, target in checks:
        print(f"{label:42s} {ratio:6.2f}x  (target >= {target}x: {'met' if ratio >= target else 'NOT met'})")
    p99 = single("ours")["p99"]
    print(f"{'ours single-row p99':42s} {p99:6.2f} ms (target <= 10 ms: {'met' if p99 <= 10 else 'NOT met'})")
    print()
    worker_scaling(args, wrk, ws, scratch, lua)
    oip_protocols(args, wrk, ws, rows, scratch)
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


def worker_scaling(args: argparse.Namespace, wrk: str, ws: Path, scratch: Path, lua: Path) -> None:
    """Ours with 1, 2 (4, 8 where there are the cores) workers, single-row bodies. wrk is pinned to the last core
    (taskset), so on a small machine the servers' share of the CPUs is the same for every count."""
    cores = sorted(os.sched_getaffinity(0))
    counts = [int(c) for c in args.worker_counts.split(",")] if args.worker_counts else [1, 2]
    if not args.worker_counts:
        counts += [n for n in (4, 8) if n <= len(cores)]
    pin = str(cores[-1])
    results: dict[int, list[dict]] = {}
    for n in counts:
        port = free_port()
        cmd = ours_cmd(args.model, port, "--workers", str(n), "--log-level", "warning")
        print(f"starting ours with --workers {n} ...", flush=True)
        proc = start(f"ours-w{n}", cmd, _env(ws), port, scratch)
        try:
            time.sleep(2.0 * n)  # workers past the first load after the first answers
            for rnd in range(args.rounds):
                r = wrk_2xx(wrk, port, scratch / "single.json", lua, args.seconds, f"ours with {n} workers", pin=pin)
                results.setdefault(n, []).append(r)
                print(f"round {rnd + 1} workers {n}  {r['rps']:9.1f} req/s  p99 {r['p99']:8.2f} ms", flush=True)
        finally:
            stop([proc], wait=30)
    print(f"\nours, single-row req/s by worker count (wrk -t1 -c8 pinned to CPU {pin}; {len(cores)} CPUs):")
    base = statistics.median(r["rps"] for r in results[counts[0]])
    for n in counts:
        rps = statistics.median(r["rps"] for r in results[n])
        p99 = statistics.median(r["p99"] for r in results[n])
        print(f"  workers {n:2d} {rps:10.1f} req/s  p99 {p99:7.2f} ms  {rps / base:5.2f}x of {counts[0]}")
    print()


def oip_protocols(args: argparse.Namespace, wrk: str, ws: Path, rows, scratch: Path) -> None:
    """Ours again, with --grpc-port: the batch as Open Inference JSON, binary HTTP and gRPC (serving_oip.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import serving_oip  # noqa: PLC0415 - beside this file

    http_port, grpc_port = free_port(), free_port()
    cmd = ours_cmd(args.model, http_port, "--grpc-port", str(grpc_port), "--log-level", "warning")
    print("starting ours with --grpc-port ...", flush=True)
    proc = start("ours-oip", cmd, _env(ws), http_port, scratch)
    try:
        serving_oip.compare(
            model=args.model.split("/")[-1].split("@")[0],
            rows=rows,
            http_port=http_port,
            grpc_port=grpc_port,
            wrk=wrk,
            scratch=scratch,
            seconds=args.seconds,
            rounds=args.rounds,
            run_wrk=run_wrk,
        )
    finally:
        stop([proc])


if __name__ == "__main__":
    sys.exit(main())
