"""JSON views the Deploy panel shows: models with lineage, deployments with health and history, runs.

Each function takes a Workspace and returns plain dicts; core errors (AidevopsError) pass through.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from ..deploy.store import Deployment
from ..errors import ConfigError, NotFound
from ..workspace import Workspace

HISTORY_ROWS = 20
LINEAGE_TAGS = ("pipeline", "pipeline_run_id", "git_commit", "git_dirty", "data_hash")


# --------------------------------------------------------------------------- models


def models(ws: Workspace, name: str | None = None) -> list[dict[str, Any]]:
    """Registered models, newest version first, each version with its lineage and openable notebooks."""
    from .. import registry  # noqa: PLC0415 - MLflow is imported on first use only

    registry.configure(ws)
    rows = registry.list_models(ws, name)
    for model in rows:
        for version in model["versions"]:
            version["lineage"] = lineage(ws, version.get("tags") or {})
    return rows


def lineage(ws: Workspace, tags: dict[str, str]) -> dict[str, Any]:
    """Where a version came from: pipeline run, commit, data hash, and the run's executed notebooks."""
    from ..pipeline.records import run_by_id  # noqa: PLC0415

    out: dict[str, Any] = {key: tags.get(f"aidevops.{key}") for key in LINEAGE_TAGS}
    out["source"] = tags.get("aidevops.source") or ("pipeline" if out["pipeline_run_id"] else None)
    try:
        logged = json.loads(tags.get("aidevops.notebooks") or "{}")
    except ValueError:
        logged = {}
    run = run_by_id(ws, out["pipeline_run_id"])
    out["run_in_workspace"] = run is not None
    out["notebooks"] = (
        run_notebooks(ws, run)
        if run
        else [
            {"step": step, "name": Path(str(uri)).name, "available": False, "uri": uri}
            for step, uri in sorted(logged.items())
        ]
    )
    return out


# --------------------------------------------------------------------------- runs


def _object(value: Any) -> Any:
    """A run.json's null (or, from an old or hand-edited file, non-object) mapping reads as empty."""
    return value if isinstance(value, dict) else {}


class _Stored(BaseModel):
    """What a run record and each of its steps have: a status, a duration and params (always a mapping)."""

    model_config = ConfigDict(extra="allow")
    status: Any = None
    duration_s: Any = None
    params: dict[str, Any] = {}

    _params = field_validator("params", mode="before")(_object)


class StoredStep(_Stored):
    """One step of a run record (run.json) as the views read it."""

    cache: Any = None
    error: Any = None
    notebook: Any = None
    why: list[str] = []  # why it ran, or which run's output it reused (the runner writes it)

    _why = field_validator("why", mode="before")(lambda v: [str(x) for x in v] if isinstance(v, list) else [])


class StoredRun(_Stored):
    """A run record (run.json) as the views read it: the mappings are always mappings."""

    run_id: str
    pipeline: Any = None
    started: Any = None
    finished: Any = None
    resumed_from: Any = None
    mlflow: Any = None
    overrides: dict[str, Any] = {}
    git: dict[str, Any] = {}
    steps: dict[str, StoredStep] = {}

    _objects = field_validator("overrides", "git", "steps", mode="before")(_object)

    def with_notebooks(self) -> list[str]:
        """The steps that have an executed notebook, in run order."""
        return [name for name, step in self.steps.items() if step.notebook]

    def step_params(self, step: str) -> dict[str, Any]:
        """The run's params with one step's own params over them."""
        found = self.steps.get(step)
        return {**self.params, **(found.params if found else {})}


def stored(record: dict[str, Any]) -> StoredRun:
    return StoredRun.model_validate(record)


def runs(ws: Workspace, pipeline: str | None, limit: int) -> list[dict[str, Any]]:
    """Pipeline runs, newest first: id, pipeline, status, timings, step states and notebooks."""
    from ..pipeline.records import iter_runs  # noqa: PLC0415

    out: list[dict[str, Any]] = []
    for record in iter_runs(ws, pipeline):
        if len(out) >= limit:
            break
        out.append(run_summary(ws, record))
    return out


def run(ws: Workspace, run_id: str) -> dict[str, Any]:
    """One run by exact id (a prefix or 'latest' would let a link change meaning)."""
    from ..pipeline.records import exact_run  # noqa: PLC0415

    record = stored(exact_run(ws, run_id))
    summary = run_summary(ws, record)
    summary["git"] = record.git
    summary["mlflow"] = record.mlflow
    return summary


def run_summary(ws: Workspace, record: dict[str, Any] | StoredRun) -> dict[str, Any]:
    """The fields the panel lists for a run."""
    run = record if isinstance(record, StoredRun) else stored(record)
    return {
        "run_id": run.run_id,
        "pipeline": run.pipeline,
        "status": run.status,
        "started": run.started,
        "finished": run.finished,
        "duration_s": run.duration_s,
        "resumed_from": run.resumed_from,
        "overrides": run.overrides,
        "params": run.params,
        "steps": {
            name: {
                "status": s.status,
                "cache": s.cache,
                "duration_s": s.duration_s,
                "error": s.error,
                "params": s.params,
                "why": s.why,  # the Runs panel's step chips explain each step (pipeline/why.py)
            }
            for name, s in run.steps.items()
        },
        "notebooks": run_notebooks(ws, run),
    }


def diff(ws: Workspace, server_root: Path, base: str, remote: str, step: str | None = None) -> dict[str, Any]:
    """Where nbdime's diff page finds one step's executed notebooks of two runs, and the params that differ.

    The answer's `url` is nbdime's own diff page (its Jupyter server extension), relative to the server's
    base URL; nbdime reads the two files by their paths under the server's root folder. Those files are the
    runs' notebooks normalised as `aidevops diff` does (run folders, ids, injected params and timings masked),
    written under .aidevops/diffs/ (review/diff.py `panel_pair`).
    """
    from ..pipeline.records import run_by_id  # noqa: PLC0415
    from ..review.diff import panel_pair  # noqa: PLC0415
    from ..review.runs import RunView  # noqa: PLC0415

    records, views = [], []
    for role, run_id in (("base", base), ("remote", remote)):
        record = run_by_id(ws, run_id)
        if record is None:
            raise NotFound(
                f"There is no pipeline run '{str(run_id)[:80]}' ({role}) in this workspace; "
                "list runs with `aidevops runs`."
            )
        records.append(stored(record))
        views.append(RunView(record))
    steps = [s for s in records[0].with_notebooks() if s in records[1].with_notebooks()]
    if not steps:
        raise ConfigError(
            f"Runs {base} and {remote} have no step with an executed notebook in common, so there is nothing to diff."
        )
    if step is None:
        step = steps[0]
    elif step not in steps:
        raise ConfigError(
            f"Step '{step[:80]}' is not a step both runs have a notebook for; choose one of {', '.join(steps)}."
        )
    for run in records:
        path = _inside_state(ws, run.steps[step].notebook)
        if path is None or not path.is_file():
            raise ConfigError(
                f"The executed notebook of step '{step}' of run {run.run_id} is no longer in the workspace."
            )
    root = server_root.resolve()
    if not ws.state.resolve().is_relative_to(root):
        raise ConfigError(
            f"The workspace's .aidevops folder is outside the Jupyter server's root folder {root}, so nbdime "
            "cannot open the run notebooks; start JupyterLab in the project folder."
        )
    paths = [p.resolve().relative_to(root).as_posix() for p in panel_pair(ws.state, views[0], views[1], step)]
    from urllib.parse import urlencode  # noqa: PLC0415

    params_a, params_b = records[0].step_params(step), records[1].step_params(step)
    changed = {
        k: [params_a.get(k), params_b.get(k)]
        for k in sorted(set(params_a) | set(params_b))
        if params_a.get(k) != params_b.get(k)
    }
    return {
        "base": base,
        "remote": remote,
        "step": step,
        "steps": steps,
        "base_path": paths[0],
        "remote_path": paths[1],
        "url": "nbdime/difftool?" + urlencode({"base": paths[0], "remote": paths[1]}),
        "params": changed,
    }


# --------------------------------------------------------------------------- jobs


def job(ws: Workspace, job_id: str) -> dict[str, Any]:
    """A background job with the tail of its output and the pipeline run it produced (once there is one)."""
    from .. import jobs  # noqa: PLC0415
    from ..pipeline.records import run_by_id  # noqa: PLC0415

    found = jobs.get(ws, job_id)
    out = found.to_dict()
    out["log_tail"] = jobs.log_tail(ws, found)
    record = run_by_id(ws, found.run_id)
    out["run"] = run_summary(ws, record) if record else None
    return out


def run_notebooks(ws: Workspace, record: dict[str, Any] | StoredRun) -> list[dict[str, Any]]:
    """The executed notebooks of a run's steps, with whether each can be opened."""
    run = record if isinstance(record, StoredRun) else stored(record)
    out = []
    for step in run.with_notebooks():
        data = run.steps[step]
        path = _inside_state(ws, data.notebook)
        out.append(
            {
                "step": step,
                "name": Path(data.notebook).name,
                "status": data.status,
                "available": path is not None and path.is_file(),
            }
        )
    return out


def _inside_state(ws: Workspace, path: str) -> Path | None:
    """`path` resolved, if it lies in the workspace's state folder (a run.json cannot point elsewhere)."""
    resolved = Path(path).resolve()
    return resolved if resolved.is_relative_to(ws.state.resolve()) else None


def run_notebook(ws: Workspace, run_id: str, step: str) -> dict[str, Any]:
    """A run step's executed notebook as a Jupyter contents model (read-only)."""
    from ..pipeline.records import exact_run  # noqa: PLC0415

    record = stored(exact_run(ws, run_id))
    data = record.steps.get(step)
    if data is None or not data.notebook:
        known = ", ".join(record.with_notebooks()) or "none"
        raise ConfigError(f"Run {run_id} has no executed notebook for step '{step[:80]}' (steps with one: {known}).")
    path = _inside_state(ws, data.notebook)
    if path is None or not path.is_file():
        raise ConfigError(
            f"The executed notebook of step '{step}' of run {run_id} is no longer in the workspace; "
            "re-run the pipeline to produce it again."
        )
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise ConfigError(
            f"The executed notebook of step '{step}' of run {run_id} is not a readable notebook (not JSON); "
            "re-run the pipeline to produce it again."
        ) from None
    stat = path.stat()
    modified = datetime.fromtimestamp(stat.st_mtime, tz=timezone.utc).isoformat()
    return {
        "name": path.name,
        "path": f"{run_id}/{step}/{path.name}",
        "type": "notebook",
        "format": "json",
        "mimetype": None,
        "writable": False,
        "created": modified,
        "last_modified": modified,
        "size": stat.st_size,
        "content": content,
    }


# --------------------------------------------------------------------------- deployments


def deployments(ws: Workspace) -> list[dict[str, Any]]:
    """Every deployment with its live health, slots, endpoint and recent history."""
    from ..deploy import manager  # noqa: PLC0415

    return [deployment(ws, dep.name) for dep in manager.list_deployments(ws)]


def deployment(ws: Workspace, name: str) -> dict[str, Any]:
    """One deployment: its row, live slots, health, endpoints, a curl example and its history."""
    from ..deploy import manager  # noqa: PLC0415

    status = manager.status(ws, name)
    dep = status.deployment
    url = dep.url
    health = status.health
    return {
        **{key: getattr(dep, key) for key in ("name", "model", "ref", "target", "state")},
        "health": health,
        "error": status.error or dep.error,
        "url": url,
        "endpoints": {
            "invocations": f"{url}/invocations",
            "v2_infer": f"{url}/v2/models/{dep.model}/infer",
            "metrics": f"{url}/metrics",
        }
        if url
        else {},
        **{
            key: getattr(status, key)
            for key in ("active_version", "previous_version", "canary_version", "canary_share")
        },
        "restarts": dep.restarts or 0,
        "updated": dep.updated,
        "example": _example(ws, dep, status.example) if health == "healthy" else None,
        "history": [h.to_dict() for h in reversed(status.history)][:HISTORY_ROWS],  # newest first
        "awaiting_approval": awaiting_approval(ws, name),
    }


def awaiting_approval(ws: Workspace, name: str) -> dict[str, Any] | None:
    """The retrained version held for approval on `name`, with its evidence (loop.py), or None."""
    from ..loop import awaiting_approval as held  # noqa: PLC0415

    return held(ws, name)


def _example(ws: Workspace, dep: Deployment, served: dict | None = None) -> dict[str, Any] | None:
    """One input row of the active version as a request body and a curl line: the model's own input
    example (`served`, from the server's slots) when it has one, else its reference rows."""
    from ..deploy import manager  # noqa: PLC0415
    from ..deploy.versions import cache_dir  # noqa: PLC0415

    if served is not None:
        return {"body": served, "curl": manager.curl_example(dep, body=served)}
    if dep.active_version is None:
        return None  # nothing serves yet, so there are no reference rows
    try:
        ref = json.loads((cache_dir(ws, dep.model, dep.active_version) / "reference.json").read_text())
        rows = ref.get("rows") or None
    except (OSError, ValueError, TypeError, AttributeError):
        rows = None
    if not rows:
        return None
    row = [float(f"{v:.4g}") for v in rows[0]]
    return {"body": {"inputs": [row]}, "curl": manager.curl_example(dep, [row])}
