"""The project's Jupyter kernelspecs (`kernels/`): install them into an environment, find them, check them.

Two kernels ship with the project: `aidevops` (NumPy backend) and `aidevops-gpu` (CuPy backend).
Their `kernel.json` files say `python`; installing writes this environment's interpreter in its
place, so a kernel started by JupyterLab, papermill or nbval from anywhere runs the Python that has
`aidevops_ext`. Installation is idempotent: files already as they should be are left untouched.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

SHIPPED = ("aidevops", "aidevops-gpu")
_PYTHON_NAMES = {"python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"}
_LOGOS = ("logo-32x32.png", "logo-64x64.png", "logo-svg.svg")


@dataclass(frozen=True)
class InstalledKernel:
    """Where a kernelspec was installed, the interpreter it starts, and whether anything was written."""

    name: str
    path: Path
    python: str
    changed: bool


def source_dir() -> Path:
    """The folder holding the shipped kernelspecs (`kernels/` of a checkout, or the wheel's shared data)."""
    candidates = [
        Path(__file__).resolve().parent.parent / "kernels",
        Path(sys.prefix) / "share" / "aidevops" / "kernels",
    ]
    for folder in candidates:
        if all((folder / name / "kernel.json").is_file() for name in SHIPPED):
            return folder
    raise ConfigError(
        f"the aidevops kernelspecs are missing (looked in {', '.join(map(str, candidates))}); reinstall aidevops-ext."
    )


def kernel_spec(name: str, python: str | None = None) -> dict:
    """The kernelspec `name` as it is installed: `kernel.json` with argv[0] set to `python` (default: this interpreter)."""
    if name not in SHIPPED:
        raise ConfigError(
            f"'{name}' is not a kernel shipped with aidevops; the shipped kernels are: {', '.join(SHIPPED)}."
        )
    spec = json.loads((source_dir() / name / "kernel.json").read_text(encoding="utf-8"))
    argv = list(spec["argv"])
    if argv and argv[0] in _PYTHON_NAMES:
        argv[0] = python or sys.executable
    spec["argv"] = argv
    return spec


def kernels_dir(prefix: str | Path | None = None) -> Path:
    """`<prefix>/share/jupyter/kernels` (default prefix: this environment, as `--sys-prefix`)."""
    return Path(prefix if prefix is not None else sys.prefix) / "share" / "jupyter" / "kernels"


def install_kernelspec(name: str, prefix: str | Path | None = None) -> InstalledKernel:
    """Install one shipped kernelspec under `prefix` (default: this environment); unchanged files are not rewritten."""
    spec = kernel_spec(name)
    dest = kernels_dir(prefix) / name
    files = {"kernel.json": (json.dumps(spec, indent=1) + "\n").encode("utf-8")}
    logos = _logo_dir()
    for logo in _LOGOS:
        if logos is not None and (logos / logo).is_file():
            files[logo] = (logos / logo).read_bytes()
    changed = False
    try:
        dest.mkdir(parents=True, exist_ok=True)
        for filename, content in files.items():
            changed |= _write_if_changed(dest / filename, content)
    except OSError as exc:
        raise ConfigError(
            f"cannot install kernel '{name}' into {dest} ({exc.strerror or exc}); "
            f"use a prefix you can write to, or a virtual environment."
        ) from None
    return InstalledKernel(name, dest, spec["argv"][0], changed)


def install_kernelspecs(prefix: str | Path | None = None) -> list[InstalledKernel]:
    """Install every shipped kernelspec under `prefix` (default: this environment)."""
    return [install_kernelspec(name, prefix) for name in SHIPPED]


def installed_kernels() -> dict[str, Path]:
    """Kernel names Jupyter can find from this process, with their folders."""
    from jupyter_client.kernelspec import KernelSpecManager

    return {name: Path(path) for name, path in KernelSpecManager().find_kernel_specs().items()}


def ensure_kernel(name: str) -> InstalledKernel | None:
    """Make kernel `name` startable: install it into this environment if it is a shipped one that is missing.

    Returns what was installed (None if it was there already); a kernel that is neither installed
    nor shipped is a ConfigError naming the kernels that are.
    """
    found = installed_kernels()
    if name in found:
        return None
    if name in SHIPPED:
        return install_kernelspec(name)
    available = ", ".join(sorted(set(found) | set(SHIPPED)))
    raise ConfigError(
        f"Jupyter kernel '{name}' is not installed; set 'kernel:' in the pipeline spec to one of "
        f"{available}, or install it (`jupyter kernelspec list` shows what is there)."
    )


def _logo_dir() -> Path | None:
    try:
        import ipykernel
    except ImportError:  # pragma: no cover - ipykernel is a dependency
        return None
    folder = Path(ipykernel.__file__).parent / "resources"
    return folder if folder.is_dir() else None


def _write_if_changed(path: Path, content: bytes) -> bool:
    if path.is_file() and path.read_bytes() == content:
        return False
    # Atomic replace: a kernel starting meanwhile (another process, a parallel test) sees old or new, never half.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True
