"""Automatic retraining: the supervisor's watch for fired alerts whose rule says `action: retrain`.

The model server evaluates the rules and records the events (it must not run pipelines: papermill stays
out of its process); the supervisor sees a new unhandled `retrain` event and starts
`aidevops retrain NAME --alert ID` as a separate process (output to the deployment's log), one at a
time per deployment and at most once per cooldown (AIDEVOPS_RETRAIN_COOLDOWN seconds, default 300).
Events that arrive while a retraining runs or during the cooldown are marked skipped, with the reason,
so the history says why they led nowhere. The chain itself is recorded by `loop.py`.

Two more skips make the loop converge instead of chasing its own tail:
- a retrained version awaits approval (`promote: manual`): another retraining would only replace the
  evidence a person is about to read; approve or reject first;
- the active version came out of a retraining that an alert of the same rule started: a retrained model's
  drift is still measured against its project's own data (loop.py), so traffic that stays shifted keeps the
  alert firing, and retraining again on it would change nothing that alert measures. That alert then says
  "the traffic is still unlike your data": add data like it to the pipeline, or retrain by hand.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

from ..monitoring.alertstore import AlertStore
from ..retrainings import AWAITING, SWITCHED, env_cooldown, retraining_running, retrainings
from ..workspace import Workspace

log = logging.getLogger("aidevops.deploy")

CHECK_SECONDS = 2.0
RECENT_SECONDS = 600.0  # alerts older than this when the supervisor starts are history, not a call to act


class RetrainTrigger:
    """Polled from the supervisor's loop; owns at most one `aidevops retrain` child process."""

    def __init__(self, ws: Workspace, name: str, cooldown: float | None = None) -> None:
        self.ws = ws
        self.name = name
        self.cooldown = env_cooldown() if cooldown is None else cooldown
        self.alerts = AlertStore(ws.deploy_db)
        self.child: subprocess.Popen | None = None
        self.started_at = -float("inf")
        self.since = time.time() - RECENT_SECONDS
        self.next_check = 0.0

    def poll(self) -> None:
        """Start a retraining for a new retrain alert, if one is due; cheap when there is nothing to do."""
        now = time.monotonic()
        if now < self.next_check:
            return
        self.next_check = now + CHECK_SECONDS
        if self.child is not None and self.child.poll() is not None:
            log.warning("retraining of %r finished (exit %s)", self.name, self.child.returncode)
            self.child = None
        try:
            events = [
                e for e in self.alerts.events(self.name, action="retrain", unhandled=True) if e["at"] >= self.since
            ]
        except Exception:  # noqa: BLE001 - a locked db: next time
            return
        for event in events:
            busy = self.child is not None or retraining_running(self.ws, self.name)  # ours, or one a person started
            held = None if busy else self.held_back(event)  # a lasting reason says more than the cooldown
            cooling = now - self.started_at < self.cooldown
            if busy or held or cooling:
                why = (
                    "a retraining is running"
                    if busy
                    else held or f"within the {self.cooldown:.0f} s retraining cooldown"
                )
                self.alerts.claim(event["id"], f"skipped: {why}")
                if held:
                    log.warning("alert #%s (%s) starts no retraining: %s", event["id"], event["rule"], held)
                continue
            self.start(event)

    def held_back(self, event: dict) -> str | None:
        """Why this alert must not start a retraining (see the module docstring), or None."""
        try:
            done = retrainings(self.ws, self.name, limit=20)
        except Exception:  # noqa: BLE001 - a locked db: the retraining itself will say
            return None
        waiting = [r for r in done if r.status == AWAITING]
        if waiting:
            return f"v{waiting[-1].version} awaits approval (`aidevops approve {self.name}` or `reject {self.name}`)"
        version = event.get("version")
        same = [r for r in done if r.status == SWITCHED and r.switched_to == version and r.rule == event["rule"]]
        if version and same:
            return (
                f"v{version} was retrained for {event['rule']} already (retraining #{same[-1].id}); the traffic is "
                "still unlike the pipeline's data: add data like it to the pipeline, or `aidevops retrain` by hand"
            )
        return None

    def start(self, event: dict) -> None:
        from .local import log_path  # noqa: PLC0415

        cmd = [sys.executable, "-m", "aidevops_ext.cli", "retrain", self.name, "--alert", str(event["id"])]
        env = dict(os.environ, AIDEVOPS_HOME=str(self.ws.root))
        with open(log_path(self.ws, self.name), "ab") as out, open(os.devnull, "rb") as devnull:
            self.child = subprocess.Popen(cmd, cwd=str(self.ws.root), env=env, stdin=devnull, stdout=out, stderr=out)
        self.started_at = time.monotonic()
        log.warning(
            "alert #%s (%s) fired with action retrain: started `aidevops retrain %s` (pid %s)",
            event["id"],
            event["rule"],
            self.name,
            self.child.pid,
        )

    def stop(self, timeout: float = 10.0) -> None:
        """End a running retraining (the deployment is going away: a switch at its end would fail anyway)."""
        from .local import end_child  # noqa: PLC0415

        end_child(self.child, timeout)
