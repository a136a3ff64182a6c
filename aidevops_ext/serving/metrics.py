"""Prometheus metrics of one server, on a registry of its own (never prometheus_client's global one).

The request path only bumps plain Python ints in a `ModelStats` (one per served model version, all
updates on the event-loop thread, so no locks); a custom collector turns them into metric families
when `/metrics` is scraped. That keeps per-request cost near a microsecond.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from .models import ServedModel

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MODEL_LABELS = ["model", "version", "alias"]


class ModelStats:
    """Counters of one served model version: requests by protocol and status, latency, rows, errors."""

    __slots__ = ("requests", "latency", "latency_sum", "rows", "errors")

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        self.latency: dict[str, list[int]] = {}
        self.latency_sum: dict[str, float] = {}
        self.rows: dict[str, int] = {}
        self.errors: dict[str, int] = {}

    def observe(self, protocol: str, status: int, seconds: float, rows: int) -> None:
        """Count one answered request."""
        key = (protocol, status)
        requests = self.requests
        requests[key] = requests.get(key, 0) + 1
        buckets = self.latency.get(protocol)
        if buckets is None:
            buckets = self.latency[protocol] = [0] * (len(LATENCY_BUCKETS) + 1)
            self.latency_sum[protocol] = 0.0
            self.rows[protocol] = 0
        buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum[protocol] += seconds
        if rows:
            self.rows[protocol] += rows

    def error(self, kind: str) -> None:
        """Count one refused or failed request by kind (bad_input, too_large, unsupported_media, model, ...)."""
        self.errors[kind] = self.errors.get(kind, 0) + 1


class ServerStats:
    """Server-wide counters that belong to no model version."""

    def __init__(self) -> None:
        self.loads: dict[str, int] = {}  # result -> count (loaded, refused)
        self.swaps: dict[str, int] = {}  # operation -> count
        self.feedback = 0
        self.feedback_rows = 0


class ServingCollector(Collector):
    """Builds the metric families from the live stats at scrape time."""

    def __init__(
        self,
        models: Callable[[], Iterable[tuple[str, ServedModel]]],
        server: ServerStats,
        log_stats: Callable[[], dict],
    ) -> None:
        self._models = models
        self._server = server
        self._log_stats = log_stats

    def collect(self):  # noqa: D102 - prometheus_client protocol
        requests = CounterMetricFamily(
            "aidevops_requests",
            "Prediction requests answered, by protocol and HTTP status.",
            labels=MODEL_LABELS + ["protocol", "code"],
        )
        latency = HistogramMetricFamily(
            "aidevops_request_latency_seconds",
            "Time from request start to response, by protocol.",
            labels=MODEL_LABELS + ["protocol"],
        )
        rows = CounterMetricFamily(
            "aidevops_predictions", "Rows predicted (one per input row).", labels=MODEL_LABELS + ["protocol"]
        )
        errors = CounterMetricFamily(
            "aidevops_request_errors", "Requests refused or failed, by kind.", labels=MODEL_LABELS + ["kind"]
        )
        info = GaugeMetricFamily(
            "aidevops_model_slot", "1 for each model version loaded, by slot.", labels=MODEL_LABELS + ["slot"]
        )
        seen: set[int] = set()
        for slot, model in self._models():
            base = [model.name, model.version, model.alias or ""]
            info.add_metric(base + [slot], 1)
            st = model.stats
            if st is None or id(st) in seen:
                continue
            seen.add(id(st))
            for (protocol, code), n in sorted(st.requests.items()):
                requests.add_metric(base + [protocol, str(code)], n)
            for protocol, counts in sorted(st.latency.items()):
                cumulative, total = [], 0
                for bound, n in zip(LATENCY_BUCKETS + (float("inf"),), counts):
                    total += n
                    cumulative.append((_le(bound), total))
                latency.add_metric(base + [protocol], cumulative, sum_value=st.latency_sum[protocol])
                rows.add_metric(base + [protocol], st.rows[protocol])
            for kind, n in sorted(st.errors.items()):
                errors.add_metric(base + [kind], n)
        yield from (requests, latency, rows, errors, info)

        loads = CounterMetricFamily(
            "aidevops_model_loads", "Model versions loaded into the server, by result.", labels=["result"]
        )
        for result, n in sorted(self._server.loads.items()):
            loads.add_metric([result], n)
        swaps = CounterMetricFamily(
            "aidevops_slot_changes", "Slot changes (switch, rollback, canary...).", labels=["operation"]
        )
        for op, n in sorted(self._server.swaps.items()):
            swaps.add_metric([op], n)
        feedback = CounterMetricFamily("aidevops_feedback_labels", "Ground-truth labels received on /feedback.")
        feedback.add_metric([], self._server.feedback_rows)
        yield from (loads, swaps, feedback)

        log = self._log_stats()
        written = CounterMetricFamily("aidevops_requestlog_written", "Requests written to the request log.")
        written.add_metric([], log.get("written", 0))
        dropped = CounterMetricFamily(
            "aidevops_requestlog_dropped", "Requests not logged because the log queue was full (or the writer failed)."
        )
        dropped.add_metric([], log.get("dropped", 0))
        skipped = CounterMetricFamily("aidevops_requestlog_sampled_out", "Requests left out of the log by sampling.")
        skipped.add_metric([], log.get("sampled_out", 0))
        queued = GaugeMetricFamily("aidevops_requestlog_queue", "Requests waiting to be written to the request log.")
        queued.add_metric([], log.get("queued", 0))
        yield from (written, dropped, skipped, queued)


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


def make_registry(collector: ServingCollector) -> CollectorRegistry:
    """A registry of this server only: its collector plus the process metrics (CPU, memory, fds)."""
    from prometheus_client import ProcessCollector  # noqa: PLC0415

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """Prometheus text exposition of the registry."""
    return generate_latest(registry)
