"""`aidevops export argo --cron` / `--schedule NAME`: a CronWorkflow whose workflowSpec is the Workflow export's
spec, validated with Hera's models of Argo's API the way test_argo_export.py validates the Workflow."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import hera.workflows.models as hera_models
import pydantic
import pytest
import yaml

from aidevops_ext.schedules.store import ScheduleStore
from aidevops_ext.workspace import Workspace
from tests.conftest import REPO
from tests.support.cli import run_cli
from tests.support.projects import one_step_pipeline

ARGS = ["-p", "epochs=3", "--image", "registry.local/aidevops:1.4", "--tracking-uri", "http://mlflow.ml.svc:5000"]


def cli(*args: str, cwd: Path = REPO, home: Path | None = None) -> subprocess.CompletedProcess:
    return run_cli(*args, cwd=cwd, env={} if home is None else {"AIDEVOPS_HOME": str(home)}, timeout=120)


def strict_validate(doc: dict) -> None:
    """Hera's model of Argo's CronWorkflow reads `doc` and writes it back unchanged (unknown fields would drop)."""
    model = hera_models.CronWorkflow.model_validate(doc)
    assert model.model_dump(by_alias=True, exclude_none=True, mode="json") == doc


@pytest.fixture(scope="module")
def exported() -> tuple[dict, dict]:
    cron = cli("export", "argo", "default", *ARGS, "--cron", "0 3 * * 1")
    plain = cli("export", "argo", "default", *ARGS)
    assert cron.returncode == 0 and plain.returncode == 0, cron.stderr + plain.stderr
    return yaml.safe_load(cron.stdout), yaml.safe_load(plain.stdout)


def test_the_cron_export_is_a_valid_argo_cron_workflow(exported):
    doc, _ = exported
    strict_validate(doc)
    assert (doc["apiVersion"], doc["kind"], doc["metadata"]["name"]) == (
        "argoproj.io/v1alpha1",
        "CronWorkflow",
        "default",
    )
    spec = doc["spec"]
    assert spec["schedules"] == ["0 3 * * 1"] and spec["timezone"] == "UTC"
    assert spec["concurrencyPolicy"] == "Forbid"  # as the local scheduler: a slot never overlaps the last run


def test_the_cron_workflow_runs_exactly_the_exported_workflow(exported):
    doc, plain = exported
    hera_models.Workflow.model_validate(plain)
    assert doc["spec"]["workflowSpec"] == plain["spec"]
    assert doc["metadata"]["labels"] == plain["metadata"]["labels"]


def test_strict_validation_catches_an_unknown_field_and_a_wrong_type(exported):
    doc, _ = exported
    typo = copy.deepcopy(doc)
    typo["spec"]["concurrencyPolcy"] = "Allow"
    with pytest.raises(AssertionError):
        strict_validate(typo)
    wrong_type = copy.deepcopy(doc)
    wrong_type["spec"]["schedules"] = "0 3 * * 1"
    with pytest.raises(pydantic.ValidationError):
        strict_validate(wrong_type)


@pytest.fixture
def project(tmp_path, clean_env):
    return one_step_pipeline(tmp_path / "proj", "tiny", "hello", "print(n, m)", params={"n": 1, "m": 1})


def test_a_stored_schedule_exports_with_its_cron_name_and_params(project):
    ScheduleStore(Workspace(project)).add("tiny", "*/30 6-18 * * 1-5", params={"n": 4, "m": 2}, name="Office_Hours")
    out = project / "cron.yaml"
    result = cli("export", "argo", "--schedule", "Office_Hours", "-p", "m=9", "-o", str(out), cwd=project, home=project)
    assert result.returncode == 0, result.stderr
    doc = yaml.safe_load(out.read_text())
    strict_validate(doc)
    assert doc["metadata"]["name"] == "office-hours" and doc["spec"]["schedules"] == ["*/30 6-18 * * 1-5"]
    (task,) = next(t for t in doc["spec"]["workflowSpec"]["templates"] if "dag" in t)["dag"]["tasks"]
    given = {p["name"]: json.loads(p["value"]) for p in task["arguments"]["parameters"]}
    assert (given["n"], given["m"]) == (4, 9)  # the schedule's params, with -p on top


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["tiny", "--cron", "0 3 * *"], "has 4 fields, not 5"),
        (["tiny", "--cron", "61 * * * *"], "is not valid (out of range)"),
        (["--schedule", "nope"], "there is no schedule 'nope'"),
        (["--schedule", "tiny", "--cron", "@daily"], "pass --cron or --schedule, not both"),
    ],
)
def test_bad_cron_input_is_one_sentence_and_writes_nothing(project, args, fragment):
    ScheduleStore(Workspace(project)).add("tiny", "@daily")
    out = project / "cron.yaml"
    result = cli("export", "argo", *args, "-o", str(out), cwd=project, home=project)
    assert result.returncode == 2 and fragment in result.stderr, result.stderr
    assert result.stderr.strip().count("\n") == 0 and not out.exists()
