"""CLI tables size their columns to what they hold: with long run ids, pipeline, step, deployment, actor and
feature names, every listing still has each cell in its own column, two spaces or more from the next, and
each column starts at the same place on every line."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from aidevops_ext.cli import main
from aidevops_ext.cli_loop import render_summary
from aidevops_ext.deploy.store import DeployStore
from aidevops_ext.pipeline.records import RunRecord
from aidevops_ext.tables import table
from aidevops_ext.workspace import Workspace
from tests.support.deployments import deployment_row
from tests.support.summaries import drift_summary, numeric_drift

LONG_RUN = "20261206-004512-123-abcdef-and-then-some"  # longer than the 24 characters of today's ids
LONG_PIPELINE = "a-pipeline-with-a-long-name"
LONG_STEP = "prepare-the-features-at-length"
LONG_DEPLOYMENT = "a-deployment-with-a-very-long-name"
LONG_FEATURE = "monthly_charges_in_local_currency"


def assert_columns(lines: list[str], expected: list[list[str]], right: tuple[int, ...] = ()) -> None:
    """Each line splits on 2+ spaces into exactly its expected cells, and each column starts (ends, for the
    right-aligned ones) at the same offset on every line."""
    assert len(lines) == len(expected), lines
    anchors = []
    for line, cells in zip(lines, expected):
        assert re.split(r" {2,}", line.strip()) == cells, f"columns ran together or split in:\n{line}"
        at, row = 0, []
        for i, cell in enumerate(cells):
            at = line.index(cell, at)
            row.append(at + len(cell) if i in right else at)
            at += len(cell)
        anchors.append(row)
    for row in anchors[1:]:
        n = min(len(row), len(anchors[0]))
        assert row[:n] == anchors[0][:n], "misaligned columns:\n" + "\n".join(lines)


def test_table_gives_each_column_its_widest_cell_and_right_aligns_numbers():
    lines = table([["a", "1.5", "x"], ["a-much-longer-cell", "12.25", ""]], ["name", "secs", "note"], right=[1])
    assert lines == ["name                 secs  note", "a                     1.5  x", "a-much-longer-cell  12.25"]


@pytest.fixture
def workspace(tmp_path, clean_env):
    clean_env.setenv("AIDEVOPS_HOME", str(tmp_path))
    (tmp_path / "pipelines").mkdir()
    return Workspace(tmp_path).ensure()


def _seed_run(ws: Workspace, run_id: str) -> None:
    folder = ws.runs_dir / LONG_PIPELINE / run_id
    folder.mkdir(parents=True)
    notebook = folder / LONG_STEP / "01_prepare.ipynb"
    RunRecord(
        folder,
        {
            "run_id": run_id,
            "pipeline": LONG_PIPELINE,
            "status": "succeeded",
            "duration_s": 1234.5,
            "params": {},
            "steps": {
                LONG_STEP: {"status": "ran", "duration_s": 2.0, "notebook": str(notebook)},
                "train": {"status": "cached", "cached_from_run": run_id},
            },
        },
    ).save()


def test_runs_and_a_runs_steps_keep_long_ids_and_names_in_their_columns(workspace):
    _seed_run(workspace, LONG_RUN)
    _seed_run(workspace, "20261206-004513-000-short")
    runs = CliRunner().invoke(main, ["runs"])
    assert runs.exit_code == 0, runs.output
    assert_columns(
        runs.output.splitlines(),
        [
            ["run id", "pipeline", "status", "steps (ran/cached/failed)", "seconds"],
            ["20261206-004513-000-short", LONG_PIPELINE, "succeeded", "1/1/0", "1234.50"],
            [LONG_RUN, LONG_PIPELINE, "succeeded", "1/1/0", "1234.50"],
        ],
        right=(4,),
    )
    shown = CliRunner().invoke(main, ["show", LONG_RUN])
    assert shown.exit_code == 0, shown.output
    steps = [line for line in shown.output.splitlines() if line.startswith("  ")]
    notebook = str(workspace.runs_dir / LONG_PIPELINE / LONG_RUN / LONG_STEP / "01_prepare.ipynb")
    assert_columns(steps, [[LONG_STEP, "ran", "2.00s", notebook], ["train", "cached", f"from {LONG_RUN}"]])


def test_deployments_and_their_history_keep_long_names_in_their_columns(workspace):
    store = DeployStore(workspace)
    model = "a-registered-model-with-a-long-name"
    store.put(
        deployment_row(LONG_DEPLOYMENT, model, state="stopped", active_version="12", previous_version="11", restarts=3)
    )
    store.record(
        LONG_DEPLOYMENT,
        "deploy",
        to_version="12",
        reason="pipeline run " + LONG_RUN,
        actor="someone-with-a-long-user-name",
        ts=1_800_000_000.0,
    )
    listed = CliRunner().invoke(main, ["deployments"])
    assert listed.exit_code == 0, listed.output
    assert_columns(
        listed.output.splitlines(),
        [
            ["name", "serves", "target", "state", "active", "prev", "canary", "restarts", "url"],
            [LONG_DEPLOYMENT, f"{model}@champion", "local", "stopped", "v12", "v11", "-", "3", "-"],
        ],
        right=(7,),
    )
    history = CliRunner().invoke(main, ["deployments", "--history"])
    assert history.exit_code == 0, history.output
    (row,) = [line for line in history.output.splitlines() if LONG_DEPLOYMENT in line]
    cells = re.split(r" {2,}", row.strip())
    assert cells[1:] == [
        LONG_DEPLOYMENT,
        "deploy",
        "- -> v12",
        "someone-with-a-long-user-name",
        f"pipeline run {LONG_RUN}",
    ]


def test_the_monitor_lists_long_feature_names_whole_and_apart_from_their_numbers():
    features = [
        numeric_drift(LONG_FEATURE, 12.5, 0.9, 0.0, 3.25, drifted=True),
        numeric_drift("age", 0.02, 0.05, 0.5, 0.01),
    ]
    alert = {
        "rule": "a-rule-with-a-long-name-too",
        "state": "firing",
        "since": None,
        "metric": "drift_share",
        "value": 0.5,
        "op": ">",
        "threshold": 0.3,
        "action": "retrain",
    }
    summary = drift_summary(LONG_DEPLOYMENT, "m", features, alerts=[alert])
    lines = render_summary(summary, []).splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("feature"))
    assert_columns(
        lines[start : start + 3],
        [
            ["feature", "PSI", "KS", "p-value", "W/std", "drifted"],
            [LONG_FEATURE, "12.500", "0.900", "0.0000", "3.250", "yes"],
            ["age", "0.020", "0.050", "0.5000", "0.010"],
        ],
        right=(1, 2, 3, 4),
    )
    (alert,) = [line for line in lines if "a-rule-with-a-long-name-too" in line]
    assert re.split(r" {2,}", alert.strip()) == [
        "a-rule-with-a-long-name-too",
        "firing",
        "since –",
        "drift_share 0.500 > 0.3",
        "→ retrain",
    ]


def test_the_monitor_says_how_many_features_drifted_without_calling_a_drifted_window_ok():
    moved = drift_summary("web", "m", [numeric_drift("age", 12.5, 0.9, 0.0, 3.25, drifted=True)])
    still = drift_summary("web", "m", [numeric_drift("age", 0.02, 0.05, 0.5, 0.01)])
    (line,) = [x for x in render_summary(moved, []).splitlines() if x.startswith("drift:")]
    assert line == "drift: 1 of 1 features drifted (age)"
    (line,) = [x for x in render_summary(still, []).splitlines() if x.startswith("drift:")]
    assert line == "drift: none of 1 features drifted"
