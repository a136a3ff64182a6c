"""Background jobs: a pipeline run or a retraining started from JupyterLab (or any long-lived process),
followed by polling.

A job is an `aidevops` command run as its own process, never through a shell: `start_run` and
`start_retrain` check their arguments first (unknown pipeline, unknown or ill-typed params, unknown
deployment are errors before anything starts), then launch
`python -m aidevops_ext.jobs JOB_ID -- aidevops ARGS...`, a wrapper that runs the command, sends its
output to `.aidevops/jobs/<id>.log` and writes the exit code into `.aidevops/jobs/<id>.json` when it
ends, so the job's state survives the process that started it (a restarted Jupyter server still
knows how each job ended). A pipeline job also names the run it produced, found by its start time.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError, NotFound
from .workspace import Workspace

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"


@dataclass
class Job:
    """One background command and how it went."""

    id: str
    kind: str  # "run" | "retrain"
    argv: list[str]
    started: float
    pid: int | None = None
    status: str = RUNNING
    exit_code: int | None = None
    finished: float | None = None
    pipeline: str | None = None
    deployment: str | None = None
    run_id: str | None = None
    log: str | None = None
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _dir(ws: Workspace) -> Path:
    return ws.state / "jobs"


def _save(ws: Workspace, job: Job) -> None:
    path = _dir(ws) / f"{job.id}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(job.to_dict(), indent=1))
    os.replace(tmp, path)


def _launch(ws: Workspace, job: Job) -> Job:
    ws.ensure()
    _dir(ws).mkdir(parents=True, exist_ok=True)
    job.log = str(_dir(ws) / f"{job.id}.log")
    _save(ws, job)
    env = dict(os.environ, AIDEVOPS_HOME=str(ws.root))
    with open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aidevops_ext.jobs", job.id, "--", *job.argv],
            cwd=str(ws.root),
            env=env,
            stdin=devnull,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    job.pid = proc.pid
    _save(ws, job)
    return job


def start_run(
    ws: Workspace, pipeline: str, overrides: Mapping[str, Any] | None = None, from_step: str | None = None
) -> Job:
    """Start `aidevops run PIPELINE -p k=v ...` in the background; a failed run resumes at its failed step.

    With `from_step`, `aidevops run PIPELINE --from STEP --force`: that step and everything downstream of it
    run again even when cached, upstream comes from the cache (pipeline/runner.py's selection).
    """
    from .pipeline.params import apply_overrides  # noqa: PLC0415
    from .pipeline.spec import load_spec, resolve_spec_path  # noqa: PLC0415

    if not isinstance(pipeline, str) or not pipeline or "/" in pipeline or pipeline.startswith("."):
        raise ConfigError("'pipeline' must be the name of a spec in pipelines/ (e.g. default).")
    spec = load_spec(resolve_spec_path(pipeline, ws.root), ws.root)
    overrides = dict(overrides or {})
    apply_overrides(spec, overrides)  # unknown or ill-typed params fail here, before anything starts
    argv = ["run", spec.name]
    if from_step is not None:
        spec.step(from_step)  # an unknown step fails here with the pipeline's steps named, before anything starts
        argv += ["--from", from_step, "--force"]
    for key, value in overrides.items():
        argv += ["-p", f"{key}={json.dumps(value)}"]  # JSON is YAML: the CLI parses the same typed value back
    job = Job(id=_new_id(), kind="run", argv=argv, started=time.time(), pipeline=spec.name)
    return _launch(ws, job)


def start_retrain(ws: Workspace, deployment: str) -> Job:
    """Start `aidevops retrain NAME` in the background."""
    from .deploy import manager  # noqa: PLC0415
    from .loop import retrain_spec  # noqa: PLC0415
    from .retrainings import retraining_lock  # noqa: PLC0415

    dep = manager.get(ws, deployment)  # an unknown deployment fails here
    retraining_lock(ws, dep.name).close()  # one already running fails here (the job's process takes the lock itself)
    spec = retrain_spec(ws, dep)
    pipeline = spec.name if spec is not None else None
    job = Job(
        id=_new_id(),
        kind="retrain",
        argv=["retrain", dep.name],
        started=time.time(),
        deployment=dep.name,
        pipeline=pipeline,
    )  # the pipeline the retraining runs, so the job can name the run it made
    return _launch(ws, job)


def rerun(ws: Workspace, run_id: str, overrides: Mapping[str, Any] | None = None, from_step: str | None = None) -> Job:
    """Run a recorded run's pipeline again with its overrides (or `overrides` in their place).

    Steps whose notebook, params and inputs did not change come from the cache, so a failed run
    resumes at its failed step. `from_step` re-runs that step and its downstream (the panel's "Run from here").
    """
    from .pipeline.records import exact_run  # noqa: PLC0415

    record = exact_run(ws, run_id)
    overrides = (record.get("overrides") or {}) if overrides is None else overrides
    return start_run(ws, record["pipeline"], overrides, from_step=from_step)


def log_tail(ws: Workspace, job: Job, lines: int = 30) -> list[str]:
    """The last `lines` lines of a job's output; nothing for a log outside the workspace's jobs folder.

    The path comes from the job's record, a file on disk: a record edited to name another file must not turn
    the Runs panel into a reader of any file the server can open.
    """
    if not job.log:
        return []
    path = Path(job.log).resolve()
    if not path.is_relative_to(_dir(ws).resolve()) or not path.is_file():
        return []
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - 64 * 1024))  # the tail only: a long run's log is not read whole each poll
        return fh.read().decode("utf-8", errors="replace").splitlines()[-lines:]


def _read(path: Path) -> Job:
    """A job record, or one sentence when the file is not one (never a 500 for a damaged record)."""
    try:
        return Job(**json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"job record {path.name} is not a readable job ({type(exc).__name__}); remove it.") from None


def get(ws: Workspace, job_id: str) -> Job:
    """A job by id, with its status brought up to date (and its pipeline run, once it exists)."""
    if not isinstance(job_id, str) or not job_id.isalnum():
        raise ConfigError(f"job id {str(job_id)[:40]!r} is not valid; job ids are letters and digits.")
    path = _dir(ws) / f"{job_id}.json"
    if not path.is_file():
        raise NotFound(f"there is no job '{job_id}' in {_dir(ws)}.")
    job = _read(path)
    from .deploy.local import pid_alive  # noqa: PLC0415

    if job.status == RUNNING and job.pid and not pid_alive(job.pid):
        job = _read(path)  # the wrapper may have just written the end
        if job.status == RUNNING:
            job.status, job.message, job.finished = (
                FAILED,
                "the job's process ended without recording an exit code",
                time.time(),
            )
            _save(ws, job)
    if job.run_id is None and job.pipeline:
        job.run_id = _run_of(ws, job)
    return job


def list_jobs(ws: Workspace, limit: int = 50) -> list[Job]:
    """Jobs, newest first."""
    if not _dir(ws).is_dir():
        return []
    found = []
    for job_id in sorted((p.stem for p in _dir(ws).glob("*.json")), reverse=True):
        try:
            found.append(get(ws, job_id))
        except ConfigError:
            continue  # a damaged or foreign file in the folder: GET jobs/ID names it, the listing goes on
        if len(found) == limit:
            break
    return found


def _run_of(ws: Workspace, job: Job) -> str | None:
    """The first run of the job's pipeline that started after the job (run.json times have 1 s resolution)."""
    from .pipeline.records import iter_runs  # noqa: PLC0415

    found = None
    for run in iter_runs(ws, job.pipeline):  # newest first
        started = run.get("started")
        if not started or _epoch(started) < job.started - 1:
            break
        found = run["run_id"]
    return found


def _epoch(iso: str) -> float:
    from datetime import datetime  # noqa: PLC0415

    return datetime.fromisoformat(iso).timestamp()


def _new_id() -> str:
    return time.strftime("%Y%m%d%H%M%S") + secrets.token_hex(3)


def main(argv: list[str] | None = None) -> int:
    """`python -m aidevops_ext.jobs JOB_ID -- ARGS...`: run `aidevops ARGS`, record how it ended."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 3 or args[1] != "--":
        print("usage: python -m aidevops_ext.jobs JOB_ID -- ARGS...", file=sys.stderr)
        return 2
    ws = Workspace.discover()
    job = Job(**json.loads((_dir(ws) / f"{args[0]}.json").read_text()))
    with open(job.log or os.devnull, "ab") as log:
        code = subprocess.call(
            [sys.executable, "-m", "aidevops_ext.cli", *args[2:]], stdout=log, stderr=log, cwd=str(ws.root)
        )
    job = Job(**json.loads((_dir(ws) / f"{job.id}.json").read_text()))
    tail = (
        Path(job.log).read_text(errors="replace").strip().splitlines()[-1:]
        if job.log and Path(job.log).is_file()
        else []
    )
    job.exit_code, job.finished = code, time.time()
    job.status = SUCCEEDED if code == 0 else FAILED
    job.message = tail[0][:500] if tail else ""
    if job.pipeline:
        job.run_id = _run_of(ws, job)
    _save(ws, job)
    return code


if __name__ == "__main__":
    sys.exit(main())
