"""What notebooks/00_explore.ipynb does, as functions: train with chosen values while watching each epoch,
compare with the registered champion, and write the values into a pipeline spec.

The notebook's widgets only collect values and draw; every decision lives here, so the buttons and a
headless run (nbval) call the same code, and tests check it without a browser.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .errors import AidevopsError, ConfigError
from .trainer.callbacks import Callback
from .workspace import Workspace

# The pipeline a chosen dataset's spec starts from, by task: each has the gate that suits its metrics.
BASE_PIPELINES = {"classification": "default", "regression": "regression"}
MODEL_KINDS = {"classification": ("mlp", "logistic"), "regression": ("mlp", "linear")}
ACTIVATIONS = ("relu", "tanh")
OPTIMIZERS = ("adam", "sgd")
BACKENDS = ("numpy", "cupy")
# First line of every spec this module writes: it only ever overwrites its own files.
MARKER = "# Written by aidevops explore (notebooks/00_explore.ipynb)"
_SPEC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class Choices:
    """The values picked in the notebook (its defaults train in about a second on digits)."""

    dataset: str = "digits"
    model: str = "mlp"
    hidden: tuple[int, ...] = (64,)
    activation: str = "relu"
    optimizer: str = "adam"
    learning_rate: float = 0.003
    batch_size: int = 64
    epochs: int = 8
    l2: float = 0.0001
    seed: int = 0
    backend: str = "numpy"

    def hyperparameters(self) -> dict[str, Any]:
        """The estimator's own values (keyword arguments of trainer.make_model)."""
        return {
            "hidden": list(self.hidden),
            **{
                key: getattr(self, key)
                for key in ("activation", "optimizer", "learning_rate", "batch_size", "epochs", "l2")
            },
        }

    def pipeline_params(self) -> dict[str, Any]:
        """The values as pipeline params (02_train declares every one of them); the backend picks the kernel instead."""
        return {"dataset": self.dataset, "seed": self.seed, "model": self.model, **self.hyperparameters()}


def dataset_task(dataset: str) -> str:
    """'classification' or 'regression' for a built-in dataset name."""
    from .trainer.data import BUILTIN_DATASETS

    if dataset not in BUILTIN_DATASETS:
        raise ConfigError(f"unknown dataset {dataset!r}; the explore notebook offers {', '.join(BUILTIN_DATASETS)}.")
    return "regression" if dataset == "diabetes" else "classification"


def check_choices(**values: Any) -> Choices:
    """Choices from widget values, checked: one sentence naming the bad value and what is allowed."""
    unknown = sorted(set(values) - set(Choices.__dataclass_fields__))
    if unknown:
        raise ConfigError(
            f"unknown choice(s) {', '.join(unknown)}; valid ones: {', '.join(Choices.__dataclass_fields__)}."
        )
    c = Choices(**values)
    task = dataset_task(c.dataset)
    if c.model not in MODEL_KINDS[task]:
        raise ConfigError(
            f"model {c.model!r} does not fit the {task} dataset {c.dataset!r}; use one of {', '.join(MODEL_KINDS[task])}."
        )
    for name, allowed in (("activation", ACTIVATIONS), ("optimizer", OPTIMIZERS), ("backend", BACKENDS)):
        if getattr(c, name) not in allowed:
            raise ConfigError(f"{name} {getattr(c, name)!r} is not one of {', '.join(allowed)}.")
    hidden = (c.hidden,) if isinstance(c.hidden, int) else tuple(c.hidden)
    if not hidden or not all(isinstance(h, (int, np.integer)) and not isinstance(h, bool) and h >= 1 for h in hidden):
        raise ConfigError(f"hidden must be one or more positive layer sizes, got {c.hidden!r}.")
    for name, low in (("batch_size", 1), ("epochs", 1), ("seed", 0)):
        v = getattr(c, name)
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < low:
            raise ConfigError(f"{name} must be a whole number of at least {low}, got {v!r}.")
    for name, positive in (("learning_rate", True), ("l2", False)):
        v = getattr(c, name)
        if (
            not isinstance(v, (int, float))
            or isinstance(v, bool)
            or not math.isfinite(v)
            or v < 0
            or (positive and v == 0)
        ):
            raise ConfigError(f"{name} must be a {'positive' if positive else 'non-negative'} number, got {v!r}.")
    if c.backend == "cupy":
        from .trainer.backend import cupy_available

        if not cupy_available():
            raise ConfigError("backend 'cupy' needs a CUDA GPU, and none is usable here; choose 'numpy'.")
    return Choices(
        dataset=c.dataset,
        model=c.model,
        hidden=tuple(int(h) for h in hidden),
        activation=c.activation,
        optimizer=c.optimizer,
        learning_rate=float(c.learning_rate),
        batch_size=int(c.batch_size),
        epochs=int(c.epochs),
        l2=float(c.l2),
        seed=int(c.seed),
        backend=c.backend,
    )


# --------------------------------------------------------------------------- the base pipeline


def base_spec_path(ws: Workspace, task: str) -> Path:
    """The workspace's pipeline spec that an exploration of a `task` dataset starts from."""
    path = ws.pipelines_dir / f"{BASE_PIPELINES[task]}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"{path} is missing; the explore notebook copies it, so restore it (git checkout {path.name})."
        )
    return path


def _base_raw(ws: Workspace, task: str) -> dict[str, Any]:
    path = base_spec_path(ws, task)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        raw = None
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path} is not a pipeline spec (a YAML mapping); fix it before writing an exploration from it."
        )
    return raw


def registered_name(ws: Workspace, dataset: str) -> str:
    """The model name a pipeline of `dataset` registers: the base pipeline's when it is that pipeline's dataset."""
    task = dataset_task(dataset)
    raw = _base_raw(ws, task)
    if (raw.get("params") or {}).get("dataset") == dataset and raw.get("model"):
        return str(raw["model"])
    return f"{dataset}-{'classifier' if task == 'classification' else 'regressor'}"


# --------------------------------------------------------------------------- training


class EpochRecorder(Callback):
    """Records each epoch's training loss and validation score and hands the rows to `on_update` (the live plot)."""

    def __init__(self, X_val: np.ndarray, y_val: np.ndarray, on_update: Callable[[list[dict]], None] | None = None):
        self.X_val, self.y_val, self.on_update = X_val, y_val, on_update
        self.rows: list[dict[str, float]] = []

    def on_epoch_end(self, estimator: Any, epoch: int, logs: dict[str, float]) -> None:
        # estimator is the outer (scaling) one here, so it scores raw features like the caller's.
        self.rows.append(
            {
                "epoch": int(epoch),
                "loss": float(logs["loss"]),
                "val_score": float(estimator.score(self.X_val, self.y_val)),
            }
        )
        if self.on_update is not None:
            self.on_update(list(self.rows))
        return None


@dataclass
class Exploration:
    """One training with chosen values: the model, its data split, per-epoch rows and test metrics."""

    choices: Choices
    task: str
    estimator: Any
    split: Any
    history: list[dict[str, float]]
    metrics: dict[str, float]
    backend: str
    seconds: float
    score_name: str = field(default="accuracy")


def train(ws: Workspace, choices: Choices, on_epoch: Callable[[list[dict]], None] | None = None) -> Exploration:
    """Train with `choices` on the base pipeline's split of the dataset; `on_epoch` sees the rows after every epoch."""
    from .evaluation import evaluate
    from .trainer import data, make_model

    task = dataset_task(choices.dataset)
    params = _base_raw(ws, task).get("params") or {}
    ds = data.load_dataset(choices.dataset)
    split = data.train_val_test_split(
        ds.X,
        ds.y,
        val_fraction=params.get("val_fraction", 0.1),
        test_fraction=params.get("test_fraction", 0.2),
        seed=choices.seed,
    )
    estimator = make_model(
        choices.model, task, random_state=choices.seed, backend=choices.backend, **choices.hyperparameters()
    )
    recorder = EpochRecorder(split.X_val, split.y_val, on_epoch)
    t0 = time.perf_counter()
    estimator.fit(split.X_train, split.y_train, callbacks=[recorder], progress=False)
    seconds = time.perf_counter() - t0
    return Exploration(
        choices=choices,
        task=task,
        estimator=estimator,
        split=split,
        history=recorder.rows,
        metrics=evaluate(estimator, split.X_test, split.y_test),
        backend=getattr(estimator, "backend_", choices.backend),
        seconds=seconds,
        score_name="accuracy" if task == "classification" else "R²",
    )


# --------------------------------------------------------------------------- the champion


@dataclass
class Comparison:
    """The exploration's test metrics beside the champion's on the same rows, or why there is no champion to compare."""

    model: str
    version: str | None
    candidate: dict[str, float]
    champion: dict[str, float] | None
    reason: str = ""


def _store_exists(ws: Workspace) -> bool:
    """False when the tracking store is the workspace's SQLite file and it is not there yet (nothing registered)."""
    uri = ws.tracking_uri
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :]).is_file()
    return True


def compare_with_champion(ws: Workspace, result: Exploration) -> Comparison:
    """Score the base pipeline's `champion` on the exploration's test split, when it models the same dataset."""
    from .evaluation import evaluate

    name = registered_name(ws, result.choices.dataset)
    none = Comparison(name, None, result.metrics, None)
    # Reading must not create a store: a workspace with no MLflow database has no champion, and making one costs seconds.
    if not _store_exists(ws):
        none.reason = (
            f"no champion yet: nothing is registered in this workspace (run `aidevops run` to register {name})."
        )
        return none
    from . import registry

    try:
        version = registry.alias_version(ws, name, registry.CHAMPION)
        champion = registry.load_alias_model(ws, name, registry.CHAMPION) if version else None
    except AidevopsError as exc:
        none.reason = f"the champion of {name} cannot be read ({exc})"
        return none
    if champion is None:
        none.reason = f"no champion yet: {name} has no version aliased 'champion' (the gate sets it on a passing run)."
        return none
    n_features = result.split.X_test.shape[1]
    if getattr(champion, "n_features_in_", n_features) != n_features:
        none.version = version
        none.reason = (
            f"{name} v{version} takes {champion.n_features_in_} features and {result.choices.dataset} has {n_features}; "
            "it models another dataset, so there is nothing to compare."
        )
        return none
    return Comparison(name, version, result.metrics, evaluate(champion, result.split.X_test, result.split.y_test))


# --------------------------------------------------------------------------- writing the spec


def _scalar(value: Any) -> str:
    """`value` in YAML flow style, written so that it reads back as the same value and type."""
    if isinstance(value, float):
        text = repr(value)
        if "e" in text and "." not in text.split("e")[0]:
            text = text.replace("e", ".0e")  # PyYAML reads 1e-05 as a string; 1.0e-05 is a float
        return text
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    return yaml.safe_dump(value, default_flow_style=True, width=1 << 16).strip().removesuffix("\n...").strip()


_LINE = re.compile(r"^(?P<indent>[ \t]*)(?P<key>[A-Za-z_][\w-]*):(?P<gap>[ \t]*)(?P<value>.*?)(?P<comment>[ \t]+#.*)?$")


def _set(line: str, value: Any) -> str:
    """A `key: value  # comment` line with a new value, the comment kept in its column."""
    m = _LINE.match(line)
    assert m is not None
    head = f"{m['indent']}{m['key']}: {_scalar(value)}"
    comment = m["comment"]
    if not comment:
        return head
    column = len(line) - len(comment.lstrip())
    return head.ljust(column - 1) + " " + comment.lstrip()


def _edit_text(text: str, top: dict[str, Any], params: dict[str, Any]) -> str:
    """The spec text with top-level keys and `params:` entries replaced in place, so its comments survive."""
    lines = text.splitlines()
    out: list[str] = []
    in_params, child_indent, last_param, seen = False, None, None, set()
    for line in lines:
        m = _LINE.match(line)
        if line and not line[0].isspace() and not line.startswith("#"):
            in_params = bool(m and m["key"] == "params")
        if m and not m["indent"] and m["key"] in top:
            line = _set(line, top[m["key"]])
            seen.add(m["key"])
        elif in_params and m and m["indent"]:
            child_indent = child_indent or m["indent"]
            if m["indent"] == child_indent:
                if m["key"] in params:
                    line = _set(line, params[m["key"]])
                    seen.add(f"params.{m['key']}")
                last_param = len(out)
        out.append(line)
    # Params the base spec lacks (activation, optimizer) go right after its last one.
    new = [f"{child_indent or '  '}{k}: {_scalar(v)}" for k, v in params.items() if f"params.{k}" not in seen]
    if new and last_param is not None:
        out[last_param + 1 : last_param + 1] = new
    missing_top = [f"{k}: {_scalar(v)}" for k, v in top.items() if k not in seen]
    # Replace the base's opening comment (it describes the base pipeline) with where this file came from.
    while out and out[0].startswith("#"):
        out.pop(0)
    return "\n".join([*_HEADER, *missing_top, *out]) + "\n"


_HEADER = [
    MARKER + " from the values chosen there.",
    "# Run it with `aidevops run <name>`; the notebook rewrites it, so drop these lines to keep edits of your own.",
]


def spec_text(ws: Workspace, choices: Choices, name: str = "explore") -> str:
    """The YAML of pipeline `name`: the base pipeline of the dataset's task with the chosen values in place."""
    task = dataset_task(choices.dataset)
    base_path = base_spec_path(ws, task)
    raw = _base_raw(ws, task)
    base_kernel = str(raw.get("kernel") or "aidevops")
    top = {
        "name": name,
        "description": f"{choices.model} on {choices.dataset}, values chosen in the explore notebook (from {base_path.name})",
        "model": registered_name(ws, choices.dataset),
        "experiment": name,
        # The backend is the kernel's business: aidevops-gpu sets AIDEVOPS_BACKEND=cupy for every step.
        "kernel": "aidevops-gpu"
        if choices.backend == "cupy"
        else ("aidevops" if base_kernel == "aidevops-gpu" else base_kernel),
    }
    params = choices.pipeline_params()
    expected = {**raw, **top, "params": {**(raw.get("params") or {}), **params}}
    text = _edit_text(base_path.read_text(encoding="utf-8"), top, params)
    try:
        same = yaml.safe_load(text) == expected
    except yaml.YAMLError:
        same = False
    if not same:  # a layout the line edit does not understand: write the same content plainly, comments lost
        text = "\n".join(_HEADER) + "\n" + yaml.safe_dump(expected, sort_keys=False, default_flow_style=None)
    return text


def write_spec(ws: Workspace, choices: Choices, name: str = "explore") -> Path:
    """Write `pipelines/<name>.yaml` from the chosen values: checked by the pipeline loader before it replaces anything.

    It never overwrites a base pipeline or a spec it did not write itself (no marker on the first line).
    """
    from .pipeline.spec import load_spec

    if not isinstance(name, str) or not _SPEC_NAME.match(name):
        raise ConfigError(
            f"pipeline name {name!r} must be letters, digits, '-' or '_' (it becomes pipelines/<name>.yaml)."
        )
    if name in BASE_PIPELINES.values():
        raise ConfigError(
            f"'{name}' is a base pipeline the explore notebook copies from; choose another name, e.g. 'explore'."
        )
    target = ws.pipelines_dir / f"{name}.yaml"
    if target.exists() and not target.read_text(encoding="utf-8", errors="replace").startswith(MARKER):
        raise ConfigError(
            f"{target} exists and was not written by the explore notebook; choose another name or move that file."
        )
    text = spec_text(ws, choices, name)
    fd, tmp = tempfile.mkstemp(dir=ws.pipelines_dir, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        load_spec(Path(tmp), ws.root)  # a spec that would not run is never written
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
