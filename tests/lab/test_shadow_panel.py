"""The Monitor panel's shadow evidence in a real Chromium, on a real deployment that mirrors traffic to a shadow.

The seeded champion of ci-digits is deployed under its own name, the other registered version is started as its
shadow through the REST API, and the traffic simulator sends rows (half of them labelled). Then the panel's shadow
block names the shadow's version, counts the mirrored requests the API counts and shows an agreement rate in
[0, 1]. The shadow is stopped and the deployment undeployed when the module ends. The screenshot goes to
test-artifacts/lab/monitor-panel-shadow.png (docs/monitor-panel-shadow.png is a copy of it).
"""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from .conftest import MODEL, labelled_traffic, monitor_panel, monitor_stat, open_from_palette, open_lab_page, shot

NAME = "ci-shadow"


@pytest.fixture(scope="module")
def versions(lab, client):
    """(champion, other) version numbers of the seeded model (the conftest registers v1 and v2)."""
    model = client.get(lab.api(f"models/{MODEL}")).json()
    champion = model["aliases"]["champion"]
    return champion, next(v["version"] for v in model["versions"] if v["version"] != champion)


@pytest.fixture(scope="module")
def shadowed(lab, client, versions):
    """ci-digits@champion served as NAME with the other version as its shadow; both stopped when the module ends."""
    answer = client.post(lab.api("deployments"), json={"model": MODEL, "alias": "champion", "name": NAME})
    assert answer.status_code in (200, 201), answer.text
    dep = answer.json()["deployment"]
    assert dep["state"] == "running" and dep["active_version"] == versions[0], dep
    answer = client.post(
        lab.api(f"deployments/{NAME}/shadow"), json={"version": versions[1], "reason": "the shadow panel test"}
    )
    assert answer.status_code == 200, answer.text
    yield dep
    stop = client.post(lab.api(f"deployments/{NAME}/shadow"), json={"stop": True, "reason": "end of the shadow test"})
    client.delete(lab.api(f"deployments/{NAME}"), params={"reason": "end of the shadow panel tests"})
    assert stop.status_code == 200, stop.text


@pytest.fixture(scope="module")
def mirrored(lab, client, shadowed) -> dict:
    """Labelled traffic sent to NAME, and the monitor's shadow part once it counts the mirrored requests."""
    labelled_traffic(lab, shadowed["url"], NAME, rate=20.0, duration=5.0, batch=2, feedback=0.5, seed=11)
    deadline = time.monotonic() + 60
    shadow = None
    while time.monotonic() < deadline:
        shadow = client.get(lab.api(f"deployments/{NAME}/monitor")).json().get("shadow")
        if shadow and shadow["requests"] > 0 and shadow["agreement_rate"] is not None:
            break
        time.sleep(1)
    assert shadow and shadow["requests"] > 0 and shadow["agreement_rate"] is not None, shadow
    return shadow


@pytest.fixture(scope="module")
def page(lab):
    with open_lab_page(lab, workspace="shadow-tests", viewport=(1500, 950)) as page:
        yield page


def test_the_monitor_panel_shows_the_shadows_version_mirrored_requests_and_agreement(page, versions, mirrored):
    open_from_palette(page, "Monitor Panel")
    monitor_panel(page).wait_for(state="visible")
    select = monitor_stat(page, "monitor-deployment")
    expect(select.locator(f'option[value="{NAME}"]')).to_have_count(1, timeout=30_000)
    select.select_option(NAME)
    expect(monitor_panel(page)).to_have_attribute("data-deployment", NAME)
    block = monitor_stat(page, "monitor-shadow")
    expect(block).to_have_attribute("data-version", versions[1], timeout=30_000)
    expect(block).to_have_attribute("data-running", "true")
    champion, other = versions
    assert block.locator("h3").inner_text() == f"Shadow: v{other}"
    requests = monitor_stat(page, "monitor-shadow-requests")
    expect(requests).not_to_have_attribute("data-value", "0", timeout=30_000)
    assert int(requests.get_attribute("data-value")) >= mirrored["requests"] > 0
    assert requests.inner_text() == requests.get_attribute("data-value")
    agreement = monitor_stat(page, "monitor-shadow-agreement")
    rate = float(agreement.get_attribute("data-value"))
    assert 0.0 <= rate <= 1.0
    assert agreement.inner_text() == f"{rate * 100:.1f} %"
    active_label = block.locator(".jp-aidevops-stat-label", has_text="(active) accuracy").inner_text()
    assert active_label == f"v{champion} (active) accuracy", "compared with the version that serves"
    accuracy = monitor_stat(page, "monitor-shadow-accuracy")
    expect(accuracy).not_to_have_text("— (no labels yet)", timeout=30_000)
    assert 0.0 <= float(accuracy.get_attribute("data-value")) <= 1.0, "the labelled mirrored rows scored the shadow"
    block.scroll_into_view_if_needed()
    shot(page, "monitor-panel-shadow")
    assert page.errors == []
