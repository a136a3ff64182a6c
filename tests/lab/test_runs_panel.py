"""The Runs panel in a real Chromium: the seeded runs with their step statuses, a step's executed notebook,
the nbdime diff of two runs in a Lab tab, a pipeline started from the panel with a param that makes a
later step fail, and its re-run from the failed step with the param fixed (earlier steps from the cache).
Then a step chip's why, "Run from here" (asked inline, then the step and its downstream run, upstream cached),
the Schedules section showing a schedule added with `aidevops schedule add`, and the panel at the default
sidebar width. Screenshots go to test-artifacts/lab/ (runs-panel.png, runs-diff.png, ...).

The tests share one page, against the package's JupyterLab server and its seeded workspace (`aidevops run ci`
twice: seed 0, then seed 1). Each passes on its own: a test shows the panel itself, and the re-run of a failed
run starts that failed run through the API when the test before it did not leave one.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import httpx
import pytest
from playwright.sync_api import expect

from .conftest import clean_env, open_lab_page, shot, widen_left_sidebar

JOB_MS = 300_000  # a pipeline run on a loaded 2-core machine
# `model` passes the params' type check (a string, like the default "mlp") but 02_train's make_model
# raises on it, so `prepare` (which does not read `model`) comes from the cache and `train` fails.
# epochs=3 makes the fixed re-run's train differ from the seeded runs', so it runs rather than hits the cache.
FAILING = {"model": "no-such-model", "epochs": 3}
FIXED = {"model": "mlp", "epochs": 3}
STATE: dict[str, str] = {}  # the failed run the start test made, for the re-run test when both run


@pytest.fixture(scope="module")
def page(lab):
    """One Chromium page on a reset Lab workspace of this module's own, the browser stopped when it ends."""
    with open_lab_page(lab, workspace="runs-tests", viewport=(1600, 1000)) as page:
        yield page


@pytest.fixture(scope="module")
def api(lab, client):
    return lambda path: _ok(client.get(lab.api(path)))


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


def current_job(page) -> str | None:
    """The id of the job whose box the panel shows (an earlier test's), or None."""
    box = panel(page).locator("[data-job-id]")
    return box.get_attribute("data-job-id") if box.count() else None


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


def cli(root, *args: str) -> subprocess.CompletedProcess:
    """`aidevops ARGS` in the seeded workspace, as a user types it in a terminal."""
    return subprocess.run(
        [sys.executable, "-m", "aidevops_ext.cli", *args],
        cwd=root,
        env=clean_env(AIDEVOPS_HOME=str(root)),
        capture_output=True,
        text=True,
        timeout=120,
    )


def show(page) -> None:
    """The Runs panel on screen, whatever an earlier test left (a test here may run on its own)."""
    if not panel(page).is_visible():
        page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="aidevops-runs-panel"]').click()
    panel(page).wait_for(state="visible")


def open_step(page, run_id: str, step: str):
    """Open a step chip's details (why, Run from here); the details' locator."""
    row(page, run_id).locator(f'[data-chip="{step}"] .jp-aidevops-runs-step-toggle').click()
    detail = row(page, run_id).locator(f'[data-detail-step="{step}"]')
    detail.wait_for()
    return detail


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
    show(page)
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
    show(page)

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
    show(page)
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
    show(page)
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


def test_start_a_pipeline_whose_later_step_fails(page, api, seeded):
    show(page)
    previous = current_job(page)
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
    job = follow_job(page, api, previous=previous)
    assert job["status"] == "failed" and job["run"]["status"] == "failed"
    run_id = STATE["failed_run"] = job["run_id"]
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


def failed_run(lab, client, api) -> str:
    """The failed run of the start test, or one started here through the API (this test run on its own)."""
    if "failed_run" not in STATE:
        answer = client.post(lab.api("runs"), json={"pipeline": "ci", "params": FAILING})
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["job"]["id"]
        deadline = time.monotonic() + JOB_MS / 1000
        while (job := api(f"jobs/{job_id}"))["status"] == "running":
            assert time.monotonic() < deadline, job["log_tail"]
            time.sleep(1)
        assert job["status"] == "failed" and job["run_id"], job
        STATE["failed_run"] = job["run_id"]
    return STATE["failed_run"]


def test_rerun_from_the_failed_step_with_the_param_fixed(page, lab, client, api, seeded):
    failed_id = failed_run(lab, client, api)
    show(page)
    previous = current_job(page)
    row(page, failed_id).wait_for()
    row(page, failed_id).locator("button.jp-aidevops-rerun").click()
    dialog = page.locator(".jp-Dialog")
    assert "from the failed step train" in dialog.locator(".jp-Dialog-header").inner_text()
    assert "come from the cache" in dialog.inner_text()
    assert dialog_params(page) == FAILING, "pre-filled with the failed run's overrides"
    submit(page, json.dumps(FIXED), "Re-run")
    dialog.wait_for(state="detached")
    job = follow_job(page, api, previous=previous)
    assert job["status"] == "succeeded", "\n".join(job["log_tail"])
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


def test_a_step_chip_says_why_it_ran_in_its_tooltip_and_its_details(page, api, seeded):
    show(page)
    first, second = seeded.runs
    run = api(f"runs/{second}")
    why = run["steps"]["train"]["why"]
    assert any("param seed: 0 → 1" in line for line in why), why  # the seed changed since the first run
    chip = row(page, second).locator('[data-step="train"]')
    chip.wait_for()
    assert all(f"why: {line}" in chip.get_attribute("title") for line in why)
    detail = open_step(page, second, "train")
    assert detail.locator(".jp-aidevops-runs-why li").all_inner_texts() == why
    assert row(page, second).locator('[data-chip="train"] button').get_attribute("aria-expanded") == "true"
    row(page, second).locator('[data-chip="train"] .jp-aidevops-runs-step-toggle').click()  # closed again
    expect(detail).to_have_count(0)


def test_run_from_here_asks_inline_then_runs_the_step_and_its_downstream_with_upstream_cached(page, api, seeded):
    show(page)
    second = seeded.runs[1]
    previous_job = current_job(page)
    detail = open_step(page, second, "train")
    detail.locator("button.jp-aidevops-runs-from").click()
    confirm = detail.locator(".jp-aidevops-runs-confirm")
    expect(confirm).to_contain_text("Run train and every step downstream of it again, with this run's params (seed=1)?")
    # The confirmation is panel state: it stays open while the panel polls (React reconciles, nothing is rebuilt).
    for _ in range(2):
        with page.expect_request(lambda request: "/aidevops/api/runs?limit=" in request.url, timeout=30_000):
            pass
    page.wait_for_timeout(300)  # the answer rendered
    expect(confirm).to_be_visible()
    assert panel(page).locator("[data-job-id]").count() == (1 if previous_job else 0), (
        "nothing started before confirming"
    )
    shot(page, "runs-panel-run-from-here", row(page, second))
    confirm.locator("button.jp-aidevops-runs-confirm-ok").click()
    expect(detail).to_have_count(0)  # the details close once the job started
    job = follow_job(page, api, previous=previous_job)
    assert job["argv"][:5] == ["run", "ci", "--from", "train", "--force"], job["argv"]
    assert job["status"] == "succeeded", "\n".join(job["log_tail"])
    run = api(f"runs/{job['run_id']}")
    assert run["overrides"] == {"seed": 1}, "the run's own params"
    assert (
        chip_states(page, run["run_id"])
        == api_states(run)
        == {"prepare": "cached", "train": "ran", "evaluate": "ran", "register": "ran"}
    )
    prepare = row(page, run["run_id"]).locator('[data-step="prepare"]')
    assert f"why: cached: reused the output of run {second}" in prepare.get_attribute("title"), prepare.get_attribute(
        "title"
    )
    shot(page, "runs-panel-after-run-from-here", panel(page))


def test_the_schedules_section_lists_a_schedule_added_with_the_cli(page, seeded):
    show(page)
    dismiss = panel(page).locator("button.jp-aidevops-runs-job-dismiss")
    if dismiss.count():  # an earlier test's finished job: not what this screenshot shows
        dismiss.click()
    section = panel(page).locator(".jp-aidevops-runs-schedules")
    # Empty: it says how to add one. (The cron below is due on January 1st only: the Lab server's
    # scheduler must not start a run while the tests use the workspace.)
    expect(section.locator(".jp-aidevops-runs-schedules-empty")).to_contain_text(
        'aidevops schedule add PIPELINE --cron "0 3 * * *"'
    )
    added = cli(seeded.root, "schedule", "add", "ci", "--cron", "30 4 1 1 *", "-p", "seed=2", "--name", "yearly-ci")
    assert added.returncode == 0, added.stderr
    try:
        item = section.locator('[data-schedule="yearly-ci"]')
        item.wait_for(timeout=30_000)
        listed = json.loads(cli(seeded.root, "schedule", "list", "--json").stdout)
        assert [s["name"] for s in listed["schedules"]] == ["yearly-ci"]
        assert item.locator(".jp-aidevops-runs-schedule-cron").inner_text() == "30 4 1 1 *"
        assert re.fullmatch(r"next run in \d+ (d|h|min)", item.locator(".jp-aidevops-runs-schedule-next").inner_text())
        assert item.locator(".jp-aidevops-runs-schedule-next").get_attribute("title").startswith("next run ")
        assert item.locator(".jp-aidevops-runs-schedule-last").inner_text() == "not run yet"
        assert item.locator('[data-param="seed"]').inner_text() == "seed=2"
        expect(section.locator(".jp-aidevops-runs-schedules-empty")).to_have_count(0)
        shot(page, "runs-panel-schedules", panel(page))
    finally:
        cli(seeded.root, "schedule", "remove", "yearly-ci")


# Elements of the panel whose right edge passes the panel's, or whose text spills out of them (an element inside
# a box that scrolls, such as a job's log, only has to fit that box). Each is named by its classes and text.
CUT_OFF = """panel => {
  const edge = panel.getBoundingClientRect().right + 1;
  const scrolls = el => ['auto', 'scroll'].includes(getComputedStyle(el).overflowX);
  return Array.from(panel.querySelectorAll('*')).filter(el => {
    for (let up = el.parentElement; up && up !== panel; up = up.parentElement) {
      if (scrolls(up)) return false;
    }
    const box = el.getBoundingClientRect();
    const spills = el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1; // text wider than its box
    return box.width > 0 && (box.right > edge || spills);
  }).map(el => `${el.className}: ${(el.textContent || '').slice(0, 60)}`);
}"""


def test_the_panel_fits_the_default_sidebar_width_with_a_steps_details_open(page, seeded):
    show(page)
    second = seeded.runs[1]
    widen_left_sidebar(page, 330)  # about JupyterLab's default left sidebar
    try:
        box = panel(page).bounding_box()
        assert box["width"] < 330
        detail = open_step(page, second, "evaluate")
        detail.locator("button.jp-aidevops-runs-from").click()
        detail.locator(".jp-aidevops-runs-confirm").wait_for()
        overflow = panel(page).evaluate("el => el.scrollWidth - el.clientWidth")
        assert overflow <= 1, f"the panel scrolls sideways by {overflow} px"
        assert panel(page).evaluate(CUT_OFF) == [], "cut off at the panel's right edge"
        for part in (".jp-aidevops-runs-why", ".jp-aidevops-runs-confirm", ".jp-aidevops-runs-schedules"):
            assert panel(page).locator(part).count(), f"{part} is on screen for the check"
        row(page, second).scroll_into_view_if_needed()
        shot(page, "runs-panel-narrow", panel(page))
        detail.locator("button.jp-aidevops-runs-confirm-cancel").click()
        row(page, second).locator('[data-chip="evaluate"] .jp-aidevops-runs-step-toggle').click()
    finally:
        widen_left_sidebar(page, 620)


def test_the_page_raised_no_uncaught_error(page):
    assert page.errors == []
