"""A step folder as its notebook's working directory: links to the project and to the upstream outputs.

The step contract (docs/write-your-own-step.md): a notebook written for papermill alone runs as a
step unchanged. Its kernel's working directory is the step folder, where

- each top-level entry of the project appears as a symbolic link (so `data/customers.csv` reads the
  project's file), except `.aidevops`, `.git`, and the names the step itself writes;
- each declared output of each step it needs appears by its name (so `train.parquet` reads the
  upstream step's file);
- everything the notebook writes by relative path is a real file of the step folder: its outputs.

The links exist only while the step runs: they are removed afterwards, so the run folder, the
cache and the review tools only ever see files the step wrote.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..workspace import STATE_DIR

# Never linked: the state folder holds this very step folder (a link would be a cycle for any tool that
# walks it), and git's folder is nothing a notebook should read or write through a relative path.
NOT_LINKED = frozenset({STATE_DIR, ".git"})


@dataclass
class StepLinks:
    """The links made in one step folder, for removal when the step ends."""

    folder: Path
    links: list[Path] = field(default_factory=list)

    def remove(self) -> None:
        """Remove the links (never what they point at); safe to call twice."""
        for link in self.links:
            if link.is_symlink():
                link.unlink()
        self.links.clear()


def top_name(rel: str) -> str:
    """The first component of a relative output path (`reports/metrics.json` -> `reports`)."""
    return Path(rel).parts[0]


def link_step_folder(
    folder: Path,
    project: Path,
    upstream: Mapping[str, tuple[Path, Sequence[str]]],
    reserved: Iterable[str] = (),
) -> StepLinks:
    """Fill step `folder` with links to `project`'s top-level entries and the `upstream` outputs.

    `upstream` maps each needed step (in `needs` order) to its folder and declared outputs; the
    first step to declare a name wins (the others stay reachable through the `upstream` param).
    An upstream output hides a project entry of the same name: the step asked for it by `needs`.
    `reserved` are the relative paths the step writes itself (its declared outputs and the executed
    notebook): their top-level names get no link, so a write creates a real file instead of
    writing through a link into the project, and parents of nested outputs are created.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    reserved = list(reserved)
    taken = {top_name(rel) for rel in reserved} | set(NOT_LINKED)
    for rel in reserved:
        if len(Path(rel).parts) > 1:
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
    made = StepLinks(folder)
    targets: dict[str, Path] = {}
    for dep_folder, outputs in upstream.values():
        for rel in outputs:
            name = top_name(rel)
            if name not in taken and name not in targets and (Path(dep_folder) / name).exists():
                targets[name] = Path(dep_folder) / name
    project = Path(project)
    for entry in sorted(project.iterdir()):
        if entry.name not in taken and entry.name not in targets:
            targets[entry.name] = entry
    try:
        for name, target in targets.items():
            link = folder / name
            if link.exists() or link.is_symlink():
                continue  # something the step folder already holds is never replaced
            os.symlink(target.resolve(), link, target_is_directory=target.is_dir())
            made.links.append(link)
    except BaseException:
        made.remove()
        raise
    return made
