"""Pipeline runner overheads against peers, measured side by side in one run.

(a) a no-op re-run of ci.yaml (every step cached): the whole `aidevops run` process, against a
    no-op `ploomber build` of a three-notebook Ploomber pipeline (target: ours ≤ 0.5 s median);
(b) overhead per executed step beyond its cells' own time (target: median ≤ 0.5 s);
(c) the whole ci.yaml run's overhead beyond its cells' own time, against the same notebooks run
    one after another with the papermill CLI (target: ≤ 0.5 × papermill's).

Everything runs in a scratch workspace; Ploomber is installed into its own virtual environment
under benchmarks/.peers/ (it pins notebook 6, which must not enter the project's environment).

    python benchmarks/pipeline.py [--repeats 5] [--skip-ploomber]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PEERS = REPO / "benchmarks" / ".peers"
ENV = {k: v for k, v in os.environ.items() if k not in ("AIDEVOPS_HOME", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
ENV.update(MPLBACKEND="Agg", PLOOMBER_STATS_ENABLED="false", PYTHONWARNINGS="ignore")


def timed(cmd: list[str], cwd: Path, env: dict | None = None) -> float:
    """Wall time of a whole process; fails loudly if it fails."""
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, env=env or ENV, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if out.returncode != 0:
        sys.exit(f"benchmark command failed: {' '.join(cmd)}\n{out.stderr[-3000:]}")
    return elapsed


def cells_seconds(notebook: Path) -> float:
    """Sum of the cells' own execution times recorded by papermill in an executed notebook."""
    nb = json.loads(notebook.read_text())
    return sum((c.get("metadata", {}).get("papermill") or {}).get("duration") or 0.0 for c in nb["cells"])


def make_workspace() -> Path:
    root = Path(tempfile.mkdtemp(prefix="aidevops-bench-"))
    shutil.copytree(REPO / "notebooks", root / "notebooks")
    shutil.copytree(REPO / "pipelines", root / "pipelines")
    return root


# -- ours ------------------------------------------------------------------------------------
def ours(root: Path, repeats: int) -> dict:
    aidevops = [sys.executable, "-m", "aidevops_ext.cli", "run", "ci"]
    full_walls, full_overheads, step_overheads = [], [], []
    for _ in range(max(2, repeats // 2)):
        wall = timed(aidevops + ["--force"], root)
        run = json.loads(
            subprocess.run(
                [sys.executable, "-m", "aidevops_ext.cli", "show", "latest", "--json"],
                cwd=root,
                env=ENV,
                capture_output=True,
                text=True,
            ).stdout
        )
        cells = sum(s["cells_s"] for s in run["steps"].values())
        full_walls.append(wall)
        full_overheads.append(wall - cells)
        step_overheads += [s["duration_s"] - s["cells_s"] for s in run["steps"].values()]
    noop = [timed(aidevops, root) for _ in range(repeats)]
    return {"noop": noop, "full_wall": full_walls, "full_overhead": full_overheads, "step_overhead": step_overheads}


# -- papermill CLI ---------------------------------------------------------------------------
def papermill_cli(root: Path, repeats: int) -> dict:
    """The ci.yaml notebooks, one papermill CLI process each, passing the same params and folders."""
    import yaml

    from aidevops_ext.pipeline.notebook import read_notebook

    spec = yaml.safe_load((root / "pipelines" / "ci.yaml").read_text())
    params = dict(spec["params"], model_name=spec["model"], experiment="papermill-bench")
    gate_file = root / "gate.yaml"
    gate_file.write_text(yaml.safe_dump({"gate": spec["gate"]}))
    overheads, walls = [], []
    for i in range(max(2, repeats // 2)):
        run_dir = root / "papermill-runs" / str(i)
        t0 = time.perf_counter()
        cells = 0.0
        for name, step in spec["steps"].items():
            step_dir = run_dir / name
            step_dir.mkdir(parents=True)
            out_nb = step_dir / Path(step["notebook"]).name
            cmd = [
                sys.executable,
                "-m",
                "papermill",
                step["notebook"],
                str(out_nb),
                "--no-progress-bar",
                "-p",
                "step_dir",
                str(step_dir),
            ]
            declared = read_notebook(root / step["notebook"]).parameters
            for key, value in params.items():
                if key in declared:
                    cmd += ["-y", yaml.safe_dump({key: value})]
            if "gate" in declared:
                cmd += ["-f", str(gate_file)]
            cmd += ["-y", yaml.safe_dump({"upstream": {n: str(run_dir / n) for n in step.get("needs", [])}})]
            timed(cmd, root)
            cells += cells_seconds(out_nb)
        wall = time.perf_counter() - t0
        walls.append(wall)
        overheads.append(wall - cells)
    return {"full_wall": walls, "full_overhead": overheads}


# -- Ploomber --------------------------------------------------------------------------------
PLOOMBER_SPEC = """
tasks:
  - source: load.ipynb
    product: {nb: out/load.ipynb, data: out/numbers.json}
  - source: double.ipynb
    product: {nb: out/double.ipynb, data: out/doubled.json}
  - source: report.ipynb
    product: {nb: out/report.ipynb, data: out/report.json}
"""


def _ploomber_notebook(path: Path, code: str) -> None:
    cells = [
        {
            "cell_type": "code",
            "metadata": {"tags": ["parameters"]},
            "source": "upstream = None\nproduct = None",
            "outputs": [],
            "execution_count": None,
        },
        {"cell_type": "code", "metadata": {}, "source": code, "outputs": [], "execution_count": None},
    ]
    nb = {
        "cells": cells,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 4,
    }
    path.write_text(json.dumps(nb))


def ploomber(repeats: int) -> dict | None:
    venv = PEERS / "ploomber"
    python = venv / "bin" / "python"
    if not python.exists():
        print("installing Ploomber into", venv, "(once)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "ploomber"], check=True)
    root = Path(tempfile.mkdtemp(prefix="ploomber-bench-"))
    (root / "pipeline.yaml").write_text(PLOOMBER_SPEC)
    _ploomber_notebook(root / "load.ipynb", "import json\njson.dump([1, 2, 3], open(product['data'], 'w'))")
    _ploomber_notebook(
        root / "double.ipynb",
        "import json\nd = json.load(open(upstream['load']['data']))\njson.dump([2 * x for x in d], open(product['data'], 'w'))",
    )
    _ploomber_notebook(
        root / "report.ipynb",
        "import json\nd = json.load(open(upstream['double']['data']))\njson.dump({'sum': sum(d)}, open(product['data'], 'w'))",
    )
    # Ploomber infers `upstream` from the parameters cell: declare the dependencies there.
    for name, ups in (("double", ["load"]), ("report", ["double"])):
        nb = json.loads((root / f"{name}.ipynb").read_text())
        nb["cells"][0]["source"] = f"upstream = {ups!r}\nproduct = None"
        (root / f"{name}.ipynb").write_text(json.dumps(nb))
    ploomber_bin = [str(venv / "bin" / "ploomber"), "build", "--entry-point", "pipeline.yaml"]
    first = timed(ploomber_bin, root)
    noop = [timed(ploomber_bin, root) for _ in range(repeats)]
    return {"first": first, "noop": noop}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-ploomber", action="store_true")
    args = parser.parse_args()

    root = make_workspace()
    print(f"workspace {root}; {os.cpu_count()} cores; python {sys.version.split()[0]}", flush=True)
    timed([sys.executable, "-m", "aidevops_ext.cli", "run", "ci"], root)  # warm: store, caches, pyc files
    mine = ours(root, args.repeats)
    pm = papermill_cli(root, args.repeats)
    pl = None if args.skip_ploomber else ploomber(args.repeats)
    med = statistics.median

    rows = []
    noop = med(mine["noop"])
    rows.append(
        (
            "(a) no-op re-run, whole process",
            f"{noop:.3f} s",
            f"{med(pl['noop']):.3f} s (ploomber build, 3 notebooks)" if pl else "-",
            f"{noop / med(pl['noop']):.3f}" if pl else "-",
            "≤ 0.5 s",
            noop <= 0.5,
        )
    )
    step = med(mine["step_overhead"])
    rows.append(("(b) overhead per executed step", f"{step:.3f} s", "-", "-", "median ≤ 0.5 s", step <= 0.5))
    ours_full, pm_full = med(mine["full_overhead"]), med(pm["full_overhead"])
    rows.append(
        (
            "(c) full ci.yaml run overhead",
            f"{ours_full:.3f} s",
            f"{pm_full:.3f} s (papermill CLI x4)",
            f"{ours_full / pm_full:.3f}",
            "≤ 0.5 × papermill",
            ours_full <= 0.5 * pm_full,
        )
    )
    print()
    print(f"{'measure':<36}{'aidevops':>12}  {'peer':<40}{'ratio':>8}  {'target':<20}result")
    for name, a, b, ratio, target, ok in rows:
        print(f"{name:<36}{a:>12}  {b:<40}{ratio:>8}  {target:<20}{'PASS' if ok else 'FAIL'}")
    print()
    print(
        f"full ci.yaml wall time: aidevops {med(mine['full_wall']):.2f} s, papermill CLI {med(pm['full_wall']):.2f} s"
    )
    print("raw:", json.dumps({"aidevops": mine, "papermill": pm, "ploomber": pl}, default=lambda x: round(x, 4)))
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
