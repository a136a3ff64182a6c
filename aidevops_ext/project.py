"""`aidevops new`: a working project made from a template shipped inside the package.

A template is a folder of `aidevops_ext/templates/` with a `template.yaml` (a one-line
`description:`, optional `requires:` modules). Every project also gets `templates/_common/`
(.gitignore, .gitattributes for nbdime, .pre-commit-config.yaml, a CI workflow, a README whose
`{name}` becomes the project's name). A template may list `from_repository:` folders: the
repository's own notebooks/ and pipelines/ are the `digits` template's, copied into the wheel at
build time (pyproject.toml, force-include) so they exist once in git; an editable checkout reads
them from the repository itself.

The project is written into a temporary sibling folder and renamed into place, so a failure half
way leaves nothing behind.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from .errors import ConfigError

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
COMMON = "_common"
TEMPLATE_FILE = "template.yaml"
DEFAULT_TEMPLATE = "digits"
NAME_PLACEHOLDER = "{name}"
_NEVER_COPIED = {"__pycache__", ".ipynb_checkpoints", ".aidevops", TEMPLATE_FILE}
_TEXT_WITH_NAME = {"README.md"}
# The extra of aidevops-ext that installs a module a template requires.
_EXTRA_FOR = {"torch": "bench"}


@dataclass(frozen=True)
class Template:
    """One project template: its folder and what template.yaml says about it."""

    name: str
    folder: Path
    description: str
    requires: tuple[str, ...] = ()
    from_repository: tuple[str, ...] = ()

    def missing_modules(self) -> list[str]:
        """Required modules that are not importable here."""
        return [m for m in self.requires if importlib.util.find_spec(m) is None]


def list_templates() -> list[Template]:
    """Every template folder shipped with the package, by name."""
    if not TEMPLATES_DIR.is_dir():
        return []
    return [
        _read_template(d)
        for d in sorted(TEMPLATES_DIR.iterdir())
        if d.is_dir() and (d / TEMPLATE_FILE).is_file() and not d.name.startswith("_")
    ]


def get_template(name: str) -> Template:
    """The template called `name`, or a ConfigError naming the ones there are."""
    for template in list_templates():
        if template.name == name:
            return template
    names = ", ".join(t.name for t in list_templates()) or "none"
    raise ConfigError(f"there is no template '{name}'; templates are: {names} (see `aidevops new --list`).")


def new_project(dest: Path, template: str = DEFAULT_TEMPLATE) -> Path:
    """Create project `dest` (new or empty) from `template`; returns its absolute path."""
    chosen = get_template(template)
    missing = chosen.missing_modules()
    if missing:
        how = "pip install " + " ".join(f'"{n}"' if "[" in n else n for n in _install_names(missing))
        raise ConfigError(
            f"template '{chosen.name}' needs {', '.join(missing)}, which is not installed here; run {how} first."
        )
    dest = Path(dest).expanduser().resolve()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ConfigError(f"{dest} already exists and is not an empty folder; choose a new folder name.")
    if not dest.parent.is_dir():
        raise ConfigError(f"the folder {dest.parent} does not exist; create it first or choose another place.")
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.new-"))
    try:
        _copy_tree(TEMPLATES_DIR / COMMON, tmp)
        _copy_tree(chosen.folder, tmp)
        for name in chosen.from_repository:
            if not (chosen.folder / name).is_dir():
                _copy_tree(_repository_folder(chosen, name), tmp / name)
        if chosen.requires and not (tmp / "requirements.txt").exists():
            # The project's CI workflow installs requirements.txt: what the template needs beyond aidevops-ext.
            (tmp / "requirements.txt").write_text("\n".join(_install_names(chosen.requires)) + "\n", encoding="utf-8")
        for rel in _TEXT_WITH_NAME:
            path = tmp / rel
            if path.is_file():
                path.write_text(path.read_text(encoding="utf-8").replace(NAME_PLACEHOLDER, dest.name), encoding="utf-8")
        if dest.is_dir():
            _move_children(tmp, dest)
        else:
            umask = os.umask(0)
            os.umask(umask)
            tmp.chmod(0o777 & ~umask)  # mkdtemp's folder is private (0700); a project folder is not
            os.rename(tmp, dest)  # atomic
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _move_children(src: Path, dest: Path) -> None:
    """Move `src`'s entries into the existing empty folder `dest`, all or none.

    The folder itself is kept, not replaced: it may be a shell's working directory (`aidevops new .`).
    """
    moved: list[Path] = []
    try:
        for entry in sorted(src.iterdir()):
            os.rename(entry, dest / entry.name)
            moved.append(dest / entry.name)
    except BaseException:
        for path in moved:
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        raise


def _install_names(modules: tuple[str, ...] | list[str]) -> list[str]:
    """What to pip-install for `modules`: aidevops-ext's extra where one provides it, else the module's name."""
    extras = sorted({_EXTRA_FOR[m] for m in modules if m in _EXTRA_FOR})
    return ([f"aidevops-ext[{','.join(extras)}]"] if extras else []) + [m for m in modules if m not in _EXTRA_FOR]


def _repository_folder(template: Template, name: str) -> Path:
    repository = TEMPLATES_DIR.parent.parent  # an editable install: the checkout holding pyproject.toml
    checkout = repository / name
    if not (repository / "pyproject.toml").is_file() or not checkout.is_dir():
        raise ConfigError(
            f"template '{template.name}' lacks its {name}/ folder in this installation; "
            f"reinstall aidevops-ext (pip install --force-reinstall aidevops-ext)."
        )
    return checkout


def _copy_tree(src: Path, dst: Path) -> None:
    """Copy `src` into `dst` (merging), leaving out caches, checkpoints and template.yaml."""
    for folder, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if d not in _NEVER_COPIED)
        here = Path(folder)
        target = dst / here.relative_to(src)
        target.mkdir(parents=True, exist_ok=True)
        for name in sorted(files):
            if name not in _NEVER_COPIED and not name.endswith((".pyc", ".pyo")):
                shutil.copy(here / name, target / name)


def _read_template(folder: Path) -> Template:
    try:
        raw = yaml.safe_load((folder / TEMPLATE_FILE).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        raw = {}
    if not isinstance(raw, dict):
        raw = {}
    return Template(
        name=folder.name,
        folder=folder,
        description=" ".join(str(raw.get("description") or "").split()),
        requires=tuple(str(m) for m in raw.get("requires") or ()),
        from_repository=tuple(str(m) for m in raw.get("from_repository") or ()),
    )
