"""`aidevops diff`: two pipeline runs side by side — changed params and metrics, then their executed notebooks with nbdime.

Before diffing, each executed notebook is normalised: its run's folder, run id and MLflow run ids become
placeholders (in the injected parameters cell as everywhere else), papermill's timings are dropped and
widget ids are blanked, so the diff shows what changed in code and results, not the bookkeeping every
run changes. Cell ids and execution counts are not compared. The Runs panel's diff (api/views.py) shows
the same normalised notebooks, written by `panel_pair`.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import shutil
import signal
import socket
import tempfile
import uuid
import webbrowser
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..tables import table
from ..workspace import Workspace
from .runs import RunView, changed_values, load_run, show

WEB_HOST = "127.0.0.1"
PANEL_FOLDER = "diffs"  # under the workspace's .aidevops/: the Runs panel's normalised notebook pairs
PANEL_PAIRS = 20  # pairs kept there; older ones are removed when a new one is written
# papermill's per-cell and per-notebook timings: new on every run, never a change a reviewer made.
_TIMING_KEYS = ("start_time", "end_time", "duration")


@dataclass
class CellChange:
    """One changed cell: its index (in run A's notebook, or B's for added cells), what changed, a hint of its code."""

    index: int
    kind: str  # "modified", "added", "removed"
    parts: list[str]
    hint: str


@dataclass
class StepDiff:
    """The executed notebooks of one step in both runs, and how they differ."""

    step: str
    a: Path | None
    b: Path | None
    status: str  # "same notebook", "unchanged", "changed", "only in A", "only in B", "no notebook"
    cells: list[CellChange] = field(default_factory=list)
    nb_a: dict[str, Any] | None = None
    nb_b: dict[str, Any] | None = None
    diff: list[Any] | None = None


@dataclass
class RunDiff:
    """Everything `aidevops diff` shows about two runs."""

    a: RunView
    b: RunView
    params: list[tuple[str, Any, Any]]
    metrics: list[tuple[str, float | None, float | None]]
    gate: tuple[dict | None, dict | None]
    steps: list[StepDiff]

    @property
    def changed_steps(self) -> list[StepDiff]:
        """Steps whose notebooks differ (changed, or present in one run only)."""
        return [s for s in self.steps if s.status in ("changed", "only in A", "only in B")]


def compare_runs(ws: Workspace, run_a: str, run_b: str, step: str | None = None) -> RunDiff:
    """Load two runs and compare their params, metrics, gate outcome and executed notebooks."""
    a, b = load_run(ws, run_a), load_run(ws, run_b)
    names = list(dict.fromkeys([*a.steps, *b.steps]))
    if step is not None and step not in names:
        raise ConfigError(f"neither run has a step '{step}'; their steps are: {', '.join(names)}.")
    steps = [_step_diff(a, b, name) for name in ([step] if step else names)]
    return RunDiff(
        a=a,
        b=b,
        params=changed_values(a.params(), b.params()),
        metrics=changed_values(a.metrics(), b.metrics()),
        gate=(a.registration(), b.registration()),
        steps=steps,
    )


def _step_diff(a: RunView, b: RunView, step: str) -> StepDiff:
    pa, pb = a.notebook(step), b.notebook(step)
    if pa is None and pb is None:
        return StepDiff(step, None, None, "no notebook")
    if pa is None or pb is None:
        return StepDiff(step, pa, pb, "only in A" if pb is None else "only in B")
    if pa.read_bytes() == pb.read_bytes():
        # A cached step links the executed notebook of the run that computed it.
        return StepDiff(step, pa, pb, "same notebook")
    nb_a, nb_b = normalised(pa, a), normalised(pb, b)
    diff = diff_notebooks(nb_a, nb_b)
    cells = cell_changes(nb_a, nb_b, diff)
    return StepDiff(step, pa, pb, "changed" if cells else "unchanged", cells, nb_a, nb_b, diff)


def normalised(path: Path, run: RunView) -> dict[str, Any]:
    """The executed notebook with run-specific strings replaced by placeholders."""
    import nbformat

    # nbformat's reader joins multi-line strings, the form nbdime compares.
    try:
        nb = nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
    except (OSError, ValueError) as exc:  # NotJSONError and validation errors are ValueErrors
        raise ConfigError(
            f"the executed notebook {path} is not readable ({exc.__class__.__name__}); "
            f"re-run its step or pick another run."
        ) from None
    replacements = {str(run.run_dir): "<run_dir>", run.run_id: "<run_id>"}
    # A cached step's notebook was executed by an earlier run: its id is bookkeeping too.
    replacements.update({r["cached_from_run"]: "<run_id>" for r in run.steps.values() if r.get("cached_from_run")})
    # Where the run lived when it ran (the folder may have moved since, e.g. a downloaded CI artifact).
    for record in run.steps.values():
        if record.get("notebook"):
            replacements.setdefault(str(Path(record["notebook"]).parent.parent), "<run_dir>")
    mlflow_ids = [s.get("mlflow_run_id") for s in run.steps.values()] + [(run.data.get("mlflow") or {}).get("run_id")]
    replacements.update({i: "<mlflow_run_id>" for i in mlflow_ids if i})
    # Longest first: a run folder contains the run id.
    ordered = sorted(replacements.items(), key=lambda kv: -len(kv[0]))

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            for old, new in ordered:
                value = value.replace(old, new)
            return value
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            out = {k: walk(v) for k, v in value.items()}
            if "model_id" in out and "version_major" in out:  # an ipywidgets view: its id is new every run
                out["model_id"] = ""
            return out
        return value

    nb = walk(nb)
    _drop_timings(nb)
    # papermill gives every cell a fresh random id; ids by position keep the web view free of id noise.
    for index, cell in enumerate(nb.get("cells", [])):
        cell["id"] = f"cell-{index}"
    return nbformat.from_dict(nb)


def _drop_timings(nb: dict[str, Any]) -> None:
    """Remove papermill's start/end times and durations and the kernel's execution timestamps, in place."""
    for holder in [nb.get("metadata") or {}] + [cell.get("metadata") or {} for cell in nb.get("cells", [])]:
        papermill = holder.get("papermill")
        if isinstance(papermill, dict):
            for key in _TIMING_KEYS:
                papermill.pop(key, None)
        holder.pop("execution", None)  # iopub.execute_input / shell.execute_reply timestamps


def panel_pair(state: Path, a: RunView, b: RunView, step: str) -> tuple[Path, Path]:
    """Write `step`'s normalised notebooks of runs `a` and `b` for the Runs panel's nbdime page; their paths.

    One folder per (base, remote, step) under `state`/diffs, rewritten on every call (atomically, so a page
    loading meanwhile reads a whole file); only the PANEL_PAIRS most recently written folders are kept.
    """
    root = state / PANEL_FOLDER
    folder = root / _safe_name(f"{a.run_id}--{b.run_id}--{step}")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for tag, run in (("base", a), ("remote", b)):
        source = run.notebook(step)
        if source is None:
            raise ConfigError(
                f"The executed notebook of step '{step}' of run {run.run_id} is no longer in the workspace."
            )
        target = folder / f"{tag}-{_safe_name(source.name)}"
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")  # requests may overlap
        temporary.write_text(json.dumps(normalised(source, run), indent=1), encoding="utf-8")
        os.replace(temporary, target)
        written.append(target)
    os.utime(folder)  # the most recently asked-for pair is the newest, even when its files did not change
    pairs = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in pairs[PANEL_PAIRS:]:
        shutil.rmtree(old, ignore_errors=True)
    return written[0], written[1]


def _safe_name(text: str) -> str:
    """`text` with every character outside letters, digits, '.', '_' and '-' replaced by '_'."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)[:200]


def _targets(metadata: bool) -> None:
    from nbdime.diffing.notebooks import set_notebook_diff_targets

    set_notebook_diff_targets(
        sources=True, outputs=True, attachments=True, metadata=metadata, identifier=metadata, details=metadata
    )


def diff_notebooks(nb_a: dict[str, Any], nb_b: dict[str, Any]) -> list[Any]:
    """nbdime's diff of two notebooks over sources, outputs and attachments."""
    import nbdime
    from nbdime.diffing.notebooks import reset_notebook_differ

    _targets(metadata=False)
    try:
        return nbdime.diff_notebooks(nb_a, nb_b)
    finally:
        reset_notebook_differ()


def cell_changes(nb_a: dict[str, Any], nb_b: dict[str, Any], diff: list[Any]) -> list[CellChange]:
    """The cells an nbdime diff touches, with what changed in each."""
    changes: list[CellChange] = []
    for entry in diff:
        if entry["key"] != "cells" or entry["op"] != "patch":
            continue
        for op in entry["diff"]:
            index = op["key"]
            if op["op"] == "addrange":
                for offset, cell in enumerate(op["valuelist"]):
                    changes.append(CellChange(index + offset, "added", [cell.get("cell_type", "cell")], _hint(cell)))
            elif op["op"] == "removerange":
                for offset in range(op["length"]):
                    cell = nb_a["cells"][index + offset]
                    changes.append(CellChange(index + offset, "removed", [cell.get("cell_type", "cell")], _hint(cell)))
            elif op["op"] == "patch":
                parts = list(dict.fromkeys(sub["key"] for sub in op["diff"] if sub["key"] != "id"))
                if parts:
                    changes.append(CellChange(index, "modified", parts, _hint(nb_a["cells"][index])))
    return changes


def _hint(cell: dict[str, Any]) -> str:
    tags = (cell.get("metadata") or {}).get("tags") or []
    if "injected-parameters" in tags:
        return "injected parameters"
    source = cell.get("source", "")
    source = "".join(source) if isinstance(source, list) else str(source)
    first = next((line.strip() for line in source.splitlines() if line.strip()), "")
    return first if len(first) <= 60 else first[:59] + "…"


# -- terminal output -------------------------------------------------------------------------
def render_text(result: RunDiff, *, color: bool = False, notebooks: bool = True) -> str:
    """The terminal view: params and metrics tables, the gate, a cell summary per step, then nbdime's diffs."""
    out = io.StringIO()
    w = out.write
    w(f"A  {result.a.label()}  {result.a.run_dir}\n")
    w(f"B  {result.b.label()}  {result.b.run_dir}\n\n")
    w("Params changed\n")
    w(
        _table(["param", "A", "B"], [[k, show(va), show(vb)] for k, va, vb in result.params])
        if result.params
        else "  none\n"
    )
    w("\nMetrics changed (candidate model, test split)\n")
    if result.metrics:
        rows = [[k, show(va), show(vb), _delta(va, vb)] for k, va, vb in result.metrics]
        w(_table(["metric", "A", "B", "B − A"], rows))
    else:
        w("  none\n" if result.a.metrics() or result.b.metrics() else "  no metrics in either run\n")
    ga, gb = result.gate
    if ga or gb:
        w(f"\nGate  A: {_gate_words(ga)}  ·  B: {_gate_words(gb)}\n")
    w("\nNotebooks\n")
    summaries = []
    for s in result.steps:
        if s.status == "changed":
            summary = f"{len(s.cells)} cell(s) changed"
        else:
            summary = {
                "same notebook": "unchanged (same executed notebook, from the cache)",
                "unchanged": "unchanged (apart from run ids and timings)",
            }.get(s.status, s.status)
        summaries.append([s.step, summary])
    for line, s in zip(table(summaries, indent="  "), result.steps):
        w(line + "\n")
        for cell_line in table(
            [[f"cell {c.index}", c.kind, ", ".join(c.parts), c.hint] for c in s.cells], indent="      "
        ):
            w(cell_line + "\n")
    if notebooks:
        for s in result.changed_steps:
            if s.diff is None:
                continue
            w(f"\n{'=' * 100}\n{s.step}\n")
            w(pretty_diff(s, result, color=color))
    return out.getvalue()


def pretty_diff(s: StepDiff, result: RunDiff, *, color: bool) -> str:
    """nbdime's terminal rendering of one step's notebook diff."""
    from nbdime.prettyprint import PrettyPrintConfig, pretty_print_notebook_diff

    class _Include:
        sources = outputs = attachments = True
        metadata = id = details = False

    buf = io.StringIO()
    config = PrettyPrintConfig(out=buf, include=_Include(), use_color=color)
    a, b = _both(s)
    pretty_print_notebook_diff(f"A/{s.step}/{a.name}", f"B/{s.step}/{b.name}", s.nb_a, s.diff, config)
    return buf.getvalue()


def _table(headers: list[str], rows: list[list[str]]) -> str:
    return "\n".join(table(rows, headers, indent="  ")) + "\n"


def _delta(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "—"
    return f"{b - a:+.4g}"


def _gate_words(reg: dict | None) -> str:
    if not reg:
        return "no gate"
    verdict = "passed" if reg.get("gate_passed") else "failed"
    moved = ", champion moved" if reg.get("champion_moved") else ""
    return f"{verdict} ({reg.get('model')} v{reg.get('version')}{moved})"


# -- nbdime's web diff -----------------------------------------------------------------------
@dataclass(frozen=True)
class WebDiff:
    """What the web diff serves: a folder with both normalised notebooks, their names in it, host and port.

    nbdime's server has no authentication, so every route sits under a random path prefix printed only to the
    person who started it: another local user or a web page cannot guess where its API is.
    """

    folder: Path
    base: str
    remote: str
    port: int
    host: str = WEB_HOST
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    @property
    def base_url(self) -> str:
        return f"/{self.secret}/"

    @property
    def url(self) -> str:
        from urllib.parse import urlencode

        query = urlencode({"base": self.base, "remote": self.remote})
        return f"http://{self.host}:{self.port}{self.base_url}diff?{query}"

    def server_params(self) -> dict[str, Any]:
        """Keyword arguments for nbdime's web server (`nbdime.webapp.nbdimeserver.init_app`)."""
        return {
            "ip": self.host,
            "port": self.port,
            "cwd": str(self.folder),
            "base_url": self.base_url,
            "hide_unchanged": True,
            "identical_lines_margin": 2,
            "closable": True,
        }


def web_step(result: RunDiff, step: str | None) -> StepDiff:
    """The one step the web diff shows: the one asked for, or the only one that changed."""
    if step is not None:
        chosen = next(s for s in result.steps if s.step == step)
        if chosen.a is None or chosen.b is None:
            raise ConfigError(
                f"step '{step}' has an executed notebook in only one of the runs; the web diff needs both."
            )
        return chosen
    changed = [s for s in result.changed_steps if s.a is not None and s.b is not None]
    if len(changed) == 1:
        return changed[0]
    if not changed:
        raise ConfigError("the two runs' notebooks do not differ; pass --step to open one anyway.")
    raise ConfigError(
        f"the web diff shows one notebook pair at a time and {len(changed)} steps changed; "
        f"pass --step with one of: {', '.join(s.step for s in changed)}."
    )


def _both(s: StepDiff) -> tuple[Path, Path]:
    if s.a is None or s.b is None:
        raise ConfigError(
            f"step '{s.step}' has an executed notebook in only one of the runs; there is no pair to diff."
        )
    return s.a, s.b


def prepare_web(result: RunDiff, step: str | None, port: int = 0, folder: Path | None = None) -> WebDiff:
    """Write both normalised notebooks of the chosen step to a folder and pick the port to serve them on."""
    chosen = web_step(result, step)
    folder = Path(folder or tempfile.mkdtemp(prefix="aidevops-diff-"))
    names = []
    for tag, run, path in zip("AB", (result.a, result.b), _both(chosen)):
        name = f"{tag}-{run.run_id}-{path.name}"
        (folder / name).write_text(json.dumps(normalised(path, run), indent=1), encoding="utf-8")
        names.append(name)
    return WebDiff(folder, names[0], names[1], free_port(port))


def free_port(port: int = 0) -> int:
    """`port` if it can be bound on 127.0.0.1 (0: any free one); a ConfigError if it is taken."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port {port} is not a TCP port; give a number from 1 to 65535, or 0 for any free one.")
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        try:
            sock.bind((WEB_HOST, port))
        except OSError:
            raise ConfigError(
                f"port {port} on {WEB_HOST} is in use; pass --port with a free port, or --port 0 for any."
            ) from None
        return sock.getsockname()[1]


def serve_web(web: WebDiff, *, browser: bool = True, echo: Callable[[str], None] = print) -> int:
    """Run nbdime's web diff on 127.0.0.1 until it is closed (page closed or Ctrl-C); returns its exit code."""
    from nbdime.diffing.notebooks import reset_notebook_differ
    from nbdime.webapp.nbdimeserver import init_app
    from tornado import ioloop

    _targets(metadata=False)

    def on_port(port: int) -> None:
        echo(f"nbdime web diff: {web.url}  (Ctrl-C to stop)")
        if browser:
            webbrowser.open(web.url, new=2)

    loop = ioloop.IOLoop.current()
    # SIGTERM (a closed terminal, `kill`) ends the server like Ctrl-C does, so the caller cleans up.
    previous = signal.signal(signal.SIGTERM, lambda *_: loop.add_callback_from_signal(loop.stop))
    try:
        app, server = init_app(on_port=on_port, **web.server_params())
        try:
            loop.start()
        except KeyboardInterrupt:
            return 0
        finally:
            server.stop()
        return app.exit_code or 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        reset_notebook_differ()
