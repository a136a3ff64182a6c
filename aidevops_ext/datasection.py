"""The pipeline spec's `data:` section: which table the shipped steps split, and what they predict.

    data:
      target: churned          # the label column (required)
      task: classification     # or regression; inferred from the target when left out
      id: customer_id          # optional id column: the stable split hashes it instead of the row
      test_fraction: 0.2       # share of rows held out for evaluation (fixed rule, aidevops_ext/splitting.py)
      table: table.parquet     # the prepare step's output the split step reads (.parquet or .csv)
      model: model             # which logged model, when the train step's run logged several

The shipped steps (`aidevops:split`, `aidevops:evaluate`, `aidevops:register`) read it; checking it
when the spec loads makes a typo cost one sentence before any kernel starts (so this module imports
pandas only inside the functions that read tables).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

TASKS = ("classification", "regression")
_KEYS = ("target", "task", "id", "test_fraction", "table", "model")
_TABLE_SUFFIXES = (".parquet", ".csv")
# A numeric target with at most this many distinct integer values is read as class labels.
MAX_INFERRED_CLASSES = 20


@dataclass(frozen=True)
class DataSection:
    """The validated `data:` section."""

    target: str
    task: str | None = None
    id: str | None = None
    test_fraction: float = 0.2
    table: str = "table.parquet"
    model: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain mapping, as written in a spec."""
        return asdict(self)


def parse_data(raw: Any, where: str = "the pipeline spec") -> DataSection | None:
    """Check a spec's `data:` mapping; None when the spec has none."""
    if raw is None:
        return None
    if isinstance(raw, DataSection):
        return raw
    if not isinstance(raw, dict):
        raise ConfigError(f"'data' in {where} must be a mapping such as {{target: label}}, not {type(raw).__name__}.")
    unknown = sorted(set(map(str, raw)) - set(_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(unknown)} in 'data' of {where}; valid keys are: {', '.join(_KEYS)}."
        )
    target = raw.get("target")
    if not isinstance(target, str) or not target:
        raise ConfigError(f"'data' in {where} needs 'target': the name of the label column, e.g. target: churned.")
    task = raw.get("task")
    if task is not None and task not in TASKS:
        raise ConfigError(
            f"'data.task' in {where} must be classification or regression (or left out to infer it), not {task!r}."
        )
    id_column = raw.get("id")
    if id_column is not None and (not isinstance(id_column, str) or not id_column):
        raise ConfigError(f"'data.id' in {where} must be a column name, not {id_column!r}.")
    if id_column == target:
        raise ConfigError(
            f"'data.id' and 'data.target' in {where} both name '{target}'; the id column cannot be the label."
        )
    fraction = raw.get("test_fraction", 0.2)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ConfigError(
            f"'data.test_fraction' in {where} must be a number between 0 and 1 (e.g. 0.2), not {fraction!r}."
        )
    table = raw.get("table", "table.parquet")
    if (
        not isinstance(table, str)
        or Path(table).suffix not in _TABLE_SUFFIXES
        or Path(table).is_absolute()
        or ".." in Path(table).parts
    ):
        raise ConfigError(
            f"'data.table' in {where} must name the prepare step's .parquet or .csv output, not {table!r}."
        )
    model = raw.get("model")
    if model is not None and (not isinstance(model, str) or not model):
        raise ConfigError(f"'data.model' in {where} must be the name a model was logged under, not {model!r}.")
    return DataSection(target, task, id_column, float(fraction), table, model)


def check_data(raw: Any, where: str = "the pipeline spec") -> Any:
    """The `data:` section as written, after checking it (the spec keeps the plain mapping for papermill)."""
    parse_data(raw, where)
    return raw


def section_of_run(run_dir: str | Path | None) -> DataSection:
    """The `data:` section of the spec a pipeline run used (for steps run without a `data` param)."""
    import yaml

    if run_dir is None:
        raise ConfigError("This shipped step runs inside a pipeline: run it with `aidevops run`, not by hand.")
    record = json.loads((Path(run_dir) / "run.json").read_text(encoding="utf-8"))
    spec_path = Path(record.get("spec") or "")
    raw = yaml.safe_load(spec_path.read_text(encoding="utf-8")) if spec_path.is_file() else None
    section = parse_data((raw or {}).get("data"), spec_path.name or "the pipeline spec")
    if section is None:
        raise ConfigError(
            f"pipeline spec {spec_path.name} has no 'data' section; add one naming the label, e.g. data: {{target: churned}}."
        )
    return section


def resolve(data: Any, run_dir: str | Path | None) -> DataSection:
    """The section a shipped step works with: its injected `data` param, else its run's spec."""
    section = parse_data(data, "the step's 'data' parameter")
    return section if section is not None else section_of_run(run_dir)


def read_table(path: str | Path) -> pd.DataFrame:
    """A .parquet or .csv table; DataError naming the file when it cannot be read."""
    import pandas as pd  # noqa: PLC0415 - spec loading imports this module and must stay cheap

    path = Path(path)
    if not path.is_file():
        raise DataError(f"Table {path} does not exist; the prepare step must write it (see 'data.table' in the spec).")
    try:
        return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise DataError(
            f"Table {path} cannot be read as {path.suffix[1:]} ({type(exc).__name__}); rewrite it."
        ) from None


def infer_task(target: pd.Series) -> str:
    """classification for text, bool, category or few distinct integers; regression otherwise."""
    import numpy as np  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415

    if not (pd.api.types.is_numeric_dtype(target) and not pd.api.types.is_bool_dtype(target)):
        return "classification"
    values = target.dropna().to_numpy()
    if values.size and np.all(np.mod(values, 1) == 0) and np.unique(values).size <= MAX_INFERRED_CLASSES:
        return "classification"
    return "regression"


def features_and_target(frame: pd.DataFrame, section: DataSection, what: str) -> tuple[pd.DataFrame, pd.Series]:
    """Split a table into model inputs (all but target and id) and the target column."""
    if section.target not in frame.columns:
        raise DataError(
            f"{what} has no target column '{section.target}' (columns: {', '.join(map(str, frame.columns[:20]))}); "
            "fix 'data.target' in the spec."
        )
    drop = [section.target] + ([section.id] if section.id and section.id in frame.columns else [])
    return frame.drop(columns=drop), frame[section.target]
