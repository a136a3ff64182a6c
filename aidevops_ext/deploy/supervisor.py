"""`python -m aidevops_ext.deploy.supervisor NAME --workspace ROOT`: keep one deployment's server running.

The supervisor
- binds the deployment's port itself and hands the listening socket to each server it starts, so the
  port stays reserved across restarts and connections made while a server restarts wait in the
  backlog instead of being refused;
- runs the server (`aidevops_ext.deploy.child`) as its child and restarts it at once when it dies
  (kill -9 included), then with backoff (0.5, 1, 2, 4... s); more than MAX_RESTARTS deaths within
  RESTART_WINDOW seconds mark the deployment failed and it stops trying;
- writes its pid, the server's pid, the port and the state to deploy.db, and every second copies the
  server's slots (active/previous/canary versions) there, so a restarted server comes back with the
  same versions; changes the server made by itself (the alias follower) go into the history;
- starts `aidevops retrain NAME --alert ID` when the server's monitor records a fired alert whose rule
  says `action: retrain` (autoretrain.py: one at a time, with a cooldown; the pipeline never runs in
  the supervisor or the server process);
- stops (server first) on SIGTERM, when the deployment row is removed or marked stopped, when its
  workspace disappears, or when the process named by AIDEVOPS_DEPLOY_WATCH_PID exits (tests set it to
  their own pid, so a killed test session leaves no server behind).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

from ..errors import AidevopsError
from ..workspace import Workspace
from .autoretrain import RetrainTrigger
from .local import CHILD_MODULE, AdminClient, DeploymentError, end_child, pid_alive
from .store import FAILED, RESTARTING, RUNNING, STARTING, STOPPED, Deployment, DeployStore

log = logging.getLogger("aidevops.deploy")

RESTART_WINDOW = 60.0
MAX_RESTARTS = 5  # AIDEVOPS_DEPLOY_MAX_RESTARTS overrides (deaths allowed within RESTART_WINDOW)
BACKOFF = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)
READY_TIMEOUT = 180.0
SYNC_SECONDS = 1.0


class Supervisor:
    """The loop that keeps one deployment's server alive."""

    def __init__(self, ws: Workspace, name: str) -> None:
        self.ws = ws
        self.name = name
        self.store = DeployStore(ws)
        self.stopping = threading.Event()
        self.child: subprocess.Popen | None = None
        self.seen_events: set[tuple[float, str]] = set()
        self.warming: set[str] = set()
        self.retrain = RetrainTrigger(ws, name)
        watch = os.environ.get("AIDEVOPS_DEPLOY_WATCH_PID", "")
        self.watch_pid = int(watch) if watch.isdigit() else None

    # ------------------------------------------------------------------ entry
    def run(self) -> int:
        """Bind, serve, restart, until told to stop; the exit code."""
        dep = self.store.get(self.name)
        if dep is None or dep.desired != "running":
            log.error("deployment %r is not marked to run; nothing to supervise", self.name)
            return 1
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda *_: self.stopping.set())
        from ..serving.server import bind_socket  # noqa: PLC0415

        try:
            sock = bind_socket(dep.host or "127.0.0.1", int(dep.port or 0))
        except AidevopsError as exc:
            self.store.update(self.name, state=FAILED, error=str(exc), supervisor_pid=None, server_pid=None)
            log.error("%s", exc)
            return 2
        port = sock.getsockname()[1]
        self.store.update(self.name, port=port, supervisor_pid=os.getpid(), server_pid=None, state=STARTING, error=None)
        log.warning("supervising deployment %r on %s:%s (pid %s)", self.name, dep.host, port, os.getpid())
        final, error = STOPPED, None
        try:
            final, error = self.loop(sock)
        except Exception as exc:  # noqa: BLE001 - record why, then stop the server below
            log.exception("supervisor failed")
            final, error = FAILED, f"The supervisor of '{self.name}' failed: {type(exc).__name__}: {exc}"
        finally:
            self.retrain.stop()
            self.stop_child()
            sock.close()
            if self.ws.deploy_db.exists() and self.store.get(self.name) is not None:
                self.store.update(self.name, state=final, error=error, server_pid=None, supervisor_pid=None)
        log.warning("supervisor of %r exits (%s)", self.name, final)
        return 0 if final == STOPPED else 3

    # ------------------------------------------------------------------ the loop
    def loop(self, sock) -> tuple[str, str | None]:
        """Start the server, watch it, restart it; returns (final state, error)."""
        deaths: deque[float] = deque()
        started_once = False
        died_at: float | None = None
        last_death = ""
        while not self.stopping.is_set():
            child = self.start_child(sock)
            up = self.wait_ready(child)
            if up:
                self.store.update(self.name, state=RUNNING, server_pid=child.pid, error=None)
                if started_once and died_at is not None:
                    dep = self.store.get(self.name)
                    downtime = time.monotonic() - died_at
                    self.store.record(
                        self.name,
                        "restart",
                        from_version=dep.active_version if dep else None,
                        to_version=dep.active_version if dep else None,
                        actor="supervisor",
                        reason=f"the server {last_death}",
                        detail=f"serving again {downtime:.2f} s after it died (pid {child.pid})",
                    )
                    log.warning("server restarted in %.2f s (pid %s)", downtime, child.pid)
                started_once = True
                self.watch(child)
            if self.stopping.is_set():
                break
            code = child.poll()
            last_death = _describe_exit(code)
            died_at = time.monotonic()
            log.warning("server of %r %s", self.name, last_death)
            if not started_once:
                return FAILED, self._startup_error(last_death)
            now = time.monotonic()
            deaths.append(now)
            while deaths and now - deaths[0] > RESTART_WINDOW:
                deaths.popleft()
            if len(deaths) > _max_restarts():
                error = (
                    f"The server of '{self.name}' died {len(deaths)} times within {RESTART_WINDOW:.0f} s "
                    f"(last: {last_death}); it is not restarted again: see {self.ws.state / 'logs' / self.name}.log."
                )
                self.store.record(self.name, "failed", actor="supervisor", reason=last_death, ok=False, detail=error)
                return FAILED, error
            dep = self.store.get(self.name)
            self.store.update(self.name, state=RESTARTING, server_pid=None, restarts=(dep.restarts if dep else 0) + 1)
            self.stopping.wait(BACKOFF[min(len(deaths) - 1, len(BACKOFF) - 1)])
        return STOPPED, None

    def _startup_error(self, how: str) -> str:
        from .local import log_tail  # noqa: PLC0415

        tail = log_tail(self.ws.state / "logs" / f"{self.name}.log", 60)
        tail = tail.rsplit(f"supervisor[{os.getpid()}]: supervising deployment", 1)[-1]  # this run's lines only
        # The server's own one-sentence reason (a refused model, a missing alias) is its last "error:" line.
        reasons = [line.split("error: ", 1)[1] for line in tail.splitlines() if "error: " in line]
        if reasons:
            return reasons[-1]
        return f"The server of '{self.name}' {how} before it was ready; see {self.ws.state / 'logs' / self.name}.log."

    def start_child(self, sock) -> subprocess.Popen:
        """Start the server on the inherited listening socket."""
        dep = self.store.get(self.name)
        env = dict(os.environ)
        if dep is not None and dep.admin_token:
            env["AIDEVOPS_SERVING_ADMIN_TOKEN"] = dep.admin_token  # in the environment: not visible in `ps`
        fd = sock.fileno()
        with open(os.devnull, "rb") as devnull:
            self.child = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    CHILD_MODULE,
                    self.name,
                    "--workspace",
                    str(self.ws.root),
                    "--fd",
                    str(fd),
                    "--parent",
                    str(os.getpid()),
                ],
                stdin=devnull,
                pass_fds=(fd,),
                env=env,
                cwd=str(self.ws.root),
            )
        return self.child

    def wait_ready(self, child: subprocess.Popen) -> bool:
        """Whether the server came up (answers /v2/health/ready) before dying or being stopped."""
        dep = self.store.get(self.name)
        client = AdminClient(dep, timeout=2.0) if dep is not None else None
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline and not self.stopping.is_set():
            if child.poll() is not None:
                return False
            if client is not None and client.ready(timeout=1.0):
                return True
            time.sleep(0.05)
        return False

    def watch(self, child: subprocess.Popen) -> None:
        """Until the server exits or a stop is asked: follow its slots, check the deployment is still wanted."""
        next_sync = 0.0
        while not self.stopping.is_set():
            try:
                child.wait(timeout=0.1)
                return
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            if now >= next_sync:
                next_sync = now + SYNC_SECONDS
                if not self.wanted():
                    self.stopping.set()
                    return
                self.sync()
                self.retrain.poll()

    def wanted(self) -> bool:
        """False when the workspace is gone, the deployment was removed or marked stopped, or the process
        named by AIDEVOPS_DEPLOY_WATCH_PID (a test session, a demo kernel) has exited."""
        if not self.ws.deploy_db.exists():
            return False
        if self.watch_pid is not None and not pid_alive(self.watch_pid):
            log.warning("process %s (AIDEVOPS_DEPLOY_WATCH_PID) is gone: stopping", self.watch_pid)
            return False
        try:
            dep = self.store.get(self.name)
        except Exception:  # noqa: BLE001 - a locked or damaged db is not a reason to stop serving
            return True
        return dep is not None and dep.desired == "running" and dep.supervisor_pid in (None, os.getpid())

    def sync(self) -> None:
        """Copy the server's slots into deploy.db; record the changes the server made on its own."""
        try:
            dep = self.store.get(self.name)
            if dep is None:
                return
            slots = AdminClient(dep, timeout=2.0).slots(timeout=2.0)
        except (DeploymentError, AidevopsError, OSError, ValueError):
            return
        except Exception:  # noqa: BLE001 - the next sync tries again
            log.debug("slot sync failed", exc_info=True)
            return
        active = (slots.get("active") or {}).get("version")
        previous = (slots.get("previous") or {}).get("version")
        canary = (slots.get("canary") or {}).get("version")
        share = float(slots.get("canary_share") or 0.0)
        changes = {}
        for column, value in (
            ("active_version", active),
            ("previous_version", previous),
            ("canary_version", canary),
            ("canary_share", share),
        ):
            if getattr(dep, column) != value:
                changes[column] = value
        for event in slots.get("history") or []:
            if event.get("actor") != "alias-follower":
                continue
            key = (float(event.get("at") or 0.0), str(event.get("operation")))
            if key in self.seen_events:
                continue
            self.seen_events.add(key)
            self.store.record(
                self.name,
                "follow",
                from_version=event.get("from_version"),
                to_version=_version_of(event.get("to_version")),
                reason=event.get("reason") or "",
                actor="alias-follower",
                ok=bool(event.get("ok", True)),
                detail=event.get("detail") or "",
                ts=key[0],
            )
            seen = _version_of(event.get("to_version"))
            if seen is not None:
                changes["alias_version"] = seen
        if changes:
            self.store.update(self.name, **changes)
        if active and dep.model:
            self.warm(dep, active)

    def warm(self, dep: Deployment, version: str) -> None:
        """Cache a version the server took on its own, so a restart loads it without MLflow (in the background)."""
        from .versions import cached_model_file  # noqa: PLC0415

        if version in self.warming or cached_model_file(self.ws, dep.model, version) is not None:
            return
        self.warming.add(version)

        def fill() -> None:
            try:
                from .versions import reference  # noqa: PLC0415

                reference(self.ws, dep.model, version)
            except Exception:  # noqa: BLE001 - a restart then loads from the registry, just slower
                log.info("could not cache %s v%s", dep.model, version, exc_info=True)

        threading.Thread(target=fill, name="aidevops-cache", daemon=True).start()

    def stop_child(self, timeout: float = 10.0) -> None:
        """SIGTERM the server (graceful: in-flight requests finish), SIGKILL after `timeout`."""
        end_child(self.child, timeout)


def _max_restarts() -> int:
    try:
        return max(0, int(os.environ.get("AIDEVOPS_DEPLOY_MAX_RESTARTS", MAX_RESTARTS)))
    except ValueError:
        return MAX_RESTARTS


def _version_of(value) -> str | None:
    """A version from a slot event's to_version (a version, or a models:/NAME/VERSION URI when refused)."""
    if value is None:
        return None
    text = str(value)
    if text.startswith("models:/"):
        tail = text.rsplit("/", 1)[-1]
        return tail if tail.isdigit() else None
    return text


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "stopped answering"
    if code < 0:
        try:
            return f"was killed by signal {-code} ({signal.Signals(-code).name})"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and supervise."""
    p = argparse.ArgumentParser(prog="python -m aidevops_ext.deploy.supervisor", description=__doc__.splitlines()[0])
    p.add_argument("name", help="deployment name (a row of deploy.db)")
    p.add_argument("--workspace", required=True, help="workspace folder")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s supervisor[%(process)d]: %(message)s")
    return Supervisor(Workspace(Path(args.workspace).resolve()), args.name).run()


if __name__ == "__main__":
    sys.exit(main())
