"""nbdime's git integration for one repository: diff/merge drivers, diff/merge tools, `.gitattributes`.

The same settings `nbdime config-git --enable` writes, but in the repository's own config (never
`--global`) and in the committed `.gitattributes` rather than `.git/info/attributes`, and only where
they differ from what is there: running it twice changes nothing the second time.
"""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

ATTRIBUTES = ("diff=jupyternotebook", "merge=jupyternotebook")
ATTRIBUTES_COMMENT = (
    "# nbdime shows notebook diffs and merges cell by cell (`aidevops init` configures the drivers for this clone)."
)


@dataclass(frozen=True)
class GitChange:
    """One setting: where it lives, its value, and whether this call wrote it."""

    what: str
    value: str
    changed: bool


def repo_root(start: Path) -> Path | None:
    """The top folder of the git work tree holding `start`, or None outside git (or without git)."""
    if shutil.which("git") is None:
        return None
    out = subprocess.run(["git", "-C", str(start), "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    return Path(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None


def _tool(name: str) -> str:
    # nbdime's drivers are console scripts; name them by path when this environment is not on PATH
    # (an unactivated virtual environment), so git finds them from any shell.
    if shutil.which(name):
        return name
    candidate = Path(sysconfig.get_path("scripts")) / name
    return str(candidate) if candidate.exists() else name


def nbdime_settings() -> dict[str, str]:
    """The git config entries nbdime's integration needs (drivers and tools)."""
    return {
        "diff.jupyternotebook.command": f"{_tool('git-nbdiffdriver')} diff",
        "merge.jupyternotebook.driver": f"{_tool('git-nbmergedriver')} merge %O %A %B %L %P",
        "merge.jupyternotebook.name": "jupyter notebook merge driver",
        "difftool.nbdime.cmd": f'{_tool("git-nbdifftool")} diff "$LOCAL" "$REMOTE" "$BASE"',
        "mergetool.nbdime.cmd": f'{_tool("git-nbmergetool")} merge "$BASE" "$LOCAL" "$REMOTE" "$MERGED"',
    }


def configure_nbdime(repo: Path) -> list[GitChange]:
    """Set nbdime's drivers in `repo`'s local git config and its `.gitattributes`; report what changed."""
    root = repo_root(repo)
    if root is None:
        raise ConfigError(f"{repo} is not inside a git repository; run `git init` first or skip git with --no-git.")
    changes = []
    for key, value in nbdime_settings().items():
        current = subprocess.run(
            ["git", "-C", str(root), "config", "--local", "--get", key], capture_output=True, text=True
        )
        same = current.returncode == 0 and current.stdout.rstrip("\n") == value
        if not same:
            done = subprocess.run(
                ["git", "-C", str(root), "config", "--local", key, value], capture_output=True, text=True
            )
            if done.returncode != 0:
                raise ConfigError(
                    f"git could not set {key} in {root} ({done.stderr.strip()}); check the repository's .git/config."
                )
        changes.append(GitChange(f"git config {key}", value, not same))
    changes.append(_ensure_attributes(root / ".gitattributes"))
    return changes


def _ensure_attributes(path: Path) -> GitChange:
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    present: set[str] = set()
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == "*.ipynb":
            present.update(parts[1:])
    missing = [a for a in ATTRIBUTES if a not in present]
    value = "*.ipynb " + " ".join(ATTRIBUTES)
    if not missing:
        return GitChange(f"{path.name}", value, False)
    lines = [] if not text or text.endswith("\n") else [""]
    if ATTRIBUTES_COMMENT not in text:
        lines.append(ATTRIBUTES_COMMENT)
    lines.append("*.ipynb " + " ".join(missing))
    with path.open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return GitChange(f"{path.name}", value, True)
