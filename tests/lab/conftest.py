"""A workspace seeded by the real CI pipeline and a real JupyterLab server on it.

Both are slow, so there is one of each for the tests/lab package, stopped when its last test ends.

The pipeline runs twice (the second time with another seed), so the registry holds v1 and v2 of
`ci-digits`, each with lineage tags and executed notebooks in its run folder. The server starts with
this repository's extension as installed by `pip install -e .`; deployments it starts are tied to this
pytest process (AIDEVOPS_DEPLOY_WATCH_PID) and stopped at the end, which asserts that none is left.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO
from tests.support.servers import start_jupyter

MODEL = "ci-digits"
ARTIFACTS = REPO / "test-artifacts" / "lab"
# Debian's chromium (.ci/run installs it); a GitHub runner's preinstalled Chrome works the same way.
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
_LEAKY_VARS = (
    "AIDEVOPS_HOME",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "AIDEVOPS_BACKEND",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_RUN_ID",
    "AIDEVOPS_SERVING_ADMIN_TOKEN",
    "AIDEVOPS_ACTOR",
    "JUPYTER_TOKEN",
)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without settings that would point at another store, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY_VARS}
    env["MPLBACKEND"] = "Agg"
    env.update(extra)
    return env


def _aidevops(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "aidevops_ext.cli", *args],
        cwd=root,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )


@dataclass
class Seeded:
    """The seeded workspace: its folder and the two pipeline runs that registered v1 and v2."""

    root: Path
    runs: list[str]


@pytest.fixture(scope="package")
def seeded(tmp_path_factory) -> Seeded:
    """notebooks/ + pipelines/ copied into a fresh folder, and `aidevops run ci` run there twice."""
    root = tmp_path_factory.mktemp("lab-ws")
    shutil.copytree(REPO / "notebooks", root / "notebooks")
    shutil.copytree(REPO / "pipelines", root / "pipelines")
    runs = []
    for args in ((), ("-p", "seed=1")):
        out = _aidevops(root, "run", "ci", *args)
        assert out.returncode == 0, out.stderr[-3000:]
        runs.append(json.loads(_aidevops(root, "show", "latest", "--json").stdout)["run_id"])
    models = json.loads(_aidevops(root, "models", MODEL, "--json").stdout)
    assert [v["version"] for v in models[0]["versions"]] == ["2", "1"], (
        "two registered versions to canary and roll back"
    )
    return Seeded(root, runs)


@dataclass
class Lab:
    """A running JupyterLab server on the seeded workspace."""

    url: str
    token: str
    root: Path
    log: Path

    def api(self, path: str) -> str:
        return f"{self.url}/aidevops/api/{path}"


@pytest.fixture(scope="package")
def lab(seeded) -> Lab:
    """`python -m jupyterlab` on 127.0.0.1 in the seeded workspace; stopped (with its deployments) at the end."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / "jupyterlab.log"
    env = clean_env(
        AIDEVOPS_HOME=str(seeded.root),
        AIDEVOPS_DEPLOY_WATCH_PID=str(os.getpid()),
        JUPYTER_CONFIG_DIR=str(seeded.root / ".jupyter-config"),
        AIDEVOPS_ACTOR="lab-tests",
        AIDEVOPS_MONITOR_SECONDS="1",
    )  # deployments started here run a monitor pass a second (Monitor panel tests)
    settings = seeded.root / ".lab-settings"
    # No "get notified about news?" toast over the panel in screenshots.
    notification = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True, exist_ok=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    server = start_jupyter(
        "jupyterlab",
        seeded.root,
        env,
        log,
        f"--LabApp.user_settings_dir={settings}",
        f"--LabApp.workspaces_dir={seeded.root / '.lab-workspaces'}",
        probe="/api/status",
        seconds=180,  # a loaded CI machine starts Lab slowly
    )
    yield Lab(server.url, server.token, seeded.root, log)
    from aidevops_ext.deploy import manager
    from aidevops_ext.workspace import Workspace

    stopped = manager.undeploy_all(Workspace(seeded.root), reason="end of the lab tests")
    server.stop()
    leaked = _deployment_processes(seeded.root)
    for pid in leaked:
        os.kill(pid, signal.SIGKILL)
    assert not leaked, f"deployment processes left running after undeploying {stopped}: {leaked}"


@pytest.fixture(scope="module")
def client(lab):
    """A client of the aidevops REST API, token-authenticated: `client.get("models")`, or a full URL from lab.api()."""
    with httpx.Client(base_url=lab.api(""), headers={"Authorization": f"token {lab.token}"}, timeout=300) as c:
        yield c


def labelled_traffic(lab: Lab, url: str, deployment: str, **options):
    """The seeded model's rows sent to `deployment` at `url` (traffic.simulate with `options`), its labels with
    the deployment's feedback token: every request answered and some labels sent."""
    from aidevops_ext import traffic
    from aidevops_ext.tokens import require_feedback_token
    from aidevops_ext.workspace import Workspace

    token = require_feedback_token(Workspace(lab.root), deployment)
    result = traffic.simulate(url, traffic.rows_for_model(lab.root, MODEL), feedback_token=token, **options)
    assert result.failed == 0 and result.feedback_sent > 0, result.errors
    return result


def _deployment_processes(root: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_bytes().rsplit(b")", 1)[-1].split()[0]
        except (OSError, IndexError):
            continue
        if (
            state not in (b"Z", b"X")
            and str(root).encode() in b" ".join(args)
            and any(b"aidevops_ext.deploy." in a for a in args)
        ):
            found.append(int(entry.name))
    return found


@contextmanager
def open_lab_page(lab: Lab, workspace: str | None = None, viewport: tuple[int, int] = (1500, 950)):
    """One Chromium page on JupyterLab, showing its launcher; the browser stops when the block ends.

    `workspace` names a Lab workspace of the module's own, reset: not the layout another module's page left
    (open tabs that keep polling, an open notebook in place of the launcher). `page.errors` collects the
    page's uncaught exceptions, for the module's last test to check.
    """
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "no Chromium found: install Debian's `chromium` package (.ci/run does); never `playwright install`"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.errors = []
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        where = f"/lab/workspaces/{workspace}?reset&" if workspace else "/lab?"
        page.goto(f"{lab.url}{where}token={lab.token}")
        page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=120_000)
        page.wait_for_selector(".jp-Launcher")
        try:
            yield page
        finally:
            context.close()
            browser.close()


def shot(page, name: str, element=None) -> None:
    """A screenshot of the page (or of one element of it) in test-artifacts/lab/NAME.png."""
    (element or page).screenshot(path=str(ARTIFACTS / f"{name}.png"))


def widen_left_sidebar(page, right_edge: int) -> None:
    """Drag the left sidebar's edge to x = right_edge, so a panel's tables read well in the screenshots."""
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle").first
    box = handle.bounding_box()
    page.mouse.move(box["x"] + 1, box["y"] + 200)
    page.mouse.down()
    page.mouse.move(right_edge, box["y"] + 200, steps=5)
    page.mouse.up()


def open_from_palette(page, label: str) -> None:
    """Run the command labelled `label` from the command palette."""
    page.keyboard.press("Control+Shift+C")
    page.locator(".lm-CommandPalette-input").fill(label)
    page.locator(".lm-CommandPalette-item", has_text=label).first.click()


def monitor_panel(page):
    return page.locator("#aidevops-monitor-panel")


def monitor_stat(page, testid: str):
    """One of the Monitor panel's figures, by its data-testid."""
    return monitor_panel(page).locator(f'[data-testid="{testid}"]')
