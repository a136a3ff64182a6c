"""The workspace's schedules: `.aidevops/schedules.json`, read whole, rewritten atomically under a file lock.

Every change (a schedule added or removed, a slot claimed, a run's end recorded) is one read-modify-write
while holding `flock` on `.aidevops/schedules.lock`, so two scheduler processes (say `schedule serve` and
the one inside Jupyter) never both claim the same slot. The file holds webhook URLs, whose path is a secret
for Slack, so it is written 0600.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from pydantic import ValidationError

from ..errors import ConfigError, NotFound
from ..workspace import Workspace
from .cron import next_slot
from .model import NotifyFormat, Schedule, check_name, iso, url_host

FILE = "schedules.json"
LOCK = "schedules.lock"
MAX_SCHEDULES = 100  # each is checked every minute; a workspace with more wants an orchestrator (export argo)


class ScheduleStore:
    """The schedules of one workspace."""

    def __init__(self, ws: Workspace):
        self.ws = ws
        self.path = ws.state / FILE

    def exists(self) -> bool:
        return self.path.is_file()

    def load(self) -> list[Schedule]:
        """All schedules (none when the file does not exist); a damaged file is one sentence."""
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.path} is not readable JSON ({type(exc).__name__}); fix or remove it.") from None
        try:
            return [Schedule.model_validate(item) for item in raw["schedules"]]
        except (KeyError, TypeError, ValidationError, ConfigError) as exc:
            reason = str(exc).splitlines()[0][:120]
            raise ConfigError(f"{self.path} holds a schedule that is not valid ({reason}); fix or remove it.") from None

    def get(self, name: str) -> Schedule:
        found = next((s for s in self.load() if s.name == name), None)
        if found is None:
            raise NotFound(f"there is no schedule '{name}'; list them with `aidevops schedule list`.")
        return found

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.ws.state.mkdir(parents=True, exist_ok=True)
        with open(self.ws.state / LOCK, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @contextmanager
    def editing(self) -> Iterator[list[Schedule]]:
        """The schedules, locked; the list as left by the block is written back if it changed (nothing on an
        exception): a scheduler's tick with nothing due leaves the file alone."""
        with self._locked():
            schedules = self.load()
            before = [s.model_dump() for s in schedules]
            yield schedules
            if [s.model_dump() for s in schedules] != before:
                self._save(schedules)

    def _save(self, schedules: list[Schedule]) -> None:
        data = {"schedules": [s.model_dump(mode="json") for s in schedules]}
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{FILE}.")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:  # mkstemp's file is 0600 already
            json.dump(data, fh, indent=1)
        os.replace(tmp, self.path)

    def add(
        self,
        pipeline: str,
        cron: str,
        *,
        params: Mapping[str, Any] | None = None,
        notify: str | None = None,
        notify_format: NotifyFormat = "auto",
        name: str | None = None,
        now: datetime | None = None,
    ) -> Schedule:
        """Check everything (cron, URL, pipeline, params, name free, room left), then store the schedule."""
        schedule = Schedule(
            name=name or pipeline,
            pipeline=pipeline,
            cron=cron,
            params=dict(params or {}),
            notify=notify,
            notify_format=notify_format,
            created=now or datetime.now(timezone.utc),
        )
        check_pipeline(self.ws, schedule.pipeline, schedule.params)
        with self.editing() as schedules:
            if any(s.name == schedule.name for s in schedules):
                hint = "pass --name to add another" if name is None else "pick another --name"
                raise ConfigError(
                    f"a schedule named '{schedule.name}' exists; {hint}, or remove it first "
                    f"(aidevops schedule remove {schedule.name})."
                )
            if len(schedules) >= MAX_SCHEDULES:
                raise ConfigError(
                    f"this workspace has {len(schedules)} schedules, the most it keeps; remove one first "
                    "(or run pipelines from an orchestrator: aidevops export argo --cron)."
                )
            schedules.append(schedule)
        return schedule

    def remove(self, name: str) -> Schedule:
        check_name(name)
        with self.editing() as schedules:
            found = next((s for s in schedules if s.name == name), None)
            if found is None:
                raise NotFound(f"there is no schedule '{name}'; list them with `aidevops schedule list`.")
            schedules.remove(found)
        return found


def check_pipeline(ws: Workspace, pipeline: str, params: Mapping[str, Any]) -> None:
    """The pipeline exists in pipelines/ and takes these params (what `aidevops run -p` would refuse, refused now)."""
    from ..pipeline.params import apply_overrides  # noqa: PLC0415
    from ..pipeline.spec import load_spec, resolve_spec_path  # noqa: PLC0415

    spec_path = resolve_spec_path(pipeline, ws.root)
    if spec_path.parent != (ws.root / "pipelines").resolve():
        raise ConfigError(f"pipeline '{pipeline}' must be the name of a spec in {ws.root / 'pipelines'}.")
    apply_overrides(load_spec(spec_path, ws.root), params)


def summary(schedule: Schedule, now: datetime) -> dict[str, Any]:
    """What the Runs panel and `schedule list --json` show: the webhook's host only, never its URL."""
    return {
        "name": schedule.name,
        "pipeline": schedule.pipeline,
        "cron": schedule.cron,
        "params": schedule.params,
        "notify": url_host(schedule.notify),
        "next_run": iso(next_slot(schedule.cron, max(now, schedule.since()))),
        "last_run": iso(schedule.last_run),
        "last_status": schedule.last_status,
        "last_run_id": schedule.last_run_id,
    }


def listing(ws: Workspace, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every schedule's summary, by name."""
    store = ScheduleStore(ws)
    if not store.exists():
        return []
    moment = now or datetime.now(timezone.utc)
    return [summary(s, moment) for s in sorted(store.load(), key=lambda s: s.name)]
