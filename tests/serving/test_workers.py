"""`serve --workers N`: N processes accept on one listening socket, a killed worker is replaced while the others
keep answering, and every worker logs to the one deploy.db."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.serving.conftest import REPO, server_env, start_server, stop_server
from tests.support.polling import poll

BODY = {"inputs": [[0.1, 0.2, 0.3]]}


def _workers_of(pid: int) -> set[int]:
    """The worker processes of the server `pid` (its multiprocessing resource tracker excluded)."""
    out = set()
    for child in open(f"/proc/{pid}/task/{pid}/children").read().split():
        cmdline = open(f"/proc/{child}/cmdline", "rb").read()
        if b"resource_tracker" not in cmdline:
            out.add(int(child))
    return out


def _wait_for(predicate, seconds: float = 90.0):
    return poll(predicate, seconds=seconds, what="the workers to reach the awaited state")


def _predict(url: str) -> str:
    """One prediction on a new connection; its request id's process prefix."""
    r = httpx.post(url + "/invocations", json=BODY, timeout=30)
    assert r.status_code == 200, r.text
    return r.headers["x-request-id"].rsplit("-", 1)[0]


def _env(reg):
    env = server_env(reg)
    env.pop("AIDEVOPS_SERVING_ADMIN_TOKEN")  # the admin API needs one worker
    return env


def test_killed_worker_is_replaced_while_the_other_serves_and_all_log_to_one_db(reg):
    server = start_server(reg, "models:/abc@champion", "--follow-alias", "0", "--workers", "2", env=_env(reg))

    def logged() -> set[str]:
        with sqlite3.connect(reg.root / ".aidevops" / "deploy.db") as conn:
            ids = [r[0] for r in conn.execute("SELECT request_id FROM request_log")]
        return {i.rsplit("-", 1)[0] for i in ids}

    try:
        first = _wait_for(lambda: len(_workers_of(server.proc.pid)) == 2 and _workers_of(server.proc.pid))
        seen_before = {_predict(server.url) for _ in range(10)}
        # a kill -9 loses what a worker had not yet written: wait until the answers so far are in the log
        _wait_for(lambda: seen_before <= logged(), 30)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        # the listening socket stays open in the parent and the survivor: no request fails meanwhile
        for _ in range(20):
            _predict(server.url)
        replaced = _wait_for(lambda: (w := _workers_of(server.proc.pid)) - first and len(w) == 2 and w)
        assert victim not in replaced
        survivor = (first - {victim}).pop()
        # once the new worker serves (it starts after the kill), stop the survivor too: only the new one answers
        _wait_for(lambda: httpx.get(server.url + "/ping", timeout=5).status_code == 200)
        time.sleep(3.0)  # the replacement loads its model before it accepts
        os.kill(survivor, signal.SIGKILL)
        prefixes_after = {_predict(server.url) for _ in range(5)}
        assert prefixes_after - seen_before, "a worker started after the kill answers"
        assert server.proc.poll() is None
        # one deploy.db: the workers before the kill and the one started after it all logged there
        _wait_for(lambda: (seen_before | prefixes_after) <= logged(), 30)
    finally:
        stop_server(server)
    assert server.proc.returncode == 0
    assert not any(os.path.exists(f"/proc/{pid}") for pid in replaced), "the workers end with the server"


@pytest.mark.parametrize(
    ("extra", "env_extra", "says"),
    [
        (["--grpc-port", "1"], {}, "give --workers 1 with it"),
        ([], {"AIDEVOPS_SERVING_ADMIN_TOKEN": "t"}, "or use `aidevops deploy NAME --workers N`"),
    ],
)
def test_workers_refuse_what_one_process_serves(reg, extra, env_extra, says):
    env = {**_env(reg), **env_extra}
    cmd = [sys.executable, "-m", "aidevops_ext.serving", "models:/abc@champion", "--port", "0", "--workers", "2"]
    proc = subprocess.run([*cmd, *extra], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert says in proc.stderr


def test_zero_workers_is_one_sentence(reg):
    cmd = [sys.executable, "-m", "aidevops_ext.serving", "models:/abc@champion", "--port", "0", "--workers", "0"]
    proc = subprocess.run(cmd, env=_env(reg), cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "--workers 0 is not a number of processes" in proc.stderr


def _requests_total(text: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name == "aidevops_requests":
            total += sum(s.value for s in family.samples if s.name == "aidevops_requests_total")
    return total


def test_metrics_of_any_worker_count_every_workers_requests(reg):
    server = start_server(reg, "models:/abc@champion", "--follow-alias", "0", "--workers", "2", env=_env(reg))
    try:
        _wait_for(lambda: len(_workers_of(server.proc.pid)) == 2)
        time.sleep(3.0)  # the second worker loads its model before it accepts
        prefixes: list[str] = []
        while len(set(prefixes)) < 2 or len(prefixes) < 20:  # until both workers answered some (new connections)
            prefixes.append(_predict(server.url))
            assert len(prefixes) < 2000, "one worker never accepted"
        time.sleep(2.5)  # each worker writes its samples every second
        scrapes = [httpx.get(server.url + "/metrics", timeout=30).text for _ in range(6)]
    finally:
        stop_server(server)
    counted = {_requests_total(text) for text in scrapes}
    assert counted == {float(len(prefixes))}, "every scrape counts both workers' requests, whichever answers it"
