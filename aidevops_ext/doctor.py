"""`aidevops doctor`: check an installation and say what to fix, one line per check.

Each check is a function returning a `Check`: what it looked at, what it found, and, when something is
wrong, the exact command that fixes it. Only `fail` makes the doctor exit non-zero; optional tools and
the GPU are reported, never required. Jupyter's own Python APIs are read (the paths and config files
JupyterLab and Jupyter Server read at start-up), not `jupyter ... list` output: the same answers, in
milliseconds rather than seconds, and nothing to parse.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import shutil
import sqlite3
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import click

from . import __version__
from .errors import AidevopsError

DIST = "aidevops-ext"
SERVER_EXTENSION = "aidevops_ext"
OK, FAIL, WARN, INFO = "ok", "fail", "warn", "info"
# Tools some features use; a machine without them is a working installation.
OPTIONAL_TOOLS = {
    "chromium": ("browser tests of the JupyterLab panels", "apt-get install -y chromium"),
    "wrk": ("benchmarks of the model server", "apt-get install -y wrk"),
    "prometheus": ("scraping the model server's /metrics in the closed-loop test", "apt-get install -y prometheus"),
    "kubectl": ("`aidevops deploy --target kubernetes`", "apt-get install -y kubernetes-client"),
}


@dataclass
class Check:
    """One line of the report."""

    name: str
    status: str  # ok | fail | warn | info
    detail: str
    fix: str | None = None


# --------------------------------------------------------------------------- package


def _checkout() -> Path | None:
    """The source checkout this package is imported from (an editable install), if any."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() and (root / "aidevops_ext").is_dir() else None


def reinstall_command() -> str:
    """The command that reinstalls this package where it came from (rebuilding the extension)."""
    root = _checkout()
    return f"pip install -e {root}" if root else f"pip install --force-reinstall {DIST}"


def check_package() -> Check:
    """The code's version against the installed distribution's metadata (a stale editable install differs)."""
    where = Path(__file__).resolve().parent
    try:
        installed = metadata.version(DIST)
    except metadata.PackageNotFoundError:
        return Check(
            "package",
            FAIL,
            f"aidevops_ext {__version__} is imported from {where} but {DIST} is not installed "
            "(no `aidevops` command, no extension)",
            reinstall_command(),
        )
    if installed != __version__:
        return Check(
            "package",
            FAIL,
            f"the code in {where} is version {__version__} but the installed metadata says {installed}",
            reinstall_command(),
        )
    return Check("package", OK, f"{DIST} {__version__} (Python {sys.version.split()[0]}, {sys.executable})")


# --------------------------------------------------------------------------- kernels


def check_kernels() -> list[Check]:
    """Both shipped kernelspecs can be found by Jupyter and start an interpreter that exists."""
    from .kernels import SHIPPED, installed_kernels
    from .trainer.backend import cupy_available

    found = installed_kernels()
    out = []
    for name in SHIPPED:
        label = f"kernel {name}"
        if name not in found:
            # Without a GPU the CuPy kernel could not train anyway, and `aidevops run` installs only the kernel
            # it runs on: its absence is worth a line, not a failed installation.
            gpu_only = name == "aidevops-gpu" and not cupy_available()
            out.append(
                Check(
                    label,
                    WARN if gpu_only else FAIL,
                    f"the '{name}' kernelspec is not installed where Jupyter looks"
                    + (" (it needs a GPU, and none is usable here)" if gpu_only else ""),
                    "aidevops init",
                )
            )
            continue
        try:
            spec = json.loads((found[name] / "kernel.json").read_text(encoding="utf-8"))
            python = str(spec["argv"][0])
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            out.append(Check(label, FAIL, f"{found[name] / 'kernel.json'} is unreadable", "aidevops init"))
            continue
        if not (os.path.isfile(python) and os.access(python, os.X_OK)) and shutil.which(python) is None:
            out.append(Check(label, FAIL, f"{found[name]} starts {python}, which does not exist", "aidevops init"))
        elif os.path.realpath(shutil.which(python) or python) != os.path.realpath(sys.executable):
            out.append(
                Check(
                    label,
                    WARN,
                    f"{found[name]} starts {python}, not this environment's {sys.executable}",
                    "aidevops init",
                )
            )
        else:
            out.append(Check(label, OK, f"{found[name]}"))
    return out


# --------------------------------------------------------------------------- JupyterLab extension


def labextension_name() -> str | None:
    """The name JupyterLab knows the panels' extension by, as this package declares it (None: it declares none)."""
    import aidevops_ext

    paths = getattr(aidevops_ext, "_jupyter_labextension_paths", None)
    if paths is None:
        return None
    return str(paths()[0]["dest"])


def _disabled_level(name: str) -> str | None:
    """The config level ('user', 'sys_prefix', 'system') whose page_config disables `name`, if any."""
    from jupyterlab_server.config import get_static_page_config

    for level in ("user", "sys_prefix", "system"):
        disabled = get_static_page_config(level=level).get("disabledExtensions") or {}
        if isinstance(disabled, list):
            disabled = dict.fromkeys(disabled, True)
        if disabled.get(name) is True:
            return level
    return None


def check_labextension() -> Check:
    """The panels' extension is installed where JupyterLab looks, built, and not disabled."""
    label = "jupyterlab extension"
    name = labextension_name()
    if name is None:
        return Check(
            label,
            INFO,
            f"this version of {DIST} ships no JupyterLab extension yet "
            "(aidevops_ext declares no _jupyter_labextension_paths): nothing to check",
        )
    from jupyter_core.paths import jupyter_path
    from jupyterlab_server.config import get_federated_extensions, get_page_config

    paths = jupyter_path("labextensions")
    found = get_federated_extensions(paths).get(name)
    if found is None:
        return Check(label, FAIL, f"'{name}' is not installed in any of {', '.join(paths)}", reinstall_command())
    ext = Path(found["ext_path"])
    load = (found.get("jupyterlab") or {}).get("_build", {}).get("load")
    if not load or not (ext / load).is_file():
        return Check(
            label, FAIL, f"'{name}' in {ext} is not built (no {load or '_build.load entry'})", reinstall_command()
        )
    disabled = get_page_config(paths).get("disabledExtensions") or []
    if name in disabled:
        level = _disabled_level(name)
        flag = f" --level={level}" if level else ""
        return Check(
            label,
            FAIL,
            f"'{name}' is installed but disabled" + (f" ({level} config)" if level else ""),
            f"jupyter labextension enable{flag} {name}",
        )
    detail = f"'{name}' {found['version']} enabled, built ({ext})"
    checkout_build = (_checkout() or Path("/nonexistent")) / "aidevops_ext" / "labextension" / "package.json"
    if checkout_build.is_file() and checkout_build.resolve().parent != ext.resolve():
        try:
            newer = json.loads(checkout_build.read_text(encoding="utf-8"))["jupyterlab"]["_build"]["load"]
        except (OSError, ValueError, KeyError, TypeError):
            newer = load
        if newer != load:
            return Check(
                label,
                WARN,
                detail + "; the checkout holds a newer build that JupyterLab does not load",
                reinstall_command(),
            )
    if found["version"] != __version__:
        return Check(
            label, WARN, detail + f"; its version differs from the Python package's {__version__}", reinstall_command()
        )
    return Check(label, OK, detail)


def _server_config_levels() -> list[tuple[str, str]]:
    from jupyter_core.paths import ENV_CONFIG_PATH, jupyter_config_dir, jupyter_config_path

    def level(path: str) -> str:
        if os.path.abspath(path) == os.path.abspath(jupyter_config_dir()):
            return "user"
        return "sys-prefix" if os.path.abspath(path) == os.path.abspath(ENV_CONFIG_PATH[0]) else "system"

    return [(path, level(path)) for path in jupyter_config_path()]


def check_server_extension() -> Check:
    """The panels' REST API is enabled in Jupyter Server's config and its module loads."""
    label = "server extension"
    import aidevops_ext

    if not hasattr(aidevops_ext, "_jupyter_server_extension_points"):
        return Check(label, INFO, f"this version of {DIST} ships no Jupyter server extension yet: nothing to check")
    from jupyter_server.extension.config import ExtensionConfigManager

    levels = _server_config_levels()
    # Merged as Jupyter Server merges them at start-up (ServerApp.find_server_extensions).
    enabled = (
        ExtensionConfigManager(read_config_path=[p for p, _ in levels]).get_jpserver_extensions().get(SERVER_EXTENSION)
    )
    if not enabled:
        where = "sys-prefix"
        for path, lvl in levels:
            if ExtensionConfigManager(read_config_path=[path]).get_jpserver_extensions().get(SERVER_EXTENSION) is False:
                where = lvl
        state = "disabled" if enabled is False else "not enabled"
        return Check(
            label,
            FAIL,
            f"'{SERVER_EXTENSION}' is {state} in Jupyter Server's config ({', '.join(p for p, _ in levels)})",
            f"jupyter server extension enable --{where} {SERVER_EXTENSION}",
        )
    try:
        from jupyter_server.extension.manager import ExtensionPackage

        if not ExtensionPackage(name=SERVER_EXTENSION, enabled=True).validate():
            raise ImportError("validation failed")
        importlib.import_module(f"{SERVER_EXTENSION}.routes")  # what the extension loads when the server starts
    except Exception as exc:  # noqa: BLE001 - any failure here is what a server start would hit
        return Check(
            label,
            FAIL,
            f"'{SERVER_EXTENSION}' is enabled but does not load ({type(exc).__name__}: {exc})",
            reinstall_command(),
        )
    return Check(label, OK, f"'{SERVER_EXTENSION}' enabled and loads")


# --------------------------------------------------------------------------- workspace and tracking


def check_workspace() -> Check:
    """The workspace folder is found and writable (its state folder may not exist before the first run)."""
    from .workspace import Workspace

    ws = Workspace.discover()
    # The state folder, or the nearest folder that exists on the way to it: that is where the first run writes.
    folder = next(p for p in (ws.state, *ws.state.parents) if p.exists())
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        return Check(
            "workspace",
            FAIL,
            f"{ws.state} cannot be written ({folder} is not a folder this user can write)",
            "cd into your project folder, or export AIDEVOPS_HOME=<a folder you own>",
        )
    state = (
        "state in .aidevops/"
        if ws.state.is_dir()
        else ".aidevops/ not created yet: the first `aidevops run` creates it"
    )
    return Check("workspace", OK, f"{ws.root} ({state})")


def _with_timeout(fn: Callable[[], object], seconds: float) -> object:
    """fn() in a daemon thread: a store that never answers must not hang the doctor (MLflow retries for minutes)."""
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - reported to the caller
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {seconds:.0f} s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("value")


def _check_uri(label: str, uri: str, variable: str, ws) -> Check:
    unset = (
        f"start it, or `unset {variable}` to use the workspace's own store"
        if os.environ.get(variable)
        else "check the URI"
    )
    if uri.startswith(("http://", "https://")):
        from .registry.connection import check_tracking

        try:
            check_tracking(ws, timeout=3.0) if variable == "MLFLOW_TRACKING_URI" else _probe_http(uri)
        except (AidevopsError, OSError) as exc:
            return Check(label, FAIL, f"MLflow server {uri} ({variable}) is unreachable ({type(exc).__name__})", unset)
        return Check(label, OK, f"MLflow server {uri} answers")
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///") :])
        if not path.exists():
            parent = next((p for p in path.parents if p.exists()), None)
            if parent is None or not os.access(parent, os.W_OK):
                return Check(
                    label,
                    FAIL,
                    f"{path} cannot be created ({parent} is not writable)",
                    "export AIDEVOPS_HOME=<a folder you own>",
                )
            return Check(label, OK, f"{uri} (not created yet: the first run that records anything creates it)")
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=3) as db:
                schema = db.execute("select version_num from alembic_version").fetchone()[0]
        except (sqlite3.Error, TypeError) as exc:
            return Check(
                label,
                FAIL,
                f"{path} is not a readable MLflow database ({exc})",
                f"mv {path} {path}.broken  # the next run creates a fresh store",
            )
        return Check(label, OK, f"{uri} (MLflow schema {schema})")
    try:
        from mlflow import MlflowClient

        _with_timeout(lambda: MlflowClient(tracking_uri=uri).search_experiments(max_results=1), 15)
    except Exception as exc:  # noqa: BLE001 - any failure means runs cannot be recorded
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        return Check(
            label, FAIL, f"MLflow store {uri} ({variable}) does not answer ({type(exc).__name__}: {first})", unset
        )
    return Check(label, OK, f"MLflow store {uri} answers")


def _probe_http(uri: str) -> None:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=3):
            pass
    except urllib.error.HTTPError:
        pass  # any HTTP answer means a server is there


def check_tracking_store() -> list[Check]:
    """The tracking store (and a registry store of its own, if set) answers or can be created."""
    from .workspace import Workspace

    ws = Workspace.discover()
    out = [_check_uri("tracking store", ws.tracking_uri, "MLFLOW_TRACKING_URI", ws)]
    if ws.registry_uri != ws.tracking_uri:
        out.append(_check_uri("registry store", ws.registry_uri, "MLFLOW_REGISTRY_URI", ws))
    return out


# --------------------------------------------------------------------------- backend and tools


def check_backend() -> list[Check]:
    """NumPy is always the fallback; CuPy and a GPU are reported; a backend forced by the environment must work."""
    import numpy as np

    from .trainer.backend import BACKEND_NAMES, ENV_VAR, cupy_available

    forced = os.environ.get(ENV_VAR, "").strip().lower()
    gpu = cupy_available()
    if forced and forced not in BACKEND_NAMES:
        first = Check(
            "array backend", FAIL, f"{ENV_VAR}={forced} is not one of {', '.join(BACKEND_NAMES)}", f"unset {ENV_VAR}"
        )
    elif forced == "cupy" and not gpu:
        first = Check(
            "array backend",
            FAIL,
            f"{ENV_VAR}=cupy but no CUDA device is usable here: training would fail",
            f"unset {ENV_VAR}",
        )
    else:
        first = Check(
            "array backend",
            OK,
            f"NumPy {np.__version__}; training uses {'CuPy' if forced == 'cupy' or (gpu and forced != 'numpy') else 'NumPy'}"
            + (f" ({ENV_VAR}={forced})" if forced else ""),
        )
    if importlib.util.find_spec("cupy") is None:
        gpu_line = Check(
            "gpu",
            INFO,
            "CuPy is not installed: NumPy trains (on a machine with a CUDA GPU: pip install 'aidevops-ext[gpu]')",
        )
    elif gpu:
        import cupy

        gpu_line = Check("gpu", OK, f"CuPy {cupy.__version__} sees {cupy.cuda.runtime.getDeviceCount()} CUDA device(s)")
    else:
        gpu_line = Check("gpu", INFO, "CuPy is installed but sees no CUDA device: NumPy trains")
    return [first, gpu_line]


def check_optional_tools() -> list[Check]:
    """Tools some features use: found or not, never a failure."""
    out = []
    for tool, (used_for, install) in OPTIONAL_TOOLS.items():
        path = shutil.which(tool)
        if path:
            out.append(Check(tool, OK, f"{path} (optional: {used_for})"))
        else:
            out.append(Check(tool, INFO, f"not found (optional: only {used_for} need it; install with `{install}`)"))
    return out


# --------------------------------------------------------------------------- the report

CHECKS: tuple[Callable[[], Check | list[Check]], ...] = (
    check_package,
    check_kernels,
    check_labextension,
    check_server_extension,
    check_workspace,
    check_tracking_store,
    check_backend,
    check_optional_tools,
)


def run_checks() -> list[Check]:
    """Every check, in report order; a check that crashes is reported as failing, the others still run."""
    out: list[Check] = []
    for check in CHECKS:
        try:
            result = check()
        except Exception as exc:  # noqa: BLE001 - the doctor must finish and say which check broke
            result = Check(
                check.__name__.removeprefix("check_").replace("_", " "),
                FAIL,
                f"the check itself failed ({type(exc).__name__}: {exc})",
                reinstall_command(),
            )
        out.extend(result if isinstance(result, list) else [result])
    return out


def healthy(checks: list[Check]) -> bool:
    """True when no required check failed."""
    return not any(c.status == FAIL for c in checks)


def as_json(checks: list[Check]) -> dict:
    """The machine-readable report."""
    return {"version": __version__, "ok": healthy(checks), "checks": [asdict(c) for c in checks]}


def render(checks: list[Check]) -> str:
    """One line per check: status, name, what was found, and the fix when there is one."""
    marks = {OK: "ok", FAIL: "FAIL", WARN: "warn", INFO: "-"}
    width = max(len(c.name) for c in checks)
    lines = [
        f"{marks[c.status]:<4}  {c.name:<{width}}  {c.detail}" + (f"  → fix: {c.fix}" if c.fix else "") for c in checks
    ]
    failed = sum(c.status == FAIL for c in checks)
    lines.append(
        "all required checks passed" if not failed else f"{failed} required check(s) failed: run the fixes above"
    )
    return "\n".join(lines)


@click.command("doctor")
@click.option("--json", "json_output", is_flag=True, help="Print the report as JSON.")
def doctor_command(json_output: bool) -> None:
    """Check the installation (kernels, JupyterLab extension, tracking store, backend) and say what to fix."""
    checks = run_checks()
    click.echo(json.dumps(as_json(checks), indent=1) if json_output else render(checks))
    sys.exit(0 if healthy(checks) else 1)
