"""`aidevops report`: a review report of one pipeline run, in Markdown or HTML.

It says what a reviewer of a model change needs first: the gate's decision and reasons, the
candidate's metrics against the champion it was judged against (same test split) with deltas, the
params that differ from the champion's own pipeline run, the steps with links to their executed
notebooks, and the plots those notebooks drew — written as image files beside the report, never as
base64 inside it. `--against RUN` compares with another run instead of the champion.
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..gate import GateDecision, lower_is_better_default, parse_gate
from ..workspace import Workspace
from .runs import RunView, changed_values, load_run, show

FORMATS = {"markdown": ".md", "html": ".html"}
CHAMPION = "champion"


# -- a tiny document model, rendered to Markdown or HTML ----------------------------------------
@dataclass(frozen=True)
class Link:
    text: str
    href: str


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Strong:
    text: str


Inline = str | Link | Code | Strong | list


@dataclass(frozen=True)
class Heading:
    level: int
    text: Inline


@dataclass(frozen=True)
class Para:
    text: Inline


@dataclass(frozen=True)
class Bullets:
    items: list


@dataclass(frozen=True)
class Table:
    headers: list
    rows: list


@dataclass(frozen=True)
class Image:
    alt: str
    src: str
    caption: str = ""


@dataclass
class Report:
    """A rendered-to-be report: its blocks, the image files it refers to, and a few facts for callers."""

    title: str
    blocks: list = field(default_factory=list)
    images: dict[str, bytes] = field(default_factory=dict)  # path relative to the report's folder -> bytes
    gate_passed: bool | None = None

    def add(self, *blocks: Any) -> None:
        self.blocks.extend(blocks)


# -- building ------------------------------------------------------------------------------------
def build_report(
    ws: Workspace,
    run_ref: str,
    *,
    against: str = CHAMPION,
    output: Path | None = None,
    self_contained: bool = False,
) -> Report:
    """Assemble the review report of a run; `output` is where it will be written (for relative links)."""
    run = load_run(ws, run_ref)
    fmt_dir = (output or default_output(run, "markdown")).parent
    report = Report(title=f"Review of {run.pipeline} run {run.run_id}")
    report.add(Heading(1, report.title), Para(_run_facts(run)))
    registration = run.registration()
    decision = _stored_decision(ws, registration) if registration else None
    _gate_section(report, run, registration, decision)
    if against == CHAMPION:
        baseline = _champion_baseline(ws, run, registration)
    else:
        baseline = _run_baseline(ws, run, against)
    _metrics_section(report, run, baseline)
    _params_section(report, run, baseline)
    _steps_section(report, run, fmt_dir, self_contained)
    _plots_section(report, run, output or default_output(run, "markdown"), self_contained)
    return report


@dataclass
class _Baseline:
    """What the run is compared with: a champion version or another run."""

    label: str  # "champion v1", "run 2026…"
    metrics: dict[str, float] | None
    run: RunView | None  # the pipeline run whose params to compare with
    note: str = ""


def _run_facts(run: RunView) -> list:
    git = run.data.get("git") or {}
    commit = (git.get("commit") or "")[:12] or "not in git"
    facts: list = [
        Strong(str(run.data.get("status"))),
        f" · started {run.data.get('started')}",
        f" · {run.data.get('duration_s') or 0:.1f} s · commit ",
        Code(commit + (" (dirty)" if git.get("dirty") else "")),
    ]
    if run.data.get("overrides"):
        facts += [" · overrides ", Code(" ".join(f"{k}={show(v)}" for k, v in run.data["overrides"].items()))]
    return facts


def _gate_section(report: Report, run: RunView, registration: dict | None, decision: GateDecision | None) -> None:
    if not registration:
        report.add(
            Heading(2, "Gate: not run"),
            Para("This run registered no model (no registration.json), so no gate decided anything."),
        )
        return
    passed = bool(registration.get("gate_passed"))
    report.gate_passed = passed
    model, version = registration.get("model"), registration.get("version")
    report.add(Heading(2, ["Gate: ", Strong("PASSED" if passed else "FAILED")]))
    moved = "champion moved to this version" if registration.get("champion_moved") else "champion unchanged"
    report.add(Para([Code(f"{model}"), f" version {version} · {moved}."]))
    reasons = registration.get("reasons") or (decision.reasons if decision else [])
    if reasons:
        report.add(Bullets(list(reasons)))
    if decision and decision.checks:
        rows = [
            [
                c.metric,
                c.kind.replace("_", " "),
                show(c.required),
                show(c.actual),
                "pass" if c.passed else Strong("FAIL"),
            ]
            for c in decision.checks
        ]
        report.add(Table(["metric", "check", "required", "actual", "result"], rows))


def _stored_decision(ws: Workspace, registration: dict) -> GateDecision | None:
    """The full decision (every check) stored on the model version, when the registry is reachable."""
    tags = _version_tags(ws, registration.get("model"), registration.get("version"))
    blob = (tags or {}).get("gate.decision")
    if not blob:
        return None
    try:
        return GateDecision.from_dict(json.loads(blob))
    except (ValueError, ConfigError):
        return None


def _version_tags(ws: Workspace, model: str | None, version: Any) -> dict[str, str] | None:
    if not model or version is None:
        return None
    from .. import registry
    from ..registry.connection import client

    try:
        registry.configure(ws)
        return dict(client(ws).get_model_version(model, str(version)).tags)
    except Exception:  # a registry that is gone or unreachable leaves the report without the extras, not broken
        return None


def _champion_baseline(ws: Workspace, run: RunView, registration: dict | None) -> _Baseline:
    record = run.metrics_record()
    if record is None:
        return _Baseline(
            "champion", None, None, "This run evaluated no model, so there is no champion to compare with."
        )
    version = record.get("champion_version")
    champion = record.get("champion")
    if not version or not isinstance(champion, dict):
        return _Baseline(
            "champion",
            None,
            None,
            "No champion existed when this run was evaluated: the gate judged the "
            "candidate on absolute thresholds alone.",
        )
    model = (registration or {}).get("model") or _step_param(run, "model_name")
    tags = _version_tags(ws, model, version) or {}
    source = tags.get("aidevops.pipeline_run_id")
    note = ""
    champion_run = None
    if source:
        try:
            champion_run = load_run(ws, source)
        except ConfigError:
            note = f"The champion's pipeline run {source} is not in this workspace, so its params cannot be compared."
    else:
        note = "The champion's pipeline run is not recorded (registry unreachable, or registered outside a pipeline)."
    metrics = {k: float(v) for k, v in champion.items() if isinstance(v, (int, float))}
    return _Baseline(f"champion v{version}", metrics, champion_run, note)


def _run_baseline(ws: Workspace, run: RunView, other_ref: str) -> _Baseline:
    other = load_run(ws, other_ref)
    if other.run_id == run.run_id:
        raise ConfigError("--against names the run being reported; give another run id, or 'champion'.")
    return _Baseline(f"run {other.run_id}", other.metrics() or None, other)


def _step_param(run: RunView, name: str) -> Any:
    for record in run.steps.values():
        if name in (record.get("params") or {}):
            return record["params"][name]
    return None


def _metrics_section(report: Report, run: RunView, base: _Baseline) -> None:
    metrics = run.metrics()
    report.add(Heading(2, f"Metrics against the {base.label}" if base.metrics else "Metrics"))
    if not metrics:
        report.add(Para("This run evaluated no model (no metrics.json)."))
        return
    if base.metrics is None:
        if base.note:
            report.add(Para(base.note))
        report.add(Table(["metric", "this run"], [[k, show(v)] for k, v in metrics.items()]))
        return
    if base.label.startswith(CHAMPION):
        report.add(Para("Both models scored on this run's test split by the evaluate step."))
    directions = _directions(run)
    rows = []
    for name in dict.fromkeys([*metrics, *base.metrics]):
        mine, theirs = metrics.get(name), base.metrics.get(name)
        rows.append([name, show(mine), show(theirs), *_delta_cells(name, mine, theirs, directions)])
    report.add(Table(["metric", "this run", base.label, "delta", "change"], rows))


def _directions(run: RunView) -> dict[str, bool]:
    """greater_is_better per metric, from the run's gate spec when it says."""
    try:
        return {t.metric: t.greater_is_better for t in parse_gate(_step_param(run, "gate"))}
    except ConfigError:
        return {}


def _delta_cells(name: str, mine: float | None, theirs: float | None, directions: dict[str, bool]) -> list:
    if mine is None or theirs is None:
        return ["—", ""]
    delta = mine - theirs
    if abs(delta) < 1e-12:
        return ["0", "same"]
    greater = directions.get(name, not lower_is_better_default(name))
    better = (delta > 0) == greater
    return [f"{delta:+.4g}", "▲ better" if better else Strong("▼ worse")]


def _params_section(report: Report, run: RunView, base: _Baseline) -> None:
    report.add(Heading(2, "Params changed"))
    if base.run is None:
        report.add(Para(base.note or f"No pipeline run to compare params with ({base.label})."))
        return
    rows = changed_values(base.run.params(), run.params())
    who = f"{base.label} (run {base.run.run_id})" if not base.label.startswith("run ") else base.label
    if not rows:
        report.add(Para(f"None: the same params as {who}."))
        return
    report.add(Para(f"Compared with {who}."))
    report.add(Table(["param", base.label, "this run"], [[k, Code(show(a)), Code(show(b))] for k, a, b in rows]))


def _steps_section(report: Report, run: RunView, folder: Path, self_contained: bool) -> None:
    rows = []
    for name, record in run.steps.items():
        status = str(record.get("status"))
        if status == "cached" and record.get("cached_from_run"):
            status = f"cached (from {record['cached_from_run']})"
        duration = record.get("duration_s")
        notebook = run.notebook(name)
        if notebook is None:
            cell: Inline = "—"
        elif self_contained:
            cell = Code(
                str(notebook.relative_to(run.run_dir)) if notebook.is_relative_to(run.run_dir) else notebook.name
            )
        else:
            cell = Link(notebook.name, _relative(notebook, folder))
        rows.append([name, status, "—" if duration is None else f"{duration:.1f} s", cell])
        if record.get("error"):
            rows.append(["", Strong("error"), "", record["error"]])
    report.add(Heading(2, "Steps and executed notebooks"), Table(["step", "status", "time", "executed notebook"], rows))


def _plots_section(report: Report, run: RunView, output: Path, self_contained: bool) -> None:
    found = []
    for step in run.steps:
        notebook = run.notebook(step)
        if notebook is not None:
            found += [(step, *plot) for plot in extract_plots(notebook)]
    if not found:
        return
    report.add(Heading(2, "Plots"))
    if self_contained:
        counts: dict[str, int] = {}
        for step, *_ in found:
            counts[step] = counts.get(step, 0) + 1
        report.add(
            Para(
                "Plots are in the executed notebooks and the full report: "
                + ", ".join(f"{n} from {s}" for s, n in counts.items())
                + "."
            )
        )
        return
    files_dir = f"{output.stem}_files"
    for step, cell, index, ext, data in found:
        rel = f"{files_dir}/{step}-cell{cell}-{index}{ext}"
        report.images[rel] = data
        report.add(Image(f"{step}: cell {cell}", rel, f"{step} · cell {cell}"))


def extract_plots(notebook: Path) -> list[tuple[int, int, str, bytes]]:
    """(cell index, output index, extension, bytes) of every PNG/SVG image output of an executed notebook."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    plots = []
    for ci, cell in enumerate(nb.get("cells", [])):
        n = 0
        for output in cell.get("outputs", []) or []:
            data = output.get("data") or {}
            if "image/png" in data:
                raw = data["image/png"]
                raw = "".join(raw) if isinstance(raw, list) else raw
                plots.append((ci, n, ".png", base64.b64decode(raw)))
                n += 1
            elif "image/svg+xml" in data:
                raw = data["image/svg+xml"]
                plots.append((ci, n, ".svg", ("".join(raw) if isinstance(raw, list) else raw).encode("utf-8")))
                n += 1
    return plots


def _relative(path: Path, folder: Path) -> str:
    try:
        return Path(os.path.relpath(path, folder)).as_posix()
    except ValueError:  # another drive (Windows)
        return path.as_uri()


# -- writing -------------------------------------------------------------------------------------
def default_output(run: RunView, fmt: str) -> Path:
    """`<run folder>/report/report.md` (or .html): inside the run folder, so its links travel with it."""
    return run.run_dir / "report" / f"report{FORMATS[fmt]}"


def write_report(
    ws: Workspace,
    run_ref: str,
    *,
    fmt: str = "markdown",
    against: str = CHAMPION,
    output: Path | None = None,
    self_contained: bool = False,
) -> tuple[Path, Report]:
    """Build the report and write it (plus its image files) to `output` (default: in the run folder)."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown report format '{fmt}'; use one of: {', '.join(FORMATS)}.")
    if output is None:
        output = default_output(load_run(ws, run_ref), fmt)
    output = Path(output).resolve()
    if output.is_dir():
        raise ConfigError(
            f"--output {output} is a folder; give a file name such as {output / ('report' + FORMATS[fmt])}."
        )
    report = build_report(ws, run_ref, against=against, output=output, self_contained=self_contained)
    text = render_markdown(report) if fmt == "markdown" else render_html(report)
    output.parent.mkdir(parents=True, exist_ok=True)
    for rel, data in report.images.items():
        target = output.parent / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    output.write_text(text, encoding="utf-8")
    return output, report


def render_markdown(report: Report) -> str:
    """The report as GitHub-flavoured Markdown."""
    return "\n\n".join(_MD_BLOCKS[type(block)](block) for block in report.blocks) + "\n"


def _md(text: Inline) -> str:
    return _inline(text, _MD_INLINE, str)


def _md_cell(text: Inline) -> str:
    return _md(text).replace("|", "\\|").replace("\n", " ")


def _md_table(block: Table) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in block.headers) + " |", "|" + "---|" * len(block.headers)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
    return "\n".join(lines)


def _md_code(code: Code) -> str:
    fence = "``" if "`" in code.text else "`"
    return f"{fence}{code.text}{fence}"


_MD_BLOCKS: dict[type, Callable[[Any], str]] = {
    Heading: lambda b: "#" * b.level + " " + _md(b.text),
    Para: lambda b: _md(b.text),
    Bullets: lambda b: "\n".join(f"- {_md(item)}" for item in b.items),
    Table: _md_table,
    Image: lambda b: f"![{b.alt}]({b.src})" + (f"\n\n*{b.caption}*" if b.caption else ""),
}
_MD_INLINE: dict[type, Callable[[Any], str]] = {
    Link: lambda t: f"[{t.text}]({t.href.replace(' ', '%20')})",
    Code: _md_code,
    Strong: lambda t: f"**{t.text}**",
}


def _inline(text: Inline, pieces: dict[type, Callable[[Any], str]], plain: Callable[[str], str]) -> str:
    """A text rendered with `pieces` (one function per inline type); a plain str goes through `plain`."""
    if isinstance(text, list):
        return "".join(_inline(t, pieces, plain) for t in text)
    render = pieces.get(type(text))
    return render(text) if render else plain(str(text))


_CSS = """body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1f2328}
table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #d0d7de;padding:.3rem .6rem;text-align:left}
th{background:#f6f8fa}code{background:#f6f8fa;padding:.1rem .3rem;border-radius:4px}
figure{margin:1rem 0}img{max-width:100%}figcaption{color:#57606a;font-size:.9em}"""


def render_html(report: Report) -> str:
    """The report as one HTML page (images referenced as files, not embedded)."""
    body = [_HTML_BLOCKS[type(block)](block) for block in report.blocks]
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(report.title)}</title>'
        f"<style>{_CSS}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _html(text: Inline) -> str:
    return _inline(text, _HTML_INLINE, html.escape)


def _html_table(block: Table) -> str:
    head = "".join(f"<th>{_html(h)}</th>" for h in block.headers)
    rows = "".join("<tr>" + "".join(f"<td>{_html(c)}</td>" for c in row) + "</tr>" for row in block.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


_HTML_BLOCKS: dict[type, Callable[[Any], str]] = {
    Heading: lambda b: f"<h{b.level}>{_html(b.text)}</h{b.level}>",
    Para: lambda b: f"<p>{_html(b.text)}</p>",
    Bullets: lambda b: "<ul>" + "".join(f"<li>{_html(i)}</li>" for i in b.items) + "</ul>",
    Table: _html_table,
    Image: lambda b: (
        f'<figure><img src="{html.escape(b.src)}" alt="{html.escape(b.alt)}">'
        f"<figcaption>{html.escape(b.caption)}</figcaption></figure>"
    ),
}
_HTML_INLINE: dict[type, Callable[[Any], str]] = {
    Link: lambda t: f'<a href="{html.escape(t.href)}">{html.escape(t.text)}</a>',
    Code: lambda t: f"<code>{html.escape(t.text)}</code>",
    Strong: lambda t: f"<strong>{html.escape(t.text)}</strong>",
}
