"""The Deploy panel in a real Chromium: deploy the champion, predict, canary, promote, roll back, read the
history, open a version's executed notebook; errors inline. Screenshots go to test-artifacts/lab/.

The tests share one page (the browser starts once per module) and tell a story in file order, but each one
sets up through the REST API what it needs (no live deployment, a deployment of the champion, a canary), so
any one of them passes on its own (`pytest tests/lab/test_browser.py::NAME`) and after the other lab modules.
"""

from __future__ import annotations

import json
import re
import shlex
import time

import httpx
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from .conftest import MODEL, open_from_palette, open_lab_page, shot, widen_left_sidebar

SLOW_MS = 180_000  # a deploy starts a server, loads and checks the model
LIVE = ("starting", "running", "restarting")


@pytest.fixture(scope="module")
def page(lab):
    """One Chromium page on a reset Lab workspace of this module's own, stopped when the module ends (see pyproject's note)."""
    with open_lab_page(lab, workspace="deploy-tests") as page:
        yield page


@pytest.fixture
def shown(page):
    """The page with the Deploy panel open in a sidebar widened for its tables."""
    if not panel(page).is_visible():
        open_from_palette(page, "Deploy Panel")
        panel(page).wait_for(state="visible")
    if panel(page).bounding_box()["width"] < 800:
        widen_left_sidebar(page, 900)
    return page


@pytest.fixture(scope="module")
def versions(client):
    """(champion, other) version numbers of the seeded model."""
    model = client.get(f"models/{MODEL}").json()
    champion = model["aliases"]["champion"]
    return champion, next(v["version"] for v in model["versions"] if v["version"] != champion)


def change(client, method: str, path: str, **body) -> dict:
    answer = client.request(method, path, json=body or None)
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


def live_deployments(client) -> list[dict]:
    """The model's deployments that serve now (the panel offers Switch and Canary against the first)."""
    return [d for d in client.get("deployments").json()["deployments"] if d["model"] == MODEL and d["state"] in LIVE]


@pytest.fixture
def no_live_deployment(client, shown):
    """Nothing serves the model (another module's deployment stopped, this module's undeployed); the panel shows it."""
    for d in live_deployments(client):
        client.delete(f"deployments/{d['name']}", params={"reason": "a Deploy panel test starts from none"})
    assert live_deployments(client) == []
    refresh(shown)


def serve(client, page, champion: str, canary: str | None = None) -> dict:
    """MODEL serving `champion` under its own name, with `canary` at 25 % or no canary, as the panel shows it.
    Only what differs is changed, so the history keeps what the tests before did."""
    dep = next((d for d in live_deployments(client) if d["name"] == MODEL), None)
    if dep is None:
        dep = change(client, "POST", "deployments", model=MODEL, alias="champion")["deployment"]
    wanted = (champion, canary, 0.25 if canary else 0.0)
    if dep["canary_version"] and (dep["active_version"], dep["canary_version"], dep["canary_share"]) != wanted:
        dep = change(client, "POST", f"deployments/{MODEL}/canary", clear=True)["deployment"]
    if dep["active_version"] != champion:
        dep = change(client, "POST", "deployments", model=MODEL, version=champion)["deployment"]
    if canary and dep["canary_version"] != canary:
        dep = change(client, "POST", f"deployments/{MODEL}/canary", version=canary, share=0.25)["deployment"]
    refresh(page)
    expect(card(page).locator(".jp-aidevops-active")).to_have_text(f"v{champion}", timeout=30_000)
    expect(card(page).locator(".jp-aidevops-canary-share")).to_have_text(
        f"v{canary} gets 25 % of requests" if canary else "—", timeout=30_000
    )
    expect(card(page).locator(".jp-aidevops-health")).to_have_text("healthy", timeout=SLOW_MS)
    return dep


@pytest.fixture
def deployed(client, shown, versions, no_other_deployment):
    """MODEL serves its champion under its own name with no canary, as the panel shows it."""
    return serve(client, shown, versions[0])


@pytest.fixture
def no_other_deployment(client):
    """Only MODEL's own deployment may serve the model: the panel's version buttons act on the first live one."""
    for d in live_deployments(client):
        if d["name"] != MODEL:
            client.delete(f"deployments/{d['name']}", params={"reason": "the Deploy panel tests use their own"})


@pytest.fixture
def canaried(client, shown, versions, no_other_deployment):
    """The deployment of the champion with the other version as a 25 % canary."""
    return serve(client, shown, versions[0], canary=versions[1])


def refresh(page) -> None:
    """The panel reads the server now (instead of at its next poll)."""
    with page.expect_response(lambda r: r.url.split("?")[0].endswith("aidevops/api/deployments"), timeout=30_000):
        panel(page).locator("button.jp-aidevops-refresh").click()


def confirm(page, label: str) -> None:
    dialog = page.locator(".jp-Dialog")
    dialog.get_by_role("button", name=label).click()
    dialog.wait_for(state="detached")


def panel(page):
    return page.locator("#aidevops-deploy-panel")


def card(page):
    return panel(page).locator(f'[data-deployment="{MODEL}"]')


def test_the_launcher_and_the_command_palette_open_the_panel(page):
    launcher = page.locator(".jp-LauncherCard", has_text="Deploy Panel")
    try:  # a loaded machine draws the first launcher late: counting at once would open a second one
        launcher.first.wait_for(state="attached", timeout=15_000)
    except PlaywrightTimeoutError:  # another test closed it or left a notebook in its place: a new launcher
        page.keyboard.press("Control+Shift+L")
    expect(launcher).to_have_count(1)
    if panel(page).is_visible():  # opened by an earlier test: its sidebar tab closes it again
        page.locator('.jp-SideBar .lm-TabBar-tab[data-id="aidevops-deploy-panel"]').click()
        expect(panel(page)).to_be_hidden()
    open_from_palette(page, "Deploy Panel")
    panel(page).wait_for(state="visible")


def test_the_panel_lists_versions_with_aliases_gate_metrics_and_lineage(shown, versions, seeded, client):
    page = shown
    champion, other = versions
    row = panel(page).locator(f'tr[data-version="{champion}"]')
    row.wait_for()
    assert "champion" in row.locator("td").nth(1).inner_text()
    assert row.locator(".jp-aidevops-gate").inner_text() == "gate passed"
    assert re.search(r"accuracy 0\.\d{4}", row.locator(".jp-aidevops-metrics").inner_text())
    first = panel(page).locator('tr[data-version="1"] .jp-aidevops-run').inner_text()
    assert first == f"ci run {seeded.runs[0]}"
    deployments = client.get("deployments").json()["deployments"]
    if not deployments:
        assert "No deployments yet" in panel(page).inner_text()
    for d in deployments:  # after other lab modules: their stopped deployments, with their history
        expect(panel(page).locator(f'[data-deployment="{d["name"]}"]')).to_have_count(1)
    if not live_deployments(client):
        assert panel(page).locator(f'tr[data-version="{other}"] .jp-aidevops-deploy').is_visible()
        shot(page, "01-models")


def test_each_gated_version_shows_the_gates_own_comparison_beside_its_badge(shown, client):
    page = shown
    answer = client.get(f"models/{MODEL}").json()
    gated = [v for v in answer["versions"] if v.get("gate_summary")]
    for v in gated:
        line = panel(page).locator(f'tr[data-version="{v["version"]}"] [data-testid="gate-summary"]')
        assert line.is_visible() and line.inner_text() == v["gate_summary"], (
            "as text next to the badge, not only a tooltip"
        )
    for v in answer["versions"]:
        if not v.get("gate_summary"):
            assert panel(page).locator(f'tr[data-version="{v["version"]}"] [data-testid="gate-summary"]').count() == 0


def test_deploy_the_champion_and_see_it_healthy(shown, versions, no_live_deployment):
    page = shown
    champion, _ = versions
    panel(page).locator(f'tr[data-version="{champion}"] button.jp-aidevops-deploy').click()
    assert f"Deploy {MODEL}@champion (v{champion})?" in page.locator(".jp-Dialog").inner_text()
    confirm(page, "Deploy")
    progress = panel(page).locator('[role="status"]')
    progress.wait_for()
    assert progress.inner_text() == f"Deploying {MODEL}@champion…"
    expect(card(page).locator(".jp-aidevops-health")).to_have_text("healthy", timeout=SLOW_MS)
    assert card(page).locator(".jp-aidevops-active").inner_text() == f"v{champion}"
    assert progress.count() == 0 and panel(page).locator('[role="alert"]').count() == 0
    shot(page, "02-deployed")


def test_a_prediction_to_the_shown_endpoint_answers(shown, deployed):
    page = shown
    endpoint = card(page).locator(".jp-aidevops-endpoint").inner_text()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/invocations", endpoint)
    curl = card(page).locator(".jp-aidevops-example pre").text_content()
    body = json.loads(shlex.split(curl)[shlex.split(curl).index("-d") + 1])
    answer = httpx.post(endpoint, json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    (prediction,) = answer.json()["predictions"]
    assert prediction in range(10), "a digit class"


def test_an_opened_try_it_stays_open_while_the_panel_polls(shown, deployed):
    page = shown
    example = card(page).locator("details.jp-aidevops-example")
    example.locator("summary").click()
    assert example.get_attribute("open") is not None
    for _ in range(3):  # three polls (one each 3 s): Chromium used to close it within 8 s
        with page.expect_response(lambda r: r.url.split("?")[0].endswith("aidevops/api/deployments"), timeout=30_000):
            pass
    assert example.get_attribute("open") is not None, "a poll closed the opened Try it"
    example.locator("summary").click()  # closed again for the screenshots that follow


def test_canary_a_second_version(shown, versions, deployed):
    page = shown
    champion, other = versions
    panel(page).locator(f'tr[data-version="{other}"] button.jp-aidevops-canary').click()
    dialog = page.locator(".jp-Dialog")
    dialog.locator("input").fill("25")
    confirm(page, "Start canary")
    expect(card(page).locator(".jp-aidevops-canary-share")).to_have_text(
        f"v{other} gets 25 % of requests", timeout=SLOW_MS
    )
    assert card(page).locator(".jp-aidevops-active").inner_text() == f"v{champion}"
    assert panel(page).locator(f'tr[data-version="{other}"] .jp-aidevops-canary-badge').inner_text() == "canary 25 %"
    shot(page, "03-canary")


def test_an_error_is_shown_inline_in_words_a_user_can_act_on(shown, versions, canaried):
    page = shown
    _, other = versions
    panel(page).locator(f'tr[data-version="{other}"] button.jp-aidevops-switch').click()
    confirm(page, "Switch")
    alert = panel(page).locator('.jp-aidevops-status [role="alert"]')
    alert.wait_for(timeout=SLOW_MS)
    text = alert.inner_text()
    assert f"has a canary (v{other} at 25 %)" in text and "promote it" in text and "clear it" in text
    shot(page, "04-inline-error")


def test_promote_then_roll_back_and_read_the_history(shown, versions, canaried):
    page = shown
    champion, other = versions
    card(page).locator("button.jp-aidevops-promote").click()
    confirm(page, "Promote")
    active = card(page).locator(".jp-aidevops-active")
    expect(active).to_have_text(f"v{other}", timeout=SLOW_MS)
    assert card(page).locator(".jp-aidevops-previous").inner_text() == f"v{champion}"
    card(page).locator("button.jp-aidevops-rollback").click()
    confirm(page, "Roll back")
    expect(active).to_have_text(f"v{champion}", timeout=SLOW_MS)
    history = card(page).locator(".jp-aidevops-history-row")
    operations = [history.nth(i).get_attribute("data-operation") for i in range(history.count())]
    assert operations[:3] == ["rollback", "promote", "canary"] and operations[-1] == "deploy"
    assert "lab-tests via JupyterLab" in history.first.inner_text(), "changes made in the panel say who and from where"
    # An earlier step's error is not panel state to show; hidden (not removed: React owns that node).
    status = panel(page).locator(".jp-aidevops-status")
    status.evaluate("el => { el.style.display = 'none'; }")
    try:
        shot(page, "deploy-panel", panel(page))
        shot(page, "05-rolled-back")
    finally:
        status.evaluate("el => { el.style.display = ''; }")


def test_the_panel_fits_the_default_sidebar_width(shown, deployed):
    page = shown
    widen_left_sidebar(page, 330)  # about JupyterLab's default left sidebar
    try:
        box = panel(page).bounding_box()
        assert box["width"] < 330
        overflow = panel(page).evaluate("el => el.scrollWidth - el.clientWidth")
        assert overflow <= 1, f"the panel scrolls sideways by {overflow} px"
        for cell in (
            "tr.jp-aidevops-history-row td.jp-aidevops-history-actor",
            "tr.jp-aidevops-version td.jp-aidevops-metrics",
        ):
            edge = panel(page).locator(cell).first.bounding_box()
            assert edge["x"] + edge["width"] <= box["x"] + box["width"] + 1, f"{cell} is cut off at the panel's edge"
        assert "lab-tests via JupyterLab" in card(page).locator("td.jp-aidevops-history-actor").first.inner_text()
        shot(page, "deploy-panel-narrow", panel(page))
    finally:
        widen_left_sidebar(page, 900)


def test_open_a_versions_executed_notebook_from_the_panel(shown, seeded):
    page = shown
    panel(page).locator('tr[data-version="1"] a.jp-aidevops-notebook-link[data-step="train"]').click()
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="02_train.ipynb")
    tab.wait_for()
    notebook = page.locator(".jp-NotebookPanel:visible")
    notebook.locator(".jp-OutputArea-output img").first.wait_for(timeout=60_000)
    assert notebook.locator(".jp-Cell").count() > 3
    shot(page, "06-notebook")


def hold_for_approval(lab, version: str, from_version: str) -> int:
    """Retraining evidence as a `promote: manual` retraining leaves it: `version` awaits approval on MODEL's deployment.
    (A real retraining takes minutes; the Monitor panel's tests run one. This is the state it ends in.)"""
    from aidevops_ext import loop, retrainings
    from aidevops_ext.workspace import Workspace

    ws = Workspace(lab.root)
    now = time.time()
    rid = retrainings.start(
        ws,
        deployment=MODEL,
        model=MODEL,
        trigger="alert",
        rule="feature-drift",
        status=retrainings.RUNNING,
        started=now,
    )
    registration = {"gate_passed": True, "reasons": ["accuracy 0.9600 >= 0.9300"], "compared_on": "the same 350 rows"}
    loop._write_evidence(ws, rid, registration, None, "lab-tests", 120, now - 600)
    retrainings.update(
        ws, rid, status=retrainings.AWAITING, version=version, from_version=from_version, gate_passed=1, finished=now
    )
    return rid


@pytest.fixture
def held(lab, client, shown, deployed, versions):
    """The other version awaits approval on the deployment of the champion, as the panel shows it."""
    champion, other = versions
    rid = hold_for_approval(lab, other, champion)
    refresh(shown)
    expect(card(shown).locator('[data-testid="approval"]')).to_have_attribute("data-version", other)
    yield rid
    if client.get(f"deployments/{MODEL}").json().get("awaiting_approval"):
        client.post(f"deployments/{MODEL}/reject", json={"reason": "the approval test ended"})


def test_a_version_awaiting_approval_shows_its_evidence_and_reject_keeps_serving(shown, versions, held):
    page = shown
    champion, other = versions
    box = card(page).locator('[data-testid="approval"]')
    assert box.locator("h5").inner_text() == f"Awaiting approval: v{other}"
    assert box.locator(".jp-aidevops-gate").inner_text() == "gate passed"
    assert box.locator(".jp-aidevops-gate-summary").inner_text() == "Gate passed: accuracy 0.9600 >= 0.9300"
    assert box.locator(".jp-aidevops-approval-trigger").inner_text().startswith("retrained by hand by lab-tests")
    rows = box.locator(".jp-aidevops-approval-rows").inner_text()
    assert re.fullmatch(r"120 labelled live rows, logged since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", rows), rows
    assert f"#{held}" in box.inner_text()
    shot(page, "deploy-panel-approval", card(page))
    widen_left_sidebar(page, 330)  # the evidence and both buttons fit JupyterLab's default sidebar too
    try:
        edge = panel(page).bounding_box()
        assert panel(page).evaluate("el => el.scrollWidth - el.clientWidth") <= 1, "the panel scrolls sideways"
        for part in ("button.jp-aidevops-reject", ".jp-aidevops-approval-rows", ".jp-aidevops-gate-summary"):
            box_of = box.locator(part).bounding_box()
            assert box_of["x"] + box_of["width"] <= edge["x"] + edge["width"] + 1, f"{part} is cut off at the edge"
    finally:
        widen_left_sidebar(page, 900)
    box.locator("button.jp-aidevops-reject").click()
    dialog = page.locator(".jp-Dialog")
    assert (
        f"Reject v{other} for {MODEL}?" in dialog.inner_text() and f"keeps serving v{champion}" in dialog.inner_text()
    )
    confirm(page, "Reject")
    expect(box).to_have_count(0, timeout=30_000)
    first = card(page).locator(".jp-aidevops-history-row").first
    assert first.get_attribute("data-operation") == "reject" and "rejected from the Deploy panel" in first.inner_text()
    assert card(page).locator(".jp-aidevops-active").inner_text() == f"v{champion}"


def test_approve_switches_to_the_version_that_awaited_approval(shown, versions, held):
    page = shown
    champion, other = versions
    card(page).locator('[data-testid="approval"] button.jp-aidevops-approve').click()
    dialog = page.locator(".jp-Dialog")
    assert f"Approve v{other} for {MODEL}?" in dialog.inner_text()
    assert f"from v{champion} to v{other}" in dialog.inner_text()
    confirm(page, "Approve")
    expect(card(page).locator(".jp-aidevops-active")).to_have_text(f"v{other}", timeout=SLOW_MS)
    expect(card(page).locator('[data-testid="approval"]')).to_have_count(0)
    first = card(page).locator(".jp-aidevops-history-row").first
    assert first.get_attribute("data-operation") == "approve" and "lab-tests via JupyterLab" in first.inner_text()
    assert panel(page).locator('[role="alert"]').count() == 0


def test_undeploy_from_the_panel(shown, deployed):
    page = shown
    card(page).locator("button.jp-aidevops-undeploy").click()
    confirm(page, "Undeploy")
    expect(card(page).locator(".jp-aidevops-health")).to_have_text("stopped", timeout=SLOW_MS)
    assert card(page).locator("button").count() == 0, "a stopped deployment offers no changes"


def test_the_page_raised_no_uncaught_error(page):
    assert page.errors == []
