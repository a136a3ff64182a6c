"""The step cache: content-hash keys and the stored outputs they map to.

key = hash(code cells, resolved params, kernel, upstream output hashes, input file hashes,
aidevops_ext version, and for a step that declares `reads:` the registry aliases' resolved versions and
the MLflow run ids of the upstream steps it reads). Markdown is not part of the key, so prose edits never re-run a step.
Entries are content-addressed and never overwritten, so an unchanged step is a hit in every
later run, not only the next one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from .hashing import HashMemo, sha256_text


def key_material(
    *,
    code_cells: tuple[str, ...],
    params: Mapping[str, Any],
    kernel: str,
    upstream: Mapping[str, Mapping[str, str]],
    inputs: Mapping[str, str],
    registry: Mapping[str, str | None] | None = None,
    upstream_runs: Mapping[str, str | None] | None = None,
    version: str = __version__,
) -> dict[str, Any]:
    """Everything a step's result depends on, as one JSON-able mapping (see module docstring).

    `registry` (resolved `reads:` aliases) and `upstream_runs` (MLflow runs of the needed steps it
    reads) appear only when the step declares them, so the keys of other steps stay as they were.
    """
    material: dict[str, Any] = {
        "code": list(code_cells),
        "params": params,
        "kernel": kernel,
        "upstream": {k: dict(sorted(v.items())) for k, v in sorted(upstream.items())},
        "inputs": dict(sorted(inputs.items())),
        "aidevops_ext": version,
    }
    if registry:
        material["registry"] = dict(sorted(registry.items()))
    if upstream_runs:
        material["upstream_runs"] = dict(sorted(upstream_runs.items()))
    return material


def key_of(material: Mapping[str, Any]) -> str:
    """The cache key of a key_material mapping."""
    return sha256_text(json.dumps(material, sort_keys=True, default=str))


def key_parts(material: Mapping[str, Any]) -> dict[str, Any]:
    """The material as stored in run records and cache entries: code cells by hash, so two runs can be
    compared cell by cell (`aidevops show RUN --why`) without copying the notebook into every record."""
    return json.loads(json.dumps(dict(material, code=[sha256_text(c)[:16] for c in material["code"]]), default=str))


def step_key(**kwargs: Any) -> str:
    """Cache key of one step execution (see module docstring and key_material)."""
    return key_of(key_material(**kwargs))


@dataclass
class CacheEntry:
    """A stored step result: where its files are and their content hashes."""

    key: str
    folder: Path
    record: dict[str, Any]

    @property
    def outputs(self) -> dict[str, str]:
        return self.record["outputs"]


class StepCache:
    """Cache entries under `<workspace>/.aidevops/cache/<key[:2]>/<key>/`."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.memo = HashMemo(self.root / "file-hashes.json")

    def _folder(self, key: str) -> Path:
        return self.root / key[:2] / key

    def get(self, key: str) -> CacheEntry | None:
        """The entry for `key` if complete and its files are intact, else None."""
        folder = self._folder(key)
        try:
            record = json.loads((folder / "entry.json").read_text())
        except (OSError, ValueError):
            return None
        for rel, digest in record.get("outputs", {}).items():
            file = folder / "files" / rel
            # A hard-linked output edited in place would poison every later hit; re-check by content.
            if not file.is_file() or self.memo.hash(file) != digest:
                return None
        return CacheEntry(key, folder, record)

    def put(self, key: str, step_dir: Path, outputs: list[str], record: dict[str, Any]) -> CacheEntry:
        """Store a step's declared outputs (and executed notebook) under `key`, atomically."""
        folder = self._folder(key)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{key[:8]}."))
        hashes = {}
        for rel in expand_outputs(step_dir, outputs):
            src = step_dir / rel
            dst = tmp / "files" / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            link_or_copy(src, dst)
            hashes[rel] = self.memo.hash(dst)
        record = dict(record, key=key, outputs=hashes)
        (tmp / "entry.json").write_text(json.dumps(record, indent=1, default=str))
        if folder.exists():  # an earlier identical result (or a damaged one): replace it
            shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
        return CacheEntry(key, folder, record)

    def alias(self, key: str, new_key: str) -> None:
        """Make the entry under `key` a hit under `new_key` too (files linked, not copied), unless one exists."""
        entry = self.get(key)
        if entry is None or new_key == key or self.get(new_key) is not None:
            return
        folder = self._folder(new_key)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{new_key[:8]}."))
        for src in entry.folder.rglob("*"):
            if src.is_file() and src.name != "entry.json":
                dst = tmp / src.relative_to(entry.folder)
                dst.parent.mkdir(parents=True, exist_ok=True)
                link_or_copy(src, dst)
        (tmp / "entry.json").write_text(
            json.dumps(dict(entry.record, key=new_key, aliased_from=key), indent=1, default=str)
        )
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)


def expand_outputs(step_dir: Path, outputs: list[str]) -> list[str]:
    """Declared outputs as file paths relative to `step_dir` (a declared folder means its files)."""
    files: list[str] = []
    for rel in outputs:
        path = step_dir / rel
        if path.is_dir():
            files += sorted(p.relative_to(step_dir).as_posix() for p in path.rglob("*") if p.is_file())
        else:
            files.append(rel)
    return files


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link `src` to `dst` (cheap for large arrays), copying across filesystems."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
