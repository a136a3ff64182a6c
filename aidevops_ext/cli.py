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
from .cli_approval import COMMANDS as _APPROVAL_COMMANDS
from .cli_approval import awaiting_lines
from .cli_loop import COMMANDS as _LOOP_COMMANDS
from .cli_options import (
    allow_pickle_option,
    allowed_host_option,
    echo_json_or_none_yet,
    echo_warnings,
    output_option,
    param_option,
    reason_option,
)
from .cli_schedule import COMMANDS as _SCHEDULE_COMMANDS
from .doctor import doctor_command as _doctor
from .errors import AidevopsError
from .export.commands import export as _export
from .export.commands import step as _step
from .tables import table


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
    versions: dict[str, str | None] = {"aidevops": __version__, "python": platform.python_version()}
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
    data = {
        "versions": versions,
        "backend": backend,
        "gpu": gpu,
        "workspace": str(ws.root),
        "state": str(ws.state),
        "tracking_uri": ws.tracking_uri,
        "registry_uri": ws.registry_uri,
    }
    if as_json:
        click.echo(json.dumps(data, indent=1))
        return
    click.echo(f"aidevops {__version__}")
    for line in table(
        [[name, version or "-"] for name, version in versions.items() if name != "aidevops"], indent="  "
    ):
        click.echo(line)
    click.echo(f"backend         {backend} (AIDEVOPS_BACKEND={ws.backend})")
    click.echo(f"GPU             {'yes (CuPy sees a CUDA device)' if gpu else 'no (CUDA device not available)'}")
    click.echo(f"workspace       {ws.root}")
    click.echo(f"tracking URI    {ws.tracking_uri}")


# -- train -----------------------------------------------------------------------------------
@main.command()
@click.option(
    "--dataset", default="digits", show_default=True, help="Built-in name, 'synthetic', or a CSV/Parquet path."
)
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
def train(
    dataset, target, kind, hidden, epochs, batch_size, learning_rate, optimizer, l2, seed, backend, output, no_progress
) -> None:
    """Train a model on a dataset, print test metrics and write a model file."""
    from .training import train_model

    try:
        sizes = [int(h) for h in str(hidden).split(",") if h.strip()]
    except ValueError:
        raise click.BadParameter("give layer sizes as integers, e.g. --hidden 256,128", param_hint="--hidden") from None
    result = train_model(
        dataset,
        target=target,
        kind=kind,
        hidden=sizes,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        optimizer=optimizer,
        l2=l2,
        seed=seed,
        backend=backend,
        output=Path(output),
        progress=False if no_progress else None,
    )
    click.echo(
        f"dataset {result['dataset']} · {result['task']} · backend {result['backend']} · "
        f"trained in {result['seconds']:.2f}s"
    )
    for line in table([[name, f"{value:.4f}"] for name, value in result["metrics"].items()], indent="  test "):
        click.echo(line)
    click.echo(f"model written to {result['output']}")


# -- pipelines -------------------------------------------------------------------------------
@main.command()
@click.argument("pipeline", required=False)
@param_option("Override a param (typed: 3, 0.1, true, [64,32]); STEP.KEY for one step.")
@click.option("--force", is_flag=True, help="Re-run selected steps even when cached.")
@click.option("--only", metavar="STEP", help="Run just this step (what it needs must be cached).")
@click.option("--until", metavar="STEP", help="Run this step and everything it needs.")
@click.option(
    "--from",
    "from_step",
    metavar="STEP",
    help="Run this step and everything downstream of it (upstream comes from the cache).",
)
@click.option("--jobs", "-j", type=int, default=1, show_default=True, help="Run up to N independent steps at once.")
@click.option("--no-track", is_flag=True, help="Do not log to MLflow (steps that register models will fail).")
def run(pipeline, params, force, only, until, from_step, jobs, no_track) -> None:
    """Run a pipeline (default: pipelines/default.yaml) headlessly with papermill."""
    from .pipeline import run_pipeline
    from .pipeline.params import parse_assignments

    record = run_pipeline(
        pipeline,
        overrides=parse_assignments(params),
        force=force,
        only=only,
        until=until,
        from_step=from_step,
        jobs=jobs,
        track=not no_track,
    )
    _print_steps(record.data)
    _print_left_running(record.run_dir, record.data)


def _print_left_running(run_dir: Path, data: dict) -> None:
    """What the run left running, read back from the deployment store and the retraining records, and how to stop it.

    A deploy step (aidevops:deploy) names its deployment in deployment.json. A monitor step whose rule fired
    with `action: retrain` leaves a retraining that the deployment's supervisor starts within seconds
    (deploy/autoretrain.py checks every 2 s), so a pending one is waited for briefly rather than guessed at.
    """
    names = []
    for step, record in (data.get("steps") or {}).items():
        folders = [run_dir / step] + (
            [run_dir.parent / record["cached_from_run"] / step] if record.get("cached_from_run") else []
        )
        found = next((f / "deployment.json" for f in folders if (f / "deployment.json").is_file()), None)
        try:
            name = json.loads(found.read_text())["name"] if found else None
        except (OSError, ValueError, KeyError, TypeError):
            name = None
        if name and name not in names:
            names.append(name)
    if not names:
        return  # nothing deployed: a fully cached run stays free of numpy, MLflow and the deploy layer
    import time
    from datetime import datetime

    from .deploy import manager
    from .errors import NotFound
    from .monitoring.alertstore import AlertStore
    from .retrainings import RUNNING, retraining_running, retrainings

    ws = _workspace()
    try:
        since = datetime.fromisoformat(data["started"]).timestamp()
    except (KeyError, TypeError, ValueError):
        since = time.time() - 600
    rows, stop = [], []
    for name in names:
        try:
            dep = manager.get(ws, name)
        except NotFound:
            continue
        if dep.state not in manager.LIVE_STATES or not dep.url:
            continue
        rows.append(["deployment", f"'{dep.name}'", f"{dep.url}  ({dep.model} v{dep.active_version})"])
        stop.append(dep.name)
        deadline = time.monotonic() + 6.0
        while True:
            # A record says running and its process holds the lock (a killed one leaves only the record).
            running = (
                [r for r in retrainings(ws, name, limit=5) if r.status == RUNNING]
                if retraining_running(ws, name)
                else []
            )
            # Only this run's alerts: an unhandled one from before the supervisor started is never taken up.
            pending = [
                e
                for e in AlertStore(ws.deploy_db).events(name, action="retrain", unhandled=True, limit=5)
                if e["at"] >= since
            ]
            if running or not pending or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        for r in running:
            cause = f"after alert #{r.alert_event_id} ({r.rule})" if r.alert_event_id is not None else f"({r.trigger})"
            rows.append(["retraining", f"#{r.id}", f"of '{name}' {cause}, in the background; log {dep.log_path}"])
        if not running and pending:
            rows.append(
                [
                    "retraining",
                    "pending",
                    f"alert #{pending[-1]['id']} ({pending[-1]['rule']}) asked for one; "
                    f"the supervisor of '{name}' starts it; log {dep.log_path}",
                ]
            )
    if not rows:
        return
    click.echo("running now")
    for line in table(rows, indent="  "):
        click.echo(line)
    also = "  (this ends its retraining too)" if any(r[0] == "retraining" for r in rows) else ""
    click.echo("stop with  " + "; ".join(f"aidevops undeploy {n}" for n in stop) + also)


@main.command()
@click.option("--pipeline", default=None, help="Only runs of this pipeline.")
@click.option("-n", "--limit", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def runs(pipeline, limit, as_json) -> None:
    """List pipeline runs, newest first."""
    from .pipeline.records import iter_runs

    rows = [r for _, r in zip(range(limit), iter_runs(_workspace(), pipeline))]
    if echo_json_or_none_yet(rows, as_json, "no pipeline runs yet: start one with `aidevops run`."):
        return
    lines = []
    for r in rows:
        states = [s.get("status") for s in (r.get("steps") or {}).values()]
        counts = f"{states.count('ran')}/{states.count('cached')}/{states.count('failed')}"
        lines.append([r["run_id"], r.get("pipeline"), r.get("status"), counts, f"{r.get('duration_s') or 0:.2f}"])
    for line in table(lines, ["run id", "pipeline", "status", "steps (ran/cached/failed)", "seconds"], right=[4]):
        click.echo(line)


@main.command()
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--why",
    is_flag=True,
    help="Say for each step why it ran (what changed since its last run) or which run's output it reused.",
)
def show(run_id, as_json, why) -> None:
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
    if data.get("registry"):
        click.echo(
            "registry " + ", ".join(f"{ref}={v if v is not None else 'none'}" for ref, v in data["registry"].items())
        )
    _print_steps(data, why=why)


def _print_steps(data: dict, *, why: bool = False) -> None:
    rows = []
    for name, step in data["steps"].items():
        status = step.get("status")
        extra = (
            f"from {step.get('cached_from_run')}"
            if status == "cached"
            else f"{step.get('duration_s', 0) or 0:.2f}s"
            if status in ("ran", "failed")
            else ""
        )
        rows.append([name, status, extra, step.get("notebook") or ""])
    for line, step in zip(table(rows, indent="  "), data["steps"].values()):
        status = step.get("status")
        click.echo(line)
        if step.get("error"):
            click.echo(f"      {step['error']}")
        if why and status not in ("not selected", "pending"):
            # Runs recorded before aidevops stored key parts have no `why`.
            for line in step.get("why") or ["(not recorded: this run predates `why`)"]:
                click.echo(f"      why: {line}")


@main.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True)
def models(name, as_json) -> None:
    """List registered models and versions with aliases, gate decisions and key metrics."""
    from . import registry

    ws = _workspace()
    registry.configure(ws)
    rows = registry.list_models(ws, name)
    if echo_json_or_none_yet(rows, as_json, "no registered models yet: run a pipeline with `aidevops run`."):
        return
    for model in rows:
        click.echo(f"{model['name']}")
        listed = []
        for v in model.get("versions", []):
            aliases = ",".join(v.get("aliases") or []) or "-"
            gate = {True: "passed", False: "failed"}.get(v.get("gate_passed"), "-")
            # Beside the badge, the gate's own comparison (candidate vs champion on the same rows):
            # each version's own metrics may come from different test rows and would not explain it.
            shown = v.get("gate_summary") or " ".join(
                f"{k}={val:.4f}"
                for k, val in sorted((v.get("metrics") or {}).items())[:4]
                if isinstance(val, (int, float))
            )
            listed.append([f"v{v['version']}", aliases, f"gate {gate}", shown])
        for line in table(listed, indent="  "):
            click.echo(line)


# -- setup and review ------------------------------------------------------------------------
@main.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False))
@click.option(
    "--template", "-t", default="digits", show_default=True, help="The template to start from (--list names them)."
)
@click.option("--list", "list_only", is_flag=True, help="Name the templates and exit.")
def new(directory, template, list_only) -> None:
    """Create a project in DIRECTORY (new or empty): notebooks, pipelines, git and CI files."""
    from .project import list_templates, new_project

    if list_only:
        for line in table([[t.name, t.description] for t in list_templates()]):
            click.echo(line)
        return
    if directory is None:
        raise click.UsageError("name the folder to create, e.g. `aidevops new my-project` (or pass --list).")
    path = new_project(Path(directory), template)
    enter = "" if path == Path.cwd().resolve() else f"cd {directory} && "
    click.echo(f"created {path} from template '{template}'; next: {enter}aidevops run")


@main.command()
@click.option(
    "--prefix",
    type=click.Path(file_okay=False),
    default=None,
    help="Install the kernelspecs under PREFIX/share/jupyter/kernels (default: this environment, as --sys-prefix).",
)
@click.option("--no-git", is_flag=True, help="Do not configure nbdime's git integration.")
def init(prefix, no_git) -> None:
    """Install the aidevops kernelspecs and nbdime's git integration for this repository (idempotent)."""
    from .kernels import install_kernelspecs

    kernels = [
        ["kernel", k.name, "installed" if k.changed else "unchanged", f"{k.path}  (python: {k.python})"]
        for k in install_kernelspecs(prefix)
    ]
    for line in table(kernels):
        click.echo(line)
    if no_git:
        return
    from .review.gitconfig import configure_nbdime, repo_root

    if repo_root(Path.cwd()) is None:
        click.echo(
            "git    not a git repository here: nbdime's git integration skipped (run `aidevops init` in a clone)."
        )
        return
    changes = [
        ["git", "set" if c.changed else "unchanged", f"{c.what} = {c.value}"] for c in configure_nbdime(Path.cwd())
    ]
    for line in table(changes):
        click.echo(line)


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
@click.option(
    "--against",
    default="champion",
    show_default=True,
    metavar="champion|RUN",
    help="Compare with the champion the gate judged against, or with another run.",
)
@output_option("Report file (default: <run folder>/report/report.md or .html); plots go beside it.")
@click.option("--self-contained", is_flag=True, help="No image files or relative links: for a pull-request comment.")
def report(run_id, **options) -> None:
    """Write a review report of a run: gate decision, metrics against the champion, params changed, notebooks, plots."""
    from .review.report import write_report

    # options: fmt, against, output, self_contained, as write_report names them.
    path, _ = write_report(_workspace(), run_id, **options)
    click.echo(str(path))


# -- deployments -----------------------------------------------------------------------------
@main.command()
@click.argument("model_ref", metavar="NAME@ALIAS|NAME/VERSION")
@click.option("--name", default=None, help="Deployment name (default: the model's name).")
@click.option("--port", type=int, default=None, help="Local port (default: any free port; Kubernetes: 8080).")
@click.option(
    "--grpc-port",
    type=int,
    default=None,
    metavar="PORT",
    help="Local: also serve the Open Inference Protocol over gRPC on this port, on the same host (default: no gRPC).",
)
@click.option(
    "--workers",
    type=int,
    default=None,
    metavar="N",
    help="Local: server processes sharing the port; switches, canaries and rollbacks reach every one "
    "(default: 1, or what a running deployment has).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address a local server binds.")
@allowed_host_option
@click.option("--follow", is_flag=True, help="Switch automatically when the alias moves in the registry.")
@click.option(
    "--follow-interval",
    type=float,
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="How often --follow polls the registry.",
)
@click.option("--target", type=click.Choice(["local", "kubernetes"]), default="local", show_default=True)
@click.option("--dry-run", is_flag=True, help="Show what would be done (Kubernetes: print or write the manifests).")
@output_option("Kubernetes --dry-run: write one YAML file per object here.", folder=True)
@click.option(
    "--image", default="aidevops:latest", show_default=True, help="Kubernetes: container image with aidevops installed."
)
@click.option("--namespace", default="default", show_default=True, help="Kubernetes namespace.")
@click.option("--replicas", type=int, default=1, show_default=True, help="Kubernetes: initial replicas.")
@click.option("--min-replicas", type=int, default=1, show_default=True, help="Kubernetes autoscaler minimum.")
@click.option("--max-replicas", type=int, default=5, show_default=True, help="Kubernetes autoscaler maximum.")
@click.option(
    "--cpu-target", type=int, default=70, show_default=True, help="Kubernetes autoscaler CPU utilisation target (%)."
)
@click.option("--tracking-uri", default=None, help="Kubernetes: MLflow tracking URI the pods use.")
@click.option(
    "--kserve", is_flag=True, help="Kubernetes: apply the KServe InferenceService instead of Deployment/Service/HPA."
)
@click.option(
    "--environment",
    type=click.Choice(["dev", "staging", "prod"]),
    default=None,
    help="Kubernetes: render/apply this environment's kustomize overlay (namespace, scale).",
)
@allow_pickle_option
@reason_option
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def deploy(
    model_ref,
    name,
    port,
    host,
    follow,
    follow_interval,
    target,
    dry_run,
    output,
    image,
    namespace,
    replicas,
    min_replicas,
    max_replicas,
    cpu_target,
    tracking_uri,
    kserve,
    environment,
    reason,
    as_json,
    allowed_hosts=(),
    allow_pickle=False,
    grpc_port=None,
    workers=None,
) -> None:
    """Serve a registered model: locally as a supervised background server, or on Kubernetes.

    Deploying a name that already runs switches its version with no downtime: the new version is loaded,
    smoke-tested and checked against the registry's predictions before it takes traffic.
    """
    if target == "kubernetes":
        if grpc_port is not None:
            raise click.UsageError("--grpc-port is for local deployments; a Kubernetes one serves HTTP only.")
        if workers is not None:
            raise click.UsageError("--workers is for local deployments; give a Kubernetes one --replicas.")
        from .deploy.kubernetes import deploy_kubernetes

        result = deploy_kubernetes(
            _workspace(),
            model_ref,
            name=name,
            dry_run=dry_run,
            output=output,
            kserve=kserve,
            reason=reason,
            environment=environment,
            tracking_uri=tracking_uri,
            namespace=namespace,
            image=image,
            replicas=replicas,
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            cpu_target=cpu_target,
            follow=follow,
            follow_seconds=follow_interval,
            allowed_hosts=allowed_hosts,
            allow_pickle=allow_pickle,
        )
        echo_warnings(result["warnings"])
        if as_json:
            click.echo(json.dumps({k: v for k, v in result.items() if k != "yaml"}, indent=1, default=str))
        elif result["files"]:
            for f in result["files"]:
                click.echo(f)
        elif dry_run:
            click.echo(result["yaml"], nl=False)
        else:
            click.echo(result["kubectl"], nl=False)
        return
    from .deploy import manager

    res = manager.deploy(
        _workspace(),
        model_ref,
        name=name,
        port=port,
        host=host,
        follow=follow,
        follow_seconds=follow_interval,
        dry_run=dry_run,
        reason=reason,
        allowed_hosts=allowed_hosts,
        allow_pickle=allow_pickle,
        grpc_port=grpc_port,
        workers=workers,
    )
    if as_json:
        click.echo(json.dumps(res.to_dict(), indent=1, default=str))
        return
    dep = res.deployment
    if res.action == "planned":
        click.echo(f"would {'switch' if 'switch' in res.plan else 'start'} '{dep.name}': {json.dumps(res.plan)}")
        return
    if res.action == "unchanged":
        click.echo(f"'{dep.name}' already serves {dep.model} v{res.version} on {dep.url}")
        return
    if res.action == "switched":
        click.echo(
            f"switched '{dep.name}' from v{res.previous} to v{res.version} on {dep.url} "
            f"(roll back with `aidevops rollback {dep.name}`)"
        )
    else:
        click.echo(f"deployed {dep.model} v{res.version} ({dep.ref}) as '{dep.name}' on {dep.url}")
    if res.verified:
        click.echo(f"  checked   {res.detail}: predictions equal the registry model's")
    elif res.detail:
        click.echo(f"  checked   {res.detail}")
    if dep.follow:
        click.echo(f"  follows   {dep.model}@{dep.alias} every {dep.follow:g} s")
    grpc_at = manager.deployment_grpc_port(dep)
    if grpc_at is not None:
        click.echo(f"  gRPC      {dep.host}:{grpc_at} (Open Inference Protocol)")
    click.echo(f"  log       {dep.log_path}")
    click.echo(f"  try       {manager.curl_example(dep, _example_rows(dep), body=_served_example(dep))}")


def _served_example(dep):
    """The body the served version's own input example makes (a foreign MLflow model's), if it has one."""
    from .deploy import manager

    try:
        return manager.status(_workspace(), dep.name).example
    except Exception:  # noqa: BLE001 - no example: the reference rows make the body
        return None


def _example_rows(dep):
    from .deploy.versions import cache_dir

    try:
        ref = json.loads((cache_dir(_workspace(), dep.model, dep.active_version) / "reference.json").read_text())
        return ref.get("rows") or None
    except (OSError, ValueError, TypeError):
        return None


@main.command()
@click.argument("name", required=False)
@click.option("--history", "show_history", is_flag=True, help="Every change (with NAME: of that deployment).")
@click.option("-n", "--limit", type=int, default=20, show_default=True, help="History rows to show.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def deployments(name, show_history, limit, as_json) -> None:
    """List deployments; with NAME, its slots and recent history."""
    from .deploy import manager

    ws = _workspace()
    if name is not None:
        from .loop import awaiting_approval

        status = manager.status(ws, name, history_rows=limit)
        held = awaiting_approval(ws, name)
        if as_json:
            click.echo(json.dumps({**status.to_dict(), "awaiting_approval": held}, indent=1, default=str))
            return
        d = status.deployment
        click.echo(f"{d.name} · {d.model} ({d.ref}) · {d.target} · {d.state}" + (f" · {d.url}" if d.url else ""))
        click.echo(f"  active    {_v(status.active_version)}")
        if status.slots is not None:  # the live slots: what the server serves now
            canary = f"v{status.canary_version} at {100 * status.canary_share:g} %" if status.canary_version else "-"
            click.echo(f"  previous  {_v(status.previous_version)}")
            click.echo(f"  canary    {canary}")
        if d.follow:
            click.echo(f"  follows   {d.model}@{d.alias} every {d.follow:g} s")
        if manager.deployment_grpc_port(d) is not None:
            click.echo(f"  gRPC      {d.host}:{manager.deployment_grpc_port(d)} (Open Inference Protocol)")
        click.echo(
            f"  pids      supervisor {d.supervisor_pid or '-'}, server {d.server_pid or '-'}; restarts {d.restarts}"
        )
        if d.log_path:
            click.echo(f"  log       {d.log_path}")
        for error in (d.error, status.error):
            if error:
                click.echo(f"  error     {error}")
        for line in awaiting_lines(name, held):
            click.echo(line)
        _print_history([h.to_dict() for h in status.history])
        return
    if show_history:
        rows = [h.to_dict() for h in manager.history(ws, None, limit)]
        if as_json:
            click.echo(json.dumps(rows, indent=1, default=str))
        else:
            _print_history(rows, with_name=True)
        return
    deps = manager.list_deployments(ws)
    none_yet = "no deployments yet: start one with `aidevops deploy NAME@champion`."
    if echo_json_or_none_yet(deps, as_json, none_yet, payload=[d.to_dict() for d in deps]):
        return
    listing = []
    for d in deps:
        canary = f"v{d.canary_version} {100 * d.canary_share:g}%" if d.canary_version else "-"
        listing.append(
            [
                d.name,
                d.ref,
                d.target,
                d.state,
                _v(d.active_version),
                _v(d.previous_version),
                canary,
                d.restarts,
                d.url or "-",
            ]
        )
    headers = ["name", "serves", "target", "state", "active", "prev", "canary", "restarts", "url"]
    for line in table(listing, headers, right=[7]):
        click.echo(line)
    from .retrainings import awaiting

    for d in deps:
        pending = awaiting(ws, d.name)
        if pending is not None:
            click.echo(
                f"{d.name}: v{pending.version} awaits approval; `aidevops deployments {d.name}` shows its evidence"
            )


def _v(version) -> str:
    return f"v{version}" if version else "-"


def _print_history(rows: list, with_name: bool = False) -> None:
    if not rows:
        click.echo("  no history yet")
        return
    click.echo("  history")
    cells = []
    for h in rows:
        change = f"{_v(h['from_version'])} -> {_v(h['to_version'])}"
        reason = h["reason"] + ("" if h["ok"] else f"  REFUSED: {h['detail']}")
        cells.append([h["when"], *([h["deployment"]] if with_name else []), h["operation"], change, h["actor"], reason])
    for line in table(cells, indent="    "):
        click.echo(line)


def _move_command(operation: str, doc: str, done: str) -> None:
    """Register `aidevops OPERATION NAME [--reason]`: deploy.manager's function of that name makes the move, and
    `done`, formatted with the deployment's name and the history entry, says what it did."""

    @main.command(operation, help=doc)
    @click.argument("name")
    @reason_option
    def command(name, reason) -> None:
        from .deploy import manager

        entry = getattr(manager, operation)(_workspace(), name, reason=reason)
        click.echo(done.format(name=name, entry=entry))


_move_command(
    "rollback",
    "Swap a deployment's active and previous versions (no downtime).",
    "rolled back '{name}' from v{entry.from_version} to v{entry.to_version}",
)
_move_command(
    "promote",
    "Make a deployment's canary its active version.",
    "promoted v{entry.to_version} of '{name}' to active (v{entry.from_version} kept for rollback)",
)


@main.command()
@click.argument("name")
@click.argument("version", required=False)
@click.option("--share", type=float, default=None, help="Fraction of requests the canary gets (0 to 1).")
@click.option("--clear", is_flag=True, help="Remove the canary.")
@reason_option
def canary(name, version, share, clear, reason) -> None:
    """Send a share of a deployment's traffic to VERSION (checked like a switch); without VERSION, change the share."""
    from .deploy import manager

    entry = manager.canary(_workspace(), name, version, share=share, clear=clear, reason=reason)
    if clear:
        click.echo(f"cleared the canary v{entry.to_version} of '{name}'; v{entry.from_version} takes all traffic")
    else:
        click.echo(
            f"'{name}': canary v{entry.to_version} gets {100 * (share or 0):g} % of requests, "
            f"v{entry.from_version} the rest (promote with `aidevops promote {name}`)"
        )


@main.command()
@click.argument("name")
@click.argument("version", required=False)
@click.option("--stop", is_flag=True, help="Stop mirroring traffic to the shadow and unload it.")
@reason_option
def shadow(name, version, stop, reason) -> None:
    """Mirror deployment NAME's live traffic to VERSION after each answer is sent (clients never wait for it);
    both versions' answers are logged, and `aidevops monitor NAME` shows their agreement and accuracies."""
    from .deploy import shadow as shadows

    if stop == (version is not None):
        raise click.UsageError("give a VERSION to shadow, or --stop")
    if stop:
        entry = shadows.stop(_workspace(), name, reason=reason)
        click.echo(f"stopped the shadow v{entry.to_version} of '{name}' ({entry.detail or 'nothing mirrored'})")
        return
    entry = shadows.start(_workspace(), name, version, reason=reason)
    click.echo(
        f"'{name}': v{entry.to_version} shadows v{entry.from_version} on a mirrored copy of live traffic; "
        f"watch it with `aidevops monitor {name}`, stop it with `aidevops shadow {name} --stop`"
    )


@main.command()
@click.argument("name", required=False)
@click.option("--all", "everything", is_flag=True, help="Stop every running local deployment of the workspace.")
@reason_option
def undeploy(name, everything, reason) -> None:
    """Stop a deployment (its supervisor and server) and mark it stopped; its history stays."""
    from .deploy import manager

    ws = _workspace()
    if everything == (name is not None):
        raise click.UsageError("give a deployment NAME or --all")
    if everything:
        names = manager.undeploy_all(ws, reason=reason or "undeploy --all")
        click.echo(f"stopped {', '.join(names)}" if names else "no running deployments")
        return
    manager.undeploy(ws, name, reason=reason)
    click.echo(f"stopped '{name}'")


@main.command()
@click.argument("name")
def token(name) -> None:
    """Print the feedback token of deployment NAME: clients send it as `Authorization: Bearer <token>` to POST
    /feedback (labels change what a retrained model learns, so only its holders may send them)."""
    from .tokens import require_feedback_token

    click.echo(require_feedback_token(_workspace(), name))


@main.command()
@click.argument("model_uri")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (0.0.0.0 in containers).")
@allowed_host_option
@click.option("--port", type=int, default=8080, show_default=True)
@click.option(
    "--grpc-port",
    type=int,
    default=None,
    metavar="PORT",
    help="Also serve the Open Inference Protocol over gRPC on this port, on the same host (default: no gRPC).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Server processes sharing the port (one request log; worker 0 runs the monitor and compactor).",
)
@click.option(
    "--workspace",
    type=click.Path(file_okay=False),
    default=None,
    help="Workspace folder (default: AIDEVOPS_HOME or discovered).",
)
@click.option(
    "--follow-alias",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Poll the registry every SECONDS and switch when the alias moves (default 30; 0 disables).",
)
@click.option("--max-body-mb", type=float, default=None, help="Largest request body in MB (default 10).")
@click.option(
    "--log-sample-rate", type=float, default=None, help="Fraction of requests logged to deploy.db (default 1)."
)
@click.option("--no-request-log", is_flag=True, help="Log no requests to deploy.db.")
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
)
@allow_pickle_option
def serve(
    model_uri,
    host,
    port,
    workspace,
    follow_alias,
    max_body_mb,
    log_sample_rate,
    no_request_log,
    log_level,
    allowed_hosts=(),
    allow_pickle=False,
    grpc_port=None,
    workers=1,
) -> None:
    """Serve a model in the foreground (for containers): MLflow's scoring protocol and Open Inference Protocol v2
    (HTTP, and gRPC with --grpc-port)."""
    import logging
    from dataclasses import replace

    from .serving.config import ServingConfig, parse_hosts
    from .serving.server import serve as run_server
    from .workspace import Workspace

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = ServingConfig.from_env(
        max_body_bytes=None if max_body_mb is None else int(max_body_mb * 1024 * 1024),
        log_sample_rate=log_sample_rate,
        log_requests=False if no_request_log else None,
        follow_alias_seconds=follow_alias,
    )
    if allowed_hosts:
        config = replace(config, allowed_hosts=parse_hosts([*config.allowed_hosts, *allowed_hosts]))
    ws = Workspace(Path(workspace).resolve()) if workspace else _workspace()
    try:
        run_server(
            model_uri,
            host=host,
            port=port,
            workspace=ws,
            config=config,
            log_level=log_level,
            allow_pickle=allow_pickle or _spec_allows_pickle(ws, model_uri),
            grpc_port=grpc_port,
            workers=workers,
        )
    except KeyboardInterrupt:
        pass


def _spec_allows_pickle(ws, model_uri: str) -> bool:
    """Whether the workspace's pipeline that registers the model of a `models:/` URI says `serving: {allow_pickle: true}`."""
    from .pipeline.spec import spec_for_model
    from .serving.loader import parse_uri

    try:
        ref = parse_uri(model_uri)
    except AidevopsError:
        return False  # the server says what is wrong with the URI
    spec = spec_for_model(ws.root, ref.registered_name) if ref.is_registry else None
    return spec is not None and spec.allow_pickle


# -- commands defined beside their subject: Argo export and the per-step container entry
# (aidevops_ext/export/commands.py), the monitoring loop (aidevops_ext/cli_loop.py), schedules
# (aidevops_ext/cli_schedule.py), the installation check
for _command in (_export, _step, *_LOOP_COMMANDS, *_APPROVAL_COMMANDS, *_SCHEDULE_COMMANDS, _doctor):
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    main()
