"""The run views read run.json through one typed reader: a step's notebook as a contents model, the diff of two runs'
notebooks with the params that differ, and records with null mappings (older files) still read."""

from __future__ import annotations

import json

from aidevops_ext.pipeline.records import RunRecord

NOTEBOOK = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def _seed(workspace, run_id: str, seed: int, **extra) -> None:
    folder = workspace / ".aidevops" / "runs" / "ci" / run_id
    (folder / "train").mkdir(parents=True)
    notebook = folder / "train" / "02_train.ipynb"
    notebook.write_text(json.dumps(NOTEBOOK))
    RunRecord(
        folder,
        {
            "run_id": run_id,
            "pipeline": "ci",
            "status": "succeeded",
            "params": {"seed": seed, "epochs": 2},
            "steps": {
                "prepare": {"status": "ran", "params": None},
                "train": {"status": "ran", "notebook": str(notebook), "params": {"lr": seed / 10}},
            },
            **extra,
        },
    ).save()


async def test_a_steps_notebook_and_the_diff_of_two_runs_come_from_their_records(api, workspace):
    _seed(workspace, "20261201-100000-000-aaaaaa", 0, overrides=None, git=None)
    _seed(workspace, "20261202-100000-000-bbbbbb", 1)
    status, one = await api("GET", "runs/20261201-100000-000-aaaaaa")
    assert status == 200 and one["overrides"] == {} and one["git"] == {} and one["steps"]["prepare"]["params"] == {}
    assert [(n["step"], n["available"]) for n in one["notebooks"]] == [("train", True)]
    status, notebook = await api("GET", "runs/20261201-100000-000-aaaaaa/notebooks/train")
    assert status == 200 and notebook["type"] == "notebook" and notebook["content"] == NOTEBOOK
    status, answer = await api("GET", "runs/20261201-100000-000-aaaaaa/notebooks/prepare")
    assert status == 400 and "(steps with one: train)" in answer["error"]
    status, diff = await api("GET", "diff?base=20261201-100000-000-aaaaaa&remote=20261202-100000-000-bbbbbb")
    assert status == 200 and diff["steps"] == ["train"] and diff["step"] == "train"
    assert diff["params"] == {"seed": [0, 1], "lr": [0.0, 0.1]}, (
        "the step's own params over the run's; equal ones left out"
    )
    assert (
        diff["base_path"]
        == ".aidevops/diffs/20261201-100000-000-aaaaaa--20261202-100000-000-bbbbbb--train/base-02_train.ipynb"
    )
