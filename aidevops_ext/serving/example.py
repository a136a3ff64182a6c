"""The "try it" request body of a served MLflow model, from the input example MLflow stored with it.

MLflow writes `serving_input_example.json` (a ready /invocations body) beside `input_example.json` when a
model is logged with `input_example=`; older models have only the latter, whose MLmodel entry says its
pandas orient. The body keeps one row, short to paste, and writes NaN as null: MLflow's own file holds
`NaN` literals, which strict JSON parsers (and curl users' tools) refuse.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson

SERVING_FILE = "serving_input_example.json"
EXAMPLE_FILE = "input_example.json"


def request_example(local_path: str | Path | None) -> dict | None:
    """A one-row /invocations body from the model folder's input example, or None when it has none."""
    if not local_path:
        return None
    folder = Path(local_path)
    try:
        if (folder / SERVING_FILE).is_file():
            body = json.loads((folder / SERVING_FILE).read_text(encoding="utf-8"))
        elif (folder / EXAMPLE_FILE).is_file():
            body = _wrap(json.loads((folder / EXAMPLE_FILE).read_text(encoding="utf-8")), _orient(folder))
        else:
            return None
        body = orjson.loads(orjson.dumps(body))  # NaN/inf -> null
    except (OSError, ValueError, TypeError, orjson.JSONEncodeError):
        return None
    return _one_row(body) if isinstance(body, dict) else None


def _orient(folder: Path) -> str | None:
    try:
        import yaml  # noqa: PLC0415 - MLflow's dependency; only read when the serving file is absent

        info = (yaml.safe_load((folder / "MLmodel").read_text(encoding="utf-8")) or {}).get("saved_input_example_info")
        return (info or {}).get("pandas_orient")
    except Exception:  # noqa: BLE001 - no orient: guess from the example's shape
        return None


def _wrap(example: Any, orient: str | None) -> dict:
    if isinstance(example, dict) and "columns" in example and "data" in example:
        return {"dataframe_split": example}
    if orient == "records" or (isinstance(example, list) and example and isinstance(example[0], dict)):
        return {"dataframe_records": example}
    return {"inputs": example}


def _one_row(body: dict) -> dict:
    out = dict(body)
    if isinstance(out.get("dataframe_split"), dict):
        split = dict(out["dataframe_split"])
        if isinstance(split.get("data"), list):
            split["data"] = split["data"][:1]
        if isinstance(split.get("index"), list):
            split["index"] = split["index"][:1]
        out["dataframe_split"] = split
    for key in ("dataframe_records", "instances", "inputs"):
        value = out.get(key)
        if isinstance(value, list):
            out[key] = value[:1]
        elif isinstance(value, dict) and all(isinstance(v, list) for v in value.values()):
            out[key] = {k: v[:1] for k, v in value.items()}
    return out
