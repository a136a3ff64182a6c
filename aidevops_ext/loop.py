"""The closed loop: alert → retraining run → gate → deployment switch, each link recorded.

`retrain(ws, NAME)` (the CLI's `aidevops retrain NAME`, and the deployment's supervisor when a rule with
`action: retrain` fires) does, for deployment NAME:
1. builds a training set from the logged traffic of the deployment's model that has feedback labels
   (the newest `rows` labelled rows whose inputs the request log kept), written content-addressed under
   `.aidevops/retrain/`: for a pipeline with a `data:` section (any MLflow model on a table) a Parquet
   file with the original columns and categories and the label in the target column, else (the built-in
   digits pipelines) an `.npz` of float rows;
2. runs the pipeline that produced the model (its `pipelines/*.yaml` with `model:` equal to the
   deployment's model) up to its `register` step, with the param `live_data` (Parquet: the shipped
   split step adds the rows to the training side, aidevops_ext/steps/live.py) or `extra_data` (npz: the
   digits prepare step appends them to the training split) pointing at those rows;
3. lets the pipeline's gate decide: only a version that passed becomes `champion`;
4. on a new champion, switches the deployment through the normal zero-downtime path (load, smoke test,
   check predictions, then swap), as `aidevops deploy` would.

Every retraining is a row of `retrains` in deploy.db: the alert event that caused it (if any), the
pipeline run, the model version, the gate's decision and the deployment change — the chain is one query
(`aidevops retrains`). The alert event is claimed atomically, so one alert starts one retraining.

This module sits above monitoring, pipeline and deploy; the model server never imports it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import db
from .errors import AidevopsError, ConfigError
from .workspace import Workspace

# Statuses of a retraining.
RUNNING, SWITCHED, GATE_FAILED, UNCHANGED, FAILED = "running", "switched", "gate failed", "unchanged", "failed"
DEFAULT_ROWS = 5000
MIN_LIVE_ROWS = 1
LIVE_PARAM = "live_data"  # the pipeline param a `data:` pipeline receives the live rows' Parquet file as


@dataclass
class Retraining:
    """One row of `retrains`: an alert (or a person) → a pipeline run → a version → a deployment change."""

    id: int
    deployment: str
    model: str
    trigger: str  # "alert" | "manual"
    status: str
    started: float
    alert_event_id: int | None = None
    rule: str | None = None
    finished: float | None = None
    pipeline: str | None = None
    pipeline_run_id: str | None = None
    from_version: str | None = None
    version: str | None = None
    gate_passed: bool | None = None
    champion_moved: bool | None = None
    switched_to: str | None = None
    training_rows: int | None = None
    live_rows: int | None = None
    extra_data: str | None = None
    actor: str | None = None
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _connect(ws: Workspace) -> sqlite3.Connection:
    conn = db.connect(ws.deploy_db)  # `retrains` is defined with deploy.db's other tables, in db.py
    conn.row_factory = sqlite3.Row
    return conn


def _row(r: sqlite3.Row) -> Retraining:
    d = dict(r)
    for key in ("gate_passed", "champion_moved"):
        d[key] = None if d[key] is None else bool(d[key])
    return Retraining(**d)


def retrainings(ws: Workspace, deployment: str | None = None, *, limit: int = 50) -> list[Retraining]:
    """Recorded retrainings, newest last (of one deployment, or all)."""
    if not ws.deploy_db.is_file():
        return []
    conn = _connect(ws)
    try:
        rows = conn.execute(
            "SELECT * FROM (SELECT * FROM retrains"
            + (" WHERE deployment = ?" if deployment else "")
            + " ORDER BY id DESC LIMIT ?) ORDER BY id",
            ((deployment,) if deployment else ()) + (limit,),
        ).fetchall()
    finally:
        conn.close()
    return [_row(r) for r in rows]


def _start(ws: Workspace, **fields: Any) -> int:
    conn = _connect(ws)
    try:
        conn.execute("BEGIN IMMEDIATE")
        busy = conn.execute(
            "SELECT id, started FROM retrains WHERE deployment = ? AND status = ?", (fields["deployment"], RUNNING)
        ).fetchone()
        if busy is not None:
            conn.execute("ROLLBACK")
            raise ConfigError(
                f"deployment '{fields['deployment']}' is already being retrained (retraining #{busy['id']}); "
                "wait for it to finish (`aidevops retrains`)."
            )
        cols = ", ".join(fields)
        cur = conn.execute(
            f"INSERT INTO retrains ({cols}) VALUES ({', '.join('?' * len(fields))})", tuple(fields.values())
        )
        conn.execute("COMMIT")
        return int(cur.lastrowid)
    finally:
        conn.close()


def _get(ws: Workspace, rid: int) -> Retraining:
    conn = _connect(ws)
    try:
        return _row(conn.execute("SELECT * FROM retrains WHERE id = ?", (rid,)).fetchone())
    finally:
        conn.close()


def _update(ws: Workspace, rid: int, **fields: Any) -> None:
    conn = _connect(ws)
    try:
        conn.execute(
            f"UPDATE retrains SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?", (*fields.values(), rid)
        )
    finally:
        conn.close()


# ------------------------------------------------------------------------------ the training set


def live_labelled_frame(ws: Workspace, model: str, *, rows: int = DEFAULT_ROWS) -> tuple[Any, list[str], list[Any]]:
    """(inputs, row ids, labels): the newest `rows` logged DataFrame inputs of `model` (any version) that have a
    feedback label, every column as the server received it; (None, [], []) when the log kept no frames."""
    from .serving.livedata import read_feedback, read_window  # noqa: PLC0415

    win = read_window(ws.deploy_db, model, None, rows=rows * 4)  # labelled rows are a share of the logged ones
    if win.frame is None or not win.n_rows:
        return None, [], []
    labels = {
        rid: label for rid, label, _ in read_feedback(ws.deploy_db, model, first_id=win.first_id, last_id=win.last_id)
    }
    keep = [i for i, rid in enumerate(win.row_ids) if labels.get(rid) is not None][-rows:]
    return (
        win.frame.iloc[keep].reset_index(drop=True),
        [win.row_ids[i] for i in keep],
        [labels[win.row_ids[i]] for i in keep],
    )


def live_training_rows(ws: Workspace, model: str, *, rows: int = DEFAULT_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """(X, y): the newest `rows` logged input rows of `model` (any version) that have a feedback label."""
    from .serving.livedata import read_feedback, read_window  # noqa: PLC0415

    win = read_window(ws.deploy_db, model, None, rows=rows * 4)  # labelled rows are a share of the logged ones
    if not win.n_rows:
        return np.zeros((0, 0), np.float32), np.zeros(0)
    labels = {
        rid: label for rid, label, _ in read_feedback(ws.deploy_db, model, first_id=win.first_id, last_id=win.last_id)
    }
    keep = [i for i, rid in enumerate(win.row_ids) if rid in labels and labels[rid] is not None]
    keep = keep[-rows:]
    return win.rows[keep], np.asarray([labels[win.row_ids[i]] for i in keep])


# ------------------------------------------------------------------------------ retrain


def retrain(
    ws: Workspace | None,
    name: str,
    *,
    alert_event_id: int | None = None,
    rows: int = DEFAULT_ROWS,
    actor: str | None = None,
    echo: Callable[[str], None] | None = None,
) -> Retraining:
    """Retrain deployment `name`'s model on its labelled live traffic plus the original data; see the module docstring."""
    from .deploy import manager  # noqa: PLC0415
    from .deploy.store import default_actor  # noqa: PLC0415
    from .monitoring.alertstore import AlertStore  # noqa: PLC0415

    ws = (ws or Workspace.discover()).ensure()
    echo = echo or (lambda msg: None)
    actor = actor or default_actor()
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise ConfigError(f"--rows must be a positive number of labelled rows, got {rows!r}.")
    dep = manager.get(ws, name)
    spec = retrain_spec(ws, dep)
    if spec is None:
        raise ConfigError(
            f"no pipeline in {ws.root / 'pipelines'} registers '{dep.model}', so '{name}' cannot be retrained; "
            "add one whose `model:` is that name."
        )
    if "register" not in spec.steps:
        raise ConfigError(
            f"pipeline '{spec.name}' has no 'register' step, so a retrained model would never reach the registry."
        )
    if spec.data is not None and LIVE_PARAM not in spec.params:
        raise ConfigError(
            f"pipeline '{spec.name}' has no param '{LIVE_PARAM}', so its run cannot receive the live rows; "
            f"add `{LIVE_PARAM}: null` under its params: (docs/write-your-own-step.md)."
        )
    rule = None
    if alert_event_id is not None:
        store = AlertStore(ws.deploy_db)
        event = store.event(alert_event_id)
        if event is None or event["deployment"] != name or event["event"] != "fired":
            raise ConfigError(
                f"alert #{alert_event_id} is not a fired alert of '{name}'; list them with `aidevops monitor {name}`."
            )
        rule = event["rule"]
    lock = retraining_lock(ws, name)  # one retraining per deployment at a time; released at the end
    try:
        return _claim_and_retrain(ws, name, dep, spec, rows, actor, echo, alert_event_id, rule)
    finally:
        lock.close()


def _claim_and_retrain(
    ws: Workspace,
    name: str,
    dep: Any,
    spec: Any,
    rows: int,
    actor: str,
    echo: Callable[[str], None],
    alert_event_id: int | None,
    rule: str | None,
) -> Retraining:
    from .monitoring.alertstore import AlertStore  # noqa: PLC0415

    rid = _start(
        ws,
        deployment=name,
        model=dep.model,
        trigger="alert" if alert_event_id is not None else "manual",
        alert_event_id=alert_event_id,
        rule=rule,
        status=RUNNING,
        started=time.time(),
        pipeline=spec.name,
        from_version=dep.active_version,
        actor=actor,
    )
    if alert_event_id is not None and not AlertStore(ws.deploy_db).claim(alert_event_id, f"retraining #{rid}"):
        _update(ws, rid, status=FAILED, finished=time.time(), message=f"alert #{alert_event_id} was already taken up")
        raise ConfigError(
            f"alert #{alert_event_id} was already taken up by another retraining; see `aidevops retrains {name}`."
        )
    try:
        return _retrain(ws, rid, dep, spec, rows, actor, echo, alert_event_id)
    except BaseException as exc:
        message = str(exc) if isinstance(exc, AidevopsError) else f"{type(exc).__name__}: {exc}"
        _update(ws, rid, status=FAILED, finished=time.time(), message=message[:2000])
        raise


def retrain_spec(ws: Workspace, dep: Any) -> Any:
    """The pipeline a retraining of deployment `dep` runs: the one recorded at deploy time, else the one that
    registers its model (None when there is none)."""
    from .pipeline.spec import load_spec, resolve_spec_path, spec_for_model  # noqa: PLC0415

    options = json.loads(dep.options or "{}") if dep.target == "local" else {}
    spec_name = options.get("pipeline") if isinstance(options, dict) else None
    return (
        load_spec(resolve_spec_path(spec_name, ws.root), ws.root) if spec_name else spec_for_model(ws.root, dep.model)
    )


def retraining_lock(ws: Workspace, name: str) -> Any:
    """Take deployment `name`'s retraining lock (an open file; closing it, or the process ending, releases it).

    Two retrainings of one deployment at once (a person's and the supervisor's after an alert) would
    each register a version and race to switch; the second is refused instead, naming the first.
    """
    import fcntl  # noqa: PLC0415

    folder = ws.state / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    fh = open(folder / f"retrain-{name}.lock", "a+")  # noqa: SIM115 - held past this function
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        running = [r for r in retrainings(ws, name, limit=5) if r.status == RUNNING]
        which = f" (#{running[-1].id}, {running[-1].trigger})" if running else ""
        raise ConfigError(
            f"a retraining of '{name}' is already running{which}; wait for it to end "
            f"(`aidevops retrains {name}`) before starting another."
        ) from None
    return fh


def retraining_running(ws: Workspace, name: str) -> bool:
    """Whether a retraining of deployment `name` holds its lock now (in any process)."""
    try:
        retraining_lock(ws, name).close()
    except ConfigError:
        return True
    return False


def _retrain(
    ws: Workspace,
    rid: int,
    dep: Any,
    spec: Any,
    rows: int,
    actor: str,
    echo: Callable[[str], None],
    alert_event_id: int | None,
) -> Retraining:
    from .deploy import manager  # noqa: PLC0415
    from .pipeline.records import find_run  # noqa: PLC0415
    from .pipeline.runner import PipelineRunner, RunOptions  # noqa: PLC0415

    n_live, extra, overrides = _handover(ws, dep.model, spec, rows)
    if n_live >= MIN_LIVE_ROWS:
        echo(f"retraining #{rid}: {n_live} labelled live rows of {dep.model} join the training data ({extra.name})")
    else:
        echo(f"retraining #{rid}: no labelled live rows of {dep.model}; retraining on the original data only")
    _update(ws, rid, live_rows=n_live, extra_data=str(extra) if extra else None)
    record = PipelineRunner(ws, spec, RunOptions(overrides=overrides, until="register"), echo=echo).run()
    run = find_run(ws, record.run_id)
    registration = json.loads(Path(run["run_dir"], "register", "registration.json").read_text())
    version = str(registration["version"]) if registration.get("version") is not None else None
    gate, moved = bool(registration.get("gate_passed")), bool(registration.get("champion_moved"))
    fields: dict[str, Any] = {
        "pipeline_run_id": record.run_id,
        "version": version,
        "gate_passed": int(gate),
        "champion_moved": int(moved),
        "training_rows": _training_rows(run, spec, n_live),
    }
    current = manager.get(ws, dep.name)
    if not moved:
        reasons = "; ".join(registration.get("reasons") or []) or "the gate did not pass"
        status, message = (
            (GATE_FAILED, f"v{version} failed the gate ({reasons}); {dep.name} keeps v{current.active_version}")
            if not gate
            else (UNCHANGED, f"v{version} passed the gate but did not become champion")
        )
    elif current.active_version == version:
        status, message = UNCHANGED, f"{dep.name} already serves v{version}"
    else:
        why = f"retraining #{rid}" + (f" after alert #{alert_event_id}" if alert_event_id is not None else "")
        manager.switch(ws, dep.name, version, reason=why, actor=f"aidevops-loop ({actor})")
        status, message = SWITCHED, f"{dep.name} switched from v{current.active_version} to v{version}"
        fields["switched_to"] = version
    echo(f"retraining #{rid}: {message}")
    _update(ws, rid, status=status, finished=time.time(), message=message, **fields)
    return _get(ws, rid)


def _handover(ws: Workspace, model: str, spec: Any, rows: int) -> tuple[int, Path | None, dict[str, Any]]:
    """(live rows, their file, pipeline overrides): how the retraining run receives the labelled live rows.

    A pipeline with a `data:` section (the shipped steps) gets a Parquet file of the logged inputs with the
    label in the target column, as its param `live_data` (aidevops_ext/steps/live.py, where they enter
    the training side); the built-in digits pipelines get an `.npz` of float rows as `extra_data`.
    """
    if spec.data is not None:
        from .datasection import parse_data  # noqa: PLC0415
        from .steps.live import live_table, write_live_table  # noqa: PLC0415 - pandas

        frame, row_ids, labels = live_labelled_frame(ws, model, rows=rows)
        if frame is None or len(frame) < MIN_LIVE_ROWS:
            return 0, None, {}
        path = write_live_table(live_table(frame, row_ids, labels, parse_data(spec.data)), ws.state / "retrain")
        return len(frame), path, {LIVE_PARAM: str(path)}
    from .trainer import data  # noqa: PLC0415

    X, y = live_training_rows(ws, model, rows=rows)
    if len(X) < MIN_LIVE_ROWS:
        return 0, None, {}
    path = data.save_rows(X, y, ws.state / "retrain")
    return len(X), path, {"extra_data": str(path)}


def _training_rows(run: dict[str, Any], spec: Any, n_live: int) -> int | None:
    """Rows the retrained model trained on, from the run's own records (live rows included)."""
    split = Path(run["run_dir"], "split", "split.json")
    if spec.data is not None and split.is_file():
        return int(json.loads(split.read_text()).get("train_rows", 0))
    dataset = Path(run["run_dir"], "prepare", "dataset.json")
    if dataset.is_file():
        return int(json.loads(dataset.read_text()).get("n_train", 0)) + n_live
    return None


def retrain_exit_message(r: Retraining) -> str:
    """One line for the CLI."""
    where = f" (pipeline run {r.pipeline_run_id})" if r.pipeline_run_id else ""
    return f"retraining #{r.id} of {r.deployment}: {r.status}{where}: {r.message}"


def env_cooldown(default: float = 300.0) -> float:
    """Seconds between automatic retrainings of one deployment (AIDEVOPS_RETRAIN_COOLDOWN overrides)."""
    raw = os.environ.get("AIDEVOPS_RETRAIN_COOLDOWN", "")
    try:
        return max(0.0, float(raw)) if raw else default
    except ValueError:
        return default


__all__ = ["Retraining", "live_training_rows", "retrain", "retrainings"]
