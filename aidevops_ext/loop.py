"""The closed loop: alert → retraining run → gate → deployment switch, each link recorded.

`retrain(ws, NAME)` (the CLI's `aidevops retrain NAME`, and the deployment's supervisor when a rule with
`action: retrain` fires) does, for deployment NAME:
1. when the pipeline's spec opts in (`retrain: {live_labels: true, max_live_share, min_live_rows}`), builds
   a training set from the logged traffic of the deployment's model that has feedback labels (the newest
   `rows` labelled rows whose inputs the request log kept; none when fewer than `min_live_rows`), written
   content-addressed under `.aidevops/retrain/` with the share cap inside: for a pipeline with a `data:`
   section (any MLflow model on a table) a Parquet file with the original columns and categories and the
   label in the target column, else (the built-in digits pipelines) an `.npz` of float rows. Without the
   opt-in no live row is used: the run retrains on the pipeline's own data as it is now;
2. runs the pipeline that produced the model (its `pipelines/*.yaml` with `model:` equal to the
   deployment's model) up to its `register` step, with the param `live_data` (Parquet: the shipped
   split step adds the rows to the training side, aidevops_ext/steps/live.py) or `extra_data` (npz: the
   digits prepare step appends them to the training split) pointing at those rows; the step that adds
   them keeps the newest ones up to `max_live_share` of the training rows;
3. lets the pipeline's gate decide: only a version that passed can be switched in;
4. `promote: auto`: the version becomes `champion` and the deployment switches through the normal
   zero-downtime path (load, smoke test, check predictions, then swap), as `aidevops deploy` would;
   `promote: manual` (the default): the loop holds `champion` while the pipeline runs (registry/models.py
   HOLD_TAG), so the register step leaves the version `challenger`, and the retraining ends
   "awaiting approval" with its evidence (the gate's decision, the alert that started it, how many live
   rows from when); `approve(ws, NAME)` switches to it and moves `champion`, `reject(ws, NAME)` drops it,
   each recorded in the deployment's history.

The reference profile a retrained version's drift is measured against is the training side of the
pipeline's own data, never the live rows that joined it (the prepare/train notebooks and
aidevops_ext/steps/generic.py build it from those rows only): a model must serve the distribution its
project's data describes, and a shifted segment that taught it something must not become the new normal
that ordinary traffic is judged against. Traffic that stays shifted therefore keeps a drift alert firing
on the retrained version too; `deploy/autoretrain.py` does not retrain again for that (see there).

Every retraining is a row of `retrains` in deploy.db: the alert event that caused it (if any), the
pipeline run, the model version, the gate's decision and the deployment change — the chain is one query
(`aidevops retrains`). The alert event is claimed atomically, so one alert starts one retraining.

This module sits above monitoring, pipeline and deploy; the model server never imports it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import AidevopsError, ConfigError
from .retrainings import (  # the records this module writes; loop.RUNNING etc. stay its vocabulary too
    AWAITING,
    FAILED,
    GATE_FAILED,
    REJECTED,
    RUNNING,
    SWITCHED,
    UNCHANGED,
    Retraining,
    awaiting,
    retraining_lock,
    retrainings,
)
from .retrainings import get as _get
from .retrainings import start as _start
from .retrainings import supersede as _supersede
from .retrainings import update as _update
from .workspace import Workspace

DEFAULT_ROWS = 5000
LIVE_PARAM = "live_data"  # the pipeline param a `data:` pipeline receives the live rows' Parquet file as


# ------------------------------------------------------------------------------ the training set


def _labelled(ws: Workspace, model: str, rows: int) -> tuple[Any, list[int], dict[str, Any]]:
    """(window, positions of its labelled rows (the newest `rows`), labels by row id) of `model`'s logged traffic."""
    from .serving.livedata import read_feedback, read_window  # noqa: PLC0415

    win = read_window(ws.deploy_db, model, None, rows=rows * 4)  # labelled rows are a share of the logged ones
    if not win.n_rows:
        return win, [], {}
    labels = {
        rid: label for rid, label, _ in read_feedback(ws.deploy_db, model, first_id=win.first_id, last_id=win.last_id)
    }
    keep = [i for i, rid in enumerate(win.row_ids) if labels.get(rid) is not None][-rows:]
    return win, keep, labels


def _since(win: Any, keep: list[int]) -> float | None:
    """When the oldest of the kept rows was logged (epoch seconds)."""
    ts = np.asarray(win.row_ts)[keep] if keep and len(win.row_ts) else np.zeros(0)
    return float(ts.min()) if len(ts) else None


def live_labelled_frame(ws: Workspace, model: str, *, rows: int = DEFAULT_ROWS) -> tuple[Any, list[str], list[Any]]:
    """(inputs, row ids, labels): the newest `rows` logged DataFrame inputs of `model` (any version) that have a
    feedback label, every column as the server received it; (None, [], []) when the log kept no frames."""
    win, keep, labels = _labelled(ws, model, rows)
    if win.frame is None or not keep:
        return None, [], []
    return (
        win.frame.iloc[keep].reset_index(drop=True),
        [win.row_ids[i] for i in keep],
        [labels[win.row_ids[i]] for i in keep],
    )


def live_training_rows(ws: Workspace, model: str, *, rows: int = DEFAULT_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """(X, y): the newest `rows` logged input rows of `model` (any version) that have a feedback label."""
    win, keep, labels = _labelled(ws, model, rows)
    if not keep:
        return np.zeros((0, 0), np.float32), np.zeros(0)
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
        rid = _claim(ws, dep, spec.name, actor, alert_event_id, rule)
        try:
            return _retrain(ws, rid, dep, spec, rows, actor, echo, alert_event_id)
        except BaseException as exc:
            message = str(exc) if isinstance(exc, AidevopsError) else f"{type(exc).__name__}: {exc}"
            _update(ws, rid, status=FAILED, finished=time.time(), message=message[:2000])
            raise
    finally:
        lock.close()


def _claim(ws: Workspace, dep: Any, pipeline: str, actor: str, alert_event_id: int | None, rule: str | None) -> int:
    """The new retraining's row (its id), and the alert it answers taken up; ConfigError if another took it."""
    from .monitoring.alertstore import AlertStore  # noqa: PLC0415

    name = dep.name
    rid = _start(
        ws,
        deployment=name,
        model=dep.model,
        trigger="alert" if alert_event_id is not None else "manual",
        alert_event_id=alert_event_id,
        rule=rule,
        status=RUNNING,
        started=time.time(),
        pipeline=pipeline,
        from_version=dep.active_version,
        actor=actor,
    )
    if alert_event_id is not None and not AlertStore(ws.deploy_db).claim(alert_event_id, f"retraining #{rid}"):
        _update(ws, rid, status=FAILED, finished=time.time(), message=f"alert #{alert_event_id} was already taken up")
        raise ConfigError(
            f"alert #{alert_event_id} was already taken up by another retraining; see `aidevops retrains {name}`."
        )
    return rid


def retrain_spec(ws: Workspace, dep: Any) -> Any:
    """The pipeline a retraining of deployment `dep` runs: the one recorded at deploy time, else the one that
    registers its model (None when there is none)."""
    from .pipeline.spec import load_spec, resolve_spec_path, spec_for_model  # noqa: PLC0415

    options = json.loads(dep.options or "{}") if dep.target == "local" else {}
    spec_name = options.get("pipeline") if isinstance(options, dict) else None
    return (
        load_spec(resolve_spec_path(spec_name, ws.root), ws.root) if spec_name else spec_for_model(ws.root, dep.model)
    )


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
    from .pipeline.spec import PROMOTE_MANUAL  # noqa: PLC0415
    from .registry.models import hold_champion, release_champion  # noqa: PLC0415

    handover = _handover(ws, dep.model, spec, rows)
    if handover.rows and handover.path is not None:
        echo(
            f"retraining #{rid}: {handover.rows} labelled live rows of {dep.model} join the training data "
            f"(at most {spec.retrain.max_live_share:g} of it; {handover.path.name})"
        )
    else:
        echo(f"retraining #{rid}: {handover.note}")
    _update(ws, rid, live_rows=handover.rows, extra_data=str(handover.path) if handover.path else None)
    manual = spec.promote == PROMOTE_MANUAL
    holder = f"retraining #{rid} of {dep.name}"
    if manual:
        hold_champion(ws, dep.model, holder)
    try:
        record = PipelineRunner(ws, spec, RunOptions(overrides=handover.overrides, until="register"), echo=echo).run()
    finally:
        if manual:
            release_champion(ws, dep.model, holder)
    run = find_run(ws, record.run_id)
    registered_now = (run.get("steps") or {}).get("register", {}).get("status") == "ran"
    registration = json.loads(Path(run["run_dir"], "register", "registration.json").read_text())
    version = str(registration["version"]) if registration.get("version") is not None else None
    gate, moved = bool(registration.get("gate_passed")), bool(registration.get("champion_moved"))
    used = _live_rows_used(run, spec, handover.rows)
    fields: dict[str, Any] = {
        "pipeline_run_id": record.run_id,
        "version": version,
        "gate_passed": int(gate),
        "champion_moved": int(moved),
        "training_rows": _training_rows(run, spec),
        "live_rows": used,
    }
    _write_evidence(ws, rid, registration, alert_event_id, actor, used, handover.since if used else None)
    current = manager.get(ws, dep.name)
    if not gate:
        reasons = "; ".join(registration.get("reasons") or []) or "the gate did not pass"
        status, message = (
            GATE_FAILED,
            f"v{version} failed the gate ({reasons}); {dep.name} keeps v{current.active_version}",
        )
    elif current.active_version == version:
        status, message = UNCHANGED, f"{dep.name} already serves v{version}"
    elif manual and not registered_now:
        status = UNCHANGED
        message = f"nothing changed since v{version} was registered (its register step was cached); {dep.name} keeps v{current.active_version}"
    elif manual:
        if moved:  # a register step that sets aliases itself, past promote_if_passing's hold: put champion back
            _restore_champion(ws, dep.model, registration)
            fields["champion_moved"] = 0
        status = AWAITING
        message = (
            f"v{version} passed the gate and awaits approval (promote: manual): `aidevops approve {dep.name}` "
            f"switches to it, `aidevops reject {dep.name}` drops it; {dep.name} keeps v{current.active_version}"
        )
        _supersede(ws, dep.name, rid)
    elif not moved:
        status, message = UNCHANGED, f"v{version} passed the gate but did not become champion"
    else:
        why = f"retraining #{rid}" + (f" after alert #{alert_event_id}" if alert_event_id is not None else "")
        manager.switch(ws, dep.name, version, reason=why, actor=f"aidevops-loop ({actor})")
        status, message = SWITCHED, f"{dep.name} switched from v{current.active_version} to v{version}"
        fields["switched_to"] = version
    echo(f"retraining #{rid}: {message}")
    _update(ws, rid, status=status, finished=time.time(), message=message, **fields)
    return _get(ws, rid)


def _restore_champion(ws: Workspace, model: str, registration: dict[str, Any]) -> None:
    """Point `champion` back at the version the gate judged against (a register step that ignored `promote`)."""
    from .registry.models import CHAMPION, delete_alias, set_alias  # noqa: PLC0415

    before = registration.get("champion_version") or (registration.get("comparison") or {}).get("champion_version")
    if before:
        set_alias(ws, model, CHAMPION, str(before))
    else:
        delete_alias(ws, model, CHAMPION)


@dataclass
class Handover:
    """How a retraining run receives labelled live rows: how many, their file, the pipeline overrides, since when."""

    rows: int = 0
    path: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    since: float | None = None
    note: str = ""


def _handover(ws: Workspace, model: str, spec: Any, rows: int) -> Handover:
    """The labelled live rows for a retraining run, when the spec opts in (`retrain: {live_labels: true}`).

    A pipeline with a `data:` section (the shipped steps) gets a Parquet file of the logged inputs with the
    label in the target column, as its param `live_data` (aidevops_ext/steps/live.py, where they enter
    the training side); the built-in digits pipelines get an `.npz` of float rows as `extra_data`. Either
    file carries `max_live_share`, which the step that adds the rows applies against its own training rows.
    """
    settings = spec.retrain
    if not settings.live_labels:
        return Handover(
            note="live labels are off for this pipeline (`retrain: {live_labels: true}` turns them on), "
            "so it retrains on its own data only"
        )
    win, keep, labels = _labelled(ws, model, rows)
    if spec.data is not None and win.frame is None:
        keep = []  # the log kept no DataFrame inputs to hand a table pipeline
    if len(keep) < settings.min_live_rows:
        return Handover(
            note=f"{len(keep)} labelled live rows of {model}, fewer than retrain.min_live_rows "
            f"({settings.min_live_rows}); retraining on the pipeline's own data only"
        )
    folder = ws.state / "retrain"
    since = _since(win, keep)
    ids = [win.row_ids[i] for i in keep]
    y = [labels[r] for r in ids]
    from .datasection import parse_data  # noqa: PLC0415

    section = parse_data(spec.data)
    if section is not None:
        from .steps.live import live_table, write_live_table  # noqa: PLC0415 - pandas

        frame = win.frame.iloc[keep].reset_index(drop=True)
        table = live_table(frame, ids, y, section)
        path = write_live_table(table, folder, max_share=settings.max_live_share)
        return Handover(len(keep), path, {LIVE_PARAM: str(path)}, since)
    from .trainer import data  # noqa: PLC0415

    path = data.save_rows(win.rows[keep], np.asarray(y), folder, max_share=settings.max_live_share)
    return Handover(len(keep), path, {"extra_data": str(path)}, since)


def _live_rows_used(run: dict[str, Any], spec: Any, handed: int) -> int:
    """Live rows the run's training data holds, from its own records (the share cap may have dropped some)."""
    records = (
        (Path(run["run_dir"], "split", "split.json"), "live_rows")
        if spec.data is not None
        else (Path(run["run_dir"], "prepare", "dataset.json"), "n_live")
    )
    try:
        return int(json.loads(records[0].read_text())[records[1]])
    except (OSError, ValueError, KeyError, TypeError):
        return handed


def _training_rows(run: dict[str, Any], spec: Any) -> int | None:
    """Rows the retrained model trained on, from the run's own records (live rows included)."""
    split = Path(run["run_dir"], "split", "split.json")
    if spec.data is not None and split.is_file():
        return int(json.loads(split.read_text()).get("train_rows", 0))
    dataset = Path(run["run_dir"], "prepare", "dataset.json")
    if dataset.is_file():
        return int(json.loads(dataset.read_text()).get("n_train", 0))
    return None


# ------------------------------------------------------------------------------ evidence and approval


def _evidence_path(ws: Workspace, rid: int) -> Path:
    return ws.state / "retrain" / f"evidence-{rid}.json"


def _write_evidence(
    ws: Workspace,
    rid: int,
    registration: dict[str, Any],
    alert_event_id: int | None,
    actor: str,
    live_rows: int,
    live_since: float | None,
) -> None:
    """What a person deciding on retraining `rid`'s version sees: the gate, the trigger, the live rows."""
    from .monitoring.alertstore import AlertStore  # noqa: PLC0415

    event = AlertStore(ws.deploy_db).event(alert_event_id) if alert_event_id is not None else None
    reasons = [str(r) for r in registration.get("reasons") or []]
    passed = bool(registration.get("gate_passed"))
    headline = _gate_headline(ws, registration)
    evidence = {
        "gate": {
            "passed": passed,
            "summary": f"Gate {'passed' if passed else 'failed'}: "
            + (headline or (reasons[0] if reasons else "no reason recorded")),
            "reasons": reasons,
            "compared_on": registration.get("compared_on"),
            "comparison": registration.get("comparison"),
        },
        "trigger": event["message"] if event else f"retrained by hand by {actor}",
        "live_rows": int(live_rows),
        "live_since": live_since,
    }
    path = _evidence_path(ws, rid)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(evidence, indent=1, default=str), encoding="utf-8")
    tmp.replace(path)


def _gate_headline(ws: Workspace, registration: dict[str, Any]) -> str | None:
    """The gate's own comparison of the registered version (`accuracy 0.9638 vs v1 0.9499 on 359 rows`), if any."""
    from .gate import GateDecision  # noqa: PLC0415
    from .registry.connection import client  # noqa: PLC0415

    try:
        mv = client(ws).get_model_version(str(registration["model"]), str(registration["version"]))
        return GateDecision.from_dict(json.loads(mv.tags["gate.decision"])).headline()
    except Exception:  # noqa: BLE001 - no decision tag (a custom register step): the reasons say it
        return None


def _iso(ts: float | None) -> str | None:
    from datetime import datetime, timezone  # noqa: PLC0415

    return None if ts is None else datetime.fromtimestamp(float(ts), tz=timezone.utc).isoformat(timespec="seconds")


def awaiting_approval(ws: Workspace, name: str) -> dict[str, Any] | None:
    """The API's `awaiting_approval` of deployment `name` (api/models.py AwaitingApproval), or None."""
    from .deploy.shadow import report as shadow_report  # noqa: PLC0415

    r = awaiting(ws, name)
    if r is None:
        return None
    try:
        evidence = json.loads(_evidence_path(ws, r.id).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        evidence = {}
    gate = evidence.get("gate") or {"passed": r.gate_passed, "summary": None, "reasons": []}
    return {
        "version": r.version,
        "from_version": r.from_version,
        "retraining": r.id,
        "pipeline_run_id": r.pipeline_run_id,
        "gate": gate,
        "trigger": evidence.get("trigger") or (f"alert rule {r.rule}" if r.rule else f"retrained by {r.actor}"),
        "rule": r.rule,
        "live_rows": int(evidence.get("live_rows", r.live_rows or 0) or 0),
        "live_since": _iso(evidence.get("live_since")),
        "since": _iso(r.finished),
        "shadow": shadow_report(ws, name, None, version=r.version),  # `aidevops shadow NAME VERSION`'s evidence
    }


def approve(ws: Workspace | None, name: str, *, reason: str = "", actor: str | None = None) -> Any:
    """Switch deployment `name` to the retrained version that awaits approval and make it `champion`.

    The switch is the normal zero-downtime path (a version that fails it is refused and keeps awaiting);
    the deployment's history records it as `approve`, with the reason and who. Returns that history entry."""
    from .deploy import manager  # noqa: PLC0415
    from .deploy.store import default_actor  # noqa: PLC0415
    from .registry.models import CHAMPION, alias_version, set_alias  # noqa: PLC0415

    ws = (ws or Workspace.discover()).ensure()
    actor = actor or default_actor()
    reason = _reason(reason)
    r, version = _pending(ws, name)
    why = f"approved v{version} of retraining #{r.id}" + (f": {reason}" if reason else "")
    manager.switch(ws, name, version, reason=why, actor=actor, operation="approve")
    previous = alias_version(ws, r.model, CHAMPION)
    set_alias(ws, r.model, CHAMPION, version)
    _decided(ws, r.model, version, f"approved by {actor}" + (f": {reason}" if reason else ""))
    message = f"approved by {actor}" + (f" ({reason})" if reason else "") + f": {name} switched to v{version}"
    if previous and previous != version:
        message += f"; champion moved from v{previous}"
    _update(ws, r.id, status=SWITCHED, switched_to=version, champion_moved=1, message=message)
    return _last_history(ws, name, "approve")


def reject(ws: Workspace | None, name: str, *, reason: str = "", actor: str | None = None) -> Any:
    """Drop the retrained version that awaits approval on deployment `name`: the deployment keeps what it
    serves, `champion` stays, and the version loses its `challenger` alias. Recorded in the history as `reject`."""
    from .deploy import manager  # noqa: PLC0415
    from .deploy.store import DeployStore, default_actor  # noqa: PLC0415
    from .registry.models import CHALLENGER, alias_version, delete_alias  # noqa: PLC0415

    ws = (ws or Workspace.discover()).ensure()
    actor = actor or default_actor()
    reason = _reason(reason)
    r, version = _pending(ws, name)
    dep = manager.get(ws, name)
    if alias_version(ws, r.model, CHALLENGER) == version:
        delete_alias(ws, r.model, CHALLENGER)
    _decided(ws, r.model, version, f"rejected by {actor}" + (f": {reason}" if reason else ""))
    why = f"rejected v{version} of retraining #{r.id}" + (f": {reason}" if reason else "")
    entry = DeployStore(ws).record(
        name, "reject", from_version=dep.active_version, to_version=version, reason=why, actor=actor
    )
    message = f"rejected by {actor}" + (f" ({reason})" if reason else "") + f"; {name} keeps v{dep.active_version}"
    _update(ws, r.id, status=REJECTED, message=message)
    return entry


def _reason(reason: str) -> str:
    """A decision's reason, as the API takes it (at most 500 characters of text)."""
    if not isinstance(reason, str) or len(reason) > 500:
        raise ConfigError("--reason must be text of at most 500 characters.")
    return reason.strip()


def _decided(ws: Workspace, model: str, version: str, decision: str) -> None:
    """The version's registry tags say what a person decided (and no longer that it awaits approval)."""
    from .registry.connection import client  # noqa: PLC0415

    c = client(ws)
    try:
        c.set_model_version_tag(model, version, "aidevops.approval", decision[:5000])
        c.delete_model_version_tag(model, version, "aidevops.awaiting_approval")
    except Exception:  # noqa: BLE001 - the decision is recorded in the history; the tags are a courtesy
        pass


def _pending(ws: Workspace, name: str) -> tuple[Retraining, str]:
    """The retraining of deployment `name` that awaits approval, and the version it made."""
    from .deploy import manager  # noqa: PLC0415
    from .deploy.local import DeploymentError  # noqa: PLC0415

    manager.get(ws, name)  # NotFound names the deployments there are
    r = awaiting(ws, name)
    if r is None or not r.version:
        raise DeploymentError(
            f"No retrained version of '{name}' awaits approval; `aidevops retrains {name}` shows what its "
            "retrainings did."
        )
    return r, r.version


def _last_history(ws: Workspace, name: str, operation: str) -> Any:
    from .deploy import manager  # noqa: PLC0415

    rows = [h for h in manager.history(ws, name, 5) if h.operation == operation]
    return rows[-1]


def retrain_exit_message(r: Retraining) -> str:
    """One line for the CLI."""
    where = f" (pipeline run {r.pipeline_run_id})" if r.pipeline_run_id else ""
    return f"retraining #{r.id} of {r.deployment}: {r.status}{where}: {r.message}"


__all__ = ["Retraining", "live_training_rows", "retrain", "retrainings"]
