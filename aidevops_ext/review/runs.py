"""What a review reads from a pipeline run folder: params, metrics, gate outcome, executed notebooks.

Pure file reading (run.json and the steps' JSON outputs); no MLflow, no nbdime.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..finite import is_finite_number
from ..pipeline.records import find_run
from ..workspace import Workspace

METRICS_FILE = "metrics.json"
REGISTRATION_FILE = "registration.json"
# Params steps receive from the spec's own sections (model:, experiment:, gate:, monitor:): one entry each.
_CONTEXT_PARAMS = {"model_name", "experiment", "gate", "monitor"}


@dataclass(frozen=True)
class RunView:
    """One pipeline run as a reviewer sees it."""

    data: dict[str, Any]

    @property
    def run_id(self) -> str:
        return self.data["run_id"]

    @property
    def run_dir(self) -> Path:
        return Path(self.data["run_dir"])

    @property
    def pipeline(self) -> str:
        return str(self.data.get("pipeline"))

    @property
    def steps(self) -> dict[str, dict[str, Any]]:
        return self.data.get("steps") or {}

    def label(self) -> str:
        """`<run id> (<pipeline>, <status>)`."""
        return f"{self.run_id} ({self.pipeline}, {self.data.get('status')})"

    def notebook(self, step: str) -> Path | None:
        """The executed notebook of `step`, if the run has one on disk."""
        path = self.steps.get(step, {}).get("notebook")
        if path and Path(path).is_file():
            return Path(path)
        return None

    def step_file(self, name: str) -> Path | None:
        """The first step output called `name` (e.g. metrics.json), in step order."""
        for step in self.steps:
            path = self.run_dir / step / name
            if path.is_file():
                return path
        return None

    def params(self) -> dict[str, Any]:
        """Pipeline params, plus `step.name` for step params that differ from them (overrides like -p train.epochs=3)."""
        flat = dict(self.data.get("params") or {})
        for step, record in self.steps.items():
            for key, value in (record.get("params") or {}).items():
                if key in _CONTEXT_PARAMS:
                    flat.setdefault(key, value)
                elif key not in flat or flat[key] != value:
                    flat[f"{step}.{key}"] = value
        return flat

    def metrics_record(self) -> dict[str, Any] | None:
        """The evaluation step's metrics.json (candidate, champion, champion_version), if any."""
        path = self.step_file(METRICS_FILE)
        return _read_json(path) if path else None

    def metrics(self) -> dict[str, float]:
        """The candidate model's metrics of this run (empty if the run evaluated nothing)."""
        record = self.metrics_record()
        if not isinstance(record, dict):
            return {}
        candidate = record.get("candidate")
        values = candidate if isinstance(candidate, dict) else record
        return {k: float(v) for k, v in values.items() if is_finite_number(v)}

    def registration(self) -> dict[str, Any] | None:
        """The register step's registration.json (model, version, gate_passed, reasons), if any."""
        path = self.step_file(REGISTRATION_FILE)
        return _read_json(path) if path else None


def load_run(ws: Workspace, ref: str) -> RunView:
    """A run by id, id prefix, folder or 'latest' (a ConfigError names an unknown one)."""
    return RunView(find_run(ws, ref))


def changed_values(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, value in a, value in b) for keys whose values differ; a missing key reads as None."""
    rows = []
    for key in list(dict.fromkeys([*a, *b])):
        va, vb = a.get(key), b.get(key)
        if is_finite_number(va) and is_finite_number(vb):
            if va == vb or math.isclose(float(va), float(vb), rel_tol=0, abs_tol=1e-12):
                continue
        elif va == vb:
            continue
        rows.append((key, va, vb))
    return rows


def show(value: Any, width: int = 60) -> str:
    """A param or metric value in one short line."""
    if value is None:
        return "—"
    if isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, separators=(",", ":"), default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ConfigError(f"{path} is not readable JSON; re-run the step that writes it.") from None
