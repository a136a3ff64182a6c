"""What a pipeline notebook uses to find its folders, in a pipeline run or run by hand in JupyterLab.

Run by the pipeline, the runner injects `step_dir` and `upstream`. Run by hand, they are None and
each step uses `.aidevops/scratch/<step>/`, so running the notebooks in order in Lab just works.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..workspace import Workspace


@dataclass(frozen=True)
class StepContext:
    """Folders of one step: where it writes, and where each step it needs wrote."""

    step: str
    step_dir: Path
    upstream: dict[str, Path]
    workspace: Workspace
    interactive: bool

    @classmethod
    def create(
        cls,
        step: str,
        *,
        step_dir: str | None = None,
        upstream: Mapping[str, str] | None = None,
        needs: tuple[str, ...] | list[str] = (),
    ) -> StepContext:
        """Context from the injected params (None when the notebook runs by hand)."""
        ws = Workspace.discover()
        interactive = step_dir is None
        scratch = ws.state / "scratch"
        folder = Path(step_dir) if step_dir else scratch / step
        folder.mkdir(parents=True, exist_ok=True)
        ups = {k: Path(v) for k, v in (upstream or {}).items()}
        for need in needs:
            ups.setdefault(need, scratch / need)
        return cls(step, folder, ups, ws, interactive)

    def input(self, step: str, name: str) -> Path:
        """Path of file `name` written by upstream step `step`; a clear error if it is missing."""
        path = self.upstream.get(step, self.workspace.state / "scratch" / step) / name
        if not path.exists():
            raise ConfigError(
                f"{name} from step '{step}' is missing at {path}; run the '{step}' notebook (or the pipeline) first."
            )
        return path

    def output(self, name: str) -> Path:
        """Path to write output `name` of this step."""
        path = self.step_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


def lineage_tags(run_dir: str | Path | None, pipeline_run_id: str | None) -> dict[str, str]:
    """Model-version tags tying a version to its pipeline run, git commit, data and notebooks."""
    import json

    from .hashing import sha256_text

    if run_dir is None:
        return {"aidevops.source": "interactive"}
    record = json.loads((Path(run_dir) / "run.json").read_text())
    steps = record.get("steps", {})
    data_hashes = steps.get("prepare", {}).get("outputs") or {}
    notebooks = {}
    for name, step in steps.items():
        if step.get("mlflow_run_id") and step.get("notebook"):
            notebooks[name] = f"runs:/{step['mlflow_run_id']}/notebooks/{Path(step['notebook']).name}"
        elif step.get("notebook"):
            notebooks[name] = Path(step["notebook"]).as_uri()
    git = record.get("git") or {}
    return {
        "aidevops.pipeline": str(record.get("pipeline")),
        "aidevops.pipeline_run_id": str(pipeline_run_id or record.get("run_id")),
        "aidevops.run_dir": str(run_dir),
        "aidevops.git_commit": str(git.get("commit")),
        "aidevops.git_dirty": str(git.get("dirty")),
        "aidevops.data_hash": sha256_text(json.dumps(data_hashes, sort_keys=True)) if data_hashes else "unknown",
        "aidevops.notebooks": json.dumps(notebooks, sort_keys=True),
    }
