"""The Runs panel in a real Chromium: the seeded runs with their step statuses, a step's executed notebook,
the nbdime diff of two runs in a Lab tab, a pipeline started from the panel with a param that makes a
later step fail, and its re-run from the failed step with the param fixed (earlier steps from the cache).
Screenshots go to test-artifacts/lab/ (runs-panel.png, runs-diff.png, ...).

The steps share one page and run in file order (each builds on the last), against the package's JupyterLab
server and its seeded workspace (`aidevops run ci` twice: seed 0, then seed 1).
"""

from __future__ import annotations

import json
import re

import httpx
import pytest
from playwright.sync_api import expect

from .conftest import open_lab_page, shot, widen_left_sidebar

JOB_MS = 300_000  # a pipeline run on a loaded 2-core machine
# `model` passes the params' type check (a string, like the default "mlp") but 02_train's make_model
# raises on it, so `prepare` (which does not read `model`) comes from the cache and `train` fails.
# epochs=3 makes the fixed re-run's train differ from the seeded runs', so it runs rather than hits the cache.
FAILING = {"model": "no-such-model", "epochs": 3}
FIXED = {"model": "mlp", "epochs": 3}
STATE: dict[str, str] = {}  # what one step leaves for the next (the failed run and its job)


@pytest.fixture(scope="module")
def page(lab):
    """One Chromium page on a reset Lab workspace of this module's own, the browser stopped when it ends."""
    with open_lab_page(lab, workspace="runs-tests", viewport=(1600, 1000)) as page:
        yield page


@pytest.fixture(scope="module")
def api(lab):
    with httpx.Client(headers={"Authorization": f"token {lab.token}"}, timeout=60) as client:
        yield lambda path: _ok(client.get(lab.api(path)))


def _ok(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def panel(page):
    return page.locator("#aidevops-runs-panel")


def row(page, run_id: str):
    return panel(page).locator(f'[data-run-id="{run_id}"]')


def chip_states(page, run_id: str) -> dict[str, str]:
    chips = row(page, run_id).locator("[data-step]")
    return {
        chips.nth(i).get_attribute("data-step"): chips.nth(i).get_attribute("data-step-status")
        for i in range(chips.count())
    }


def api_states(run: dict) -> dict[str, str]:
    return {name: step["status"] for name, step in run["steps"].items()}


def dialog_params(page) -> dict:
    return json.loads(page.locator(".jp-Dialog textarea").input_value())


def submit(page, text: str, label: str) -> None:
    dialog = page.locator(".jp-Dialog")
    dialog.locator("textarea").fill(text)
    dialog.get_by_role("button", name=label).click()


def follow_job(page, api, previous: str | None = None) -> dict:
    """Wait for a new followed job's box (not `previous`'s) to show an end state; return GET jobs/{id}."""
    box = panel(page).locator(f'[data-job-id]:not([data-job-id="{previous}"])' if previous else "[data-job-id]")
    box.wait_for()
    expect(box).not_to_have_attribute("data-job-status", "running", timeout=JOB_MS)
    job = api(f"jobs/{box.get_attribute('data-job-id')}")
    assert box.get_attribute("data-job-status") == job["status"]
    assert job["run_id"], job
    expect(row(page, job["run_id"])).to_have_attribute("data-status", job["run"]["status"], timeout=30_000)
    return job


def test_the_launcher_and_the_command_palette_offer_the_runs_panel(page):
    assert page.locator(".jp-LauncherCard", has_text="Runs Panel").count() == 1
    page.keyboard.press("Control+Shift+C")
    page.locator(".lm-CommandPalette-input").fill("Runs Panel")
    # Enter runs the active (best) match; a click can miss while the palette re-renders its items.
    expect(page.locator(".lm-CommandPalette-item.lm-mod-active")).to_have_attribute(
        "data-command", "aidevops:open-runs-panel"
    )
    page.keyboard.press("Enter")
    panel(page).wait_for(state="visible")
    widen_left_sidebar(page, 620)


def test_the_panel_lists_the_seeded_runs_newest_first_with_the_apis_step_statuses(page, api, seeded):
    first, second = seeded.runs
    row(page, first).wait_for()
    shown = [r.get_attribute("data-run-id") for r in panel(page).locator("[data-run-id]").all()]
    assert shown.index(second) < shown.index(first), "newest first"
    for run_id in seeded.runs:
        run = api(f"runs/{run_id}")
        assert row(page, run_id).get_attribute("data-status") == run["status"] == "succeeded"
        assert chip_states(page, run_id) == api_states(run)
        assert list(chip_states(page, run_id)) == ["prepare", "train", "evaluate", "register"]
    seed = row(page, second).locator('.jp-aidevops-runs-param[data-param="seed"]')
    assert seed.inner_text() == "seed=1" and "jp-mod-override" in seed.get_attribute("class"), (
        "the override is highlighted"
    )
    plain = row(page, first).locator('.jp-aidevops-runs-param[data-param="seed"]')
    assert plain.inner_text() == "seed=0" and "jp-mod-override" not in plain.get_attribute("class")
    assert re.fullmatch(
        r"\d+(\.\d+)? s|\d+ min \d+ s", row(page, first).locator(".jp-aidevops-runs-duration").inner_text()
    )
    shot(page, "runs-panel", panel(page))


def test_polling_stands_by_while_the_panel_is_hidden(page):
    def runs_poll(request) -> bool:
        return "/aidevops/api/runs?limit=" in request.url

    seen = []
    page.on("request", lambda request: runs_poll(request) and seen.append(request.url))
    with page.expect_request(runs_poll, timeout=30_000):  # visible: it polls
        pass
    sidebar = page.locator(".jp-SideBar.jp-mod-left")
    sidebar.locator('.lm-TabBar-tab[data-id="filebrowser"]').click()
    panel(page).wait_for(state="hidden")
    page.wait_for_timeout(1_000)  # a request already under way may still land
    hidden_at = len(seen)
    page.wait_for_timeout(8_000)  # four poll intervals
    assert len(seen) == hidden_at, "no runs request while the panel is hidden"
    with page.expect_request(runs_poll, timeout=30_000):  # shown again: it refreshes at once
        sidebar.locator('.lm-TabBar-tab[data-id="aidevops-runs-panel"]').click()
    panel(page).wait_for(state="visible")


def test_open_a_steps_executed_notebook_from_its_chip(page, seeded):
    second = seeded.runs[1]
    row(page, second).locator('a[data-step="evaluate"]').click()
    # Another test module may have left a notebook tab open in the saved workspace: find this one by its path.
    tab = page.locator(f'.lm-DockPanel-tabBar .lm-TabBar-tab[title*="{second}/evaluate/03_evaluate.ipynb"]')
    tab.wait_for()
    assert "lm-mod-current" in tab.get_attribute("class")
    notebook = page.locator(".jp-NotebookPanel:visible")
    notebook.locator(".jp-OutputArea-output").first.wait_for(timeout=60_000)
    assert notebook.locator(".jp-Cell").count() > 3
    assert 'model_name = "ci-digits"' in notebook.inner_text(), "papermill's injected parameters of this run"
    shot(page, "runs-notebook")


def test_diff_two_runs_in_a_lab_tab_with_nbdime(page, api, seeded):
    first, second = seeded.runs
    for run_id in (second, first):  # the order picked does not matter: the older run is the base
        row(page, run_id).locator("input.jp-aidevops-runs-select").check()
    panel(page).locator("button.jp-aidevops-runs-diff").click()
    header = page.locator(f'.jp-aidevops-diff-header[data-base="{first}"][data-remote="{second}"]')
    header.wait_for()
    diff = api(f"diff?base={first}&remote={second}")
    assert header.locator('.jp-aidevops-diff-param[data-param="seed"]').inner_text() == "seed: 0 → 1"
    select = header.locator("select.jp-aidevops-diff-step")
    assert [o.get_attribute("value") for o in select.locator("option").all()] == diff["steps"]
    assert select.input_value() == diff["step"]
    iframe = page.locator(".jp-aidevops-diff-frame iframe:visible")
    assert iframe.get_attribute("src").endswith(diff["url"])
    assert set(iframe.get_attribute("sandbox").split()) == {"allow-scripts", "allow-same-origin"}
    frame = page.frame_locator(".jp-aidevops-diff-frame iframe:visible")
    frame.locator(".jp-Notebook-diff").wait_for(timeout=60_000)
    # nbdime marks what changed: outputs added/removed, and in papermill's injected parameters cell the
    # seed line with its old value marked deleted on the base side and the new one inserted on the remote side.
    frame.locator(".jp-Diff-addremchunk, .jp-Diff-addedchunk, .jp-Diff-removedchunk").first.wait_for()
    expect(frame.locator(".cm-line:has(.cm-merge-r-deleted)", has_text="seed = 0")).to_have_count(1)
    changed = frame.locator(".cm-line:has(.cm-merge-r-inserted)", has_text="seed = 1")
    expect(changed).to_have_count(1)
    changed.evaluate("line => line.closest('.jp-Cell-diff').scrollIntoView({block: 'center'})")
    shot(page, "runs-diff")

    select.select_option("train")
    expect(page.locator(".jp-aidevops-diff-header")).to_have_attribute("data-step", "train")
    expect(iframe).to_have_attribute("src", re.compile(r"nbdime/difftool\?base=.*--train%2Fbase-02_train\.ipynb"))
    frame.locator(".jp-Notebook-diff .cm-merge-r-inserted").first.wait_for(timeout=60_000)
    expect(frame.locator(".cm-line:has(.cm-merge-r-inserted)", has_text="seed = 1")).to_have_count(1)
    for noise in ("run_dir", "step_dir", "mlflow_run_id", "pipeline_run_id"):  # masked: only the real change shows
        expect(frame.locator(".cm-line:has(.cm-merge-r-inserted)", has_text=noise)).to_have_count(0)
    shot(page, "runs-diff-train")
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="Diff").locator(".lm-TabBar-tabCloseIcon").click()
    for run_id in seeded.runs:
        row(page, run_id).locator("input.jp-aidevops-runs-select").uncheck()


def test_start_a_pipeline_whose_later_step_fails(page, api):
    panel(page).locator("button.jp-aidevops-runs-start").click()
    dialog = page.locator(".jp-Dialog")
    assert dialog.locator("input.jp-aidevops-runs-pipeline-input").input_value() == "ci"
    assert dialog_params(page) == {}
    # Client-side check: not a JSON object → the dialog comes back saying so, nothing is posted.
    submit(page, "[1, 2]", "Run")
    expect(page.locator(".jp-Dialog .jp-aidevops-runs-form-error")).to_have_text(re.compile("must be a JSON object"))
    # Server-side check: a param of the wrong type → the server's sentence inside the dialog.
    submit(page, '{"epochs": "many"}', "Run")
    expect(page.locator(".jp-Dialog .jp-aidevops-runs-form-error")).to_have_text(
        re.compile(r"parameter 'epochs' expects an integer")
    )
    shot(page, "runs-dialog-error")
    submit(page, json.dumps(FAILING), "Run")
    page.locator(".jp-Dialog").wait_for(state="detached")
    job = follow_job(page, api)
    assert job["status"] == "failed" and job["run"]["status"] == "failed"
    run_id = STATE["failed_run"] = job["run_id"]
    STATE["failed_job"] = job["id"]
    assert (
        chip_states(page, run_id)
        == api_states(job["run"])
        == {"prepare": "cached", "train": "failed", "evaluate": "pending", "register": "pending"}
    )
    assert "no-such-model" in row(page, run_id).locator(".jp-aidevops-runs-step-error").inner_text()
    assert panel(page).locator("[data-job-id] .jp-aidevops-runs-log").inner_text().strip(), (
        "the job's log tail is shown"
    )
    shot(page, "runs-failed", panel(page))


def test_rerun_from_the_failed_step_with_the_param_fixed(page, api):
    failed_id = STATE["failed_run"]
    row(page, failed_id).locator("button.jp-aidevops-rerun").click()
    dialog = page.locator(".jp-Dialog")
    assert "from the failed step train" in dialog.locator(".jp-Dialog-header").inner_text()
    assert "come from the cache" in dialog.inner_text()
    assert dialog_params(page) == FAILING, "pre-filled with the failed run's overrides"
    submit(page, json.dumps(FIXED), "Re-run")
    dialog.wait_for(state="detached")
    job = follow_job(page, api, previous=STATE["failed_job"])
    assert job["status"] == "succeeded", job["log_tail"]
    run = api(f"runs/{job['run_id']}")
    assert run["overrides"] == FIXED
    assert (
        chip_states(page, run["run_id"])
        == api_states(run)
        == {"prepare": "cached", "train": "ran", "evaluate": "ran", "register": "ran"}
    )
    assert row(page, run["run_id"]).get_attribute("data-status") == "succeeded"
    assert run["resumed_from"] == failed_id
    assert row(page, run["run_id"]).locator(".jp-aidevops-runs-resumed").inner_text() == f"resumed from {failed_id}"
    shot(page, "runs-rerun", panel(page))


def test_the_page_raised_no_uncaught_error(page):
    assert page.errors == []
