"""Run ids and 'latest': the newest run must win even when runs start within one second."""

from __future__ import annotations

import json
import time

from aidevops_ext.pipeline.records import RUN_FILE, find_run, new_run_id
from aidevops_ext.workspace import Workspace


def test_run_ids_made_in_quick_succession_sort_in_creation_order():
    ids = []
    for _ in range(40):
        ids.append(new_run_id())
        time.sleep(0.002)  # > 1 ms apart, far less than a second
    assert len(set(ids)) == len(ids)
    assert sorted(ids) == ids, "a seconds-only id would let the random suffix reorder these"


def test_latest_is_the_last_run_started(tmp_path):
    ws = Workspace(tmp_path)
    made = []
    for i in range(5):
        run_id = new_run_id()
        folder = ws.runs_dir / "ci" / run_id
        folder.mkdir(parents=True)
        (folder / RUN_FILE).write_text(json.dumps({"run_id": run_id, "n": i}))
        made.append(run_id)
        time.sleep(0.002)
    assert find_run(ws, "latest")["n"] == 4
    assert find_run(ws, made[2])["n"] == 2
