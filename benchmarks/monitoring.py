"""Monitoring benchmark: drift of a large window against a stored reference profile, and Evidently's preset.

    python benchmarks/monitoring.py [--rows 1000000] [--features 50] [--repeats 5] [--peer-rows N] [--no-peer]

Data (seeded): a reference of --ref-rows rows and a window of --rows rows, float32, --features
standard-normal columns; in the window a fifth of the features are shifted by 0.5 std or scaled by 1.5,
so the report has something to find. Timed: `feature_drift(window, profile)`, the whole call
(validation, sorting, every statistic, the report objects), median of --repeats after one warm-up run.
Target: <= 1 s for 1,000,000 x 50.

Server throughput: the model server's single-row requests/s with the request log, the live monitor
(refreshing every second) and a Prometheus-like /metrics scrape every second, against the same server
with all of them off, side by side in one run (wrk, as in benchmarks/serving.py). Target: >= 0.9x.

Mixed table (--frame): profiling and drift of a DataFrame of --frame-rows rows, --frame-numeric float64
columns and --frame-category text-category columns (50 categories each), as a foreign model's
register step and monitor see it: `build_frame_profile(reference)` then `feature_drift(window,
profile)`, the window being the reference with a tenth of the numeric columns shifted and a tenth of
the category columns re-mixed. Target: <= 30 s for both together at 1,000,000 x (900 + 100) on
2 cores, with <= 2 GB memory beyond the two tables (peak resident size minus the size after building
them). `python benchmarks/monitoring.py --frame --frame-rows 100000` runs it at a tenth of the rows.
It then runs ours and Evidently's DataDriftPreset on the same sample of the table (--peer-rows, default
5,000 rows of all columns) and prints the ratio.

Peer: Evidently's DataDriftPreset on the same reference rows and window, timed around `Report.run`.
Evidently is never installed into this environment (it pins its own versions): if it is not importable
here, it is installed into an isolated venv under benchmarks/.peers/evidently and run there in a
subprocess, the data handed over as .npy files. Note the difference in work: Evidently compares the
window with the raw reference rows; aidevops with the profile stored at training time (percentiles,
bin counts, moments), so the reference is not even needed at serving time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PEER_VENV = ROOT / "benchmarks" / ".peers" / "evidently"
# evidently 0.7.23 imports pandas.core.dtypes.common.infer_dtype_from_object, which pandas 3 removed
EVIDENTLY_PIN = ["evidently==0.7.23", "pandas<3"]
TARGET_S = 1.0
FRAME_TARGET_S = 30.0
FRAME_TARGET_EXTRA_GB = 2.0


def make_data(rows: int, ref_rows: int, features: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Reference and window (float32); returns the indices of the features that really moved."""
    rng = np.random.default_rng(seed)
    ref = rng.standard_normal((ref_rows, features), dtype=np.float32)
    win = rng.standard_normal((rows, features), dtype=np.float32)
    k = max(1, features // 10)
    win[:, :k] += 0.5  # mean shift of half a std
    win[:, k : 2 * k] *= 1.5  # wider spread
    return ref, win, list(range(2 * k))


def median_time(fn, repeats: int) -> tuple[float, float, float, object]:
    """(median wall s, min wall s, median CPU s over all threads, last result) over repeats calls, after a warm-up.

    CPU time is printed beside wall time because this machine is shared: wall time rises with the
    load of others, the CPU time a call needs much less.
    """
    result = fn()
    walls, cpus = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        result = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), min(walls), statistics.median(cpus), result


# --------------------------------------------------------------------------- mixed tables (foreign models)


def _peak_gb() -> float:
    import resource  # noqa: PLC0415 - POSIX only; the benchmark runs on Linux

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB on Linux


def make_frames(rows: int, numeric: int, category: int, seed: int):
    """(reference, window, moved column names): the window shares the reference's unmoved columns (no copy)."""
    import pandas as pd  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    vocab = np.array([f"cat{i:02d}" for i in range(50)], dtype=object)
    p = np.linspace(1.0, 2.0, 50)
    p /= p.sum()
    cols = {f"x{i}": rng.standard_normal(rows) for i in range(numeric)}
    cols.update(
        {
            f"c{j}": pd.Categorical.from_codes(rng.choice(50, rows, p=p), categories=vocab).astype(object)
            for j in range(category)
        }
    )
    ref = pd.DataFrame(cols, copy=False)
    win = ref.copy(deep=False)
    moved = []
    for i in range(0, numeric, 10):
        win[f"x{i}"] = ref[f"x{i}"].to_numpy() + 0.5
        moved.append(f"x{i}")
    for j in range(0, category, 10):
        win[f"c{j}"] = vocab[rng.choice(50, rows, p=p[::-1])]
        moved.append(f"c{j}")
    return ref, win, moved


def frame_benchmark(
    rows: int, numeric: int, category: int, seed: int, peer_rows: int = 0, peer_timeout: float = 1800.0
) -> bool:
    from aidevops_ext.monitoring.drift import feature_drift  # noqa: PLC0415
    from aidevops_ext.monitoring.frameprofile import build_frame_profile  # noqa: PLC0415

    ref, win, moved = make_frames(rows, numeric, category, seed)
    base = _peak_gb()
    print(
        f"mixed-table benchmark: {rows:,} rows x ({numeric} float64 + {category} category) columns; "
        f"{os.cpu_count()} CPUs; tables built, peak resident {base:.2f} GB"
    )
    c0, t0 = time.process_time(), time.perf_counter()
    profile = build_frame_profile(ref)
    t_prof, c_prof = time.perf_counter() - t0, time.process_time() - c0
    c0, t0 = time.process_time(), time.perf_counter()
    report = feature_drift(win, profile)
    t_drift, c_drift = time.perf_counter() - t0, time.process_time() - c0
    extra = _peak_gb() - base
    total = t_prof + t_drift
    full = rows >= 1_000_000 and numeric + category >= 1000
    ok = full and total <= FRAME_TARGET_S and extra <= FRAME_TARGET_EXTRA_GB
    print(f"  build_frame_profile: {t_prof:.2f} s (CPU {c_prof:.2f} s, all threads)")
    print(f"  feature_drift:       {t_drift:.2f} s (CPU {c_drift:.2f} s, all threads)")
    verdict = (
        ("PASS" if ok else "FAIL")
        if full
        else "not judged below 1,000,000 x 1,000 (per-column costs do not scale down)"
    )
    print(
        f"  together {total:.2f} s (CPU {c_prof + c_drift:.2f} s), extra peak memory {extra:.2f} GB -> {verdict} "
        f"(target <= {FRAME_TARGET_S:g} s and <= {FRAME_TARGET_EXTRA_GB:g} GB at 1,000,000 x 1,000 on 2 cores)"
    )
    found = sorted(report.drifted)
    print(
        f"  flagged {len(found)} columns; the {len(moved)} that moved: "
        f"{'all found, no others' if found == sorted(moved) else f'found {found[:20]}'}"
    )
    if peer_rows:
        frame_peer_comparison(ref, win, peer_rows, peer_timeout)
    return ok


# --------------------------------------------------------------------------- the peer: Evidently


def evidently_run(ref: np.ndarray, cur: np.ndarray, repeats: int) -> dict:
    """Time Evidently's DataDriftPreset on (ref, cur) here; needs evidently importable."""
    import evidently
    import pandas as pd

    cols = [f"x{i}" for i in range(ref.shape[1])]
    ref_df, cur_df = pd.DataFrame(ref, columns=cols), pd.DataFrame(cur, columns=cols)
    try:  # evidently >= 0.7
        from evidently import Report
        from evidently.presets import DataDriftPreset

        def run():
            return Report([DataDriftPreset()]).run(current_data=cur_df, reference_data=ref_df)

    except ImportError:  # evidently 0.4 - 0.6
        from evidently.metric_preset import DataDriftPreset
        from evidently.report import Report

        def run():
            report = Report(metrics=[DataDriftPreset()])
            report.run(reference_data=ref_df, current_data=cur_df)
            return report

    times = []
    result = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - t0)
    drifted = _evidently_drifted(result)
    return {
        "version": evidently.__version__,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "runs": repeats,
        "drifted": drifted,
    }


def evidently_frame_run(ref_df, cur_df, repeats: int) -> dict:
    """Time Evidently's DataDriftPreset on two DataFrames (numeric and text columns) here."""
    import evidently
    from evidently import Report
    from evidently.presets import DataDriftPreset

    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = Report([DataDriftPreset()]).run(current_data=cur_df, reference_data=ref_df)
        times.append(time.perf_counter() - t0)
    return {
        "version": evidently.__version__,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "runs": repeats,
        "drifted": _evidently_drifted(result),
    }


def _evidently_drifted(result) -> int | None:
    """Number of columns Evidently calls drifted, read from its result dict (None where its layout differs)."""
    try:
        d = result.dict()
    except Exception:  # noqa: BLE001 - any layout change: the count is informational only
        return None
    for m in d.get("metrics", []):
        value = m.get("value")
        name = str(m.get("metric_name") or m.get("metric_id") or "")
        if isinstance(value, dict) and "count" in value and "DriftedColumnsCount" in name:
            return int(value["count"])
        res = m.get("result") or {}
        if "number_of_drifted_columns" in res:
            return int(res["number_of_drifted_columns"])
    return None


def peer_python() -> Path | None:
    """The Python to run Evidently with: this one if it has it, else the isolated venv (installed on demand)."""
    try:
        import evidently  # noqa: F401

        return Path(sys.executable)
    except ImportError:
        pass
    py = PEER_VENV / "bin" / "python"
    if not py.exists():
        print(
            f"  installing {' '.join(EVIDENTLY_PIN)} into {PEER_VENV.relative_to(ROOT)} (isolated venv) ...", flush=True
        )
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(PEER_VENV)], check=True)
    check = subprocess.run([str(py), "-c", "import evidently"], capture_output=True)
    if check.returncode != 0:
        inst = subprocess.run([str(py), "-m", "pip", "install", "-q", *EVIDENTLY_PIN], capture_output=True, text=True)
        if inst.returncode != 0:
            print("  evidently could not be installed: " + (inst.stderr.strip().splitlines() or ["?"])[-1])
            return None
    return py


def run_frame_peer(ref_df, cur_df, repeats: int, timeout: float) -> dict | None:
    """Evidently on a mixed table, here or in the peer venv (the frames handed over as Parquet)."""

    def write(tmp: Path) -> None:
        ref_df.to_parquet(tmp / "ref.parquet")
        cur_df.to_parquet(tmp / "cur.parquet")

    return _in_peer(
        lambda: evidently_frame_run(ref_df, cur_df, repeats), write, "--peer-frame-worker", repeats, timeout
    )


def _in_peer(here, write, worker_flag: str, repeats: int, timeout: float) -> dict | None:
    """Run Evidently in this process (`here`) if it has Evidently, else `write` the inputs and run `worker_flag`
    of this script in the peer venv; None when Evidently is unavailable or failed, {"timeout": s} on a time-out."""
    py = peer_python()
    if py is None:
        return None
    if py == Path(sys.executable):
        return here()
    with tempfile.TemporaryDirectory() as tmp:
        write(Path(tmp))
        cmd = [str(py), __file__, worker_flag, tmp, "--repeats", str(repeats)]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"timeout": timeout}
    if out.returncode != 0:
        print("  evidently run failed: " + (out.stderr.strip().splitlines() or ["?"])[-1])
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def frame_peer_comparison(ref, win, sample_rows: int, timeout: float) -> None:
    """Ours and Evidently's DataDriftPreset on the same sample of the mixed table, and the ratio."""
    from aidevops_ext.monitoring.drift import feature_drift  # noqa: PLC0415
    from aidevops_ext.monitoring.frameprofile import build_frame_profile  # noqa: PLC0415

    rows = min(sample_rows, len(ref))
    ref_s, win_s = ref.iloc[:rows].reset_index(drop=True), win.iloc[:rows].reset_index(drop=True)
    t0 = time.perf_counter()
    feature_drift(win_s, build_frame_profile(ref_s))
    ours = time.perf_counter() - t0
    peer = run_frame_peer(ref_s, win_s, 1, timeout)
    where = f"a sample of {rows:,} reference and {rows:,} window rows, all {ref.shape[1]} columns"
    if peer is None:
        print("  evidently: not available")
    elif "timeout" in peer:
        print(
            f"  evidently DataDriftPreset on {where}: did not finish within {peer['timeout']:.0f} s "
            f"(aidevops profile + drift {ours:.2f} s)"
        )
    else:
        print(
            f"  on {where}: aidevops profile + drift {ours:.2f} s; evidently {peer['version']} DataDriftPreset "
            f"{peer['median_s']:.2f} s ({peer['drifted']} columns drifted) -> aidevops {peer['median_s'] / ours:.1f}x faster"
        )


def run_peer(ref: np.ndarray, cur: np.ndarray, repeats: int, timeout: float) -> dict | None:
    """Evidently's timing, in this process if it has Evidently, else in the peer venv."""

    def write(tmp: Path) -> None:
        np.save(tmp / "ref.npy", ref)
        np.save(tmp / "cur.npy", cur)

    return _in_peer(lambda: evidently_run(ref, cur, repeats), write, "--peer-worker", repeats, timeout)


# --------------------------------------------------------------------------- server throughput


def server_throughput(seconds: int, rounds: int) -> None:
    """Single-row req/s of the model server with the request log, the live monitor (1 s refresh) and a 1 s
    /metrics scrape on, against the same server with all three off; same model, same run, alternating order."""
    import shutil
    import socket
    import threading
    import urllib.request

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from serving import LUA, ensure_wrk, run_wrk  # the serving benchmark's wrk driver

    from aidevops_ext import trainer
    from aidevops_ext.monitoring.profile import build_profile
    from aidevops_ext.trainer import data

    wrk = ensure_wrk()
    scratch = Path(tempfile.mkdtemp(prefix="aidevops-bench-monitoring-"))
    ds = data.load_dataset("digits")
    est = trainer.make_model("mlp", ds.task, hidden=[32], epochs=5, random_state=0, backend="numpy")
    est.fit(ds.X, ds.y, progress=False)
    model = trainer.save_model(
        est,
        scratch / "model.npz",
        profile=build_profile(ds.X, ds.feature_names, predictions=est.predict(ds.X)),
        metadata={"feature_names": list(ds.feature_names)},
    )
    (scratch / "single.json").write_text(json.dumps({"inputs": ds.X[:1].tolist()}))
    lua = scratch / "post.lua"
    lua.write_text(LUA)

    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    setups = {"on": ([], "1"), "off": (["--no-request-log"], "0")}
    procs, ports = {}, {}
    stop = threading.Event()
    try:
        for name, (flags, monitor) in setups.items():
            ports[name] = free_port()
            (scratch / name).mkdir()
            env = {**os.environ, "AIDEVOPS_MONITOR_SECONDS": monitor, "OPENBLAS_NUM_THREADS": "1"}
            procs[name] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "aidevops_ext.serving",
                    str(model),
                    "--port",
                    str(ports[name]),
                    "--workspace",
                    str(scratch / name),
                    "--log-level",
                    "warning",
                    *flags,
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=open(scratch / f"{name}.log", "wb"),
            )
        for name, port in ports.items():
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or procs[name].poll() is not None:
                        sys.exit(f"server '{name}' did not start: {(scratch / f'{name}.log').read_text()[-1000:]}")
                    time.sleep(0.2)

        def scrape() -> None:  # what Prometheus does to the monitored server
            while not stop.wait(1.0):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{ports['on']}/metrics", timeout=5).read()
                except OSError:
                    pass

        threading.Thread(target=scrape, daemon=True).start()
        results: dict[str, list[float]] = {"on": [], "off": []}
        for rnd in range(rounds):
            for name in ("on", "off") if rnd % 2 == 0 else ("off", "on"):
                r = run_wrk(wrk, ports[name], scratch / "single.json", lua, seconds)
                if r["non2xx"]:
                    sys.exit(f"server '{name}' answered {r['non2xx']} non-2xx responses")
                results[name].append(r["rps"])
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['on']}/monitor", timeout=10) as resp:
            summary = json.loads(resp.read())
    finally:
        stop.set()
        for proc in procs.values():
            proc.terminate()
            proc.wait(15)
    logged = summary.get("logged_rows")
    on, off = statistics.median(results["on"]), statistics.median(results["off"])
    ratio = on / off
    print(
        f"  server single-row req/s, median of {rounds} x {seconds} s (wrk -t1 -c8): logging + monitor + scrape on "
        f"{on:,.0f}, all off {off:,.0f}"
    )
    print(
        f"  ratio on / off: {ratio:.3f} (target >= 0.9: {'met' if ratio >= 0.9 else 'NOT met'}); the monitor's "
        f"window held {logged} logged rows, drift status {(summary.get('drift') or {}).get('status')}"
    )
    shutil.rmtree(scratch, ignore_errors=True)


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--ref-rows", type=int, default=100_000)
    ap.add_argument("--features", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--peer-rows", type=int, default=0, help="window rows for Evidently (0: all); say if subsampled")
    ap.add_argument("--peer-repeats", type=int, default=1)
    ap.add_argument("--peer-timeout", type=float, default=1800.0)
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--strict", action="store_true", help="exit 1 when the target is missed")
    ap.add_argument("--no-server", action="store_true", help="skip the server throughput comparison")
    ap.add_argument("--server-seconds", type=int, default=10, help="wrk seconds per server per round")
    ap.add_argument("--server-rounds", type=int, default=3)
    ap.add_argument("--peer-worker", help=argparse.SUPPRESS)
    ap.add_argument("--peer-frame-worker", help=argparse.SUPPRESS)
    ap.add_argument("--frame", action="store_true", help="run only the mixed-table (numeric + category) benchmark")
    ap.add_argument("--frame-rows", type=int, default=1_000_000)
    ap.add_argument("--frame-numeric", type=int, default=900)
    ap.add_argument("--frame-category", type=int, default=100)
    args = ap.parse_args()

    if args.peer_worker:  # inside the peer venv: time Evidently on the handed-over arrays, print one JSON line
        d = Path(args.peer_worker)
        print(json.dumps(evidently_run(np.load(d / "ref.npy"), np.load(d / "cur.npy"), args.repeats)))
        return 0

    sys.path.insert(0, str(ROOT))
    if args.peer_frame_worker:  # inside the peer venv: Evidently on the handed-over Parquet tables
        import pandas as pd

        d = Path(args.peer_frame_worker)
        print(
            json.dumps(
                evidently_frame_run(
                    pd.read_parquet(d / "ref.parquet"), pd.read_parquet(d / "cur.parquet"), args.repeats
                )
            )
        )
        return 0
    if args.frame:
        # Evidently on the mixed table runs on a sample (--peer-rows, default 5,000): users report hours at full size.
        sample = 0 if args.no_peer else (args.peer_rows or 5_000)
        ok = frame_benchmark(
            args.frame_rows, args.frame_numeric, args.frame_category, args.seed, sample, args.peer_timeout
        )
        return 1 if args.strict and not ok else 0  # below full size ok is False: --strict then fails, as it should
    from aidevops_ext.monitoring.drift import feature_drift
    from aidevops_ext.monitoring.profile import build_profile

    ref, win, moved = make_data(args.rows, args.ref_rows, args.features, args.seed)
    print(
        f"monitoring benchmark: drift of {args.rows:,} x {args.features} float32 rows against a profile "
        f"of {args.ref_rows:,} reference rows; {os.cpu_count()} CPUs, NumPy {np.__version__}"
    )

    t0 = time.perf_counter()
    profile = build_profile(ref)
    print(f"  build_profile (once, at training time):      {time.perf_counter() - t0:.3f} s")

    med, best, cpu, report = median_time(lambda: feature_drift(win, profile), args.repeats)
    verdict = "PASS" if med <= TARGET_S else "FAIL"
    print(
        f"  aidevops feature_drift:                      median {med:.3f} s, min {best:.3f} s over "
        f"{args.repeats} runs (CPU {cpu:.3f} s) -> {verdict} (target <= {TARGET_S:g} s)"
    )
    found = [int(n[1:]) for n in report.drifted]
    print(
        f"  flagged {len(found)} of {args.features} features; the {len(moved)} that moved: "
        f"{'all found, no others' if found == moved else f'found {found}'}"
    )

    if args.no_server:
        print("  server throughput: skipped (--no-server)")
    else:
        server_throughput(args.server_seconds, args.server_rounds)

    if args.no_peer:
        print("  evidently: skipped (--no-peer)")
    else:
        rows = args.peer_rows or args.rows
        cur = win[:rows]
        note = "" if rows == args.rows else f" (window subsampled to the first {rows:,} rows)"
        peer = run_peer(ref, cur, args.peer_repeats, args.peer_timeout)
        if peer is None:
            print("  evidently: not available")
        elif "timeout" in peer:
            print(f"  evidently: did not finish within {peer['timeout']:.0f} s{note}")
        else:
            ours = med if rows == args.rows else median_time(lambda: feature_drift(cur, profile), args.repeats)[0]
            print(
                f"  evidently compares with the {args.ref_rows:,} raw reference rows; aidevops with the stored profile"
            )
            print(
                f"  evidently {peer['version']} DataDriftPreset{note}: median {peer['median_s']:.3f} s over "
                f"{peer['runs']} run(s), drifted columns: {peer['drifted']}"
            )
            print(
                f"  ratio evidently / aidevops on the same data: {peer['median_s'] / ours:.1f}x (aidevops {ours:.3f} s)"
            )
    return 1 if args.strict and verdict == "FAIL" else 0


if __name__ == "__main__":
    sys.exit(main())
