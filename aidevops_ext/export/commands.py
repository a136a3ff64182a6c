"""CLI commands `aidevops export argo` and `aidevops step` (parsing and printing only).

Registered on the main group by `aidevops_ext/cli.py`; the core lives in `argo.py` and `step.py`.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..cli_options import echo_warnings, output_option, param_option


@click.group()
def export() -> None:
    """Export a pipeline to another engine (Argo Workflows)."""


@export.command("argo")
@click.argument("pipeline", required=False)
@param_option()
@output_option("Write the Workflow here (default: stdout).")
@click.option(
    "--image", default="aidevops:latest", show_default=True, help="Container image with aidevops and the project."
)
@click.option(
    "--tracking-uri", default=None, help="MLflow tracking URI the pods use (default: the workspace's, if a server)."
)
@click.option("--namespace", default=None, help="Namespace of the Workflow (default: the one argo submit uses).")
@click.option("--cron", default=None, metavar="EXPR", help="A CronWorkflow on this cron (five fields, UTC) instead.")
@click.option("--schedule", default=None, metavar="NAME", help="A CronWorkflow of this `aidevops schedule`.")
def export_argo(pipeline, params, output, **options) -> None:
    """An Argo Workflows Workflow: one pod per step on its notebook, `needs` as the DAG, outputs as artifacts.

    With --cron or --schedule, a CronWorkflow that starts that Workflow on the schedule (Argo 3.6 or later).
    """
    from ..pipeline.params import parse_assignments
    from .argo import export_argo as build
    from .argo import write_atomic

    # options: image, tracking_uri, namespace, cron, schedule, as export_argo names them.
    result = build(pipeline, overrides=parse_assignments(params), **options)
    echo_warnings(result["warnings"])
    if output:
        write_atomic(result["yaml"], output)
        click.echo(output)
    else:
        click.echo(result["yaml"], nl=False)


@click.command()
@click.argument("notebook", type=click.Path(dir_okay=False))
@click.option("--name", "step_name", required=True, help="Step name (its folder under --run-dir).")
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False),
    required=True,
    help="Run folder: this step writes RUN_DIR/NAME, upstream steps' folders are read from it.",
)
@click.option("--needs", multiple=True, metavar="STEP", help="An upstream step whose folder is RUN_DIR/STEP.")
@click.option(
    "--output", "outputs", multiple=True, metavar="PATH", help="A file the step must write (relative to its folder)."
)
@param_option("A notebook parameter (JSON or YAML value).")
@click.option("--kernel", default="aidevops", show_default=True, help="Jupyter kernel to run the notebook on.")
@click.option(
    "--pipeline", default="pipeline", show_default=True, help="Pipeline name (recorded in run.json and lineage)."
)
@click.option("--run-id", default=None, help="Run id (default: the run folder's name).")
def step(notebook, step_name, run_dir, params, **options) -> None:
    """Run one notebook as a pipeline step with papermill (the container entry of exported pipelines)."""
    from ..pipeline.params import parse_assignments
    from .step import run_step

    # options: needs, outputs, kernel, pipeline, run_id, as run_step names them.
    result = run_step(Path(notebook), step_name, Path(run_dir), params=parse_assignments(params), **options)
    click.echo(f"step {step_name} ran: {result.notebook}")
    for rel in result.outputs:
        click.echo(f"  {result.step_dir / rel}")
