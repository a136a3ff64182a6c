"""The issue's seed-change case, end to end: the CI pipeline run with seed 0, then seed 11, in a fresh workspace.

Before, the test split followed the seed, so about 70 % of the seed-11 candidate's test rows were in the
seed-0 champion's training split and the champion was graded on data it had learned. Now the test rows
are fixed by row key, the champion's training keys are its lineage, and the gate compares both models
on the same rows, none of which either trained on.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from aidevops_ext import splitting
from aidevops_ext.trainer import data
from tests.integration.test_pipeline_e2e import aidevops, latest_run, models
from tests.support.projects import copy_project

GATE_TOLERANCE = -0.005  # ci.yaml: accuracy min_absolute_change


def _run(root: Path, *params: str) -> dict:
    args = [a for p in params for a in ("-p", p)]
    out = aidevops(root, "run", "ci", *args)
    assert out.returncode == 0, out.stderr[-3000:]
    run = latest_run(root)
    registration = json.loads(Path(run["run_dir"], "register", "registration.json").read_text())
    metrics = json.loads(Path(run["run_dir"], "evaluate", "metrics.json").read_text())
    return {
        "run": run,
        "registration": registration,
        "metrics": metrics,
        "split": data.load_split(Path(run["run_dir"], "prepare", "split")),
    }


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory):
    """A fresh workspace with the project's notebooks and pipelines, run with seed 0 and then seed 11."""
    root = copy_project(tmp_path_factory.mktemp("fair"))
    return root, _run(root, "seed=0"), _run(root, "seed=11")


def test_the_old_seed_split_graded_the_champion_on_its_own_training_rows():
    # The numbers, from the split alone: what the gate used to compare on.
    ds = data.load_dataset("digits")
    champion = data.train_val_test_split(ds.X, ds.y, seed=0)
    candidate = data.train_val_test_split(ds.X, ds.y, seed=11)
    leaked = splitting.unseen_mask(candidate.keys_test, champion.seen_keys())
    assert (~leaked).mean() > 0.6, "most of the seed-11 test rows were seed-0 training rows"


def test_a_new_seed_is_compared_with_the_champion_on_rows_neither_trained_on(two_seeds):
    root, first, second = two_seeds
    assert first["registration"]["champion_moved"], "seed 0 registers the champion v1"
    np.testing.assert_array_equal(first["split"].keys_test, second["split"].keys_test)
    assert not np.array_equal(first["split"].keys_train, second["split"].keys_train), "the seed still shuffles training"
    comparison = second["registration"]["comparison"]
    assert comparison["champion_lineage"] is True and comparison["champion_trained"] == 0
    assert comparison["compared_rows"] == comparison["test_rows"] == len(second["split"].y_test)
    # The champion's recorded lineage really excludes every compared row.
    import mlflow

    client = mlflow.MlflowClient(
        tracking_uri=f"sqlite:///{root / '.aidevops' / 'mlflow.db'}",
        registry_uri=f"sqlite:///{root / '.aidevops' / 'mlflow.db'}",
    )
    uri = client.get_model_version("ci-digits", "1").tags["aidevops.train_keys"]
    assert uri.startswith(f"runs:/{client.get_model_version('ci-digits', '1').run_id}/")
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=uri, dst_path=str(root / "keys"), tracking_uri=f"sqlite:///{root / '.aidevops' / 'mlflow.db'}"
    )
    champion_keys = splitting.load_keys(local)
    np.testing.assert_array_equal(champion_keys, first["split"].seen_keys())
    assert splitting.unseen_mask(second["split"].keys_test, champion_keys).all()


def test_the_decision_follows_the_numbers_on_the_same_rows_and_the_listing_shows_them(two_seeds):
    root, first, second = two_seeds
    cand, champ = second["metrics"]["candidate"]["accuracy"], second["metrics"]["champion"]["accuracy"]
    # Same rows: the champion's score in this comparison is its own score when it was the candidate.
    assert champ == pytest.approx(first["metrics"]["candidate"]["accuracy"])
    fair = cand - champ >= GATE_TOLERANCE - 1e-9 and cand >= 0.85
    assert second["registration"]["gate_passed"] is fair
    versions = {v["version"]: v for v in models(root)["ci-digits"]["versions"]}
    v2 = versions["2"]["gate_comparison"]
    assert v2["champion_version"] == "1" and v2["rows"]["compared_rows"] == len(second["split"].y_test)
    assert v2["candidate"]["accuracy"] == pytest.approx(cand) and v2["champion"]["accuracy"] == pytest.approx(champ)
    out = aidevops(root, "models")
    assert out.returncode == 0, out.stderr
    line = next(ln for ln in out.stdout.splitlines() if ln.strip().startswith("v2 "))
    rows = len(second["split"].y_test)
    assert f"accuracy {cand:.4f} vs v1 {champ:.4f} on {rows} rows" in line, out.stdout
    compared_on = f"the same {rows} test rows for candidate and champion, none of which either trained on"
    assert second["registration"]["compared_on"] == compared_on
    # The gate's markdown report, as logged to the register step's MLflow run, says the same.
    import mlflow

    client = mlflow.MlflowClient(
        tracking_uri=f"sqlite:///{root / '.aidevops' / 'mlflow.db'}",
        registry_uri=f"sqlite:///{root / '.aidevops' / 'mlflow.db'}",
    )
    report = client.download_artifacts(
        second["run"]["steps"]["register"]["mlflow_run_id"], "gate/decision.md", str(root)
    )
    text = Path(report).read_text()
    assert f"Scored on {compared_on}." in text and f"| accuracy | {cand:.6g} | {champ:.6g} |" in text


def test_overlap_from_a_larger_test_fraction_and_from_live_rows_is_left_out_and_recorded(two_seeds):
    root, first, second = two_seeds
    champion = second if second["registration"]["champion_moved"] else first
    # A retraining's live rows that repeat 30 test rows (replayed traffic, say): the candidate trains on them.
    live = data.save_rows(first["split"].X_test[:30], first["split"].y_test[:30], root / "live")
    # A larger test fraction reaches into rows the champion (test_fraction 0.2) trained on.
    third = _run(root, "seed=12", "test_fraction=0.3", f"extra_data={live}")
    comparison = third["registration"]["comparison"]
    keys_test = third["split"].keys_test
    seen_by_champion = ~splitting.unseen_mask(keys_test, champion["split"].seen_keys())
    seen_by_candidate = ~splitting.unseen_mask(keys_test, splitting.row_keys(first["split"].X_test[:30]))
    assert comparison["champion_trained"] == int(seen_by_champion.sum()) > 0
    assert comparison["candidate_trained"] == int(seen_by_candidate.sum()) == 30
    assert comparison["compared_rows"] == int((~seen_by_champion & ~seen_by_candidate).sum())
    assert (
        f"left out: {comparison['champion_trained']} the champion trained on, 30 the candidate trained on"
        in third["registration"]["compared_on"]
    )
    # The new version's lineage names the live rows, so the next gate leaves them out too.
    import mlflow

    uri = f"sqlite:///{root / '.aidevops' / 'mlflow.db'}"
    tags = (
        mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
        .get_model_version("ci-digits", third["registration"]["version"])
        .tags
    )
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=tags["aidevops.train_keys"], dst_path=str(root / "k3"), tracking_uri=uri
    )
    assert np.isin(splitting.row_keys(first["split"].X_test[:30]), splitting.load_keys(local)).all()
