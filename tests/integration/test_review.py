"""`aidevops diff` and `aidevops report` on two real runs of pipelines/ci.yaml that differ in one param.

Run A trains the first model (it becomes champion); run B re-runs with `-p epochs=3`: prepare is
cached, the rest runs, and the weaker model fails the gate against champion v1.
"""

from __future__ import annotations

import json
import queue
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import pytest

from aidevops_ext.pipeline.records import find_run
from aidevops_ext.workspace import Workspace
from tests.integration.test_pipeline_e2e import aidevops
from tests.support.cli import AIDEVOPS, cli_env
from tests.support.projects import copy_project
from tests.support.servers import free_port

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A workspace with two ci runs: A (defaults) and B (epochs=3)."""
    root = copy_project(tmp_path_factory.mktemp("review"))
    ids = []
    for extra in ([], ["-p", "epochs=3"]):
        out = aidevops(root, "run", "ci", *extra)
        assert out.returncode == 0, out.stderr[-3000:]
        ids.append(find_run(Workspace(root), "latest"))
    return root, ids[0], ids[1]


class _Result:
    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def cli(root: Path, *args: str) -> _Result:
    """The CLI in this process (click's runner): same code path as `aidevops`, without a fresh interpreter each time."""
    from click.testing import CliRunner

    from aidevops_ext.cli import main

    env = {
        "AIDEVOPS_HOME": str(root),
        "MLFLOW_TRACKING_URI": None,
        "MLFLOW_REGISTRY_URI": None,
        "AIDEVOPS_BACKEND": None,
        "MPLBACKEND": "Agg",
    }
    result = CliRunner(env=env).invoke(main, list(args), catch_exceptions=False)
    return _Result(result.exit_code, result.stdout, result.stderr)


def step_json(run: dict, step: str, name: str) -> dict:
    return json.loads(Path(run["run_dir"], step, name).read_text())


# -- diff ------------------------------------------------------------------------------------
def test_diff_shows_the_param_the_metrics_and_the_cells_that_changed(runs):
    root, a, b = runs
    out = aidevops(root, "diff", a["run_id"], b["run_id"][:17])
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    head, _, notebooks = text.partition("=" * 100)
    # The one param, and nothing else.
    params = head.split("Params changed\n")[1].split("\n\n")[0].splitlines()
    assert params[1:] == ["  epochs  8  3"], params
    # Every metric moved; values and deltas are those of the runs' metrics.json.
    ma, mb = (
        step_json(a, "evaluate", "metrics.json")["candidate"],
        step_json(b, "evaluate", "metrics.json")["candidate"],
    )
    for name in ("accuracy", "f1_macro", "log_loss"):
        row = next(line for line in head.splitlines() if line.strip().startswith(name + " "))
        assert row.split()[1:] == [f"{ma[name]:.6g}", f"{mb[name]:.6g}", f"{mb[name] - ma[name]:+.4g}"], row
    assert "Gate  A: passed (ci-digits v1, champion moved)  ·  B: failed (ci-digits v2)" in head
    # Cells: prepare came from the cache; train changed in its injected parameters and its outputs.
    assert re.search(r"^  prepare\s+unchanged \(same executed notebook", head, re.M)
    train = head.split("  train ")[1].split("\n  evaluate")[0]
    assert re.search(r"cell 2\s+modified\s+source\s+injected parameters", train), train
    assert re.search(r"cell \d+\s+modified\s+outputs\s+with registry.step_run", train), train
    # nbdime's diff of the notebooks follows, without run-specific noise.
    assert "nbdiff A/train/02_train.ipynb B/train/02_train.ipynb" in notebooks
    assert "-epochs = 8" in notebooks and "+epochs = 3" in notebooks
    assert "## modified /cells/2/source:" in notebooks
    assert a["run_id"] not in notebooks and b["run_id"] not in notebooks and "<run_dir>" in notebooks
    assert "papermill" not in notebooks  # cell metadata (timings) is not compared
    assert "\x1b[" not in text  # no colour into a pipe


def test_diff_of_one_step_as_a_summary(runs):
    root, a, b = runs
    out = cli(root, "diff", a["run_id"], b["run_id"], "--step", "register", "--summary")
    assert out.returncode == 0, out.stderr
    assert "  register " in out.stdout and "  train " not in out.stdout and "nbdiff" not in out.stdout
    assert "epochs" in out.stdout  # params and metrics are still shown


def test_diff_of_a_run_with_itself_changes_nothing(runs):
    root, a, _ = runs
    out = cli(root, "diff", a["run_id"], a["run_id"])
    assert out.returncode == 0, out.stderr
    assert (
        "Params changed\n  none" in out.stdout and "Metrics changed (candidate model, test split)\n  none" in out.stdout
    )
    assert "nbdiff" not in out.stdout


@pytest.mark.parametrize(
    "args,message",
    [
        (["nope", "latest"], "error: no pipeline run 'nope' in "),
        (
            ["latest", "latest", "--step", "deploy"],
            "error: neither run has a step 'deploy'; their steps are: prepare, train, evaluate, register.",
        ),
        (
            ["A", "B", "--web"],
            "the web diff shows one notebook pair at a time and 3 steps changed; pass --step with one of: train, evaluate, register.",
        ),
        (["A", "B", "--web", "--step", "train", "--port", "70000"], "error: --port 70000 is not a TCP port"),
    ],
)
def test_diff_errors_are_one_sentence(runs, args, message):
    root, a, b = runs
    args = [{"A": a["run_id"], "B": b["run_id"]}.get(x, x) for x in args]
    out = cli(root, "diff", *args)
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_diff_web_port_in_use_is_one_sentence(runs):
    root, a, b = runs
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = aidevops(root, "diff", a["run_id"], b["run_id"], "--web", "--step", "train", "--port", str(port))
    assert out.returncode == 2
    assert (
        out.stderr.strip()
        == f"error: port {port} on 127.0.0.1 is in use; pass --port with a free port, or --port 0 for any."
    )


def test_diff_web_serves_nbdime_on_localhost(runs):
    root, a, b = runs
    port = free_port()
    cmd = [
        *AIDEVOPS,
        "diff",
        a["run_id"],
        b["run_id"],
        "--web",
        "--step",
        "train",
        "--no-browser",
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(cmd, cwd=root, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()
    seen: list[str] = []
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        url, deadline = None, time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                assert proc.poll() is None, "the web diff exited early: " + "".join(seen)
                continue
            seen.append(line)
            if line.startswith("nbdime web diff: "):
                url = line.split()[3]
        assert url and url.startswith(f"http://127.0.0.1:{port}/"), url
        prefix = urllib.parse.urlparse(url).path.removesuffix("diff")  # the random path prefix
        assert len(prefix.strip("/")) >= 24, url
        query = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
        assert query["base"] == [f"A-{a['run_id']}-02_train.ipynb"] and query["remote"] == [
            f"B-{b['run_id']}-02_train.ipynb"
        ]
        jar = CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        page = _get(opener, url, deadline)
        assert "nbdime" in page.lower()
        xsrf = next(c.value for c in jar if c.name == "_xsrf")
        body = json.dumps({"base": query["base"][0], "remote": query["remote"][0]}).encode()
        for guess in ("/api/diff", "/diff", "/"):  # without the prefix nothing answers
            with pytest.raises(urllib.error.HTTPError) as refused:
                opener.open(f"http://127.0.0.1:{port}{guess}", timeout=30)
            assert refused.value.code == 404, guess
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{prefix}api/diff",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "X-XSRFToken": xsrf},
        )
        result = json.loads(opener.open(request, timeout=30).read())
        (cells,) = [d for d in result["diff"] if d["key"] == "cells"]
        assert 2 in [op["key"] for op in cells["diff"]]  # the injected-parameters cell
        assert "epochs = 3" not in json.dumps(result["base"]) and "epochs = 8" in json.dumps(result["base"])
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode == 0


def _get(opener, url: str, deadline: float) -> str:
    while True:
        try:
            return opener.open(url, timeout=10).read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# -- report ----------------------------------------------------------------------------------
def test_report_has_the_gate_decision_and_the_deltas(runs):
    root, a, b = runs
    out = aidevops(root, "report", b["run_id"])
    assert out.returncode == 0, out.stderr[-3000:]
    path = Path(out.stdout.strip())
    assert path == Path(b["run_dir"], "report", "report.md")
    text = path.read_text()
    registration = step_json(b, "register", "registration.json")
    assert "## Gate: **FAILED**" in text
    assert "`ci-digits` version 2 · champion unchanged." in text
    for reason in registration["reasons"]:
        assert f"- {reason}" in text
    assert "| accuracy | absolute change | -0.005 |" in text and "**FAIL** |" in text  # the stored checks
    metrics = step_json(b, "evaluate", "metrics.json")
    assert metrics["champion_version"] == "1"
    assert "## Metrics against the champion v1" in text
    for name, value in metrics["candidate"].items():
        champ = metrics["champion"][name]
        row = f"| {name} | {value:.6g} | {champ:.6g} | {value - champ:+.4g} |"
        assert row in text, row
    assert re.search(r"\| log_loss \|[^\n]*\| \*\*▼ worse\*\* \|", text)  # lower is better for a loss
    assert f"Compared with champion v1 (run {a['run_id']})." in text
    assert "| epochs | `8` | `3` |" in text
    assert text.count("| `") == 2, "only the one changed param"


def test_report_links_notebooks_and_writes_plots_as_files(runs):
    root, _, b = runs
    path = Path(cli(root, "report", b["run_id"]).stdout.strip())
    text = path.read_text()
    links = re.findall(r"\]\((\.\./[^)]+\.ipynb)\)", text)
    assert len(links) == 4 and all((path.parent / link).is_file() for link in links)
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(images) >= 3 and all(src.startswith("report_files/") for src in images)
    for src in images:
        assert (path.parent / src).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "base64" not in text and "data:image" not in text and len(text) < 10_000


def test_report_of_the_first_run_has_no_champion(runs):
    root, a, _ = runs
    text = Path(cli(root, "report", a["run_id"]).stdout.strip()).read_text()
    assert "## Gate: **PASSED**" in text and "champion moved to this version" in text
    assert "No champion existed when this run was evaluated" in text


def test_report_html_against_another_run(runs, tmp_path):
    root, a, b = runs
    target = tmp_path / "out" / "review.html"
    out = cli(root, "report", b["run_id"], "--format", "html", "--against", a["run_id"], "-o", str(target))
    assert out.returncode == 0, out.stderr[-2000:]
    html = target.read_text()
    assert html.startswith("<!doctype html>") and "<strong>FAILED</strong>" in html
    assert f"<th>run {a['run_id']}</th>" in html and "<td>epochs</td>" in html
    assert (
        '<img src="review_files/train-cell8-0.png"' in html
        and (target.parent / "review_files" / "train-cell8-0.png").is_file()
    )
    assert "data:image" not in html
    link = re.search(r'<a href="([^"]+02_train\.ipynb)">', html).group(1)
    assert (target.parent / link).resolve() == Path(b["run_dir"], "train", "02_train.ipynb").resolve()


def test_self_contained_report_for_a_pull_request_comment(runs, tmp_path):
    root, _, b = runs
    target = tmp_path / "comment.md"
    out = cli(root, "report", "latest", "--self-contained", "-o", str(target))
    assert out.returncode == 0, out.stderr
    text = target.read_text()
    assert "## Gate: **FAILED**" in text and "`train/02_train.ipynb`" in text
    assert "](" not in text, "no links or images that would break in a comment"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["comment.md"]


@pytest.mark.parametrize(
    "args,message",
    [
        (["nope"], "error: no pipeline run 'nope' in "),
        (["B", "--against", "B"], "error: --against names the run being reported"),
        (["B", "--against", "nope"], "error: no pipeline run 'nope' in "),
        (["B", "--format", "pdf"], "Invalid value for '--format'"),
    ],
)
def test_report_errors_are_one_sentence(runs, args, message):
    root, _, b = runs
    out = cli(root, "report", *[b["run_id"] if x == "B" else x for x in args])
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr
