"""The Prometheus scrape config and the Grafana dashboard shipped in ops/, checked against the real thing.

- `promtool` (Debian's prometheus package; .ci/run installs it) checks the config, the rule file and runs the
  rules' unit tests. Debian builds Prometheus without Kubernetes discovery, so where promtool rejects
  `kubernetes_sd_configs` the Kubernetes jobs are checked with that block swapped for file discovery (every
  relabel rule still checked by promtool) and the block itself against the roles Prometheus knows.
- The dashboard is Grafana dashboard JSON: schemaVersion, unique panel ids, a grid that does not overlap, a
  datasource variable every panel uses, targets with a PromQL `expr`.
- A real model server (the CI pipeline's model deployed in a temporary workspace, with simulated traffic and
  feedback) exports every metric the dashboard and the rules read.
- A real Prometheus runs the shipped config — the local job pointed at that server, the Kubernetes jobs fed the
  labels and annotations Kubernetes discovery would give the pod of `aidevops deploy --target kubernetes` — and
  every query of the dashboard returns data through its HTTP API.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from aidevops_ext.tokens import require_feedback_token
from aidevops_ext.workspace import Workspace
from tests.beyond.conftest import free_port
from tests.conftest import REPO
from tests.support.cli import loop_settings, run_cli
from tests.support.loop import prometheus
from tests.support.projects import copy_project

OPS = REPO / "ops"
CONFIG = OPS / "prometheus" / "prometheus.yml"
RULES = OPS / "prometheus" / "aidevops-rules.yml"
RULES_TEST = OPS / "prometheus" / "aidevops-rules.test.yml"
DASHBOARD = OPS / "grafana" / "aidevops-dashboard.json"
MODEL = NAME = "ci-digits"
K8S_ROLES = {"node", "service", "pod", "endpoints", "endpointslice", "ingress"}
K8S_SD_KEYS = {
    "role",
    "namespaces",
    "selectors",
    "api_server",
    "kubeconfig_file",
    "attach_metadata",
    "basic_auth",
    "authorization",
    "oauth2",
    "tls_config",
    "proxy_url",
    "follow_redirects",
    "enable_http2",
}
# Dashboard variables and Grafana's own, as a query sent to Prometheus by hand would have them.
VARIABLES = {"$job": ".+", "$model": MODEL, "$version": ".+", "$__rate_interval": "20s", "$__interval": "5s"}


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is not installed: `apt-get install prometheus` (Debian; .ci/run does it)"
    return path


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def targets(dash: dict) -> list[tuple[str, dict]]:
    """(panel title, target) of every query the dashboard runs."""
    return [(p["title"], t) for p in dash["panels"] if p["type"] != "row" for t in p.get("targets", [])]


def expressions(dash: dict) -> list[str]:
    """Every PromQL expression of the dashboard: panel targets and annotations."""
    exprs = [t["expr"] for _, t in targets(dash)]
    exprs += [a["expr"] for a in dash["annotations"]["list"] if a.get("expr")]
    return exprs


_NOT_METRICS = {
    "sum",
    "max",
    "min",
    "avg",
    "count",
    "topk",
    "bottomk",
    "rate",
    "irate",
    "increase",
    "changes",
    "histogram_quantile",
    "sort",
    "sort_desc",
    "vector",
    "time",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (not functions, keywords, label names or variables)."""
    if expr.startswith("label_values("):
        return {re.match(r"label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)", expr).group(1)}
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", "", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)  # ranges and subqueries
    e = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)  # label lists
    found = re.findall(r"(?<![A-Za-z0-9_:$.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?", e)
    return {name for name, call in found if not call and name.lower() not in _NOT_METRICS}


def substitute(expr: str) -> str:
    for name in sorted(VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, VARIABLES[name])
    return expr


# --------------------------------------------------------------------------- promtool


def _k8s_as_file_sd(config: dict, targets_file: str) -> tuple[dict, list[dict]]:
    """The config with each job's kubernetes_sd_configs replaced by file discovery, and the blocks replaced."""
    config = copy.deepcopy(config)
    blocks = []
    for job in config["scrape_configs"]:
        if "kubernetes_sd_configs" in job:
            blocks += job.pop("kubernetes_sd_configs")
            job["file_sd_configs"] = [{"files": [targets_file]}]
    return config, blocks


def test_promtool_checks_the_scrape_config_and_its_rule_file(tmp_path):
    out = subprocess.run([promtool(), "check", "config", str(CONFIG)], capture_output=True, text=True, timeout=60)
    if out.returncode != 0 and "field kubernetes_sd_configs not found" in out.stdout + out.stderr:
        # This promtool has no Kubernetes discovery (Debian's build): check the rest, relabel rules included.
        config, blocks = _k8s_as_file_sd(yaml.safe_load(CONFIG.read_text()), "k8s-targets.json")
        assert blocks, "the Kubernetes jobs use kubernetes_sd_configs"
        for block in blocks:
            assert block["role"] in K8S_ROLES and not set(block) - K8S_SD_KEYS, block
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        (tmp_path / "k8s-targets.json").write_text("[]")
        shutil.copy(RULES, tmp_path / RULES.name)
        out = subprocess.run(
            [promtool(), "check", "config", str(tmp_path / "prometheus.yml")],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout + out.stderr and "9 rules found" in out.stdout + out.stderr, out.stdout + out.stderr
    jobs = {job["job_name"]: job for job in yaml.safe_load(CONFIG.read_text())["scrape_configs"]}
    assert set(jobs) == {"aidevops-local", "aidevops-kubernetes", "aidevops-kserve"}
    assert yaml.safe_load(CONFIG.read_text())["rule_files"] == [RULES.name]


def test_promtool_runs_the_rules_unit_tests():
    out = subprocess.run(
        [promtool(), "test", "rules", str(RULES_TEST)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=RULES_TEST.parent,
    )
    assert out.returncode == 0 and "SUCCESS" in out.stdout + out.stderr, out.stdout + out.stderr


# --------------------------------------------------------------------------- the dashboard's shape


def test_the_dashboard_is_grafana_dashboard_json():
    dash = dashboard()
    assert isinstance(dash["schemaVersion"], int) and dash["schemaVersion"] >= 36
    assert dash["uid"] and dash["title"] and dash["time"]["from"].startswith("now-")
    panels = dash["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids), "panel ids are unique integers"
    cells: dict[tuple[int, int], int] = {}
    for p in panels:
        g = p["gridPos"]
        assert all(isinstance(g[k], int) for k in ("h", "w", "x", "y")), p["title"]
        assert g["w"] > 0 and g["h"] > 0 and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps panel {cells[(x, y)]}"
                cells[(x, y)] = p["id"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for name in ("job", "model", "version"):
        assert variables[name]["type"] == "query" and variables[name]["datasource"]["uid"] == "${datasource}"
    kinds = {p["type"] for p in panels}
    assert {"row", "stat", "timeseries", "bargauge", "table", "state-timeline"} <= kinds
    for p in panels:
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert p["targets"] and len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["expr"].strip() and t["datasource"]["uid"] == "${datasource}", p["title"]
            used = set(re.findall(r"\$(\w+)", t["expr"])) - {"__rate_interval", "__interval"}
            assert used <= set(variables), f"{p['title']}: undefined variables {used - set(variables)}"
    titles = " ".join(p["title"].lower() for p in panels)
    for topic in ("requests / s", "latency", "error", "psi per feature", "live accuracy", "alert"):
        assert topic in titles, topic


def test_metric_names_are_read_from_promql():
    assert metric_names(
        'sum by (le) (rate(aidevops_request_latency_seconds_bucket{job=~"$job"}[$__rate_interval]))'
    ) == {"aidevops_request_latency_seconds_bucket"}
    assert metric_names('(sum(rate(a_total{code=~"5.."}[5m])) or vector(0)) / ignoring (code) group_left sum(b)') == {
        "a_total",
        "b",
    }
    assert metric_names("time() - max(x_seconds) / 2^30") == {"x_seconds"}
    assert metric_names('label_values(aidevops_model_slot{job=~"$job"}, model)') == {"aidevops_model_slot"}
    assert metric_names("aidevops:request_errors:ratio_rate5m > 0.01") == {"aidevops:request_errors:ratio_rate5m"}


# --------------------------------------------------------------------------- against a real server and Prometheus


def _aidevops(root: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    settings = loop_settings(AIDEVOPS_HOME=str(root), AIDEVOPS_ACTOR="observability-tests")
    return run_cli(*args, cwd=root, env=settings, timeout=timeout)


class Server:
    """The deployed model server, with traffic (and feedback for every request) kept flowing while it is used."""

    def __init__(self, root: Path, url: str) -> None:
        self.root, self.url = root, url
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def metrics(self) -> str:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as r:
            return r.read().decode()

    def keep_traffic(self, rate: float = 20.0) -> None:
        from aidevops_ext import traffic

        rows = traffic.rows_for_model(self.root, MODEL)
        token = require_feedback_token(Workspace(self.root), MODEL)

        def run() -> None:
            while not self.stop.is_set():
                traffic.simulate(
                    self.url, rows, rate=rate, duration=60, feedback=1.0, feedback_token=token, stop=self.stop, seed=2
                )

        self.thread = threading.Thread(target=run, name="observability-traffic", daemon=True)
        self.thread.start()


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Server:
    """The CI pipeline's model deployed from a temporary workspace, after a full monitor window of labelled traffic
    and one bad request (so refused-request counters have a sample)."""
    from aidevops_ext import traffic

    root = copy_project(tmp_path_factory.mktemp("observability"))
    out = _aidevops(root, "run", "ci")
    assert out.returncode == 0, out.stderr[-3000:]
    out = _aidevops(root, "deploy", f"{MODEL}@champion", "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    server = Server(root, json.loads(out.stdout)["deployment"]["url"])
    try:
        token = require_feedback_token(Workspace(root), MODEL)
        rows = traffic.rows_for_model(root, MODEL)
        sent = traffic.simulate(server.url, rows, rate=100, duration=4, feedback=1.0, feedback_token=token)
        assert sent.failed == 0 and sent.ok >= 380, sent.errors
        bad = urllib.request.Request(
            f"{server.url}/invocations", data=b'{"rows": 1}', headers={"Content-Type": "application/json"}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bad, timeout=10)
        assert refused.value.code == 400
        deadline = time.monotonic() + 60
        while "aidevops_live_accuracy{" not in server.metrics() and time.monotonic() < deadline:
            time.sleep(0.5)  # the monitor's next pass (every second here) publishes drift and accuracy
        yield server
    finally:
        server.stop.set()
        if server.thread is not None:
            server.thread.join(30)
        _aidevops(root, "undeploy", "--all", timeout=120)


def exported(text: str) -> set[str]:
    """Names of the metrics that have at least one sample in a /metrics text."""
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def test_every_metric_the_dashboard_and_rules_read_is_exported_by_a_real_server(server):
    have = exported(server.metrics())
    dash = dashboard()
    for title, target in targets(dash):
        names = metric_names(target["expr"])
        assert names, f"{title}: no metric in {target['expr']!r}"
        assert names <= have, f"{title}: {sorted(names - have)} not exported by the model server"
    for a in dash["annotations"]["list"]:
        if a.get("expr"):
            assert metric_names(a["expr"]) <= have, a["name"]
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            assert metric_names(v["query"]["query"]) <= have, v["name"]
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    recorded = {r["record"] for r in rules if "record" in r}
    for rule in rules:
        names = metric_names(rule["expr"])
        assert names <= have | recorded | {"up"}, f"{rule.get('record') or rule['alert']}: {names - have - recorded}"


def _pod_targets(root: Path, server_url: str, kserve: bool) -> dict:
    """A file-discovery entry carrying what Kubernetes discovery reports for the pod `aidevops deploy --target
    kubernetes` renders: its labels, annotations, namespace and phase, the pod address on another port (the scrape
    config must take the port from the annotation, which here names the test server's)."""
    out = _aidevops(
        root, "deploy", f"{MODEL}@champion", "--target", "kubernetes", "--dry-run", *(["--kserve"] if kserve else [])
    )
    assert out.returncode == 0, out.stderr
    objects = {d["kind"]: d for d in yaml.safe_load_all(out.stdout) if d}
    host, port = urllib.parse.urlsplit(server_url).netloc.split(":")
    if kserve:
        isvc = objects["InferenceService"]
        labels = {**isvc["metadata"]["labels"], "serving.kserve.io/inferenceservice": isvc["metadata"]["name"]}
        # KServe's scraping switch turns into these annotations on the predictor pods.
        assert isvc["metadata"]["annotations"]["serving.kserve.io/enable-prometheus-scraping"] == "true"
        annotations = {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": port,
            "prometheus.io/path": isvc["metadata"]["annotations"]["prometheus.kserve.io/path"],
        }
        pod, namespace = (
            f"{isvc['metadata']['name']}-predictor-00001-deployment-7d9f8-abcde",
            isvc["metadata"]["namespace"],
        )
    else:
        template = objects["Deployment"]["spec"]["template"]
        labels = template["metadata"]["labels"]
        annotations = {**template["metadata"]["annotations"], "prometheus.io/port": port}
        assert template["metadata"]["annotations"]["prometheus.io/port"] == "8080"  # as rendered
        pod, namespace = (
            f"{objects['Deployment']['metadata']['name']}-5c6d7f8b9-xyz12",
            objects["Deployment"]["metadata"]["namespace"],
        )

    def meta(kind: str, key: str) -> str:
        return f"__meta_kubernetes_pod_{kind}_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)

    entry = {
        "__address__": f"{host}:9",
        "__meta_kubernetes_namespace": namespace,
        "__meta_kubernetes_pod_name": pod,
        "__meta_kubernetes_pod_phase": "Running",
    }
    for key, value in labels.items():
        entry[meta("label", key)] = value
        entry[meta("labelpresent", key)] = "true"
    for key, value in annotations.items():
        entry[meta("annotation", key)] = value
        entry[meta("annotationpresent", key)] = "true"
    return {"targets": [entry.pop("__address__")], "labels": entry}


def test_a_real_prometheus_with_the_shipped_config_serves_every_dashboard_query(server, tmp_path):
    target = urllib.parse.urlsplit(server.url).netloc
    config = yaml.safe_load(CONFIG.read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    jobs["aidevops-local"]["static_configs"][0]["targets"] = [target]
    # Both pods (a plain Deployment's and a KServe predictor's) are offered to both Kubernetes jobs, as pod
    # discovery would: each job must keep its own and drop the other.
    pods = {kserve: _pod_targets(server.root, server.url, kserve) for kserve in (False, True)}
    (tmp_path / "pods.json").write_text(json.dumps(list(pods.values())))
    for job in ("aidevops-kubernetes", "aidevops-kserve"):
        assert jobs[job]["kubernetes_sd_configs"] == [{"role": "pod"}]
        del jobs[job]["kubernetes_sd_configs"]
        jobs[job]["file_sd_configs"] = [{"files": [str(tmp_path / "pods.json")], "refresh_interval": "1s"}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    shutil.copy(RULES, tmp_path / RULES.name)
    port = free_port()
    log = tmp_path / "prometheus.log"
    server.keep_traffic()
    api = f"http://127.0.0.1:{port}/api/v1"

    def get(path: str, **params: str) -> dict:
        with urllib.request.urlopen(f"{api}/{path}?{urllib.parse.urlencode(params)}", timeout=10) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]

    try:
        with prometheus(tmp_path / "prometheus.yml", port, log):
            exprs = sorted({substitute(t["expr"]) for _, t in targets(dashboard())})
            empty: list[str] = exprs
            up: dict = {}
            active: list = []
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                try:
                    active = get("targets")["activeTargets"]
                    up = {t["labels"]["job"]: t for t in active}
                    empty = [e for e in exprs if not get("query", query=e)["result"]]
                except OSError:
                    pass  # Prometheus still starting
                if len(up) == 3 and all(t["health"] == "up" for t in up.values()) and not empty:
                    break
                time.sleep(1)
            assert sorted(t["labels"]["job"] for t in active) == [
                "aidevops-kserve",
                "aidevops-kubernetes",
                "aidevops-local",
            ]
            for job, t in up.items():
                assert t["health"] == "up", f"{job}: {t.get('lastError')}\n{log.read_text()[-2000:]}"
                assert t["labels"]["instance"] == target, t["labels"]  # the port came from the pod's annotation
            for job, kserve, environment in (
                ("aidevops-kubernetes", False, "kubernetes"),
                ("aidevops-kserve", True, "kserve"),
            ):
                labels = up[job]["labels"]
                assert labels["pod"] == pods[kserve]["labels"]["__meta_kubernetes_pod_name"], (job, labels)
                assert (labels["deployment"], labels["namespace"], labels["environment"]) == (
                    NAME,
                    "default",
                    environment,
                )
            assert up["aidevops-local"]["labels"]["environment"] == "local"
            assert not empty, f"dashboard queries with no data: {empty}"
            # Annotations mark events (a version switch) that this test does not make: they must parse, not match.
            for a in dashboard()["annotations"]["list"]:
                if a.get("expr"):
                    get("query", query=substitute(a["expr"]))  # a PromQL error is a 400 here

            # The template variables resolve, and the recording rules evaluate.
            assert MODEL in get("label/model/values", **{"match[]": "aidevops_model_slot"})
            rules = [r for g in get("rules")["groups"] for r in g["rules"]]
            assert rules and all(r["health"] == "ok" for r in rules), [r for r in rules if r["health"] != "ok"]
            deadline = time.monotonic() + 30
            while not get("query", query="aidevops:requests:rate5m")["result"] and time.monotonic() < deadline:
                time.sleep(1)
            assert get("query", query="aidevops:requests:rate5m")["result"]
            assert not [a for a in get("alerts")["alerts"] if a["labels"]["alertname"] == "AidevopsServerDown"]
    finally:
        server.stop.set()
