"""What the shipped steps do (`notebook: aidevops:split|evaluate|register`), for any MLflow model on a table.

The notebooks beside this module are thin: a parameters cell and one call each, so the logic is
tested without kernels and the executed notebooks read as a report.

- split: the prepare step's table → train.parquet / test.parquet by the fixed rule of
  aidevops_ext/splitting.py (the same row is a test row in every run, whatever the seed), plus the
  row keys of each side.
- evaluate: the model the train step's run logged (found by the run id in run.json, loaded through
  pyfunc) and the registered champion, both scored on the same test rows: those the champion never
  trained on (its training keys are the model-version tag `aidevops.train_keys`, read by
  registry.models.version_train_keys); the gate refuses when too few remain (aidevops_ext/gate.py).
- register: the gate (aidevops_ext/gate.py) on those metrics; a new version of the very model the
  train step logged, with lineage (training keys, reference profile) as artifacts named by tags;
  `champion` moves only on a pass.
- deploy: serves `model@champion` locally (aidevops_ext/deploy/manager.py) and records how to call it
  with the model's own input example.

Models take every column but the target and the id column (see aidevops_ext/datasection.py).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from .. import splitting
from ..datasection import DataSection, features_and_target, infer_task, read_table
from ..errors import ConfigError, DataError
from ..workspace import Workspace
from .live import append_live_rows

TRAIN_TABLE = "train.parquet"
TEST_TABLE = "test.parquet"
TRAIN_KEYS = "train_keys.npy"
TEST_KEYS = "test_keys.npy"
SPLIT_INFO = "split.json"
METRICS = "metrics.json"
REGISTRATION = "registration.json"
PROFILE_TAG = "aidevops.reference_profile"


def split_table(
    table: Path, section: DataSection, out_dir: Path, live_data: str | Path | None = None
) -> dict[str, Any]:
    """Write train/test tables and their row keys into `out_dir`; returns the split's summary.

    `live_data`: a Parquet file of labelled live rows (`aidevops retrain` passes it); they join the
    training side only (aidevops_ext/steps/live.py)."""
    frame = read_table(table)
    features_and_target(frame, section, f"Table {Path(table).name}")
    target = frame[section.target]
    if target.isna().any():
        raise DataError(
            f"Target column '{section.target}' has {int(target.isna().sum())} missing values; "
            "drop or fill those rows in the prepare step."
        )
    keys = splitting.row_keys(frame, section.id)
    test = splitting.test_mask(keys, section.test_fraction)
    if test.all() or not test.any():
        raise DataError(
            f"The split put {int(test.sum())} of {len(frame)} rows in the test set; "
            "the table needs more rows (or another data.test_fraction)."
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train, train_keys, live_rows = append_live_rows(
        frame[~test].reset_index(drop=True), keys[~test], frame, keys, live_data, section
    )
    train.to_parquet(out_dir / TRAIN_TABLE, index=False)
    frame[test].reset_index(drop=True).to_parquet(out_dir / TEST_TABLE, index=False)
    splitting.save_keys(out_dir / TRAIN_KEYS, train_keys)
    splitting.save_keys(out_dir / TEST_KEYS, keys[test])
    info = {
        "table": str(Path(table).name),
        "rows": len(frame),
        "train_rows": len(train),
        "test_rows": int(test.sum()),
        "live_rows": live_rows,
        "target": section.target,
        "id": section.id,
        "task": section.task or infer_task(target),
        "test_fraction": section.test_fraction,
        "rule": f"row key % {splitting.BUCKETS} < {round(section.test_fraction * splitting.BUCKETS)} (aidevops_ext/splitting.py)",
    }
    (out_dir / SPLIT_INFO).write_text(json.dumps(info, indent=1), encoding="utf-8")
    return info


def step_run_id(run_dir: str | Path | None, step: str) -> str:
    """The MLflow run id the pipeline recorded for `step` in this pipeline run (run.json)."""
    if run_dir is None:
        raise ConfigError("This shipped step runs inside a pipeline: run it with `aidevops run`, not by hand.")
    record = json.loads((Path(run_dir) / "run.json").read_text(encoding="utf-8"))
    entry = (record.get("steps") or {}).get(step)
    if entry is None:
        raise ConfigError(
            f"This pipeline has no step '{step}'; set the shipped step's 'train_step' param to the step that logs the model."
        )
    run_id = entry.get("mlflow_run_id")
    if not run_id:
        raise ConfigError(f"Step '{step}' has no MLflow run in this pipeline run; run the pipeline with tracking on.")
    return str(run_id)


def evaluate_models(
    ws: Workspace, *, section: DataSection, split_dir: Path, train_run_id: str, model_name: str
) -> dict[str, Any]:
    """Score the train step's logged model and the champion on the same test rows (those the champion never trained on).

    Returns the metrics, the logged model's URI and `comparison`: the row counts that
    `gate.evaluate_gate(comparison=...)` takes; the gate, not this step, refuses when too few rows remain.
    """
    from ..gate import evaluate_gate, min_compared_rows
    from ..registry import CHAMPION, alias_version, configure
    from ..registry.logged import find_logged_model, load_pyfunc
    from ..registry.models import version_train_keys

    configure(ws)
    split_dir = Path(split_dir)
    info = json.loads((split_dir / SPLIT_INFO).read_text(encoding="utf-8"))
    task = section.task or info["task"]
    test = pd.read_parquet(split_dir / TEST_TABLE)
    features, target = features_and_target(test, section, "The test split")
    test_keys = splitting.load_keys(split_dir / TEST_KEYS)
    ref = find_logged_model(ws, train_run_id, section.model)
    candidate = load_pyfunc(ref.model_uri, f"The train step's model '{ref.name}'")
    version = alias_version(ws, model_name, CHAMPION)
    champion = keys = None
    # Live rows a retraining added may repeat test rows (the keys say so): the candidate trained on those.
    own = ~splitting.unseen_mask(test_keys, splitting.load_keys(split_dir / TRAIN_KEYS))
    keep = ~own
    if version is not None:
        champion = load_pyfunc(f"models:/{model_name}/{version}", f"Champion '{model_name}' v{version}")
        keys = version_train_keys(ws, model_name, version)
        if keys is not None:
            keep &= splitting.unseen_mask(test_keys, keys)
    comparison = {
        "test_rows": len(test),
        "compared_rows": int(keep.sum()),
        # The split rule keeps the table's test rows out of training; only live rows can repeat one.
        "candidate_trained": int(own.sum()),
        "champion_trained": int((~keep & ~own).sum()),
        "champion_lineage": None if champion is None else keys is not None,
    }
    candidate_metrics: dict[str, float] = {}
    champion_metrics: dict[str, float] | None = None if champion is None else {}
    if keep.all() or keep.sum() >= min_compared_rows(len(test)):
        candidate_metrics = _scored(
            candidate,
            features[keep],
            target[keep],
            task,
            f"The train step's model '{ref.name}'",
            "train it on every column but the target and data.id, and log it with input_example=X.head()",
        )
        if champion is not None:
            champion_metrics = _scored(
                champion,
                features[keep],
                target[keep],
                task,
                f"Champion '{model_name}' v{version}",
                "its inputs differ from the candidate's: register under another model name or retire the champion",
            )
    line = evaluate_gate([], candidate_metrics, champion_metrics, version, comparison).compared_on()
    return {
        "task": task,
        "model_uri": ref.model_uri,
        "model_id": ref.model_id,
        "logged_name": ref.name,
        "train_run_id": train_run_id,
        "candidate": candidate_metrics,
        "champion": champion_metrics,
        "champion_version": version,
        "comparison": comparison,
        "compared_on": line,
    }


def _scored(model: Any, features: pd.DataFrame, target: pd.Series, task: str, what: str, fix: str) -> dict[str, float]:
    """`scoring.score`, with a model's refusal of the test table turned into one sentence."""
    from ..scoring import score

    try:
        return score(model, features, target, task)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - any flavor may reject the table in its own way
        detail = " ".join(str(exc).split())[:160]
        raise DataError(f"{what} cannot score the test split ({type(exc).__name__}: {detail}); {fix}.") from None


def register_model(
    ws: Workspace,
    *,
    evaluation: dict[str, Any],
    gate: Any,
    model_name: str,
    run_id: str,
    section: DataSection,
    split_dir: Path,
    tags: dict[str, str],
) -> tuple[dict[str, Any], Any]:
    """Gate, register the logged model as a new version with lineage, move `champion` on a pass (unless a
    retraining under `promote: manual` holds it: registry.promote_if_passing).

    The reference profile stored with the version is built from the table's own training rows: live rows a
    retraining appended (the last `live_rows` of train.parquet) teach the model but do not move the
    distribution its traffic is compared with (aidevops_ext/loop.py)."""
    from ..gate import evaluate_gate, parse_gate
    from ..monitoring.frameprofile import build_frame_profile
    from ..registry import configure, promote_if_passing, register_version
    from ..registry.connection import client
    from ..registry.logged import load_pyfunc
    from ..registry.models import TRAIN_KEYS_TAG, log_train_keys
    from ..scoring import predictions

    configure(ws)
    decision = evaluate_gate(
        parse_gate(gate),
        evaluation["candidate"],
        evaluation["champion"],
        evaluation["champion_version"],
        evaluation["comparison"],
    )
    split_dir = Path(split_dir)
    train = pd.read_parquet(split_dir / TRAIN_TABLE)
    live_rows = int(json.loads((split_dir / SPLIT_INFO).read_text(encoding="utf-8")).get("live_rows") or 0)
    train = train.iloc[: len(train) - live_rows]
    features, target = features_and_target(train, section, "The train split")
    candidate = load_pyfunc(evaluation["model_uri"], f"The train step's model '{evaluation['logged_name']}'")
    profile = build_frame_profile(
        features, predictions(candidate, features, target, evaluation["task"]), task=evaluation["task"]
    )
    c = client(ws)
    folder = Path(tempfile.mkdtemp(prefix="aidevops-lineage-"))
    try:
        (folder / "reference_profile.json").write_text(json.dumps(profile), encoding="utf-8")
        c.log_artifacts(run_id, str(folder), "lineage")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    all_tags = dict(tags)
    all_tags.update(
        {
            TRAIN_KEYS_TAG: log_train_keys(ws, run_id, splitting.load_keys(split_dir / TRAIN_KEYS)),
            PROFILE_TAG: f"runs:/{run_id}/lineage/reference_profile.json",
            "aidevops.task": evaluation["task"],
            "aidevops.target": section.target,
            "aidevops.train_run_id": evaluation["train_run_id"],
            "aidevops.compared_on": evaluation["compared_on"],
        }
    )
    version = register_version(
        ws,
        evaluation["model_uri"],
        model_name,
        run_id=evaluation["train_run_id"],
        tags=all_tags,
        metrics=evaluation["candidate"],
    )
    moved = promote_if_passing(ws, model_name, version, decision, run_id=run_id)
    outcome = {
        "model": model_name,
        "version": version,
        "gate_passed": decision.passed,
        "champion_moved": moved,
        "champion_version": decision.champion_version,
        "reasons": decision.reasons,
        "compared_on": evaluation["compared_on"],
        "model_uri": evaluation["model_uri"],
    }
    return outcome, decision


def deploy_alias(
    ws: Workspace, *, model_name: str, alias: str, port: int | None, follow: bool, reason: str
) -> dict[str, Any]:
    """Serve `model_name@alias` (start, switch or leave as is), and say how to call it with the model's own example."""
    from ..deploy import manager

    result = manager.deploy(ws, f"{model_name}@{alias}", port=port or None, follow=follow, reason=reason)
    dep = result.deployment
    try:
        example = manager.status(ws, dep.name).example
    except Exception:  # noqa: BLE001 - no input example: curl_example falls back to one row of zeros
        example = None
    return {
        "name": dep.name,
        "model": dep.model,
        "ref": dep.ref,
        "version": result.version,
        "action": result.action,
        "url": dep.url,
        "checked": result.detail,
        "log": str(dep.log_path),
        "endpoints": {"invocations": f"{dep.url}/invocations", "v2_infer": f"{dep.url}/v2/models/{dep.model}/infer"},
        "example": example,
        "curl": manager.curl_example(dep, None, body=example),
    }


def watch_deployment(
    ws: Workspace, *, name: str, rate: float, normal_rows: int, drift_rows: int, drift: float, feedback: float
) -> dict[str, Any]:
    """Drive deployment `name` with its model's test rows (in distribution, then shifted by `drift`) and read its
    monitor after each segment: what the shipped monitor step reports (traffic, drifted features, quality, alerts)."""
    from .. import traffic
    from ..deploy import manager
    from ..tokens import require_feedback_token

    dep = manager.get(ws, name)
    if not dep.url:
        raise ConfigError(f"deployment {name!r} has no URL to send traffic to; deploy it with `aidevops deploy` first.")
    rows = traffic.rows_for_model(ws.root, dep.model)
    segments, summaries = {}, {}
    for label, count, shift, seed in (("in_distribution", normal_rows, 0.0, 1), ("shifted", drift_rows, drift, 2)):
        if count <= 0:
            continue
        result = traffic.simulate(
            dep.url,
            rows,
            rate=rate,
            duration=count / rate,
            drift=shift,
            feedback=feedback,
            feedback_token=require_feedback_token(ws, name) if feedback else None,
            seed=seed,
        )
        if result.failed:
            raise DataError(
                f"{result.failed} of {result.sent} requests to '{name}' failed ({'; '.join(result.errors[:2])}); "
                f"see `aidevops logs {name}`."
            )
        segments[label] = result.to_dict()
        summaries[label] = manager.monitor_summary(ws, name)
    after = summaries.get("shifted") or summaries.get("in_distribution") or manager.monitor_summary(ws, name)
    return {
        "deployment": name,
        "model": dep.model,
        "version": dep.active_version,
        "replayed": rows.source,
        "traffic": segments,
        "drifted": {label: (s.get("drift") or {}).get("drifted", []) for label, s in summaries.items()},
        "features": (after.get("drift") or {}).get("features", []),
        "quality": after.get("quality"),
        "alerts": after.get("alerts"),
        "events": after.get("events"),
        "rules": [r["name"] for r in (after.get("settings") or {}).get("rules", [])],
    }
