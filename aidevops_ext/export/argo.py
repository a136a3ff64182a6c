"""`aidevops export argo`: a pipeline spec as an Argo Workflows `Workflow` (or, with a cron, a `CronWorkflow`),
built with Hera.

Each step is a pod running the aidevops image on its notebook (`aidevops step`), with exactly the params
`aidevops run` would give it (the runner's own resolution, overrides included) as the task's input
parameters. The spec's `needs` become the DAG's dependencies; a step's folder leaves its pod as the
output artifact `outputs` and enters each step that needs it as an input artifact at the same path, so
notebooks find their upstream files where the local runner would put them. The executed notebook is
kept as its own artifact `notebook`. The MLflow tracking URI is a workflow parameter, so one exported
file can be submitted against another server (`argo submit -p mlflow-tracking-uri=...`).

With `--cron` (or `--schedule NAME`, a schedule of `aidevops schedule add`) the same workflow is the
`workflowSpec` of a `CronWorkflow` that Argo starts on that cron in UTC, as the local scheduler does, and never
while the previous run is still going (`concurrencyPolicy: Forbid`, the local scheduler's skip).

Hera is imported only here (the `argo` extra): a missing SDK is one sentence naming the install.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..deploy.kubernetes import k8s_name
from ..errors import ConfigError
from ..pipeline.records import git_state
from ..pipeline.runner import PipelineRunner, RunOptions
from ..pipeline.spec import PipelineSpec, load_spec, resolve_spec_path
from ..workspace import Workspace
from .step import GIT_COMMIT_ENV

DEFAULT_IMAGE = "aidevops:latest"
PLACEHOLDER_TRACKING_URI = "http://mlflow:5000"
APP_DIR = "/app"  # the image's project copy (notebooks/, pipelines/), the steps' working directory
WORK_DIR = "/work"  # an emptyDir: the run folder, upstream artifacts, scratch
RUN_DIR = f"{WORK_DIR}/run"
TRACKING_PARAM = "mlflow-tracking-uri"
ENTRYPOINT = "pipeline"


def _hera() -> Any:
    try:
        import hera.workflows as hw
    except ImportError:
        raise ConfigError(
            "Exporting to Argo Workflows needs Hera, the Argo Workflows Python SDK: "
            'pip install "aidevops-ext[argo]" (in a clone: pip install -e ".[argo]").'
        ) from None
    return hw


def resolved_step_params(spec: PipelineSpec, ws: Workspace, overrides: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per step, the params `aidevops run` would inject (the runner's resolution, overrides included)."""
    runner = PipelineRunner(ws, spec, RunOptions(overrides=dict(overrides)))
    return {name: runner.resolved_params(name) for name in spec.order}


def _template_name(step: str) -> str:
    return k8s_name(step.replace("_", "-"))


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def build_workflow(
    spec: PipelineSpec,
    params: Mapping[str, Mapping[str, Any]],
    *,
    image: str = DEFAULT_IMAGE,
    tracking_uri: str = PLACEHOLDER_TRACKING_URI,
    namespace: str | None = None,
    git_commit: str | None = None,
    cron: str | None = None,
    cron_name: str | None = None,
) -> Any:
    """The Hera `Workflow` for `spec` with each step's resolved `params`; a `CronWorkflow` named `cron_name`
    (default: the pipeline's name) when `cron` is given."""
    hw = _hera()
    if not isinstance(image, str) or not image.strip() or any(c.isspace() for c in image):
        raise ConfigError(
            f"Image {image!r} is not a container image reference; pass e.g. --image registry/aidevops:1.0."
        )
    names = {step: _template_name(step) for step in spec.order}
    if len(set(names.values())) != len(names):
        raise ConfigError(
            f"the step names of {spec.path.name} collide as Kubernetes names ({', '.join(names)}); "
            "rename steps so they differ in more than case and punctuation."
        )
    env = [
        hw.Env(name="MLFLOW_TRACKING_URI", value=f"{{{{workflow.parameters.{TRACKING_PARAM}}}}}"),
        hw.Env(name="AIDEVOPS_HOME", value=f"{WORK_DIR}/home"),
        hw.Env(name="MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", value="false"),
    ]
    if git_commit:
        env.append(hw.Env(name=GIT_COMMIT_ENV, value=git_commit))
    security = {"runAsNonRoot": True, "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    common = {
        "entrypoint": ENTRYPOINT,
        "namespace": namespace,
        "labels": {"app.kubernetes.io/part-of": "aidevops", "aidevops.io/pipeline": k8s_name(spec.name)},
        "arguments": [hw.Parameter(name=TRACKING_PARAM, value=tracking_uri)],
        "volumes": [hw.EmptyDirVolume(name="work", mount_path=WORK_DIR)],
    }
    if cron is None:
        outer = hw.Workflow(generate_name=f"{k8s_name(spec.name)}-", **common)
    else:
        from ..schedules.cron import check_cron  # noqa: PLC0415

        outer = hw.CronWorkflow(
            # Argo refuses CronWorkflow names over 52 characters: it appends a timestamp to name each run.
            name=k8s_name(cron_name or spec.name)[:52].rstrip("-"),
            schedules=[check_cron(cron)],
            timezone="UTC",
            concurrency_policy="Forbid",
            **common,
        )
    with outer as workflow:
        templates = {}
        for step_name in spec.order:
            step = spec.steps[step_name]
            notebook = step.notebook.relative_to(spec.root).as_posix()
            args = [
                "step",
                notebook,
                "--name",
                step_name,
                "--run-dir",
                RUN_DIR,
                "--kernel",
                spec.kernel,
                "--pipeline",
                spec.name,
                "--run-id",
                "{{workflow.name}}",
            ]
            for dep in step.needs:
                args += ["--needs", dep]
            for rel in step.outputs:
                args += ["--output", rel]
            for key in params[step_name]:
                args += ["-p", f"{key}={{{{inputs.parameters.{key}}}}}"]
            templates[step_name] = hw.Container(
                name=names[step_name],
                image=image,
                command=["aidevops"],
                args=args,
                working_dir=APP_DIR,
                env=env,
                security_context=security,
                volume_mounts=[hw.models.VolumeMount(name="work", mount_path=WORK_DIR)],
                inputs=[
                    *(hw.Parameter(name=key) for key in params[step_name]),
                    *(hw.Artifact(name=dep, path=f"{RUN_DIR}/{dep}") for dep in step.needs),
                ],
                outputs=[
                    hw.Artifact(name="outputs", path=f"{RUN_DIR}/{step_name}"),
                    hw.Artifact(name="notebook", path=f"{RUN_DIR}/{step_name}/{step.notebook.name}"),
                ],
            )
        with hw.DAG(name=ENTRYPOINT):
            for step_name in spec.order:
                step = spec.steps[step_name]
                arguments = [hw.Parameter(name=key, value=_json(value)) for key, value in params[step_name].items()]
                arguments += [
                    hw.Artifact(name=dep, from_=f"{{{{tasks.{names[dep]}.outputs.artifacts.outputs}}}}")
                    for dep in step.needs
                ]
                hw.Task(
                    name=names[step_name],
                    template=templates[step_name],
                    arguments=arguments,
                    dependencies=[names[dep] for dep in step.needs] or None,
                )
    return workflow


def export_argo(
    pipeline: str | None,
    *,
    ws: Workspace | None = None,
    overrides: Mapping[str, Any] | None = None,
    image: str = DEFAULT_IMAGE,
    tracking_uri: str | None = None,
    namespace: str | None = None,
    cron: str | None = None,
    schedule: str | None = None,
) -> dict[str, Any]:
    """{'yaml', 'workflow' (dict), 'warnings'} for the pipeline `pipeline` (a name or a path); a CronWorkflow
    with `cron`, or with the pipeline, cron and params of the stored schedule named `schedule`."""
    _hera()
    ws = ws or Workspace.discover()
    if schedule is not None:
        pipeline, cron, overrides = _from_schedule(ws, schedule, pipeline, cron, overrides or {})
    spec = load_spec(resolve_spec_path(pipeline, ws.root), ws.root)
    params = resolved_step_params(spec, ws, overrides or {})
    warnings = []
    if tracking_uri is None:
        tracking_uri = ws.tracking_uri if ws.tracking_uri.startswith(("http://", "https://")) else None
        if tracking_uri is None:
            tracking_uri = PLACEHOLDER_TRACKING_URI
            warnings.append(
                f"The workspace's MLflow store ({ws.tracking_uri}) is local to this machine; the pods "
                f"use {PLACEHOLDER_TRACKING_URI}: pass --tracking-uri with a server they can reach "
                f"(or argo submit -p {TRACKING_PARAM}=...)."
            )
    workflow = build_workflow(
        spec,
        params,
        image=image,
        tracking_uri=tracking_uri,
        namespace=namespace,
        git_commit=git_state(spec.root).get("commit"),
        cron=cron,
        cron_name=schedule,
    )
    return {"yaml": workflow.to_yaml(), "workflow": workflow.to_dict(), "warnings": warnings}


def _from_schedule(
    ws: Workspace, name: str, pipeline: str | None, cron: str | None, overrides: Mapping[str, Any]
) -> tuple[str, str, dict[str, Any]]:
    """The pipeline, cron and params of a stored schedule (`-p` given on the command line win)."""
    from ..schedules.store import ScheduleStore  # noqa: PLC0415

    if cron is not None:
        raise ConfigError("pass --cron or --schedule, not both: a schedule brings its own cron.")
    stored = ScheduleStore(ws).get(name)
    if pipeline is not None and pipeline != stored.pipeline:
        raise ConfigError(
            f"schedule '{name}' runs pipeline '{stored.pipeline}', not '{pipeline}'; leave the pipeline out."
        )
    return stored.pipeline, stored.cron, {**stored.params, **overrides}


def write_atomic(text: str, path: Path) -> None:
    """Write the exported file whole or not at all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
