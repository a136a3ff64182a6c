"""`deploy --workers 2`: every admin operation reaches every worker (deploy/fanout.py), on real supervised servers.

Which worker answered is the process prefix of the answer's x-request-id; which version, its x-model-version.
Each probe opens a new connection, so the kernel spreads the probes over both workers.
"""

from __future__ import annotations

import os
import signal
import time
from collections import defaultdict
from types import SimpleNamespace

import httpx
import orjson
import pytest

from aidevops_ext import registry
from aidevops_ext.deploy import manager
from aidevops_ext.errors import ConfigError
from tests.deploy.conftest import MODEL, LoadGenerator

WORKERS = 2


def _probe(url: str, row: list[float]) -> tuple[str, str]:
    """(worker, version) of one prediction on a new connection."""
    r = httpx.post(url + "/invocations", json={"inputs": [row]}, timeout=30)
    assert r.status_code == 200, r.text
    return r.headers["x-request-id"].rsplit("-", 1)[0], r.headers["x-model-version"]


def versions_by_worker(url: str, rows, done, seconds: float = 90.0) -> dict[str, set[str]]:
    """Probe until done(versions by worker) holds, or a generous deadline passes (a worker may still be loading
    its model; the kernel picks the worker of each connection)."""
    seen: dict[str, set[str]] = defaultdict(set)
    deadline, i = time.monotonic() + seconds, 0
    while not done(seen) and time.monotonic() < deadline:
        worker, version = _probe(url, rows[i % len(rows)])
        seen[worker].add(version)
        i += 1
    return dict(seen)


def every_worker(url: str, rows, workers: int = WORKERS) -> dict[str, set[str]]:
    """The versions each of `workers` workers answered with."""
    return versions_by_worker(url, rows, lambda seen: len(seen) >= workers)


def _worker_pids(server_pid: int) -> set[int]:
    """The worker processes of a deployment's server (its multiprocessing resource tracker excluded)."""
    out = set()
    for child in open(f"/proc/{server_pid}/task/{server_pid}/children").read().split():
        if b"resource_tracker" not in open(f"/proc/{child}/cmdline", "rb").read():
            out.add(int(child))
    return out


def _deploy_two_workers(deployer, name: str, ref: str = f"{MODEL}@champion", **kw):
    res = deployer(ref, name, workers=WORKERS, **kw)
    assert res.action == "started" and res.deployment.server_pid
    return res.deployment


def test_a_switch_under_load_fails_no_request_and_every_worker_serves_the_new_version(reg, deployer):
    dep = _deploy_two_workers(deployer, "wk-switch")
    before = every_worker(dep.url, reg.rows)
    assert len(before) == WORKERS and all(versions == {"1"} for versions in before.values()), before
    with LoadGenerator(dep.url, MODEL, reg.rows) as load:
        for i, target in enumerate(["2", "1", "2"]):
            out = manager.deploy(reg.ws, f"{MODEL}/{target}", name="wk-switch", reason=f"switch {i + 1}")
            assert out.action == "switched" and out.version == target
            sent = load.stats.sent
            assert load.wait_until(lambda s, sent=sent: s.sent >= sent + 10), "the load stopped after a switch"
    assert load.stats.errors == {}, f"connection errors during switches: {dict(load.stats.errors)}"
    assert load.stats.non_2xx == 0, f"non-2xx responses during switches: {dict(load.stats.statuses)}"
    seen = every_worker(dep.url, reg.rows)
    assert len(seen) == WORKERS and all(versions == {"2"} for versions in seen.values()), seen
    slots = manager.status(reg.ws, "wk-switch").slots
    assert (slots["active"]["version"], slots["previous"]["version"]) == ("2", "1")
    # The number of workers is the deployment's: a redeploy that asks for another is refused, saying how.
    with pytest.raises(ConfigError, match=r"runs 2 worker\(s\); undeploy it first"):
        manager.deploy(reg.ws, f"{MODEL}/1", name="wk-switch", workers=1)


def test_a_worker_killed_under_load_comes_back_with_the_current_slots_and_rollback_reaches_it(reg, deployer):
    dep = _deploy_two_workers(deployer, "wk-kill")
    manager.deploy(reg.ws, f"{MODEL}/2", name="wk-kill", reason="v2 before the kill")  # the state to come back to
    before = every_worker(dep.url, reg.rows)
    assert all(versions == {"2"} for versions in before.values()), before
    first = _worker_pids(dep.server_pid)
    assert len(first) == WORKERS
    victim = min(first)
    with LoadGenerator(dep.url, MODEL, reg.rows) as load:
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 90  # generous: the replacement loads its model before it answers
        while time.monotonic() < deadline and not (_worker_pids(dep.server_pid) - first):
            time.sleep(0.1)
        sent = load.stats.sent
        assert load.wait_until(lambda s: s.sent >= sent + 20), "the load stopped after the kill"
    # Only requests in flight on the killed worker's connections may fail (one per connection at most);
    # none gets an error status, and the deployment's server itself never went away.
    assert sum(load.stats.errors.values()) <= load.concurrency, dict(load.stats.errors)
    assert load.stats.non_2xx == 0, dict(load.stats.statuses)
    assert manager.get(reg.ws, "wk-kill").server_pid == dep.server_pid
    replaced = _worker_pids(dep.server_pid)
    assert victim not in replaced and len(replaced) == WORKERS
    # The restarted worker answers (a process prefix not seen before) with the version switched to before the kill.
    after = versions_by_worker(dep.url, reg.rows, lambda seen: bool(set(seen) - set(before)))
    assert set(after) - set(before), f"the restarted worker never answered: {after}"
    assert all(versions == {"2"} for versions in after.values()), after
    # Its previous slot is the current one too: a rollback brings every worker, the restarted one included, to v1.
    back = manager.rollback(reg.ws, "wk-kill", reason="back to v1 on every worker")
    assert (back.from_version, back.to_version) == ("2", "1")
    seen = versions_by_worker(dep.url, reg.rows, lambda seen: set(after) - set(before) <= set(seen) and len(seen) > 1)
    assert set(after) - set(before) <= set(seen) and all(versions == {"1"} for versions in seen.values()), seen


def test_a_canary_splits_traffic_on_every_worker_and_a_promote_reaches_all(reg, deployer):
    dep = _deploy_two_workers(deployer, "wk-canary")
    entry = manager.canary(reg.ws, "wk-canary", "2", share=0.5, reason="half the traffic on each worker")
    assert (entry.operation, entry.to_version) == ("canary", "2")

    def both_versions_on_each(seen):
        return len(seen) >= WORKERS and all(versions == {"1", "2"} for versions in seen.values())

    seen = versions_by_worker(dep.url, reg.rows, both_versions_on_each)
    assert both_versions_on_each(seen), f"a worker without the canary split: {seen}"
    manager.promote(reg.ws, "wk-canary", reason="the canary looked good")
    seen = every_worker(dep.url, reg.rows)
    assert len(seen) == WORKERS and all(versions == {"2"} for versions in seen.values()), seen


def test_a_followed_alias_moves_every_worker_once(reg, deployer):
    registry.set_alias(reg.ws, MODEL, "wk-staging", "1")
    dep = _deploy_two_workers(deployer, "wk-follow", f"{MODEL}@wk-staging", follow=True, follow_seconds=0.5)
    registry.set_alias(reg.ws, MODEL, "wk-staging", "2")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and manager.get(reg.ws, "wk-follow").active_version != "2":
        time.sleep(0.2)
    seen = every_worker(dep.url, reg.rows)
    assert len(seen) == WORKERS and all(versions == {"2"} for versions in seen.values()), seen
    follows = [h for h in manager.history(reg.ws, "wk-follow") if h.operation == "follow"]
    assert [(h.from_version, h.to_version, h.actor) for h in follows] == [("1", "2", "alias-follower")]


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"workers": 0}, r"--workers 0 is not a number of processes"),
        ({"workers": 2, "grpc_port": 1}, r"--grpc-port is served by one process; give --workers 1"),
    ],
)
def test_a_bad_number_of_workers_is_refused_before_anything_starts(reg, kw, message):
    with pytest.raises(ConfigError, match=message):
        manager.deploy(reg.ws, f"{MODEL}@champion", name="wk-bad", **kw)
    assert "wk-bad" not in [d.name for d in manager.list_deployments(reg.ws)]


# --------------------------------------------------------------------------- the fan-out's rule, without processes


def _slots_answer(active: str, previous: str | None = None) -> bytes:
    slot = {"version": active}
    return orjson.dumps({"event": {}, "slots": {"active": slot, "previous": previous and {"version": previous}}})


@pytest.fixture
def two_workers(tmp_path, monkeypatch):
    """A FanOut over two pretend workers (pids 101, 102 on ports 7001, 7002): the calls they got, the restarts."""
    from aidevops_ext.deploy import fanout
    from aidevops_ext.workspace import Workspace

    seen = SimpleNamespace(calls=[], restarted=[], answers={})

    def call(port, **request):
        seen.calls.append(port)
        answer = seen.answers[port]
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(fanout, "_worker_call", call)
    monkeypatch.setattr(fanout, "_restart", seen.restarted.append)
    out = fanout.FanOut(Workspace(tmp_path), "pretend", "token")
    out.serving = {0: (101, 7001), 1: (102, 7002)}
    seen.fanout = out
    return seen


def _switch(fan) -> tuple[int, bytes]:
    return fan.call("POST", "/admin/switch", {"authorization": "Bearer token"}, b'{"model_uri": "models:/dig/2"}')


def test_fanout_a_refusal_by_the_first_worker_is_the_answer_and_reaches_no_other(two_workers):
    two_workers.answers = {7001: (422, b'{"error": "refused"}'), 7002: (200, _slots_answer("2", "1"))}
    assert _switch(two_workers.fanout) == (422, b'{"error": "refused"}')
    assert two_workers.calls == [7001] and two_workers.restarted == []
    assert two_workers.fanout.slots_state is None  # workers started later still get the deployment's versions


def test_fanout_a_worker_failing_what_the_first_applied_is_restarted_with_the_outcome(two_workers):
    two_workers.answers = {7001: (200, _slots_answer("2", "1")), 7002: (500, b'{"error": "out of memory"}')}
    status, _ = _switch(two_workers.fanout)
    assert status == 200 and sorted(two_workers.calls) == [7001, 7002] and two_workers.restarted == [102]
    two_workers.fanout.exited(1)
    replacement = two_workers.fanout.app_maker(1)
    assert replacement.args[-1] == {
        "active": "2",
        "previous": "1",
        "canary": None,
        "canary_share": 0.0,
        "shadow": None,
    }


def test_fanout_a_dead_first_worker_is_restarted_and_the_next_one_decides(two_workers):
    two_workers.answers = {7001: ConnectionRefusedError("gone"), 7002: (200, _slots_answer("2", "1"))}
    status, body = _switch(two_workers.fanout)
    assert status == 200 and orjson.loads(body)["slots"]["active"]["version"] == "2"
    assert two_workers.restarted == [101] and two_workers.fanout.slots_state["active"] == "2"
