"""The Runs panel's diff and `aidevops diff` mask the same bookkeeping: the injected run folder, step folder,
MLflow run id and pipeline run id, and papermill's timings. Two seeded runs whose executed notebooks differ in
those and in `seed` show `seed` as the only change, in the panel's normalised files and in the CLI's diff."""

from __future__ import annotations

import json
import shutil

from click.testing import CliRunner

from aidevops_ext.cli import main
from aidevops_ext.pipeline.records import RunRecord
from aidevops_ext.review.diff import PANEL_FOLDER

BASE, REMOTE = "20261201-100000-000-aaaaaa", "20261202-100000-000-bbbbbb"


def _executed(folder, run_id: str, seed: int, mlflow_id: str, started: str) -> dict:
    """An executed notebook as papermill writes it: injected parameters naming this run, timings of this run."""
    timing = {
        "start_time": started,
        "end_time": started,
        "duration": seed + 0.5,
        "status": "completed",
        "exception": False,
    }
    injected = (
        f'seed = {seed}\nrun_dir = "{folder}"\nstep_dir = "{folder / "train"}"\n'
        f'mlflow_run_id = "{mlflow_id}"\npipeline_run_id = "{run_id}"\n'
    )
    cells = [
        {
            "cell_type": "code",
            "id": f"p-{run_id}",
            "execution_count": 1,
            "outputs": [],
            "source": "seed = 0",
            "metadata": {"tags": ["parameters"], "papermill": dict(timing)},
        },
        {
            "cell_type": "code",
            "id": f"i-{run_id}",
            "execution_count": 2,
            "outputs": [],
            "source": injected,
            "metadata": {
                "tags": ["injected-parameters"],
                "papermill": dict(timing),
                "execution": {"iopub.execute_input": started, "shell.execute_reply": started},
            },
        },
        {
            "cell_type": "code",
            "id": f"c-{run_id}",
            "execution_count": 3,
            "source": "print(step_dir)",
            "outputs": [{"output_type": "stream", "name": "stdout", "text": f"{folder / 'train'}\n"}],
            "metadata": {"papermill": dict(timing)},
        },
    ]
    return {
        "cells": cells,
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "papermill": {**timing, "parameters": {"seed": seed, "run_dir": str(folder)}},
        },
    }


def _seed_run(workspace, run_id: str, seed: int, started: str) -> str:
    folder = workspace / ".aidevops" / "runs" / "ci" / run_id
    (folder / "train").mkdir(parents=True)
    mlflow_id = f"{seed}f{run_id[-6:]}" * 2
    notebook = folder / "train" / "train.ipynb"
    notebook.write_text(json.dumps(_executed(folder, run_id, seed, mlflow_id, started)))
    RunRecord(
        folder,
        {
            "run_id": run_id,
            "pipeline": "ci",
            "status": "succeeded",
            "params": {"seed": seed},
            "steps": {"train": {"status": "ran", "notebook": str(notebook), "mlflow_run_id": mlflow_id}},
        },
    ).save()
    return mlflow_id


def _changed_lines(a: dict, b: dict) -> list[tuple[str, str]]:
    """(line in A, line in B) of every source or output line that differs, cell by cell."""
    assert len(a["cells"]) == len(b["cells"])
    changed = []
    for ca, cb in zip(a["cells"], b["cells"]):
        for part in ("source", "outputs"):
            la, lb = (json.dumps(c.get(part), indent=0).replace("\\n", "\n").splitlines() for c in (ca, cb))
            assert len(la) == len(lb)
            changed += [(x, y) for x, y in zip(la, lb) if x != y]
    return changed


async def test_the_panel_diff_masks_run_folders_ids_and_timings_so_only_the_seed_differs(api, workspace):
    ids = _seed_run(workspace, BASE, 0, "2026-12-01T10:00:00"), _seed_run(workspace, REMOTE, 1, "2026-12-02T10:00:00")
    status, answer = await api("GET", f"diff?base={BASE}&remote={REMOTE}")
    assert status == 200, answer
    a = json.loads((workspace / answer["base_path"]).read_text())
    b = json.loads((workspace / answer["remote_path"]).read_text())
    assert answer["base_path"].startswith(f".aidevops/{PANEL_FOLDER}/"), (
        "nbdime reads the normalised copies, not the runs'"
    )
    assert _changed_lines(a, b) == [('"seed = 0', '"seed = 1')], "the seed is the one change nbdime shows"
    text = json.dumps(a) + json.dumps(b)
    for noise in (BASE, REMOTE, *ids, "2026-12-0", str(workspace)):
        assert noise not in text, f"{noise} is bookkeeping and must be masked"
    assert "<run_dir>/train" in text and "<mlflow_run_id>" in text and "<run_id>" in text
    pa, pb = a["metadata"].pop("papermill"), b["metadata"].pop("papermill")
    assert a["metadata"] == b["metadata"] and pa["parameters"] == {"seed": 0, "run_dir": "<run_dir>"}
    assert {k: v for k, v in pa.items() if k != "parameters"} == {k: v for k, v in pb.items() if k != "parameters"}


async def test_the_panel_keeps_one_pair_per_base_remote_and_step_rewritten_not_accumulated(api, workspace):
    _seed_run(workspace, BASE, 0, "2026-12-01T10:00:00")
    _seed_run(workspace, REMOTE, 1, "2026-12-02T10:00:00")
    for _ in range(3):
        status, answer = await api("GET", f"diff?base={BASE}&remote={REMOTE}&step=train")
        assert status == 200, answer
    status, reverse = await api("GET", f"diff?base={REMOTE}&remote={BASE}")
    assert status == 200, reverse
    root = workspace / ".aidevops" / PANEL_FOLDER
    assert sorted(len(list(p.iterdir())) for p in root.iterdir()) == [2, 2], (
        "two (base, remote, step) pairs, two files each"
    )


def test_the_cli_diff_masks_the_same_bookkeeping(workspace, monkeypatch):
    ids = _seed_run(workspace, BASE, 0, "2026-12-01T10:00:00"), _seed_run(workspace, REMOTE, 0, "2026-12-02T10:00:00")
    monkeypatch.chdir(workspace)
    same = CliRunner().invoke(main, ["diff", BASE, REMOTE, "--no-color"])
    assert same.exit_code == 0, same.output
    assert "unchanged (apart from run ids and timings)" in same.output, same.output
    shutil.rmtree(workspace / ".aidevops" / "runs" / "ci" / REMOTE)
    _seed_run(workspace, REMOTE, 1, "2026-12-02T10:00:00")
    changed = CliRunner().invoke(main, ["diff", BASE, REMOTE, "--no-color"])
    assert changed.exit_code == 0, changed.output
    assert "1 cell(s) changed" in changed.output and "injected parameters" in changed.output, changed.output
    notebooks = changed.output.split("=" * 100)[1]
    assert "seed = 1" in notebooks
    for noise in (*ids, "2026-12-0"):
        assert noise not in notebooks, f"{noise} is bookkeeping and must be masked"
