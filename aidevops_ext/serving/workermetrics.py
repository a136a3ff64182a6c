"""One Prometheus view of `serve --workers N`: whichever worker answers `/metrics` shows all of them.

Each worker writes its own registry's samples to `<folder>/<pid>.json` every second and on each scrape (the
folder is made empty by the parent for this run and removed at its exit). A scrape merges the files:
counters, histograms and summaries add up over every file, those of workers that died included (so a
restart never makes a counter go backwards; what a killed worker counted in its last second is lost);
gauges (the monitor's drift and quality, process memory) are the primary worker's, the one that runs the
monitor, or another live worker's when the primary is restarting. This is what prometheus_client's
multiprocess mode does for its own metric types; the server's metrics are custom collectors over plain
ints (metrics.py), which that mode cannot read, so the workers exchange samples instead.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

log = logging.getLogger("aidevops.serving")

DUMP_SECONDS = 1.0
_ADDED = ("counter", "histogram", "summary")


class WorkerMetrics(Collector):
    """The merged metrics of every worker writing to `folder`; `registry` holds only this collector."""

    def __init__(self, own: CollectorRegistry, folder: Path, index: int) -> None:
        self.own = own
        self.folder = Path(folder)
        self.index = index
        self.pid = os.getpid()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> None:
        """Write this worker's samples every second (a daemon thread)."""
        threading.Thread(target=self._run, name="aidevops-worker-metrics", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(DUMP_SECONDS):
            try:
                self.dump()
            except RuntimeError:  # a stats dict grew while it was read (the event loop counts): next second
                continue
            except OSError as exc:
                log.debug("worker metrics not written: %s", exc)

    def _families(self) -> list[list[Any]]:
        return [
            [fam.name, fam.documentation, fam.type, fam.unit, [[s.name, s.labels, s.value] for s in fam.samples]]
            for fam in self.own.collect()
        ]

    def dump(self, families: list[list[Any]] | None = None) -> list[list[Any]]:
        """Write this worker's samples (atomically: a reader sees the old file or the new one)."""
        families = self._families() if families is None else families
        path = self.folder / f"{self.pid}.json"
        tmp = self.folder / f".{self.pid}.tmp"
        with self._lock:
            tmp.write_bytes(orjson.dumps({"index": self.index, "pid": self.pid, "families": families}))
            os.replace(tmp, path)
        return families

    def _records(self, mine: list[list[Any]]) -> list[dict]:
        records = [{"index": self.index, "pid": self.pid, "families": mine, "live": True}]
        for path in sorted(self.folder.glob("*.json")):
            if path.stem == str(self.pid):
                continue
            try:
                record = orjson.loads(path.read_bytes())
                pid = int(record["pid"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            record["live"] = _alive(pid)
            records.append(record)
        return records

    def collect(self):  # noqa: D102 - prometheus_client protocol
        mine = self._families()
        try:
            self.dump(mine)
        except OSError:
            pass
        records = self._records(mine)
        # gauges: the primary's when it is live, else this worker's (always live)
        gauge_source = next((r for r in records if r["live"] and r["index"] == 0), records[0])
        merged: dict[str, Metric] = {}
        values: dict[str, dict[tuple, float]] = {}
        for record in records:
            for name, doc, typ, unit, samples in record["families"]:
                if typ not in _ADDED and record is not gauge_source:
                    continue
                if name not in merged:
                    merged[name] = Metric(name, doc, typ, unit)
                    values[name] = {}
                into = values[name]
                for sample_name, labels, value in samples:
                    key = (sample_name, tuple(sorted(labels.items())))
                    if sample_name.endswith("_created"):  # a time, not a count: the earliest
                        into[key] = min(into.get(key, float(value)), float(value))
                    else:
                        into[key] = into.get(key, 0.0) + float(value)
        for name, metric in merged.items():
            for (sample_name, labels), value in values[name].items():
                metric.add_sample(sample_name, dict(labels), value)
            yield metric


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
