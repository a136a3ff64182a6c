"""Why a step ran: the differences between two cache-key materials, as sentences.

The runner stores each step's key parts (cache.key_parts) in run.json; comparing them with the
parts of the last run of the same step names what changed: a code cell, a param, an upstream
output, an input file, the kernel, the aidevops_ext version or a registry value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _value(value: Any) -> str:
    return "none" if value is None else str(value)


def _changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    return [(k, old.get(k), new.get(k)) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What differs from `old` to `new` (both key_parts mappings), one sentence each."""
    out: list[str] = []
    old_code, new_code = list(old.get("code") or []), list(new.get("code") or [])
    for i in range(max(len(old_code), len(new_code))):
        a = old_code[i] if i < len(old_code) else None
        b = new_code[i] if i < len(new_code) else None
        if a != b:
            what = "added" if a is None else "removed" if b is None else "changed"
            out.append(f"code cell {i + 1} {what}")
    for name, a, b in _changed_keys(old.get("params") or {}, new.get("params") or {}):
        out.append(f"param {name}: {_value(a)} → {_value(b)}")
    if old.get("kernel") != new.get("kernel"):
        out.append(f"kernel: {_value(old.get('kernel'))} → {_value(new.get('kernel'))}")
    for dep, a, b in _changed_keys(old.get("upstream") or {}, new.get("upstream") or {}):
        files = [f for f, _, _ in _changed_keys(a or {}, b or {})]
        out.append(
            f"upstream {dep}: output {', '.join(files)} changed"
            if a and b
            else f"upstream {dep} {'added' if b else 'removed'}"
        )
    for path, a, b in _changed_keys(old.get("inputs") or {}, new.get("inputs") or {}):
        out.append(f"input file {path} {'changed' if a and b else 'added' if b else 'removed'}")
    if old.get("aidevops_ext") != new.get("aidevops_ext"):
        out.append(f"aidevops_ext version: {_value(old.get('aidevops_ext'))} → {_value(new.get('aidevops_ext'))}")
    for ref, a, b in _changed_keys(old.get("registry") or {}, new.get("registry") or {}):
        out.append(f"registry {ref}: version {_value(a)} → {_value(b)}")
    for dep, a, b in _changed_keys(old.get("upstream_runs") or {}, new.get("upstream_runs") or {}):
        out.append(f"upstream {dep}'s MLflow run: {_value(a)} → {_value(b)}")
    return out


def explain(
    parts: Mapping[str, Any],
    previous: tuple[str, Mapping[str, Any]] | None,
    *,
    hit_from: str | None = None,
    miss_reason: str | None = None,
    forced: bool = False,
) -> list[str]:
    """Sentences saying why a step was a hit or ran, against `previous` = (run id, key parts) of its last run."""
    if hit_from is not None:
        return [f"cached: reused the output of run {hit_from}"]
    why: list[str] = []
    if forced:
        why.append("--force: re-ran although it may be cached")
    if miss_reason:
        why.append(miss_reason)
    if previous is None:
        return why + ["first run of this step (no earlier run recorded its cache key)"]
    run_id, old = previous
    changes = differences(old, parts)
    if changes:
        return why + [f"against run {run_id}: {c}" for c in changes]
    return why or [f"same inputs as run {run_id}, but no intact cached result was found for them"]
