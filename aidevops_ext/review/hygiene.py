"""Output hygiene: pipeline notebooks are committed without outputs, execution counts or run timings.

Executed notebooks (with outputs) live in run folders; the notebooks in git hold code and prose only,
so a review diffs code, not blobs. `python -m aidevops_ext.review.hygiene FILE...` strips files in
place (the pre-commit hook) and exits 1 when it changed any; `--check` only reports.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError

# Cell metadata written by executing a notebook (JupyterLab's timing record, papermill, ExecuteTime extension).
VOLATILE_CELL_METADATA = ("execution", "papermill", "ExecuteTime")
VOLATILE_NOTEBOOK_METADATA = ("papermill", "widgets")


def notebook_problems(nb: dict[str, Any]) -> list[str]:
    """What an executed notebook carries that a committed one must not (empty when clean)."""
    problems = []
    for index, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        if cell.get("outputs"):
            problems.append(f"cell {index} has {len(cell['outputs'])} output(s)")
        if cell.get("execution_count") is not None:
            problems.append(f"cell {index} has execution count {cell['execution_count']}")
        volatile = [k for k in VOLATILE_CELL_METADATA if k in (cell.get("metadata") or {})]
        if volatile:
            problems.append(f"cell {index} has execution metadata ({', '.join(volatile)})")
    volatile = [k for k in VOLATILE_NOTEBOOK_METADATA if k in (nb.get("metadata") or {})]
    if volatile:
        problems.append(f"notebook metadata has {', '.join(volatile)}")
    return problems


def strip_notebook(nb: dict[str, Any]) -> bool:
    """Remove outputs, execution counts and execution metadata in place; True if anything changed."""
    before = json.dumps(nb, sort_keys=True)
    for cell in nb.get("cells", []):
        meta = cell.get("metadata") or {}
        for key in VOLATILE_CELL_METADATA:
            meta.pop(key, None)
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    for key in VOLATILE_NOTEBOOK_METADATA:
        (nb.get("metadata") or {}).pop(key, None)
    return json.dumps(nb, sort_keys=True) != before


def read(path: Path) -> dict[str, Any]:
    """A notebook file as JSON; a ConfigError names a file that is not one."""
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is not a readable notebook ({exc.__class__.__name__}); fix or remove it.") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise ConfigError(f"{path} is not a Jupyter notebook (no 'cells' list).")
    return nb


def check_files(paths: list[Path]) -> dict[Path, list[str]]:
    """Problems per notebook file, only for files that have some."""
    found = {}
    for path in paths:
        problems = notebook_problems(read(path))
        if problems:
            found[Path(path)] = problems
    return found


def strip_file(path: Path) -> bool:
    """Strip a notebook file in place (nbformat's layout: indent 1, UTF-8); True if it was rewritten."""
    nb = read(path)
    if not strip_notebook(nb):
        return False
    Path(path).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    """Entry point of the pre-commit hook: strip (or with --check, report) the given notebooks."""
    parser = argparse.ArgumentParser(prog="python -m aidevops_ext.review.hygiene", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report notebooks with outputs, change nothing")
    parser.add_argument("files", nargs="*", type=Path)
    args = parser.parse_args(argv)
    files = [f for f in args.files if f.suffix == ".ipynb"]
    try:
        if args.check:
            found = check_files(files)
            for path, problems in found.items():
                print(f"{path}: {'; '.join(problems)}; strip it with `python -m aidevops_ext.review.hygiene {path}`.")
            return 1 if found else 0
        stripped = [f for f in files if strip_file(f)]
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in stripped:
        print(f"stripped outputs from {path}")
    return 1 if stripped else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
