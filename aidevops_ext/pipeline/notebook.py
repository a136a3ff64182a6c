"""Reading a pipeline notebook without nbformat: its code cells and the names its parameters cell declares.

Plain JSON + ast keeps a fully cached run free of nbformat/papermill imports (docs/architecture.md §2).
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

PARAMETERS_TAG = "parameters"


@dataclass(frozen=True)
class NotebookInfo:
    """What the runner needs from a notebook: code sources and declared parameter defaults."""

    path: Path
    code_cells: tuple[str, ...]
    parameters: dict[str, Any]  # name -> default (literal) or None when not a literal

    def imported_modules(self) -> list[str]:
        """Absolute modules imported at the top level of code cells (what a kernel can load early)."""
        found: list[str] = []
        for source in self.code_cells:
            try:
                tree = ast.parse(source)
            except SyntaxError:  # magics (%matplotlib, !pip) make a cell non-Python: skip it
                continue
            for node in tree.body:
                if isinstance(node, ast.Import):
                    found += [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module not in (None, "__future__"):
                    found.append(node.module)
        return list(dict.fromkeys(found))


def read_notebook(path: Path) -> NotebookInfo:
    """Parse a notebook file; a ConfigError names the file if it is not a notebook."""
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
        cells = nb["cells"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(
            f"{path} is not a readable Jupyter notebook; open it in JupyterLab and save it again."
        ) from None
    code: list[str] = []
    parameters: dict[str, Any] | None = None
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        code.append(source)
        tags = (cell.get("metadata") or {}).get("tags") or []
        if PARAMETERS_TAG in tags and parameters is None:
            parameters = _assigned_names(source, path)
    if parameters is None:
        raise ConfigError(
            f"{path} has no cell tagged 'parameters'; tag the cell holding its defaults (papermill convention)."
        )
    return NotebookInfo(Path(path), tuple(code), parameters)


def _assigned_names(source: str, path: Path) -> dict[str, Any]:
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ConfigError(f"the parameters cell of {path} is not valid Python (line {exc.lineno}); fix it.") from None
    names: dict[str, Any] = {}
    for node in tree.body:
        value: ast.expr | None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign):
            targets, value = [node.target], node.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name):
                try:
                    names[target.id] = ast.literal_eval(value) if value is not None else None
                except ValueError:
                    names[target.id] = None
    return names
