"""The Monitor panel in a real Chromium, on a real deployment with simulated traffic that drifts.

The seeded champion of ci-digits is deployed under its own name; the traffic simulator sends in-distribution
rows first and then rows shifted by 1.5 standard deviations (with labels for half of them), until the ci
pipeline's feature-drift rule (PSI > 0.25 for 2 windows of 300 rows) fires. Then, in the panel: the six
charts drew (data points and painted canvas pixels), the key numbers equal the API's, the firing drift
alert is listed; "Retrain now" starts a retraining that the panel follows to its end and whose pipeline
run the Runs panel lists as succeeded. No uncaught error in the page. Screenshots go to test-artifacts/lab/.

The tests share one page and tell the story in file order, but what each needs is a module fixture (the
deployment, the drifted traffic until the alert fired, the retraining started from the panel), made by whichever
test asks first, so any one of them passes on its own. The deployment and the traffic thread are stopped when the
module ends (the lab fixture undeploys everything left as well).
"""

from __future__ import annotations

import math
import re
import threading
import time

import pytest
from playwright.sync_api import expect

from aidevops_ext.tokens import require_feedback_token
from aidevops_ext.workspace import Workspace

from .conftest import MODEL, labelled_traffic, monitor_panel, monitor_stat, open_from_palette, open_lab_page, shot

NAME = "ci-monitor"
RATE = 60.0  # requests/s, 2 rows each: a 300-row window every ~2.5 s
DRIFT_AFTER = 8.0  # seconds of in-distribution traffic first
FIRING_S = 300  # drifted traffic to a firing alert: 2 windows of drifted rows, checked each second
RETRAIN_MS = 480_000  # a retraining runs the ci pipeline until register (and an automatic one may run beside it)
CHARTS = ("rate", "latency", "errors", "accuracy", "drift", "predictions")


@pytest.fixture(scope="module")
def live_labels(lab):
    """The seeded ci spec opts in to training on labelled live rows (shipped off) while this module runs, so a
    retraining learns from the drifted traffic; `promote: manual` stays, so a passing version awaits approval."""
    spec = lab.root / "pipelines" / "ci.yaml"
    shipped = spec.read_text(encoding="utf-8")
    assert "  live_labels: false" in shipped and "promote: manual" in shipped, "the ci spec's retrain section changed"
    spec.write_text(shipped.replace("  live_labels: false", "  live_labels: true"), encoding="utf-8")
    yield
    spec.write_text(shipped, encoding="utf-8")


@pytest.fixture(scope="module")
def deployed(lab, client, live_labels):
    """ci-digits@champion served as NAME (its own deployment, apart from the Deploy panel's); undeployed at the end."""
    answer = client.post(lab.api("deployments"), json={"model": MODEL, "alias": "champion", "name": NAME})
    assert answer.status_code in (200, 201), answer.text
    dep = answer.json()["deployment"]
    assert dep["state"] == "running" and dep["url"], dep
    yield dep
    client.delete(lab.api(f"deployments/{NAME}"), params={"reason": "end of the Monitor panel tests"})


class Traffic:
    """The traffic simulator in a thread: in-distribution rows, then drifted ones, half of them labelled."""

    def __init__(self, url: str, rows, token: str) -> None:
        from aidevops_ext import traffic

        self.stop_event = threading.Event()
        self.box: dict = {}
        self.started = time.monotonic()

        def send() -> None:
            try:
                self.box["result"] = traffic.simulate(
                    url,
                    rows,
                    rate=RATE,
                    duration=1800,
                    batch=2,
                    drift=1.5,
                    drift_after=DRIFT_AFTER,
                    feedback=0.5,
                    feedback_token=token,
                    seed=7,
                    stop=self.stop_event,
                )
            except BaseException as exc:  # noqa: BLE001 - reported by the test that reads the result
                self.box["error"] = exc

        self.thread = threading.Thread(target=send, name="monitor-traffic", daemon=True)
        self.thread.start()

    def stop(self):
        """Stop sending (once; later calls give the same result)."""
        self.stop_event.set()
        self.thread.join(60)
        assert not self.thread.is_alive(), "the traffic thread did not stop"
        assert "error" not in self.box, self.box.get("error")
        return self.box["result"]


@pytest.fixture(scope="module")
def sent(lab, deployed):
    """Traffic to the deployment for as long as the module needs it; stopped at the end whatever happens."""
    from aidevops_ext import traffic

    t = Traffic(
        deployed["url"], traffic.rows_for_model(lab.root, MODEL), require_feedback_token(Workspace(lab.root), NAME)
    )
    yield t
    t.stop_event.set()
    t.thread.join(60)


@pytest.fixture(scope="module")
def page(lab):
    """One Chromium page on a reset Lab workspace of this module's own (tall: six charts), closed when it ends."""
    with open_lab_page(lab, workspace="monitor-tests", viewport=(1600, 1300)) as page:
        yield page


@pytest.fixture
def shown(page, deployed):
    """The page with the Monitor panel in front, showing NAME."""
    if not monitor_panel(page).count():
        open_from_palette(page, "Monitor Panel")
    elif not monitor_panel(page).is_visible():
        page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="Monitor").click()
    monitor_panel(page).wait_for(state="visible")
    select = monitor_stat(page, "monitor-deployment")
    expect(select.locator(f'option[value="{NAME}"]')).to_have_count(1, timeout=30_000)
    if monitor_panel(page).get_attribute("data-deployment") != NAME:
        select.select_option(NAME)
    expect(monitor_panel(page)).to_have_attribute("data-deployment", NAME)
    return page


@pytest.fixture(scope="module")
def drifted(client, lab, sent):
    """Drifted traffic until the feature-drift alert fires, then stopped: (the alert, the simulator's result, the
    request rate the API showed while traffic flowed)."""
    deadline = time.monotonic() + DRIFT_AFTER + FIRING_S
    alert = None
    while alert is None and time.monotonic() < deadline:
        assert sent.thread.is_alive(), sent.box
        alert = firing_drift(client, lab)
        if alert is None:
            time.sleep(1)
    assert alert is not None, f"no firing feature-drift alert after {time.monotonic() - sent.started:.0f} s of traffic"
    print(f"feature-drift fired after {time.monotonic() - sent.started:.0f} s of traffic")
    return alert


@pytest.fixture(scope="module")
def stopped(sent, drifted):
    """The traffic stopped after the alert fired: the monitor window stops moving, so the panel and the API describe
    the same rows from here on (and the automatic retraining the alert started has less to compete with)."""
    result = sent.stop()
    assert result.failed == 0 and result.drifted > 0 and result.feedback_sent > 0, result.errors
    return result


def labelled_burst(lab, deployed) -> None:
    """New labelled rows since any earlier retraining, so the next one trains on other data (the spec opts in to
    live labels, see live_labels) instead of finding every step cached. In-distribution: no drift alert starts a
    retraining of its own meanwhile (one runs per deployment at a time)."""
    labelled_traffic(lab, deployed["url"], NAME, rate=RATE, duration=4, batch=2, feedback=1.0, seed=11)
    time.sleep(2)  # the server's request log writer flushes every 0.5 s


RETRAINED: dict[str, str] = {}  # the run "Retrain now" produced, for the Runs panel test after it


@pytest.fixture
def retrained_run(client, lab, deployed) -> str:
    """The pipeline run of a retraining of NAME: the one the panel started, or else one started through the API."""
    if "run_id" not in RETRAINED:
        wait_for_the_automatic_retraining(lab)
        labelled_burst(lab, deployed)
        answer = client.post(lab.api(f"deployments/{NAME}/retrain"), json={"reason": "the Runs panel test"})
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["job"]["id"]
        deadline = time.monotonic() + RETRAIN_MS / 1000
        job = client.get(lab.api(f"jobs/{job_id}")).json()
        while job["status"] == "running" and time.monotonic() < deadline:
            time.sleep(2)
            job = client.get(lab.api(f"jobs/{job_id}")).json()
        assert job["status"] == "succeeded", job
        RETRAINED["run_id"] = job["run_id"] or job["run"]["run_id"]
    return RETRAINED["run_id"]


def firing_drift(client, lab) -> dict | None:
    answer = client.get(lab.api(f"deployments/{NAME}/alerts"))
    assert answer.status_code == 200, answer.text
    return next((a for a in answer.json()["alerts"] if a["rule"] == "feature-drift" and a["state"] == "firing"), None)


def dom_numbers(page) -> dict:
    """The panel's key numbers (raw data-values) and the monitor pass they came from, read in one go."""
    return monitor_panel(page).evaluate("""root => {
        const v = id => root.querySelector(`[data-testid="${id}"]`);
        const out = {at: root.dataset.at, version: root.dataset.version};
        for (const id of ['monitor-p50', 'monitor-p95', 'monitor-p99', 'monitor-error-rate', 'monitor-accuracy',
                          'monitor-logged-rows', 'monitor-drifted', 'monitor-windows', 'monitor-rate']) {
            out[id] = v(id).dataset.value;
        }
        const acc = v('monitor-accuracy');
        out.lower = acc.dataset.lower; out.upper = acc.dataset.upper;
        out.features = v('monitor-drifted').dataset.features;
        return out;
    }""")


def api_numbers(summary: dict) -> dict:
    req, q, drift = summary.get("requests") or {}, summary.get("quality") or {}, summary.get("drift") or {}
    return {
        "monitor-p50": req.get("latency_p50_ms"),
        "monitor-p95": req.get("latency_p95_ms"),
        "monitor-p99": req.get("latency_p99_ms"),
        "monitor-error-rate": req.get("error_rate"),
        "monitor-accuracy": q.get("accuracy"),
        "lower": q.get("accuracy_lower"),
        "upper": q.get("accuracy_upper"),
        "monitor-logged-rows": summary.get("logged_rows"),
        "monitor-drifted": len(drift.get("drifted") or []),
        "monitor-windows": summary.get("completed_windows"),
        "features": ",".join(drift.get("drifted") or []),
    }


def same(shown: str | None, value) -> bool:
    if value is None:
        return shown in ("", None)
    if isinstance(value, str):
        return shown == value
    return shown not in ("", None) and math.isclose(float(shown), float(value), rel_tol=1e-9, abs_tol=1e-12)


def test_the_launcher_and_the_palette_open_the_monitor_panel(page, deployed):
    assert page.locator(".jp-LauncherCard", has_text="Monitor Panel").count() == 1
    if monitor_panel(page).count():  # opened by an earlier test: closed first, so the palette opens a new one
        page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="Monitor").locator(
            ".lm-TabBar-tabCloseIcon"
        ).click()
        expect(monitor_panel(page)).to_have_count(0)
    open_from_palette(page, "Monitor Panel")
    monitor_panel(page).wait_for(state="visible")
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="Monitor")
    assert tab.count() == 1, "a main-area tab"
    select = monitor_stat(page, "monitor-deployment")
    expect(select.locator(f'option[value="{NAME}"]')).to_have_count(1, timeout=30_000)
    select.select_option(NAME)
    expect(monitor_panel(page)).to_have_attribute("data-deployment", NAME)
    expect(monitor_panel(page)).to_have_attribute("data-version", deployed["active_version"], timeout=30_000)


def test_drifted_traffic_fires_the_drift_alert_and_the_panel_lists_it(shown, client, lab, sent, drifted, request):
    page = shown
    assert sent.thread.is_alive(), "this test reads the request rate while the traffic flows: run it before the others"
    # While traffic flows, the shown request rate is the series' latest bucket. The API's answer comes a moment later,
    # when that bucket may be the second to last, or the newest one may have only begun: compare with the last two.
    seen = []
    for _ in range(10):
        shown_rate = float(monitor_stat(page, "monitor-rate").get_attribute("data-value"))
        rates = client.get(lab.api(f"deployments/{NAME}/series"), params={"minutes": 10, "buckets": 120}).json()[
            "requests"
        ]["rate"][-2:]
        seen.append((shown_rate, rates))
        if shown_rate > 0 and any(abs(shown_rate - r) <= 0.4 * max(shown_rate, r) + 2 for r in rates):
            break
        time.sleep(1)
    else:
        pytest.fail(f"the panel's request rate never matched the API's last buckets: {seen}")
    request.getfixturevalue("stopped")
    row = monitor_panel(page).locator('tr[data-rule="feature-drift"][data-state="firing"]')
    row.wait_for(timeout=30_000)
    assert row.locator(".jp-aidevops-alert-condition").inner_text() == "psi > 0.25"
    assert re.fullmatch(r"just now|\d+ s ago|\d+ min ago", row.locator(".jp-aidevops-alert-since").inner_text())
    assert row.locator(".jp-aidevops-alert-features").get_attribute("data-features"), "the drifted features are named"
    assert (
        monitor_panel(page)
        .locator('[data-testid="monitor-events"] li[data-rule="feature-drift"][data-event="fired"]')
        .count()
        >= 1
    )
    shot(page, "monitor-alerts", monitor_stat(page, "monitor-alerts-area"))


def test_the_shown_numbers_equal_the_apis(shown, client, lab, stopped):
    page = shown
    mismatch = "the panel and the API never showed the same version"
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        time.sleep(3.5)  # one panel poll after the traffic stopped
        shown = dom_numbers(page)
        summary = client.get(lab.api(f"deployments/{NAME}/monitor")).json()
        if shown["version"] != summary.get("version"):
            continue  # an automatic retraining switched versions in between
        expected = api_numbers(summary)
        mismatch = {k: (shown[k], v) for k, v in expected.items() if not same(shown[k], v)}
        if not mismatch:
            break
    assert mismatch == {}, f"panel vs API: {mismatch}"
    alert = next(a for a in summary["alerts"] if a["rule"] == "feature-drift")
    row = monitor_panel(page).locator('tr[data-rule="feature-drift"]')
    assert row.get_attribute("data-state") == alert["state"]
    assert same(row.locator(".jp-aidevops-alert-value").get_attribute("data-value"), alert["value"])
    assert row.locator(".jp-aidevops-alert-features").get_attribute("data-features") == ",".join(
        alert["features"] or []
    )
    assert int(shown["monitor-drifted"]) > 0 and shown["monitor-accuracy"] not in ("", None)
    assert float(shown["lower"]) <= float(shown["monitor-accuracy"]) <= float(shown["upper"])
    rows = monitor_panel(page).locator('[data-testid="monitor-features"] tr.jp-aidevops-feature')
    names = {rows.nth(i).get_attribute("data-feature") for i in range(rows.count())}
    assert names == {f["name"] for f in summary["drift"]["features"]}, (
        "the drift table has one row per feature of the pass"
    )
    text = monitor_stat(page, "monitor-p95").inner_text()
    assert text.endswith(" ms") and abs(float(text[:-3]) - float(shown["monitor-p95"])) <= 0.05
    monitor_panel(page).evaluate("el => el.scrollTo(0, 0)")
    shot(page, "monitor-panel")
    shot(page, "monitor-numbers", monitor_stat(page, "monitor-numbers-area"))


def test_the_charts_drew(shown, stopped):
    page = shown
    for key in CHARTS:
        host = monitor_panel(page).locator(f'[data-testid="monitor-chart-{key}"] .jp-aidevops-chart-host')
        expect(host).not_to_have_attribute("data-points", "0", timeout=30_000)
        painted = host.evaluate("""host => {
            const canvas = host.querySelector('canvas');
            if (!canvas || !canvas.width || !canvas.height) return 0;
            const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            let n = 0;
            for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
            return n;
        }""")
        assert painted > 500, f"the {key} chart's canvas is (nearly) empty: {painted} painted pixels"
        shot(page, f"monitor-chart-{key}", monitor_panel(page).locator(f'[data-testid="monitor-chart-{key}"]'))
    # The time axes read the last minutes in local time (a single accuracy point once gave a one-day range
    # whose ticks read "00:00 00:00"). uPlot draws on the canvas; the host carries the labels as text.
    now = time.localtime()
    for key in ("rate", "latency", "errors", "accuracy"):
        host = monitor_panel(page).locator(f'[data-testid="monitor-chart-{key}"] .jp-aidevops-chart-host')
        ticks = (host.get_attribute("data-x-ticks") or "").split(" | ")
        assert len(ticks) >= 2 and len(set(ticks)) == len(ticks), f"the {key} chart's time axis reads {ticks}"
        for tick in ticks:
            assert re.fullmatch(r"\d\d:\d\d(:\d\d)?", tick), f"the {key} chart's time axis reads {ticks}"
            apart = abs(int(tick[:2]) * 60 + int(tick[3:5]) - (now.tm_hour * 60 + now.tm_min))
            assert min(apart, 1440 - apart) <= 20, f"the {key} chart's time axis reads {ticks}, not the last minutes"
    drift = monitor_panel(page).locator('[data-testid="monitor-chart-drift"] .jp-aidevops-chart-note').inner_text()
    assert "rule threshold 0.25" in drift and "0.1 / 0.25" in drift, drift


def test_polling_stands_by_while_the_tab_is_hidden(shown):
    page = shown
    seen: list[str] = []

    def record(request) -> None:
        if f"/aidevops/api/deployments/{NAME}/" in request.url:
            seen.append(request.url)

    page.on("request", record)
    try:
        page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="Launcher").click()
        page.wait_for_timeout(1000)  # a poll that was already under way
        seen.clear()
        page.wait_for_timeout(7000)  # more than two poll intervals
        hidden = list(seen)
        page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="Monitor").click()
        page.wait_for_timeout(2000)
        shown = list(seen)
    finally:
        page.remove_listener("request", record)
    assert hidden == [], f"requests while the Monitor tab was hidden: {hidden}"
    assert any("/monitor" in u for u in shown) and any("/series" in u for u in shown), (
        "polling resumes at once when shown"
    )


def wait_for_the_automatic_retraining(lab) -> None:
    """The fired alert's rule says `action: retrain`, so the supervisor started a retraining: let it end first, so
    that the one started from the panel does not share the two cores (and the MLflow store) with it."""
    from aidevops_ext import retrainings
    from aidevops_ext.workspace import Workspace

    start = time.monotonic()
    while time.monotonic() < start + RETRAIN_MS / 1000:
        found = retrainings.retrainings(Workspace(lab.root), NAME)
        if not found and time.monotonic() > start + 60:
            print("no automatic retraining started")
            return
        if (
            found
            and all(r.status != retrainings.RUNNING for r in found)
            and not retrainings.retraining_running(Workspace(lab.root), NAME)
        ):
            print(f"automatic retraining: {[(r.id, r.status, r.message) for r in found]}")
            return
        time.sleep(2)
    pytest.fail(f"the automatic retraining of {NAME} did not end: {retrainings.retrainings(Workspace(lab.root), NAME)}")


def test_retrain_now_follows_the_job_to_the_run_it_produced(shown, lab, deployed):
    page = shown
    wait_for_the_automatic_retraining(lab)
    labelled_burst(lab, deployed)
    monitor_panel(page).evaluate("el => el.scrollTo(0, 0)")
    monitor_stat(page, "monitor-retrain").click()
    dialog = page.locator(".jp-Dialog")
    assert f"Retrain {MODEL} now?" in dialog.inner_text()
    dialog.get_by_role("button", name="Retrain").click()
    dialog.wait_for(state="detached")
    job = monitor_stat(page, "monitor-job")
    job.wait_for(timeout=30_000)
    assert job.get_attribute("data-status") == "running"
    assert monitor_stat(page, "monitor-retrain").is_disabled(), "one retraining at a time from the panel"
    expect(monitor_stat(page, "monitor-job-log")).to_be_visible(timeout=60_000)
    shot(page, "monitor-retrain-running", monitor_stat(page, "monitor-job-area"))
    expect(job).not_to_have_attribute("data-status", "running", timeout=RETRAIN_MS)
    status = job.get_attribute("data-status")
    message = (
        monitor_stat(page, "monitor-job-message").inner_text()
        if monitor_stat(page, "monitor-job-message").count()
        else ""
    )
    log = monitor_stat(page, "monitor-job-log").inner_text() if monitor_stat(page, "monitor-job-log").count() else ""
    assert status == "succeeded", f"the retraining ended {status}: {message}\n{log}"
    run_id = monitor_stat(page, "monitor-job-run").get_attribute("data-run-id")
    assert run_id, "the panel names the pipeline run the retraining produced"
    assert f"(pipeline run {run_id})" in message and message.startswith("retraining #"), message
    assert re.search(r"✓ prepare\s+ran in", log), (
        f"the new labelled rows changed the training data, so prepare ran:\n{log}"
    )
    RETRAINED["run_id"] = run_id
    if "awaits approval" in message:  # promote: manual (the ci spec's): the panel says where to decide
        expect(monitor_stat(page, "monitor-awaiting")).to_be_visible(timeout=30_000)
    assert monitor_stat(page, "monitor-retrain").is_enabled()
    shot(page, "monitor-retrain-done", monitor_stat(page, "monitor-job-area"))


def test_the_retrained_run_appears_in_the_runs_panel_as_succeeded(page, client, lab, retrained_run):
    run_id = retrained_run
    run = client.get(lab.api(f"runs/{run_id}"))
    assert run.status_code == 200 and run.json()["status"] == "succeeded", run.text
    assert run.json()["pipeline"] == "ci" and run.json()["steps"]["train"]["status"] == "ran", run.json()["steps"]
    open_from_palette(page, "Runs Panel")
    row = page.locator(f'#aidevops-runs-panel [data-run-id="{run_id}"]').first
    expect(row).to_have_attribute("data-status", "succeeded", timeout=60_000)
    shot(page, "monitor-run-in-runs-panel")


def test_the_page_raised_no_uncaught_error(page):
    assert page.errors == []
