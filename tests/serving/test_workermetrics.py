"""workermetrics.py: counters add up over every worker's file (a dead worker's included), gauges are the live
primary's, and a file being replaced or unreadable never breaks a scrape."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from aidevops_ext.serving.workermetrics import WorkerMetrics


class Fixed(Collector):
    def __init__(self, requests: float, drift: float) -> None:
        self.requests, self.drift = requests, drift

    def collect(self):
        c = CounterMetricFamily("aidevops_requests", "Requests.", labels=["protocol"])
        c.add_metric(["mlflow"], self.requests)
        yield c
        g = GaugeMetricFamily("aidevops_drift", "Drift.")
        g.add_metric([], self.drift)
        yield g


def _registry(requests: float, drift: float) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed(requests, drift))
    return registry


def _values(registry: CollectorRegistry) -> dict[str, float]:
    text = generate_latest(registry).decode()
    return {s.name: s.value for fam in text_string_to_metric_families(text) for s in fam.samples}


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write(folder, pid: int, index: int, requests: float, drift: float) -> None:
    families = [
        [
            "aidevops_requests",
            "Requests.",
            "counter",
            "",
            [["aidevops_requests_total", {"protocol": "mlflow"}, requests]],
        ],
        ["aidevops_drift", "Drift.", "gauge", "", [["aidevops_drift", {}, drift]]],
    ]
    (folder / f"{pid}.json").write_bytes(orjson.dumps({"index": index, "pid": pid, "families": families}))


def test_counters_add_over_live_and_dead_workers_and_gauges_are_the_primarys(tmp_path):
    primary = WorkerMetrics(_registry(10, 0.5), tmp_path, 0)
    secondary = WorkerMetrics(_registry(7, 0.9), tmp_path, 1)
    secondary.pid = os.getppid()  # another live process: the test's parent
    secondary.dump()
    _write(tmp_path, _dead_pid(), 1, 5, 0.1)  # a killed worker's last samples
    values = _values(primary.registry)
    assert values["aidevops_requests_total"] == 22.0
    assert values["aidevops_drift"] == 0.5


def test_a_secondary_reports_the_primarys_gauges_and_skips_unreadable_files(tmp_path):
    primary = WorkerMetrics(_registry(10, 0.5), tmp_path, 0)
    primary.pid = os.getppid()
    primary.dump()
    (tmp_path / "123.json").write_bytes(b"{half a fi")
    secondary = WorkerMetrics(_registry(3, 0.9), tmp_path, 1)
    values = _values(secondary.registry)
    assert values["aidevops_requests_total"] == 13.0
    assert values["aidevops_drift"] == 0.5


def test_without_a_live_primary_the_gauges_are_the_answering_workers(tmp_path):
    _write(tmp_path, _dead_pid(), 0, 4, 0.2)
    secondary = WorkerMetrics(_registry(3, 0.9), tmp_path, 1)
    values = _values(secondary.registry)
    assert values["aidevops_requests_total"] == 7.0
    assert values["aidevops_drift"] == 0.9
