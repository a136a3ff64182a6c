"""Pipeline specs: the YAML file that names steps, their notebooks, params, needs and outputs.

Loading a spec validates everything a run needs before any kernel starts, so a typo
costs milliseconds and one clear sentence, not a half-finished run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..datasection import check_data
from ..errors import ConfigError
from ..names import is_valid_name

_SPEC_KEYS = {
    "name",
    "description",
    "kernel",
    "model",
    "experiment",
    "params",
    "gate",
    "monitor",
    "steps",
    "preload",
    "data",
    "retrain",
    "promote",
    "serving",
}
_STEP_KEYS = {"notebook", "params", "needs", "outputs", "inputs", "description", "reads"}
MODEL_SELF = "model"  # `reads: [model@champion]`: "model" means the pipeline's own `model:`
DEFAULT_KERNEL = "python3"
SHIPPED_PREFIX = "aidevops:"  # `notebook: aidevops:evaluate` names a step shipped inside the package
SHIPPED_STEPS = Path(__file__).resolve().parent.parent / "steps"
PROMOTE_AUTO, PROMOTE_MANUAL = "auto", "manual"  # `promote:` after a retraining; a spec that says nothing: manual


@dataclass(frozen=True)
class RetrainSettings:
    """The spec's `retrain:` section: whether labelled live rows join a retraining's training data, and how many.

    Off unless the spec opts in: a label posted to a deployment is evidence a person has not checked, so it
    teaches a model only when the project says so, and then as at most `max_live_share` of the training rows
    (the newest ones), and only once `min_live_rows` of them exist (aidevops_ext/loop.py).
    """

    live_labels: bool = False
    max_live_share: float = 0.3
    min_live_rows: int = 100

    def to_dict(self) -> dict[str, Any]:
        return {
            "live_labels": self.live_labels,
            "max_live_share": self.max_live_share,
            "min_live_rows": self.min_live_rows,
        }


@dataclass(frozen=True)
class StepSpec:
    """One step: a notebook, its own params, the steps it needs, the files it must write."""

    name: str
    notebook: Path
    params: dict[str, Any] = field(default_factory=dict)
    needs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    inputs: tuple[Path, ...] = ()
    description: str = ""
    # State outside the step folder that the step reads: `NAME@ALIAS` (a registry alias, resolved to
    # its version once per run) or a needed step (read through its MLflow run). Both enter the cache key.
    reads: tuple[str, ...] = ()

    def aliases(self) -> list[tuple[str, str]]:
        """The (model, alias) pairs this step reads; model may be MODEL_SELF."""
        return [tuple(r.split("@", 1)) for r in self.reads if "@" in r]  # type: ignore[misc]

    def read_runs(self) -> list[str]:
        """The needed steps whose MLflow run this step reads."""
        return [r for r in self.reads if "@" not in r]


@dataclass(frozen=True)
class PipelineSpec:
    """A whole pipeline, with steps in a valid topological order."""

    name: str
    path: Path
    root: Path
    kernel: str
    model: str
    experiment: str
    params: dict[str, Any]
    steps: dict[str, StepSpec]
    order: tuple[str, ...]
    gate: Any = None
    monitor: Any = None
    description: str = ""
    preload: bool = True  # import the notebooks' modules in waiting kernels
    data: Any = None  # the `data:` section as written (the shipped steps read and check it)
    retrain: RetrainSettings = field(default_factory=RetrainSettings)
    promote: str = PROMOTE_MANUAL  # auto: a retrained version that passes the gate is switched in; manual: it waits
    allow_pickle: bool = False  # `serving: {allow_pickle: true}`: its model may be a pyfunc that unpickles

    def step(self, name: str) -> StepSpec:
        """The step called `name`, or a ConfigError listing the steps."""
        try:
            return self.steps[name]
        except KeyError:
            raise ConfigError(
                f"pipeline '{self.name}' has no step '{name}'; its steps are: {', '.join(self.order)}."
            ) from None

    def downstream(self, name: str) -> set[str]:
        """Steps that need `name`, directly or transitively."""
        out: set[str] = set()
        for step in self.order:
            if any(n == name or n in out for n in self.steps[step].needs):
                out.add(step)
        return out


def resolve_spec_path(pipeline: str | None, root: Path) -> Path:
    """Map a pipeline argument (None, a name, or a path) to its YAML file."""
    candidates = []
    if pipeline is None:
        candidates.append(root / "pipelines" / "default.yaml")
    else:
        given = Path(pipeline)
        candidates += [given, root / given]
        if given.suffix not in (".yaml", ".yml"):
            candidates += [root / "pipelines" / f"{pipeline}.yaml", root / "pipelines" / f"{pipeline}.yml"]
    for path in candidates:
        if path.is_file():
            return path.resolve()
    available = sorted(p.stem for p in (root / "pipelines").glob("*.y*ml")) if (root / "pipelines").is_dir() else []
    hint = f"available: {', '.join(available)}" if available else f"no pipelines/ folder in {root}"
    raise ConfigError(
        f"pipeline spec '{pipeline or 'default'}' not found ({hint}); pass a name or a path to a YAML file."
    )


def spec_for_model(root: Path, model: str) -> PipelineSpec | None:
    """The pipeline of workspace `root` that registers `model` (default.yaml first, then by name), if any.

    Deployments and retraining use it: the monitor rules of a deployed model, and the pipeline that
    retrains it, are those of the pipeline that produced it. Specs that do not load are passed over.
    """
    folder = Path(root) / "pipelines"
    if not folder.is_dir():
        return None
    paths = sorted(folder.glob("*.y*ml"), key=lambda p: (p.stem != "default", p.name))
    for path in paths:
        try:
            spec = load_spec(path, root)
        except ConfigError:
            continue
        if spec.model == model:
            return spec
    return None


def load_spec(path: Path, root: Path | None = None) -> PipelineSpec:
    """Read and validate a pipeline spec; notebook paths resolve against the workspace `root`."""
    path = Path(path)
    root = (root or path.parent.parent).resolve()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"pipeline spec {path} is not valid YAML ({exc.__class__.__name__}); fix its syntax."
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"pipeline spec {path} must be a YAML mapping with a 'steps' section.")
    _check_keys(raw, _SPEC_KEYS, f"pipeline spec {path.name}")
    name = str(raw.get("name") or path.stem)
    if not is_valid_name(name):  # it names the run folder .aidevops/runs/<name>/
        raise ConfigError(
            f"pipeline name {name[:80]!r} in {path.name} is not allowed; use letters, digits, '.', '_' "
            "or '-' (at most 63 characters, starting with a letter or digit)."
        )
    params = raw.get("params") or {}
    if not isinstance(params, dict):
        raise ConfigError(f"'params' in {path.name} must be a mapping of name: default value.")
    steps_raw = raw.get("steps")
    if not isinstance(steps_raw, dict) or not steps_raw:
        raise ConfigError(f"pipeline spec {path.name} needs a non-empty 'steps' mapping of step name to step.")
    steps = {sname: _load_step(sname, sraw, root, path.name) for sname, sraw in steps_raw.items()}
    order = topological_order({s.name: s.needs for s in steps.values()}, path.name)
    return PipelineSpec(
        name=name,
        path=path.resolve(),
        root=root,
        kernel=str(raw.get("kernel") or DEFAULT_KERNEL),
        model=str(raw.get("model") or name),
        experiment=str(raw.get("experiment") or name),
        params=dict(params),
        steps=steps,
        order=order,
        gate=raw.get("gate"),
        monitor=_checked_monitor(raw.get("monitor"), path.name),
        description=str(raw.get("description") or ""),
        preload=_bool(raw.get("preload", True), f"'preload' in {path.name}"),
        data=check_data(raw.get("data"), path.name),
        retrain=parse_retrain(raw.get("retrain"), path.name),
        promote=parse_promote(raw.get("promote", PROMOTE_MANUAL), path.name),
        allow_pickle=parse_serving(raw.get("serving"), path.name),
    )


def parse_serving(raw: Any, spec_file: str = "the spec") -> bool:
    """The `serving:` section, checked: {allow_pickle: bool}; whether a deployment of this pipeline's model may
    load a pyfunc that unpickles or runs its own code (serving/loader.py). The bool is allow_pickle."""
    if raw is None:
        return False
    if not isinstance(raw, dict):
        raise ConfigError(f"'serving' in {spec_file} must be a mapping such as {{allow_pickle: true}}.")
    _check_keys(raw, {"allow_pickle"}, f"'serving' in {spec_file}")
    allow = raw.get("allow_pickle", False)
    if not isinstance(allow, bool):
        raise ConfigError(f"serving.allow_pickle in {spec_file} must be true or false, got {allow!r}.")
    return allow


def parse_retrain(raw: Any, spec_file: str = "the spec") -> RetrainSettings:
    """The `retrain:` section, checked: {live_labels: bool, max_live_share: 0 < x <= 1, min_live_rows: int >= 1}."""
    if raw is None:
        return RetrainSettings()
    if not isinstance(raw, dict):
        raise ConfigError(
            f"'retrain' in {spec_file} must be a mapping such as {{live_labels: true, max_live_share: 0.3, "
            "min_live_rows: 100}."
        )
    _check_keys(raw, {"live_labels", "max_live_share", "min_live_rows"}, f"'retrain' in {spec_file}")
    default = RetrainSettings()
    live = raw.get("live_labels", default.live_labels)
    if not isinstance(live, bool):
        raise ConfigError(f"retrain.live_labels in {spec_file} must be true or false, got {live!r}.")
    share = raw.get("max_live_share", default.max_live_share)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
        raise ConfigError(
            f"retrain.max_live_share in {spec_file} must be a number above 0 and at most 1 (the largest share of "
            f"the training rows that live rows may take, such as 0.3), got {share!r}."
        )
    least = raw.get("min_live_rows", default.min_live_rows)
    if isinstance(least, bool) or not isinstance(least, int) or least < 1:
        raise ConfigError(
            f"retrain.min_live_rows in {spec_file} must be a whole number of at least 1 (fewer labelled live rows "
            f"than this and a retraining uses none), got {least!r}."
        )
    return RetrainSettings(live_labels=live, max_live_share=float(share), min_live_rows=least)


def parse_promote(raw: Any, spec_file: str = "the spec") -> str:
    """`promote: auto | manual` (what happens to a retrained version that passes the gate)."""
    if raw not in (PROMOTE_AUTO, PROMOTE_MANUAL):
        raise ConfigError(
            f"'promote' in {spec_file} must be auto (switch a retrained version that passes the gate in) or manual "
            f"(hold it for `aidevops approve`), got {raw!r}."
        )
    return str(raw)


def _checked_monitor(raw: Any, spec_file: str) -> Any:
    """The `monitor:` section as written, after checking it (a bad rule fails at load, not at the first alert)."""
    from ..monitoring.rules import parse_monitor  # noqa: PLC0415 - standard library only, cheap

    try:
        parse_monitor(raw)
    except ConfigError as exc:
        raise ConfigError(f"{spec_file}: {exc}") from None
    return raw


def _bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{what} must be true or false.")
    return value


def _load_step(name: str, raw: Any, root: Path, spec_name: str) -> StepSpec:
    if not is_valid_name(name):  # it names the step folder inside the run folder
        raise ConfigError(
            f"step name {str(name)[:80]!r} in {spec_name} is not allowed; use letters, digits, '.', '_' "
            "or '-' (at most 63 characters, starting with a letter or digit)."
        )
    if not isinstance(raw, dict) or "notebook" not in raw:
        raise ConfigError(f"step '{name}' in {spec_name} must be a mapping with at least a 'notebook' path.")
    _check_keys(raw, _STEP_KEYS, f"step '{name}' in {spec_name}")
    notebook = _notebook_path(str(raw["notebook"]), name, root)
    params = raw.get("params") or {}
    if not isinstance(params, dict):
        raise ConfigError(f"'params' of step '{name}' in {spec_name} must be a mapping.")
    for outputs in raw.get("outputs") or []:
        if Path(str(outputs)).is_absolute() or ".." in Path(str(outputs)).parts:
            raise ConfigError(f"output '{outputs}' of step '{name}' must be a relative path inside the step folder.")
    needs = tuple(_str_list(raw.get("needs"), f"'needs' of step '{name}'"))
    reads = tuple(_str_list(raw.get("reads"), f"'reads' of step '{name}'"))
    for entry in reads:
        model, _, alias = entry.partition("@")
        if ("@" in entry and not (model and alias)) or ("@" not in entry and entry not in needs):
            raise ConfigError(
                f"'reads' entry '{entry}' of step '{name}' in {spec_name} is neither MODEL@ALIAS (a registry alias, "
                f"e.g. model@champion for the pipeline's model) nor a step it needs ({', '.join(needs) or 'none'}); fix it."
            )
    return StepSpec(
        name=name,
        notebook=notebook,
        params=dict(params),
        needs=needs,
        reads=reads,
        outputs=tuple(_str_list(raw.get("outputs"), f"'outputs' of step '{name}'")),
        inputs=tuple((root / p).resolve() for p in _str_list(raw.get("inputs"), f"'inputs' of step '{name}'")),
        description=str(raw.get("description") or ""),
    )


def shipped_steps() -> list[str]:
    """Names of the generic steps shipped with the package (`notebook: aidevops:NAME`)."""
    return sorted(p.stem for p in SHIPPED_STEPS.glob("*.ipynb")) if SHIPPED_STEPS.is_dir() else []


def _notebook_path(given: str, step: str, root: Path) -> Path:
    """A step's notebook: a path under the project, or `aidevops:NAME` for a shipped step."""
    if given.startswith(SHIPPED_PREFIX):
        shipped = given[len(SHIPPED_PREFIX) :]
        if shipped in shipped_steps():
            return SHIPPED_STEPS / f"{shipped}.ipynb"
        names = ", ".join(SHIPPED_PREFIX + n for n in shipped_steps()) or "none in this installation"
        raise ConfigError(f"step '{step}' names {given}, which is not a shipped step; shipped steps are: {names}.")
    notebook = (root / given).resolve()
    if not notebook.is_file():
        raise ConfigError(f"step '{step}' names notebook {given}, which does not exist under {root}; fix the path.")
    return notebook


def topological_order(needs: dict[str, tuple[str, ...]], spec_name: str = "the pipeline") -> tuple[str, ...]:
    """Order steps so each comes after what it needs (stable: ties keep file order)."""
    for step, deps in needs.items():
        for dep in deps:
            if dep not in needs:
                raise ConfigError(
                    f"step '{step}' needs '{dep}', which is not a step of {spec_name}; steps are: {', '.join(needs)}."
                )
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(step: str, path: list[str]) -> None:
        if state.get(step) == 2:
            return
        if state.get(step) == 1:
            cycle = " -> ".join(path[path.index(step) :] + [step])
            raise ConfigError(f"the 'needs' of {spec_name} form a cycle ({cycle}); remove one of those needs.")
        state[step] = 1
        for dep in needs[step]:
            visit(dep, path + [step])
        state[step] = 2
        order.append(step)

    for step in needs:
        visit(step, [])
    return tuple(order)


def _str_list(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, (str, int)) for v in value):
        return [str(v) for v in value]
    raise ConfigError(f"{what} must be a list of names.")


def _check_keys(raw: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(map(str, raw)) - allowed)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(unknown)} in {where}; valid keys are: {', '.join(sorted(allowed))}."
        )
