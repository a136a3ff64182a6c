"""Run records: `run.json` in each run folder, written atomically after every step."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import ConfigError, NotFound
from ..workspace import Workspace

RUN_FILE = "run.json"


def new_run_id() -> str:
    """Sortable, unique run id: UTC time to the millisecond plus a short random suffix.

    Milliseconds matter: 'latest' is the highest id, and two runs often start within one second
    (a fully cached run takes a fraction of one), where a seconds-only id let the random suffix
    decide which of them counted as the newer.
    """
    now = datetime.now(timezone.utc)
    return now.strftime("%Y%m%d-%H%M%S-") + f"{now.microsecond // 1000:03d}-" + secrets.token_hex(2)


def now_iso() -> str:
    """Current UTC time, ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def git_state(root: Path) -> dict[str, Any]:
    """Commit and dirty flag of the repository at `root` (None values outside git)."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return {"commit": None, "dirty": None}
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, default=str)
    os.replace(tmp, path)


class RunRecord:
    """The mutable record of one pipeline run, persisted to `<run_dir>/run.json`."""

    def __init__(self, run_dir: Path, data: dict[str, Any]):
        self.run_dir = Path(run_dir)
        self.data = data
        self._t0 = time.perf_counter()

    @property
    def run_id(self) -> str:
        return self.data["run_id"]

    @property
    def status(self) -> str:
        return self.data["status"]

    def step(self, name: str) -> dict[str, Any]:
        """The mutable record of step `name`."""
        return self.data["steps"][name]

    def save(self) -> None:
        """Persist the record (atomic)."""
        write_json_atomic(self.run_dir / RUN_FILE, self.data)

    def finish(self, status: str) -> None:
        """Mark the run finished with `status` and persist it."""
        self.data["status"] = status
        self.data["finished"] = now_iso()
        self.data["duration_s"] = round(time.perf_counter() - self._t0, 4)
        self.save()


def iter_runs(ws: Workspace, pipeline: str | None = None) -> Iterator[dict[str, Any]]:
    """All run records of the workspace (newest first), optionally of one pipeline."""
    if not ws.runs_dir.is_dir():
        return
    files = []
    for pipe_dir in ws.runs_dir.iterdir():
        if pipe_dir.is_dir() and (pipeline is None or pipe_dir.name == pipeline):
            files += [d / RUN_FILE for d in pipe_dir.iterdir() if (d / RUN_FILE).is_file()]
    for file in sorted(files, key=lambda f: f.parent.name, reverse=True):
        try:
            data = json.loads(file.read_text())
        except (OSError, ValueError):
            continue
        data["run_dir"] = str(file.parent)
        yield data


def run_by_id(ws: Workspace, run_id: Any) -> dict[str, Any] | None:
    """The run with exactly this id, or None: no prefix, 'latest' or folder path, so a link or a request
    naming a run cannot come to mean another one."""
    if not isinstance(run_id, str) or not run_id:
        return None
    return next((r for r in iter_runs(ws) if r["run_id"] == run_id), None)


def exact_run(ws: Workspace, run_id: Any) -> dict[str, Any]:
    """run_by_id, or ConfigError naming the id and how to list runs."""
    run = run_by_id(ws, run_id)
    if run is None:
        raise NotFound(
            f"There is no pipeline run '{str(run_id)[:80]}' in this workspace; list runs with `aidevops runs`."
        )
    return run


def find_run(ws: Workspace, run: str) -> dict[str, Any]:
    """A run by id, unique id prefix, folder path, or 'latest'."""
    if Path(run).is_dir() and (Path(run) / RUN_FILE).is_file():
        data = json.loads((Path(run) / RUN_FILE).read_text())
        data["run_dir"] = str(Path(run).resolve())
        return data
    runs = list(iter_runs(ws))
    if run == "latest" and runs:
        return runs[0]
    matches = [r for r in runs if r["run_id"] == run] or [r for r in runs if r["run_id"].startswith(run)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise NotFound(f"no pipeline run '{run}' in {ws.runs_dir}; list runs with `aidevops runs`.")
    raise ConfigError(f"run id '{run}' is ambiguous ({len(matches)} runs match); give more characters.")


def last_run(ws: Workspace, pipeline: str) -> dict[str, Any] | None:
    """The newest run of `pipeline`, if any."""
    return next(iter_runs(ws, pipeline), None)
