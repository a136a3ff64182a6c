"""Pipeline parameters: typed parsing of `-p key=value` overrides and per-step resolution.

A step receives the pipeline params its notebook's parameters cell declares, then its own
`params` from the spec. Only those enter its cache key, so changing a param re-runs just the
steps that read it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml

from ..errors import ConfigError
from .spec import PipelineSpec

# Names the runner injects into every notebook that declares them; they never come from -p.
INJECTED = ("run_dir", "step_dir", "upstream", "mlflow_run_id", "pipeline_run_id")


def parse_assignments(pairs: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Turn ['epochs=3', 'hidden=[64, 32]'] into typed values: every `-p` of the CLI and the exported steps' args.

    Each value is read as JSON first (what exporters write; PyYAML would read JSON's 1e-05 as a string), else
    as YAML (what people type: [64, 32], yes), else kept as the plain string, which the param's default's
    type then checks.
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"parameter '{pair}' is not of the form key=value; write e.g. -p epochs=3.")
        try:
            out[key] = json.loads(text)
        except ValueError:
            try:
                out[key] = yaml.safe_load(text) if text.strip() else ""
            except yaml.YAMLError:
                out[key] = text
    return out


def apply_overrides(
    spec: PipelineSpec, overrides: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Return (pipeline params, per-step params) after overrides; `step.key=v` targets one step."""
    pipeline = dict(spec.params)
    per_step = {name: dict(step.params) for name, step in spec.steps.items()}
    for key, value in overrides.items():
        if key in INJECTED:
            raise ConfigError(f"parameter '{key}' is set by the runner and cannot be overridden.")
        step_name, dot, pname = key.partition(".")
        if dot and step_name in per_step:
            target, default = per_step[step_name], per_step[step_name].get(pname, spec.params.get(pname))
            if pname not in per_step[step_name] and pname not in spec.params:
                valid = sorted(set(spec.params) | set(spec.steps[step_name].params))
                raise ConfigError(
                    f"step '{step_name}' has no parameter '{pname}'; valid parameters: {', '.join(valid)}."
                )
            target[pname] = check_type(key, value, default)
        elif key in spec.params:
            pipeline[key] = check_type(key, value, spec.params[key])
        else:
            step_keys = sorted(f"{s}.{k}" for s, st in spec.steps.items() for k in st.params)
            valid = sorted(spec.params) + step_keys
            raise ConfigError(
                f"unknown parameter '{key}' for pipeline '{spec.name}'; valid parameters: {', '.join(valid) or '(none)'}."
            )
    return pipeline, per_step


def check_type(name: str, value: Any, default: Any) -> Any:
    """Coerce `value` to the type of `default` where lossless; else a ConfigError naming both."""
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        expected = "true or false"
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        expected = "an integer"
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        expected = "a number"
    elif isinstance(default, str):
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        expected = "a string"
    elif isinstance(default, list):
        if isinstance(value, list):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return [value]
        expected = "a list, e.g. [64, 32]"
    elif isinstance(default, dict):
        if isinstance(value, dict):
            return value
        expected = "a mapping, e.g. {a: 1}"
    else:
        return value
    raise ConfigError(f"parameter '{name}' expects {expected} (default {default!r}), got {value!r}.")


def step_params(declared: Mapping[str, Any], pipeline: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    """Params one step receives: declared pipeline params, then the step's own (all of them)."""
    out = {k: v for k, v in pipeline.items() if k in declared}
    out.update(own)
    return out
