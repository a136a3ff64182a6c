"""The scheduler inside the Jupyter server: a daemon thread per workspace, started once, off with an env var.

While JupyterLab runs, due schedules run without anyone starting `aidevops schedule serve`. The thread only
stats `.aidevops/schedules.json` each minute until a schedule exists, so a workspace without schedules costs
nothing; it runs beside a `schedule serve` or cron's `schedule run-due` safely (the store's lock, store.py).
`AIDEVOPS_SCHEDULER=0` (or the server config `c.Aidevops.scheduler = False`) keeps it off.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from ..workspace import Workspace

ENV = "AIDEVOPS_SCHEDULER"
_threads: dict[Path, tuple[threading.Thread, threading.Event]] = {}
_guard = threading.Lock()


def wanted(config_value: object = True) -> bool:
    """Whether the server should run the scheduler: the env var wins over the server config."""
    env = os.environ.get(ENV)
    if env is not None:
        return env.strip().lower() not in ("0", "false", "no", "off", "")
    return config_value is not False


def start(root: Path, log: Callable[[str], None]) -> bool:
    """Start the scheduler thread for the workspace at `root`; False when one already runs there."""
    ws = Workspace.discover(Path(root))
    with _guard:
        running = _threads.get(ws.root)
        if running is not None and running[0].is_alive():
            return False
        stop = threading.Event()
        thread = threading.Thread(target=_main, args=(ws, stop, log), name=f"aidevops-scheduler:{ws.root}", daemon=True)
        _threads[ws.root] = (thread, stop)
        thread.start()
    return True


def stop_all(timeout: float = 5.0) -> None:
    """Stop every scheduler thread this process started (a server shutting down, a test cleaning up)."""
    with _guard:
        found = list(_threads.values())
        _threads.clear()
    for _, event in found:
        event.set()
    for thread, _ in found:
        thread.join(timeout)


def _main(ws: Workspace, stop: threading.Event, log: Callable[[str], None]) -> None:
    from .scheduler import serve  # noqa: PLC0415 - croniter and the store load in this thread, not at server start

    serve(ws, stop, log=log)
