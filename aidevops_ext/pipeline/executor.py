"""Executing one notebook with papermill on a kernel that was started ahead of time.

Kernels start in the background (a separate process boots while the current step runs), so a
step's kernel is usually ready when the step begins. papermill, nbclient and jupyter_client are
imported here only, and only when a step actually executes.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from queue import Empty
from typing import Any

from ..errors import AidevopsError


class StepFailed(AidevopsError):
    """A notebook raised; the message names step, cell, error and the executed notebook."""

    exit_code = 1


@dataclass
class ExecutionResult:
    """What one execution produced."""

    output_path: Path
    cells_seconds: float


class KernelPool:
    """Started kernels waiting for steps; `take()` returns one and the runner tops the pool up.

    Kernels boot in parallel (a boot is cheap), but one worker thread warms them one at a time, in
    the order steps will take them: the next step's kernel gets a whole core for its imports instead
    of sharing it with every later kernel.

    The kernels talk over IPC (Unix sockets), not TCP: only this user can reach them, and ipykernel has
    no reason to print its "running over TCP without encryption" warning into every run's output. Their
    connection files and sockets live in one private temporary folder per pool (mode 0700, removed by
    `close()`), never in the project or step folders a kernel's working directory points at.
    """

    def __init__(self, kernel_name: str, cwd: Path, env: dict[str, str], preload: list[str] | None = None):
        self.kernel_name = kernel_name
        self.cwd = cwd
        self.env = env
        self.preload = list(preload or [])
        self._spare: deque = deque()
        self._lock = threading.Lock()
        self._in_use: list = []
        self._stopping: list[threading.Thread] = []
        self._to_warm: deque = deque()
        self._warmer: threading.Thread | None = None
        self._sockets: str | None = None  # the private folder of the IPC sockets, made on the first start

    def prestart(self, count: int = 1) -> None:
        """Start kernels until `count` are waiting."""
        with self._lock:
            missing = count - len(self._spare)
        for _ in range(max(0, missing)):
            km = self._start()
            with self._lock:
                self._spare.append(km)
                if self.preload:
                    self._to_warm.append(km)
        with self._lock:
            if self._to_warm and (self._warmer is None or not self._warmer.is_alive()):
                self._warmer = threading.Thread(target=self._warm_all, name="aidevops-kernel-warmup", daemon=True)
                self._warmer.start()

    def take(self) -> Any:
        """A started kernel manager (a waiting one if any, else a fresh one)."""
        with self._lock:
            km = self._spare.popleft() if self._spare else None
        if km is None or not km.is_alive():
            km = self._start()
        with self._lock:
            self._in_use.append(km)
        return km

    def release(self, km: Any) -> None:
        """Shut a used kernel down in the background (a kernel is never reused: each step gets a clean one)."""
        with self._lock:
            if km in self._in_use:
                self._in_use.remove(km)
            if km in self._to_warm:
                self._to_warm.remove(km)
        thread = threading.Thread(target=_shutdown, args=(km,), name="aidevops-kernel-shutdown", daemon=True)
        thread.start()
        self._stopping.append(thread)

    def close(self) -> None:
        """Shut down every kernel the pool started."""
        with self._lock:
            kms = list(self._spare) + list(self._in_use)
            self._spare.clear()
            self._in_use.clear()
            self._to_warm.clear()
        for km in kms:
            _shutdown(km)
        for thread in self._stopping + ([self._warmer] if self._warmer else []):
            thread.join(timeout=10)
        if self._sockets is not None:
            shutil.rmtree(self._sockets, ignore_errors=True)
            self._sockets = None

    def _warm_all(self) -> None:
        while True:
            with self._lock:
                if not self._to_warm:
                    return
                km = self._to_warm.popleft()
            if km.is_alive():
                _warm_up(km, self.preload)

    def _start(self) -> Any:
        from jupyter_client.kernelspec import NoSuchKernel

        km = self._manager()
        try:
            km.start_kernel(cwd=str(self.cwd), env=self.env)
        except NoSuchKernel:
            from ..kernels import ensure_kernel

            # A kernel shipped in kernels/ is installed on first use; any other missing one is a clear error.
            ensure_kernel(self.kernel_name)
            km = self._manager()
            km.start_kernel(cwd=str(self.cwd), env=self.env)
        return km

    def _manager(self) -> Any:
        """A KernelManager for one new kernel: IPC sockets in the pool's private folder (TCP on Windows, which has no IPC)."""
        from jupyter_client import KernelManager

        client = f"{__name__}.PromptReadyClient"
        if sys.platform == "win32":
            return KernelManager(kernel_name=self.kernel_name, client_class=client)
        with self._lock:
            if self._sockets is None:
                self._sockets = tempfile.mkdtemp(prefix="aidevops-kernels-")  # mode 0700
            folder = self._sockets
        # Short names: a Unix socket path has ~104 bytes at most, and macOS's temp folder is long already.
        # The sockets are named after the connection file: <folder>/k-<id>-ipc-<1..5>.
        connection = os.path.join(folder, f"k-{uuid.uuid4().hex[:12]}.json")
        return KernelManager(
            kernel_name=self.kernel_name, client_class=client, transport="ipc", connection_file=connection
        )


def _prompt_ready_client_class() -> type:
    from jupyter_client.blocking import BlockingKernelClient

    class _PromptReadyClient(BlockingKernelClient):
        """A client whose readiness check ends as soon as the kernel has answered, not 0.2 s later.

        jupyter_client's wait_for_ready drains IOPub until it has been quiet for 0.2 s, a fixed
        cost on every step. Waiting for the idle status that closes our own kernel_info request
        proves the same two things (shell answers, IOPub is subscribed) without the wait.
        """

        def wait_for_ready(self, timeout: float | None = None) -> None:
            deadline = time.monotonic() + (timeout if timeout is not None else 60.0)
            sent: set[str] = set()
            idle: set[str] = set()
            while time.monotonic() < deadline:
                sent.add(self.kernel_info())
                reply = _shell_reply(self, self.is_alive, "Kernel died before replying to kernel_info")
                if reply is None:
                    continue
                answered = reply.get("parent_header", {}).get("msg_id")
                if reply["msg_type"] != "kernel_info_reply" or answered not in sent:
                    continue  # a reply meant for another request on this session
                if self._idle_seen(answered, idle, until=min(deadline, time.monotonic() + 1.0)):
                    return
            super().wait_for_ready(timeout=max(1.0, deadline - time.monotonic()))

        def _idle_seen(self, msg_id: str, idle: set[str], until: float) -> bool:
            while msg_id not in idle and time.monotonic() < until:
                try:
                    msg = self.get_iopub_msg(timeout=max(0.01, until - time.monotonic()))
                except Empty:
                    return False
                if msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle":
                    idle.add(msg.get("parent_header", {}).get("msg_id"))
            return msg_id in idle

    return _PromptReadyClient


def __getattr__(name: str) -> Any:
    # Built on first use so that importing this module does not import jupyter_client.
    if name == "PromptReadyClient":
        cls = _prompt_ready_client_class()
        globals()[name] = cls
        return cls
    raise AttributeError(name)


def warm_up_code(modules: list[str]) -> str:
    """Code that imports `modules` without binding any name in the notebook's namespace."""
    return (
        "def _aidevops_preload(names):\n"
        "    import importlib\n"
        "    for name in names:\n"
        "        try:\n"
        "            importlib.import_module(name)\n"
        "        except Exception:\n"
        "            pass  # the notebook's own import will report it\n"
        f"_aidevops_preload({modules!r})\n"
        "del _aidevops_preload\n"
    )


def _warm_up(km: Any, modules: list[str]) -> None:
    """Import the notebooks' modules in a waiting kernel, so a step does not pay for them.

    Runs silently (no execution count, no history, no names left behind); a step that takes the
    kernel before this finishes simply queues behind it.
    """
    try:
        _execute_quietly(km, warm_up_code(modules), timeout=120)
    except Exception:  # a warm-up is an optimisation: never fail a run because of it
        pass


def step_setup_code(cwd: Path | None, env: Mapping[str, str | None], mlflow_run: str | None = None) -> str:
    """Code that moves a kernel into its step: working directory, environment (None unsets), MLflow run.

    Kernels are started ahead of time, before anyone knows which step will take them, so what
    differs per step is set when the step begins, silently, instead of as a visible cell. With
    `mlflow_run`, that run becomes MLflow's active run: MLflow 3's `log_model` does not start a run
    from MLFLOW_RUN_ID by itself, so a bare `mlflow.sklearn.log_model(...)` needs one active.
    """
    sets = {k: v for k, v in env.items() if v is not None}
    unsets = sorted(k for k, v in env.items() if v is None)
    return (
        "def _aidevops_step_setup(cwd, sets, unsets, mlflow_run):\n"
        "    import os\n"
        "    if cwd is not None:\n"
        "        os.chdir(cwd)\n"
        "    os.environ.update(sets)\n"
        "    for name in unsets:\n"
        "        os.environ.pop(name, None)\n"
        "    if mlflow_run is not None:\n"
        "        import mlflow\n"
        "        mlflow.start_run(run_id=mlflow_run)\n"
        f"_aidevops_step_setup({None if cwd is None else str(cwd)!r}, {sets!r}, {unsets!r}, {mlflow_run!r})\n"
        "del _aidevops_step_setup\n"
    )


def _shell_reply(client: Any, is_alive: Callable[[], bool], died: str) -> dict[str, Any] | None:
    """The next shell reply within a second, or None; RuntimeError(died) when the kernel died meanwhile."""
    try:
        return client.get_shell_msg(timeout=1)
    except Empty:
        if not is_alive():
            raise RuntimeError(died) from None
        return None


def _execute_quietly(km: Any, code: str, *, timeout: float) -> dict[str, Any]:
    """Run `code` silently in kernel `km` on a client of its own; returns the execute reply's content."""
    from jupyter_client.session import Session

    # Its own session id: clients sharing one get each other's shell replies (same ZMQ identity).
    kc = km.client(session=Session(key=km.session.key, signature_scheme=km.session.signature_scheme))
    try:
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        msg_id = kc.execute(code, silent=True, store_history=False, allow_stdin=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = _shell_reply(kc, km.is_alive, "the kernel died")
            if reply is not None and reply.get("parent_header", {}).get("msg_id") == msg_id:
                return reply["content"]
        raise TimeoutError(f"no reply within {timeout:.0f} s")
    finally:
        try:
            kc.stop_channels()
        except Exception:
            pass


def _shutdown(km: Any) -> None:
    try:
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    except Exception:  # a kernel that died already needs no shutdown
        pass


def import_papermill() -> Any:
    """Import papermill without rfc3987-syntax, which builds a Lark grammar at import.

    jsonschema loads it only to check the 'iri' string formats, which notebook validation never
    uses; blocking it in this process makes papermill's import much cheaper.
    """
    import sys

    if "papermill" not in sys.modules and "rfc3987_syntax" not in sys.modules:
        sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]  # import raises ImportError
        try:
            import papermill
        finally:
            del sys.modules["rfc3987_syntax"]
        return papermill
    import papermill

    return papermill


def execute_notebook(
    notebook: Path,
    output: Path,
    parameters: dict[str, Any],
    km: Any,
    *,
    step: str,
    progress: bool,
    timeout: float | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str | None] | None = None,
    active_run: str | None = None,
) -> ExecutionResult:
    """Run `notebook` with `parameters` on kernel `km`, writing the executed copy to `output`.

    `cwd`, `env` and `active_run` (an MLflow run id) move the already started kernel into the
    step before its first cell (step_setup_code).
    """
    papermill = import_papermill()
    from papermill.exceptions import PapermillExecutionError

    if cwd is not None or env or active_run:
        _enter_step(km, step_setup_code(cwd, env or {}, active_run), cwd, step=step)
    try:
        nb = papermill.execute_notebook(
            str(notebook),
            str(output),
            parameters=parameters,
            kernel_name=km.kernel_name,
            km=km,
            progress_bar=progress,
            log_output=False,
            request_save_on_cell_execute=False,
            execution_timeout=timeout,
        )
    except PapermillExecutionError as exc:
        from ..registry.logged import known_cause  # noqa: PLC0415 - the error path only

        raise StepFailed(
            f"step '{step}' failed in cell {exc.exec_count or exc.cell_index} with {exc.ename}: "
            f"{known_cause(str(exc.evalue)) or _one_line(exc.evalue)}; the executed notebook with the error is {output}; "
            f"fix it and run again to resume from this step."
        ) from None
    except Exception as exc:  # kernel died, timeout, bad notebook: still one sentence
        raise StepFailed(
            f"step '{step}' could not run its notebook ({exc.__class__.__name__}: {_one_line(str(exc))}); "
            f"see {output} if it exists, fix the cause and run again to resume from this step."
        ) from None
    return ExecutionResult(Path(output), _cells_seconds(nb))


def _enter_step(km: Any, code: str, cwd: Path | None, *, step: str) -> None:
    # A warm-up still importing in this kernel finishes first (the kernel runs one request at a time),
    # hence the generous wait.
    try:
        reply = _execute_quietly(km, code, timeout=600)
    except Exception as exc:
        raise StepFailed(
            f"step '{step}' could not prepare its kernel ({exc.__class__.__name__}: {_one_line(str(exc))}); "
            f"check that kernel '{km.kernel_name}' starts (`aidevops doctor`) and run again."
        ) from None
    if reply.get("status") != "ok":
        raise StepFailed(
            f"step '{step}' could not enter its step folder {cwd} or its MLflow run ({reply.get('ename')}: "
            f"{_one_line(str(reply.get('evalue')))}); check that the folder exists and the tracking store "
            f"answers (`aidevops doctor`), then run again."
        )


def _cells_seconds(nb: Any) -> float:
    total = 0.0
    for cell in nb.cells:
        duration = (cell.get("metadata", {}).get("papermill") or {}).get("duration")
        if isinstance(duration, (int, float)):
            total += duration
    return total


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def kernel_env(root: Path) -> dict[str, str]:
    """Environment for step kernels: this process's, pinned to the workspace root."""
    env = dict(os.environ)
    env["AIDEVOPS_HOME"] = str(root)
    # The step contract: notebooks find the project here, whatever their working directory.
    env["AIDEVOPS_PROJECT"] = str(root)
    # A run id inherited from whoever started the runner would send a step's MLflow calls to a
    # foreign run; each step gets its own when it starts (runner.py).
    env.pop("MLFLOW_RUN_ID", None)
    # ipykernel picks the inline backend only when MPLBACKEND is unset; an inherited "Agg" (common
    # in CI) would leave executed notebooks without their plots.
    env.pop("MPLBACKEND", None)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
