"""The `aidevops` command: argument parsing and printing only; behaviour lives in the core.

Imports of the core happen inside commands, so `aidevops run` on a fully cached pipeline loads
neither NumPy nor MLflow nor papermill.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import __version__
from .errors import AidevopsError


class _Group(click.Group):
    """Turns user-caused errors into one sentence and a non-zero exit, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except AidevopsError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)


def _workspace():
    from .workspace import Workspace

    return Workspace.discover()


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="aidevops")
def main() -> None:
    """aidevops: notebooks as the delivery pipeline for ML models."""


# -- info ------------------------------------------------------------------------------------
@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def info(as_json: bool) -> None:
    """Versions, array backend, GPU, workspace and tracking URI."""
    import platform
    from importlib import metadata

    from .trainer.backend import cupy_available, get_backend

    ws = _workspace()
    versions = {"aidevops": __version__, "python": platform.python_version()}
    for dist in ("numpy", "mlflow", "papermill", "jupyterlab", "scikit-learn", "cupy-cuda12x"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    gpu = cupy_available()
    try:
        backend = get_backend(ws.backend).name
    except AidevopsError as exc:
        backend = f"unavailable ({exc})"
    data = {"versions": versions, "backend": backend, "gpu": gpu, "workspace": str(ws.root),
            "state": str(ws.state), "tracking_uri": ws.tracking_uri, "registry_uri": ws.registry_uri}
    if as_json:
        click.echo(json.dumps(data, indent=1))
        return
    click.echo(f"aidevops {__version__}")
    for name, version in versions.items():
        if name != "aidevops":
            click.echo(f"  {name:<13} {version or '-'}")
    click.echo(f"backend         {backend} (AIDEVOPS_BACKEND={ws.backend})")
    click.echo(f"GPU             {'yes (CuPy sees a CUDA device)' if gpu else 'no (CUDA device not available)'}")
    click.echo(f"workspace       {ws.root}")
    click.echo(f"tracking URI    {ws.tracking_uri}")


# -- train -----------------------------------------------------------------------------------
@main.command()
@click.option("--dataset", default="digits", show_default=True, help="Built-in name, 'synthetic', or a CSV/Parquet path.")
@click.option("--target", default=None, help="Target column (CSV/Parquet files).")
@click.option("--model", "kind", type=click.Choice(["mlp", "logistic", "linear"]), default="mlp", show_default=True)
@click.option("--hidden", default="256", show_default=True, help="MLP hidden layer sizes, comma-separated.")
@click.option("--epochs", type=int, default=20, show_default=True)
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--learning-rate", type=float, default=1e-3, show_default=True)
@click.option("--optimizer", type=click.Choice(["adam", "sgd"]), default="adam", show_default=True)
@click.option("--l2", type=float, default=0.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--backend", type=click.Choice(["auto", "numpy", "cupy"]), default="auto", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), default="model.npz", show_default=True)
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def train(dataset, target, kind, hidden, epochs, batch_size, learning_rate, optimizer, l2, seed, backend, output, no_progress) -> None:
    """Train a model on a dataset, print test metrics and write a model file."""
    from .training import train_model

    try:
        sizes = [int(h) for h in str(hidden).split(",") if h.strip()]
    except ValueError:
        raise click.BadParameter("give layer sizes as integers, e.g. --hidden 256,128", param_hint="--hidden")
    result = train_model(
        dataset, target=target, kind=kind, hidden=sizes, epochs=epochs, batch_size=batch_size,
        learning_rate=learning_rate, optimizer=optimizer, l2=l2, seed=seed, backend=backend,
        output=Path(output), progress=False if no_progress else None,
    )
    click.echo(f"dataset {result['dataset']} · {result['task']} · backend {result['backend']} · "
               f"trained in {result['seconds']:.2f}s")
    for name, value in result["metrics"].items():
        click.echo(f"  test {name:<16} {value:.4f}")
    click.echo(f"model written to {result['output']}")


# -- pipelines -------------------------------------------------------------------------------
@main.command()
@click.argument("pipeline", required=False)
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="Override a param (typed: 3, 0.1, true, [64,32]); STEP.KEY for one step.")
@click.option("--force", is_flag=True, help="Re-run selected steps even when cached.")
@click.option("--only", metavar="STEP", help="Run just this step (what it needs must be cached).")
@click.option("--until", metavar="STEP", help="Run this step and everything it needs.")
@click.option("--jobs", "-j", type=int, default=1, show_default=True, help="Run up to N independent steps at once.")
@click.option("--no-track", is_flag=True, help="Do not log to MLflow (steps that register models will fail).")
def run(pipeline, params, force, only, until, jobs, no_track) -> None:
    """Run a pipeline (default: pipelines/default.yaml) headlessly with papermill."""
    from .pipeline import run_pipeline
    from .pipeline.params import parse_assignments

    record = run_pipeline(pipeline, overrides=parse_assignments(params), force=force, only=only,
                          until=until, jobs=jobs, track=not no_track)
    _print_steps(record.data)


@main.command()
@click.option("--pipeline", default=None, help="Only runs of this pipeline.")
@click.option("-n", "--limit", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def runs(pipeline, limit, as_json) -> None:
    """List pipeline runs, newest first."""
    from .pipeline.records import iter_runs

    rows = [r for _, r in zip(range(limit), iter_runs(_workspace(), pipeline))]
    if as_json:
        click.echo(json.dumps(rows, indent=1, default=str))
        return
    if not rows:
        click.echo("no pipeline runs yet: start one with `aidevops run`.")
        return
    click.echo(f"{'run id':<22}{'pipeline':<14}{'status':<12}{'steps (ran/cached/failed)':<28}{'seconds':>8}")
    for r in rows:
        states = [s.get("status") for s in r["steps"].values()]
        counts = f"{states.count('ran')}/{states.count('cached')}/{states.count('failed')}"
        click.echo(f"{r['run_id']:<22}{r['pipeline']:<14}{r['status']:<12}{counts:<28}{r.get('duration_s') or 0:>8.2f}")


@main.command()
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True)
def show(run_id, as_json) -> None:
    """Show one run: params, steps, cache hits, notebooks, MLflow ids (RUN_ID may be a prefix or 'latest')."""
    from .pipeline.records import find_run

    data = find_run(_workspace(), run_id)
    if as_json:
        click.echo(json.dumps(data, indent=1, default=str))
        return
    click.echo(f"run {data['run_id']} · pipeline {data['pipeline']} · {data['status']} · {data.get('duration_s')}s")
    click.echo(f"folder   {data['run_dir']}")
    git = data.get("git") or {}
    click.echo(f"git      {git.get('commit') or '-'}{' (dirty)' if git.get('dirty') else ''}")
    if data.get("mlflow"):
        click.echo(f"mlflow   experiment {data['mlflow']['experiment']} · run {data['mlflow']['run_id']}")
    click.echo("params   " + ", ".join(f"{k}={v}" for k, v in data["params"].items()))
    _print_steps(data)


def _print_steps(data: dict) -> None:
    for name, step in data["steps"].items():
        status = step.get("status")
        extra = f"from {step.get('cached_from_run')}" if status == "cached" else f"{step.get('duration_s', 0) or 0:.2f}s" if status in ("ran", "failed") else ""
        click.echo(f"  {name:<12} {status:<13} {extra:<28} {step.get('notebook') or ''}")
        if step.get("error"):
            click.echo(f"      {step['error']}")


@main.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True)
def models(name, as_json) -> None:
    """List registered models and versions with aliases, gate decisions and key metrics."""
    from . import registry

    ws = _workspace()
    registry.configure(ws)
    rows = registry.list_models(ws, name)
    if as_json:
        click.echo(json.dumps(rows, indent=1, default=str))
        return
    if not rows:
        click.echo("no registered models yet: run a pipeline with `aidevops run`.")
        return
    for model in rows:
        click.echo(f"{model['name']}")
        for v in model.get("versions", []):
            aliases = ",".join(v.get("aliases") or []) or "-"
            gate = {True: "passed", False: "failed"}.get(v.get("gate_passed"), "-")
            metrics = " ".join(f"{k}={val:.4f}" for k, val in sorted((v.get("metrics") or {}).items())[:4] if isinstance(val, (int, float)))
            click.echo(f"  v{v['version']:<4} {aliases:<22} gate {gate:<7} {metrics}")



# -- setup and review ------------------------------------------------------------------------
@main.command()
@click.option("--prefix", type=click.Path(file_okay=False), default=None,
              help="Install the kernelspecs under PREFIX/share/jupyter/kernels (default: this environment, as --sys-prefix).")
@click.option("--no-git", is_flag=True, help="Do not configure nbdime's git integration.")
def init(prefix, no_git) -> None:
    """Install the aidevops kernelspecs and nbdime's git integration for this repository (idempotent)."""
    from .kernels import install_kernelspecs

    for k in install_kernelspecs(prefix):
        click.echo(f"kernel {k.name:<14} {'installed' if k.changed else 'unchanged':<10} {k.path}  (python: {k.python})")
    if no_git:
        return
    from .review.gitconfig import configure_nbdime, repo_root

    if repo_root(Path.cwd()) is None:
        click.echo("git    not a git repository here: nbdime's git integration skipped (run `aidevops init` in a clone).")
        return
    for change in configure_nbdime(Path.cwd()):
        click.echo(f"git    {'set' if change.changed else 'unchanged':<10} {change.what} = {change.value}")


@main.command()
@click.argument("run_a")
@click.argument("run_b")
@click.option("--step", metavar="STEP", help="Only this step's notebooks.")
@click.option("--web", is_flag=True, help="Open nbdime's web diff (one step) instead of the terminal diff.")
@click.option("--port", type=int, default=0, show_default=True, help="Port for --web on 127.0.0.1 (0: any free port).")
@click.option("--no-browser", is_flag=True, help="With --web: print the URL, do not open a browser.")
@click.option("--summary", is_flag=True, help="Tables and changed cells only, without nbdime's cell diffs.")
@click.option("--color/--no-color", default=None, help="Colour the diff (default: when stdout is a terminal).")
def diff(run_a, run_b, step, web, port, no_browser, summary, color) -> None:
    """Two runs side by side: params and metrics that changed, then their executed notebooks with nbdime."""
    from .review.diff import compare_runs, prepare_web, render_text, serve_web

    result = compare_runs(_workspace(), run_a, run_b, step)
    if color is None:
        color = sys.stdout.isatty()
    if not web:
        click.echo(render_text(result, color=color, notebooks=not summary), nl=False)
        return
    import shutil

    click.echo(render_text(result, color=color, notebooks=False), nl=False)
    target = prepare_web(result, step, port)
    try:
        code = serve_web(target, browser=not no_browser, echo=click.echo)
    finally:
        shutil.rmtree(target.folder, ignore_errors=True)
    sys.exit(code)


@main.command()
@click.argument("run_id")
@click.option("--format", "fmt", type=click.Choice(["markdown", "html"]), default="markdown", show_default=True)
@click.option("--against", default="champion", show_default=True, metavar="champion|RUN",
              help="Compare with the champion the gate judged against, or with another run.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Report file (default: <run folder>/report/report.md or .html); plots go beside it.")
@click.option("--self-contained", is_flag=True, help="No image files or relative links: for a pull-request comment.")
def report(run_id, fmt, against, output, self_contained) -> None:
    """Write a review report of a run: gate decision, metrics against the champion, params changed, notebooks, plots."""
    from .review.report import write_report

    path, _ = write_report(_workspace(), run_id, fmt=fmt, against=against,
                           output=Path(output) if output else None, self_contained=self_contained)
    click.echo(str(path))


if __name__ == "__main__":  # pragma: no cover
    main()
