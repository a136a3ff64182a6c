"""The pipeline runner: order steps, skip cached ones, execute the rest, record everything.

The runner owns the MLflow runs (one parent per pipeline run, one nested per executed step);
notebooks only log into the run id they are given. Heavy modules (papermill, nbclient, MLflow)
load on first execution, so a fully cached run never pays for them.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import ConfigError
from ..workspace import Workspace
from .cache import StepCache, key_material, key_of, key_parts, link_or_copy
from .executor import KernelPool, StepFailed, execute_notebook, import_papermill, kernel_env
from .notebook import NotebookInfo, read_notebook
from .params import apply_overrides, step_params
from .records import RunRecord, git_state, iter_runs, last_run, new_run_id, now_iso
from .spec import MODEL_SELF, PipelineSpec
from .stepdir import link_step_folder
from .volatile import RegistryState
from .why import explain

Echo = Callable[[str], None]
MAX_EARLY_KERNELS = 3  # idle kernels cost ~50 MB each; beyond a few the boot is hidden anyway
HISTORY_RUNS = 200  # how far back `why` looks for the last run of a step


@dataclass
class RunOptions:
    """How to run: overrides, step selection, cache use, parallelism, progress display."""

    overrides: dict[str, Any] = field(default_factory=dict)
    force: bool = False
    only: str | None = None
    until: str | None = None
    from_step: str | None = None  # this step and everything downstream of it
    jobs: int = 1
    progress: bool | None = None  # None: cell progress bars when stderr is a terminal
    track: bool = True  # log to MLflow
    timeout: float | None = None  # per-cell execution timeout (seconds)


class PipelineRunner:
    """Runs one pipeline spec in one workspace; `run()` returns the finished RunRecord."""

    def __init__(self, ws: Workspace, spec: PipelineSpec, options: RunOptions | None = None, echo: Echo | None = None):
        self.ws = ws
        self.spec = spec
        self.opts = options or RunOptions()
        self.echo = echo or (lambda msg: print(msg, file=sys.stderr, flush=True))
        if self.opts.jobs < 1:
            raise ConfigError("--jobs must be at least 1.")
        if sum(bool(x) for x in (self.opts.only, self.opts.until, self.opts.from_step)) > 1:
            raise ConfigError("use one of --only, --until and --from, not several.")
        self.pipeline_params, self.own_params = apply_overrides(spec, self.opts.overrides)
        self.notebooks: dict[str, NotebookInfo] = {s: read_notebook(spec.steps[s].notebook) for s in spec.order}
        self.selected = self._select_steps()
        # Steps outside the selection whose results the selection needs: all taken from the cache.
        self.required = self._ancestors(self.selected)
        self.cache = StepCache(ws.cache_dir)
        self.registry = RegistryState(ws)
        self.registry_values: dict[str, str | None] = {}
        # Hits of these steps are checked against MLflow: they read registry state, or a later step
        # reads their MLflow run.
        self._verify = {s for s in spec.order if spec.steps[s].reads}
        self._verify |= {dep for s in spec.order for dep in spec.steps[s].read_runs()}
        self._history: list[dict[str, Any]] = []
        self._materials: dict[str, dict[str, Any]] = {}  # step -> key material in this run
        self._pool: KernelPool | None = None
        self._tracking: _Tracking | None = None
        self._lock = threading.Lock()

    # -- selection -------------------------------------------------------------------------
    def _select_steps(self) -> list[str]:
        if self.opts.only:
            self.spec.step(self.opts.only)
            return [self.opts.only]
        if self.opts.from_step:
            self.spec.step(self.opts.from_step)
            below = self.spec.downstream(self.opts.from_step)
            return [s for s in self.spec.order if s == self.opts.from_step or s in below]
        if self.opts.until:
            self.spec.step(self.opts.until)
            keep = {self.opts.until}
            for name in reversed(self.spec.order):
                if name in keep:
                    keep.update(self.spec.steps[name].needs)
            return [s for s in self.spec.order if s in keep]
        return list(self.spec.order)

    def _ancestors(self, selected: list[str]) -> list[str]:
        """Every step the selection needs, directly or through another need, that is not selected (spec order)."""
        seen: set[str] = set()
        todo = [d for s in selected for d in self.spec.steps[s].needs]
        while todo:
            dep = todo.pop()
            if dep not in seen and dep not in selected:
                seen.add(dep)
                todo += self.spec.steps[dep].needs
        return [s for s in self.spec.order if s in seen]

    def _resolve_reads(self) -> dict[str, str | None]:
        """Each alias that a step of this run reads, resolved once, before any cache key is computed."""
        refs = {
            (self.spec.model if model == MODEL_SELF else model, alias)
            for s in self.selected + self.required
            for model, alias in self.spec.steps[s].aliases()
        }
        return self.registry.aliases(refs)

    def resolved_params(self, step: str) -> dict[str, Any]:
        """The params a step receives (without the runner-injected paths)."""
        declared = self.notebooks[step].parameters
        context = dict(
            self.pipeline_params,
            model_name=self.spec.model,
            gate=self.spec.gate,
            experiment=self.spec.experiment,
            monitor=self.spec.monitor,
            data=self.spec.data,
        )
        return step_params(declared, context, self.own_params[step])

    # -- running ---------------------------------------------------------------------------
    def run(self) -> RunRecord:
        """Run the pipeline; raises StepFailed (after recording it) when a step fails."""
        ws, spec = self.ws.ensure(), self.spec
        previous = last_run(ws, spec.name)
        self._history = list(islice(iter_runs(ws, spec.name), HISTORY_RUNS))
        self.registry_values = self._resolve_reads()
        run_id = new_run_id()
        run_dir = ws.runs_dir / spec.name / run_id
        run_dir.mkdir(parents=True)
        record = RunRecord(
            run_dir,
            {
                "run_id": run_id,
                "pipeline": spec.name,
                "spec": str(spec.path),
                "status": "running",
                "started": now_iso(),
                "finished": None,
                "duration_s": None,
                "params": self.pipeline_params,
                "overrides": self.opts.overrides,
                "selected": self.selected,
                "kernel": spec.kernel,
                "git": git_state(spec.root),
                "aidevops_version": __version__,
                "mlflow": None,
                "registry": self.registry_values,
                "resumed_from": previous["run_id"] if previous and previous.get("status") == "failed" else None,
                "steps": {s: {"status": "pending" if s in self.selected else "not selected"} for s in spec.order},
            },
        )
        record.save()
        self.echo(f"pipeline {spec.name} · run {run_id} · {len(self.selected)} step(s)")
        status = "failed"
        try:
            self._run_steps(record)
            self._remember_own_promotions(record)
            status = "succeeded"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            self._close(record, status)
        return record

    def _run_steps(self, record: RunRecord) -> None:
        done: dict[str, dict[str, str]] = {}  # step -> output hashes
        # Steps outside --only/--until/--from must come from the cache: their outputs feed ours.
        pending = list(self.selected)
        for dep in self.required:
            entry = self._lookup(dep, done, record)
            if entry is None:
                flag = "--from" if self.opts.from_step else "--only"
                reason = record.step(dep).get("cache_reason") or "has no cached result for these params"
                raise ConfigError(
                    f"step '{pending[0]}' needs '{dep}', which {reason.replace('cached result not used: ', 'has no usable cached result: ')}; "
                    f"run `aidevops run --until {dep}` first, or run without {flag}."
                )
            self._materialize(dep, entry, record, status="cached")
            done[dep] = entry.outputs
        running: dict[Future, str] = {}
        with ThreadPoolExecutor(max_workers=self.opts.jobs, thread_name_prefix="aidevops-step") as pool:
            failure: BaseException | None = None
            while pending or running:
                ready = [s for s in pending if all(d in done for d in self.spec.steps[s].needs)]
                for name in ready:
                    if failure is not None or len(running) >= self.opts.jobs:
                        break
                    if self.opts.force:
                        entry, key = None, self._keyed(name, done, record)
                    else:
                        entry = self._lookup(name, done, record)
                        key = record.step(name)["cache_key"]
                    pending.remove(name)
                    if entry is not None:
                        self._materialize(name, entry, record, status="cached")
                        done[name] = entry.outputs
                        self.echo(f"  ✓ {name:<12} cached ({entry.record.get('run_id', '?')})")
                        continue
                    self._explain_miss(name, record)
                    self._start_tracking_once(record, len(pending) + 1)
                    fut = pool.submit(self._execute_step, name, key, record)
                    running[fut] = name
                    self._prestart_kernels(pending)
                if not running:
                    if failure is not None or not pending:
                        break
                    continue  # cached steps unblocked more steps: loop again
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    name = running.pop(fut)
                    try:
                        done[name] = fut.result()
                    except BaseException as exc:  # keep the first failure, let running steps end
                        failure = failure or exc
                if failure is not None and not running:
                    break
            if failure is not None:
                raise failure

    def _cache_key(self, name: str, done: dict[str, dict[str, str]], record: RunRecord) -> dict[str, Any]:
        """The key material of step `name` in this run (cache.key_material)."""
        step = self.spec.steps[name]
        inputs = {}
        for path in step.inputs:
            if not path.is_file():
                raise ConfigError(
                    f"input file {path} declared by step '{name}' does not exist; create it or fix 'inputs'."
                )
            inputs[str(path.relative_to(self.spec.root)) if path.is_relative_to(self.spec.root) else str(path)] = (
                self.cache.memo.hash(path)
            )
        registry = {
            ref: self.registry_values.get(ref)
            for ref in (f"{self.spec.model if m == MODEL_SELF else m}@{a}" for m, a in step.aliases())
        }
        with self._lock:
            upstream_runs = {dep: record.step(dep).get("mlflow_run_id") for dep in step.read_runs()}
        return key_material(
            code_cells=self.notebooks[name].code_cells,
            params=self.resolved_params(name),
            kernel=self.spec.kernel,
            upstream={dep: done[dep] for dep in step.needs},
            inputs=inputs,
            registry=registry,
            upstream_runs=upstream_runs,
        )

    def _keyed(self, name: str, done: dict[str, dict[str, str]], record: RunRecord) -> str:
        """Compute step `name`'s key, record it with its parts (for `why`), return it."""
        material = self._cache_key(name, done, record)
        key = key_of(material)
        self._materials[name] = material
        with self._lock:
            record.step(name).update({"cache_key": key, "key_parts": key_parts(material)})
        return key

    def _lookup(self, name: str, done: dict[str, dict[str, str]], record: RunRecord):
        """The usable cache entry of step `name`, or None (with the reason recorded when a hit was refused)."""
        entry = self.cache.get(self._keyed(name, done, record))
        if entry is None:
            return None
        versions = entry.record.get("model_versions") or []
        if name in self._verify or versions:
            reason = self.registry.missing(entry.record.get("mlflow_run_id"), versions)
            if reason:
                with self._lock:
                    record.step(name)["cache_reason"] = reason
                return None
        return entry

    def _remember_own_promotions(self, record: RunRecord) -> None:
        """File this run's results of alias-reading steps also under the alias values this run itself set.

        A register step that promotes its candidate moves `champion`; without this the next, unchanged run
        would see a moved champion, evaluate the champion against itself and register a duplicate version,
        and so on every run. Only moves to a version this run's own steps registered count: a move by
        another run still makes those steps miss.
        """
        if not self.registry_values:
            return
        produced = {
            (v["name"], v["version"]) for s in record.data["steps"].values() for v in s.get("model_versions") or []
        }
        if not produced:
            return
        now = self.registry.aliases({tuple(ref.rsplit("@", 1)) for ref in self.registry_values})  # type: ignore[misc]
        moved = {
            ref: v
            for ref, v in now.items()
            if v != self.registry_values.get(ref) and (ref.rsplit("@", 1)[0], v) in produced
        }
        for name, material in self._materials.items():
            reads = material.get("registry") or {}
            if not set(reads) & set(moved) or record.step(name).get("status") not in ("ran", "cached"):
                continue
            self.cache.alias(
                key_of(material),
                key_of(dict(material, registry={**reads, **{r: moved[r] for r in reads if r in moved}})),
            )

    def _previous_parts(self, name: str) -> tuple[str, dict[str, Any]] | None:
        """(run id, key parts) of the last earlier run in which step `name` ran or was cached."""
        for run in self._history:
            step = (run.get("steps") or {}).get(name) or {}
            if step.get("key_parts") and step.get("status") in ("ran", "cached"):
                return run["run_id"], step["key_parts"]
        return None

    def _explain_miss(self, name: str, record: RunRecord) -> None:
        with self._lock:
            step = record.step(name)
            step["why"] = explain(
                step["key_parts"],
                self._previous_parts(name),
                miss_reason=step.get("cache_reason"),
                forced=self.opts.force,
            )

    def _materialize(self, name: str, entry, record: RunRecord, *, status: str) -> None:
        step_dir = record.run_dir / name
        step_dir.mkdir(parents=True, exist_ok=True)
        files = entry.folder / "files"
        for rel in entry.outputs:
            dst = step_dir / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            link_or_copy(files / rel, dst)
        notebook = entry.record.get("notebook_file")
        if notebook and (entry.folder / notebook).is_file():
            link_or_copy(entry.folder / notebook, step_dir / notebook)
        with self._lock:
            record.step(name).update(
                {
                    "status": status,
                    "cache": "hit",
                    "cache_key": entry.key,
                    "cached_from_run": entry.record.get("run_id"),
                    "outputs": entry.outputs,
                    "notebook": str(step_dir / notebook) if notebook else None,
                    "mlflow_run_id": entry.record.get("mlflow_run_id"),
                    "model_versions": entry.record.get("model_versions") or [],
                    "why": explain({}, None, hit_from=entry.record.get("run_id")),
                    "duration_s": 0.0,
                    "params": self.resolved_params(name),
                }
            )
            record.save()

    def _execute_step(self, name: str, key: str, record: RunRecord) -> dict[str, str]:
        step = self.spec.steps[name]
        t0 = time.perf_counter()
        step_dir = record.run_dir / name
        step_dir.mkdir(parents=True, exist_ok=True)
        params = self.resolved_params(name)
        output_nb = step_dir / step.notebook.name
        phases = _Phases()
        mlflow_run = self._tracking.start_step(name, params) if self._tracking else None
        phases.mark("mlflow_start")
        runner_values = {
            "run_dir": str(record.run_dir),
            "step_dir": str(step_dir),
            "upstream": {dep: str(record.run_dir / dep) for dep in step.needs},
            "mlflow_run_id": mlflow_run,
            "pipeline_run_id": record.run_id,
        }
        declared = self.notebooks[name].parameters
        injected = dict(params, **{k: v for k, v in runner_values.items() if k in declared})
        with self._lock:
            record.step(name).update(
                {
                    "status": "running",
                    "cache": "miss",
                    "cache_key": key,
                    "started": now_iso(),
                    "params": params,
                    "notebook": str(output_nb),
                    "mlflow_run_id": mlflow_run,
                }
            )
            record.save()
        self.echo(f"  ▶ {name:<12} running {step.notebook.name}")
        km = self._kernels.take()
        phases.mark("kernel_take")
        try:
            # The step contract (stepdir.py): the kernel works in the step folder, which links the
            # project and the upstream outputs while the notebook runs, and only then.
            links = link_step_folder(
                step_dir,
                self.spec.root,
                {dep: (record.run_dir / dep, self.spec.steps[dep].outputs) for dep in step.needs},
                reserved=[*step.outputs, output_nb.name],
            )
            try:
                result = execute_notebook(
                    step.notebook,
                    output_nb,
                    injected,
                    km,
                    step=name,
                    progress=self._progress(),
                    timeout=self.opts.timeout,
                    cwd=step_dir,
                    env=self._step_env(mlflow_run),
                    active_run=mlflow_run if _activates_run(self.notebooks[name]) else None,
                )
            finally:
                links.remove()
            phases.mark("papermill")
            missing = [rel for rel in step.outputs if not (step_dir / rel).exists()]
            if missing:
                raise StepFailed(
                    f"step '{name}' finished but did not write its declared output(s) {', '.join(missing)} "
                    f"into its step folder {step_dir} (a relative path such as 'train.parquet' lands there); "
                    f"write them there or fix 'outputs' in {self.spec.path.name}."
                )
        except BaseException as exc:
            duration = time.perf_counter() - t0
            with self._lock:
                record.step(name).update({"status": "failed", "duration_s": round(duration, 4), "error": str(exc)})
                record.save()
            if self._tracking and mlflow_run is not None:
                self._tracking.end_step(name, mlflow_run, output_nb, failed=True)
            self.echo(f"  ✗ {name:<12} failed after {duration:.1f}s")
            raise
        finally:
            self._kernels.release(km)
        phases.mark("kernel_release")
        # What the step registered, so a later hit can check it still exists (volatile.py).
        versions = self.registry.versions_of_run(mlflow_run) if mlflow_run else []
        with self._lock:
            parts = record.step(name).get("key_parts")
        entry = self.cache.put(
            key,
            step_dir,
            list(step.outputs),
            {
                "step": name,
                "pipeline": self.spec.name,
                "run_id": record.run_id,
                "created": now_iso(),
                "mlflow_run_id": mlflow_run,
                "notebook_file": output_nb.name,
                "model_versions": versions,
                "key_parts": parts,
            },
        )
        link_or_copy(output_nb, entry.folder / output_nb.name)
        phases.mark("cache_put")
        if self._tracking and mlflow_run is not None:
            self._tracking.end_step(name, mlflow_run, output_nb, failed=False)
        phases.mark("mlflow_end")
        # The step's time includes all its bookkeeping (cache, MLflow), so overhead is measured honestly.
        duration = time.perf_counter() - t0
        with self._lock:
            record.step(name).update(
                {
                    "status": "ran",
                    "duration_s": round(duration, 4),
                    "phases_s": phases.data,
                    "cells_s": round(result.cells_seconds, 4),
                    "outputs": entry.outputs,
                    "model_versions": versions,
                }
            )
            record.save()
        self.echo(f"  ✓ {name:<12} ran in {duration:.1f}s")
        return entry.outputs

    def _step_env(self, mlflow_run: str | None) -> dict[str, str | None]:
        """The kernel's MLflow settings for one step: a plain `mlflow.<flavor>.log_model` lands in its run.

        The URIs are explicit because MLflow's default store is ./mlflow.db, which would be the step folder.
        """
        return {
            "MLFLOW_TRACKING_URI": self.ws.tracking_uri,
            "MLFLOW_REGISTRY_URI": self.ws.registry_uri,
            "MLFLOW_RUN_ID": mlflow_run,
        }

    # -- kernels, tracking, progress -------------------------------------------------------
    def _prestart_kernels(self, pending: list[str]) -> None:
        # A spare kernel boots while the current step runs; if the next step turns out cached,
        # the spare is shut down at the end (cheap) or used by a later step.
        if pending:
            self._kernels.prestart(min(self.opts.jobs, len(pending)))

    @property
    def _kernels(self) -> KernelPool:
        """The run's kernel pool, which `_start_tracking_once` opens before the first step is submitted."""
        if self._pool is None:
            raise RuntimeError("the kernel pool is opened before the first step runs")
        return self._pool

    def _start_tracking_once(self, record: RunRecord, steps_left: int) -> None:
        if self._pool is None:
            # Kernels for the steps ahead boot in their own processes while MLflow and papermill
            # import here; booting them now, not during later steps, keeps them from competing
            # with a running notebook for the CPU.
            preload = (
                [m for s in self.selected for m in self.notebooks[s].imported_modules()] if self.spec.preload else []
            )
            # Waiting kernels start in the run folder, not the project: a warm-up importing the project's own
            # modules from there would write __pycache__/ into the project. Each step then moves its kernel
            # into its step folder, where those modules are linked.
            self._pool = KernelPool(
                self.spec.kernel, record.run_dir, kernel_env(self.spec.root), list(dict.fromkeys(preload))
            )
            self._pool.prestart(min(steps_left, self.opts.jobs + MAX_EARLY_KERNELS))
            if self.opts.track:
                self._tracking = _Tracking(self.ws, self.spec, record)
            import_papermill()  # a one-time cost of the run, not of its first step

    def _progress(self) -> bool:
        if self.opts.progress is not None:
            return self.opts.progress and self.opts.jobs == 1
        return self.opts.jobs == 1 and sys.stderr.isatty()

    def _close(self, record: RunRecord, status: str) -> None:
        if self._pool is not None:
            self._pool.close()
        if self._tracking is not None:
            self._tracking.finish(status)
        self.cache.memo.save()
        record.finish(status)
        self.echo(f"run {record.run_id} {status} in {record.data['duration_s']:.1f}s · {record.run_dir}")


def _activates_run(notebook: NotebookInfo) -> bool:
    """Whether the step's MLflow run should be active before the notebook's first cell.

    A notebook that uses MLflow but never calls `start_run` gets its step's run active, so a bare
    `mlflow.sklearn.log_model(...)` lands there. One that calls `mlflow.start_run()` itself must not
    (MLflow refuses a second active run): MLFLOW_RUN_ID makes that call resume the step's run instead.
    """
    code = "\n".join(notebook.code_cells)
    return "mlflow" in code and "start_run" not in code


class _Phases:
    """Seconds spent in each phase of a step, so `aidevops show` can say where time went."""

    def __init__(self) -> None:
        self.data: dict[str, float] = {}
        self._t = time.perf_counter()

    def mark(self, phase: str) -> None:
        now = time.perf_counter()
        self.data[phase] = round(now - self._t, 4)
        self._t = now


class _Tracking:
    """MLflow bookkeeping for one pipeline run (created lazily on first executed step)."""

    def __init__(self, ws: Workspace, spec: PipelineSpec, record: RunRecord):
        from .. import registry

        self.registry = registry
        self.ws = ws
        registry.configure(ws)
        registry.check_tracking(ws)
        params = record.data["params"]
        tags = {
            "aidevops.pipeline": spec.name,
            "aidevops.run_id": record.run_id,
            "aidevops.git_commit": str(record.data["git"].get("commit")),
            "aidevops.git_dirty": str(record.data["git"].get("dirty")),
        }
        self.parent = registry.start_pipeline_run(ws, spec.experiment, spec.name, params, tags)
        self.run_id = record.run_id
        record.data["mlflow"] = {"experiment": spec.experiment, "run_id": self.parent}
        record.save()

    def start_step(self, step: str, params: dict[str, Any]) -> str:
        return self.registry.start_step_run(
            self.ws, self.parent, step, params, {"aidevops.step": step, "aidevops.run_id": self.run_id}
        )

    def end_step(self, step: str, run_id: str, notebook: Path, *, failed: bool) -> None:
        try:
            if notebook.is_file():
                self.registry.log_artifacts(run_id, [notebook], "notebooks")
        finally:
            self.registry.end_run(run_id, "FAILED" if failed else "FINISHED")

    def finish(self, status: str) -> None:
        self.registry.end_run(self.parent, {"succeeded": "FINISHED", "interrupted": "KILLED"}.get(status, "FAILED"))
