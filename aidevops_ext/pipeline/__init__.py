"""Notebook pipelines: specs, parameters, the content-hash cache, the papermill runner, run records."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..workspace import Workspace
from .runner import PipelineRunner, RunOptions
from .spec import PipelineSpec, load_spec, resolve_spec_path

__all__ = ["PipelineRunner", "RunOptions", "PipelineSpec", "load_spec", "resolve_spec_path", "run_pipeline"]


def run_pipeline(
    pipeline: str | Path | None = None,
    *,
    ws: Workspace | None = None,
    echo: Callable[[str], None] | None = None,
    **options: Any,
):
    """Load a spec by name or path and run it; returns the RunRecord (raises StepFailed on failure)."""
    ws = ws or Workspace.discover()
    spec = load_spec(resolve_spec_path(str(pipeline) if pipeline is not None else None, ws.root), ws.root)
    return PipelineRunner(ws, spec, RunOptions(**options), echo=echo).run()
