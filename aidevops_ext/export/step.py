"""One pipeline step outside the runner: what a container on another engine (Argo, a CI job) executes.

The local runner owns a whole run folder; an engine that schedules steps as separate pods hands each pod
only its upstream steps' folders. `run_step` rebuilds what the notebook expects from the runner: the
injected `run_dir`, `step_dir`, `upstream` and `pipeline_run_id`, and a `run.json` in the run folder (the
register step reads its lineage from there). It runs the notebook with papermill on the pipeline's
kernel, keeps the executed notebook in the step folder (also when it fails) and checks the declared
outputs, with the runner's own executor, so a step fails the same way here as in `aidevops run`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..pipeline.cache import expand_outputs
from ..pipeline.executor import KernelPool, StepFailed, execute_notebook, kernel_env
from ..pipeline.hashing import sha256_file
from ..pipeline.notebook import read_notebook
from ..pipeline.params import INJECTED, check_type
from ..pipeline.records import RUN_FILE, now_iso, write_json_atomic
from ..workspace import Workspace

GIT_COMMIT_ENV = "AIDEVOPS_GIT_COMMIT"  # set by `aidevops export argo`: pods have no git checkout
LINEAGE_FILE = ".aidevops-lineage.json"  # in a step's folder: the output hashes of it and its upstream steps


@dataclass(frozen=True)
class StepResult:
    """Where the executed notebook and the step's files are."""

    step_dir: Path
    notebook: Path
    outputs: list[str]


def run_step(
    notebook: Path,
    name: str,
    run_dir: Path,
    *,
    params: Mapping[str, Any] | None = None,
    needs: tuple[str, ...] | list[str] = (),
    outputs: tuple[str, ...] | list[str] = (),
    kernel: str = "python3",
    pipeline: str = "pipeline",
    run_id: str | None = None,
    root: Path | None = None,
    timeout: float | None = None,
) -> StepResult:
    """Execute `notebook` as step `name` of a run whose folder is `run_dir` (upstream folders inside it)."""
    notebook = Path(notebook).resolve()
    info = read_notebook(notebook)
    params = dict(params or {})
    for key, value in params.items():
        if key in INJECTED:
            raise ConfigError(f"parameter '{key}' is set by the step runner and cannot be passed with -p.")
        if key not in info.parameters:
            raise ConfigError(
                f"{notebook.name} declares no parameter '{key}' in its parameters cell; "
                f"valid parameters: {', '.join(sorted(set(info.parameters) - set(INJECTED)))}."
            )
        params[key] = check_type(key, value, info.parameters[key])
    run_dir = Path(run_dir).resolve()
    missing = [dep for dep in needs if not (run_dir / dep).is_dir()]
    if missing:
        raise ConfigError(
            f"step '{name}' needs the folder(s) of {', '.join(missing)} under {run_dir}; "
            "pass the upstream steps' outputs there (Argo: input artifacts)."
        )
    step_dir = run_dir / name
    step_dir.mkdir(parents=True, exist_ok=True)
    run_id = run_id or run_dir.name
    _write_run_record(run_dir, name, notebook, pipeline, run_id, needs)
    runner_values = {
        "run_dir": str(run_dir),
        "step_dir": str(step_dir),
        "upstream": {dep: str(run_dir / dep) for dep in needs},
        "pipeline_run_id": run_id,
    }
    injected = dict(params, **{k: v for k, v in runner_values.items() if k in info.parameters})
    output_nb = step_dir / notebook.name
    root = Path(root or Path.cwd()).resolve()
    ws = Workspace.discover(root)
    pool = KernelPool(kernel, root, kernel_env(ws.root))
    km = pool.take()
    try:
        execute_notebook(notebook, output_nb, injected, km, step=name, progress=False, timeout=timeout)
    finally:
        pool.release(km)
        pool.close()
    absent = [rel for rel in outputs if not (step_dir / rel).exists()]
    if absent:
        raise StepFailed(
            f"step '{name}' finished but did not write its declared output(s) {', '.join(absent)} "
            "to step_dir; write them there or fix the step's outputs."
        )
    files = expand_outputs(step_dir, list(outputs))
    _record_outputs(run_dir, name, {rel: sha256_file(step_dir / rel) for rel in files})
    return StepResult(step_dir, output_nb, files)


def _write_run_record(
    run_dir: Path, step: str, notebook: Path, pipeline: str, run_id: str, needs: tuple[str, ...] | list[str]
) -> None:
    """A run.json holding what this pod knows: the run, the commit, and its upstream folders' file hashes."""
    path = run_dir / RUN_FILE
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        commit = os.environ.get(GIT_COMMIT_ENV) or None
        record = {
            "run_id": run_id,
            "pipeline": pipeline,
            "status": "running",
            "started": now_iso(),
            "git": {"commit": commit, "dirty": None if commit is None else False},
            "engine": "step",
            "steps": {},
        }
    steps = record.setdefault("steps", {})
    for dep in needs:
        folder = run_dir / dep
        try:  # what the upstream pod knew (its own upstream included): lineage reaches past direct needs
            known = json.loads((folder / LINEAGE_FILE).read_text())["steps"]
        except (OSError, ValueError, KeyError):
            known = {}
        for other, entry in known.items():
            steps.setdefault(other, {}).update({k: v for k, v in entry.items() if k not in steps.get(other, {})})
        if "outputs" not in steps.get(dep, {}):
            names = [
                p.name for p in sorted(folder.iterdir()) if not p.name.endswith(".ipynb") and not p.name.startswith(".")
            ]
            steps.setdefault(dep, {})["outputs"] = {
                rel: sha256_file(folder / rel) for rel in expand_outputs(folder, names)
            }
    steps.setdefault(step, {})["notebook"] = str(run_dir / step / notebook.name)
    write_json_atomic(path, record)


def _record_outputs(run_dir: Path, step: str, hashes: dict[str, str]) -> None:
    """Add the step's output hashes to run.json, and leave the lineage in its folder for downstream pods."""
    path = run_dir / RUN_FILE
    record = json.loads(path.read_text())
    record["steps"].setdefault(step, {})["outputs"] = hashes
    write_json_atomic(path, record)
    lineage = {name: {k: v for k, v in entry.items() if k == "outputs"} for name, entry in record["steps"].items()}
    write_json_atomic(run_dir / step / LINEAGE_FILE, {"steps": lineage})
