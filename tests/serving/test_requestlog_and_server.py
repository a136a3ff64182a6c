"""The request log in deploy.db, feedback, metrics, and the serve entry point (port in use, bad URIs)."""

from __future__ import annotations

import fcntl
import os
import socket
import sqlite3
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient

from aidevops_ext.serving import ServingConfig
from aidevops_ext.serving.livedata import read_window
from aidevops_ext.serving.requestlog import RequestLog
from tests.serving.conftest import FEEDBACK_AUTH, RunningServer, server_env, stop_server
from tests.support.servers import free_port, wait_until_answering


def _rows(db, sql: str, *args):
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def test_requests_and_feedback_are_logged(app_factory, tmp_path, reg):
    db = tmp_path / "deploy.db"
    app = app_factory(db=db, log_flush_seconds=0.05)
    X = np.array([[0.1, 1.0, 10.0], [1.0, -2.0, 3.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    with TestClient(app, headers=FEEDBACK_AUTH) as c:
        ok = c.post("/invocations", json={"inputs": X.tolist()}, headers={"X-Request-ID": "req-1"})
        rid = ok.headers["x-request-id"]  # the server's id, not the client's
        assert ok.status_code == 200 and rid != "req-1" and ok.json()["request_id"] == rid
        bad = c.post("/invocations", json={"inputs": [[1, True, 3]]})
        assert bad.status_code == 400, bad.text
        oip = c.post(
            "/v2/models/abc/infer",
            json={"id": "oip-7", "inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]},
        )
        oip_rid = oip.headers["x-request-id"]
        assert oip.json()["id"] == "oip-7" and oip_rid not in ("oip-7", rid)  # the client's id echoed, not logged
        assert c.post("/feedback", json={"request_id": rid, "labels": [0, 1, 2]}).json() == {
            "accepted": 3,
            "refused": 0,
        }
        mixed = c.post(
            "/feedback",
            json=[
                {"request_id": oip_rid, "label": "2"},
                {"request_id": "oip-7", "label": 1},  # the client's id keys nothing
                {"request_id": bad.headers["x-request-id"], "label": 1},  # refused requests take no labels
                {"request_id": oip_rid, "label": 1.5, "row": 4},  # past its one row
                {"request_id": rid, "label": 2, "row": 1},  # labelled already: the first label stays
            ],
        )
        assert mixed.status_code == 200 and mixed.json()["accepted"] == 1 and mixed.json()["refused"] == 4
        assert "2 name a request id" in mixed.json()["refused_reason"]
        assert c.post("/feedback", json={"request_id": rid}).status_code == 400
        assert c.post("/feedback", json={"request_id": "a b", "label": 1}).status_code == 400
        assert c.post("/feedback", json={"request_id": "r", "label": {"x": 1}}).status_code == 400
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(_rows(db, "SELECT 1 FROM request_log")) < 3:
            time.sleep(0.05)
        metrics = c.get("/metrics").text
    rows = _rows(
        db,
        "SELECT request_id, model, version, alias, protocol, status, n_rows, n_features, input_rows, "
        "row_step, inputs, predictions, error, latency_ms FROM request_log ORDER BY id",
    )
    assert len(rows) == 3
    first = rows[0]
    assert first[:10] == (rid, "abc", "1", "champion", "mlflow", 200, 3, 3, 3, 1)
    np.testing.assert_array_equal(np.frombuffer(first[10], dtype="<f4").reshape(3, 3), X)
    assert first[11] == str(ok.json()["predictions"]).replace(" ", "") and first[12] is None and first[13] > 0
    assert rows[1][5] == 400 and "boolean" in rows[1][12] and rows[1][10] is None
    assert rows[2][0] == oip_rid and rows[2][4] == "oip"
    feedback = _rows(db, "SELECT request_id, row, label FROM feedback ORDER BY id")
    assert feedback == [(rid, 0, "0"), (rid, 1, "1"), (rid, 2, "2"), (oip_rid, 0, '"2"')]
    assert _rows(db, "PRAGMA journal_mode")[0][0] == "wal"
    assert "aidevops_requestlog_written_total 3.0" in metrics and "aidevops_feedback_labels_total 4.0" in metrics


def test_big_batches_log_a_strided_sample_of_rows(app_factory, tmp_path):
    db = tmp_path / "deploy.db"
    X = np.random.default_rng(0).normal(size=(1000, 3)).astype(np.float32)
    with TestClient(app_factory(db=db, log_flush_seconds=0.05, log_max_rows=100)) as c:
        preds = c.post("/invocations", json={"inputs": X.tolist()}).json()["predictions"]
    ((n_rows, input_rows, step, blob, logged),) = _rows(
        db, "SELECT n_rows, input_rows, row_step, inputs, predictions FROM request_log"
    )
    assert (n_rows, input_rows, step) == (1000, 100, 10)
    np.testing.assert_array_equal(np.frombuffer(blob, "<f4").reshape(100, 3), X[::10])
    assert len(eval(logged)) == 1000 and eval(logged) == preds


def test_a_full_queue_drops_and_counts_never_blocks():
    log = RequestLog(None, ServingConfig(log_queue_size=5))
    log.enabled = True  # no writer thread: the queue only fills
    admitted = sum(log.admit(time.perf_counter()) and (log.offer(("r",) * 11) or True) for _ in range(20))
    assert admitted == 5 and log.dropped == 15 and log.stats()["queued"] == 5


def test_sampling_and_per_second_cap():
    log = RequestLog(None, ServingConfig(log_sample_rate=0.0))
    log.enabled = True
    assert not any(log.admit(1.0) for _ in range(100)) and log.sampled_out == 100
    log = RequestLog(None, ServingConfig(log_max_per_second=10))
    log.enabled = True
    assert sum(log.admit(5.0) for _ in range(100)) == 10
    assert log.admit(6.5)  # a new second


def log_answered_then_refused(db, refused: int, rows_each: int) -> None:
    """30 answered requests of `rows_each` rows (ok-0 .. ok-29, each row's values its number), then `refused`
    refused ones (no-0 ..), newer than all of them, into deployment "web" of model m version 1."""
    log = RequestLog(db, ServingConfig())
    log.bind("web")
    entries = [(f"ok-{i}", 1.0 + i, "m", "1", None, "mlflow", 200, 1.0) for i in range(30)]
    entries += [(f"no-{i}", 100.0 + i, "m", "1", None, "mlflow", 400, 1.0) for i in range(refused)]
    for rid, *fields in entries:
        answered = rid.startswith("ok")
        X = np.full((rows_each, 3), float(rid.split("-")[1]), np.float32) if answered else None
        predictions = np.array([7, 8][:rows_each]) if answered else None
        log.offer((rid, *fields, X, predictions, None if answered else "bad"))
    log.flush()


def test_the_live_window_reaches_past_the_newest_requests_when_they_were_refused(tmp_path):
    db = tmp_path / "deploy.db"
    log_answered_then_refused(db, refused=25, rows_each=2)
    win = read_window(db, "m", "1", rows=20, deployment="web")  # the newest 20 requests hold no rows
    assert win.row_ids == [f"ok-{i}:{r}" for i in range(20, 30) for r in (0, 1)]
    assert win.rows[:, 0].tolist() == [float(i) for i in range(20, 30) for _ in (0, 1)]
    assert len(win.request_ts) == 35 and int(win.refused.sum()) == 25


def test_a_window_behind_hundreds_of_refused_requests_is_read_whole_through_a_shared_connection(tmp_path):
    """The follow-up reads after a window's first batch grow until they reach its rows; a caller's connection is
    read through and left open for its next read."""
    db = tmp_path / "deploy.db"
    log_answered_then_refused(db, refused=300, rows_each=1)
    conn = sqlite3.connect(db)
    try:
        win = read_window(db, "m", "1", rows=20, deployment="web", conn=conn)
        assert conn.execute("SELECT count(*) FROM request_log").fetchone() == (330,)  # still open
    finally:
        conn.close()
    assert win.row_ids == [f"ok-{i}:0" for i in range(10, 30)]
    assert win.prediction_ids == win.row_ids and win.predictions == [7] * 20
    assert len(win.request_ts) == 320 and int(win.refused.sum()) == 300


def test_unwritable_log_disables_logging_but_serving_goes_on(app_factory, tmp_path, caplog):
    blocker = tmp_path / "file"  # deploy.db's folder is a file: the log cannot be created (even by root)
    blocker.write_text("x")
    app = app_factory(db=blocker / "deploy.db", log_flush_seconds=0.05)
    requestlog = app.state.server.requestlog
    with caplog.at_level("WARNING", logger="aidevops.serving"), TestClient(app) as c:
        for _ in range(5):
            assert c.post("/invocations", json={"inputs": [[1, 2, 3]]}).status_code == 200
        metrics = c.get("/metrics").text
    # Nothing was logged: no request was queued or written, the counters say so, and no file appeared.
    assert not requestlog.enabled
    assert requestlog.stats() == {"written": 0, "dropped": 0, "sampled_out": 0, "queued": 0}
    assert "aidevops_requestlog_written_total 0.0" in metrics and "aidevops_requestlog_queue 0.0" in metrics
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["file"] and blocker.read_text() == "x"
    disabled = [r.getMessage() for r in caplog.records if "Request log disabled" in r.getMessage()]
    assert len(disabled) == 1 and str(blocker / "deploy.db") in disabled[0], caplog.text


def test_metrics_are_labelled_and_per_app(client):
    client.post("/invocations", json={"inputs": [[1, 2, 3]]})
    client.post("/invocations", json={"inputs": [[1, 2]]})
    text = client.get("/metrics").text
    for needle in (
        'aidevops_requests_total{alias="champion",code="200",model="abc",protocol="mlflow",version="1"}',
        'aidevops_request_latency_seconds_bucket{alias="champion",le="+Inf",model="abc",protocol="mlflow",version="1"}',
        'aidevops_predictions_total{alias="champion",model="abc",protocol="mlflow",version="1"}',
        'aidevops_request_errors_total{alias="champion",kind="bad_input",model="abc",version="1"}',
        "aidevops_requestlog_dropped_total",
        "process_cpu_seconds_total",
    ):
        assert needle in text, needle
    from prometheus_client import REGISTRY

    assert REGISTRY.get_sample_value("aidevops_requests_total") is None  # never the global registry


def test_port_in_use_is_one_sentence_and_nonzero_exit(reg, server):
    proc = subprocess.run(
        [sys.executable, "-m", "aidevops_ext.serving", "models:/abc@champion", "--port", str(server.port)],
        env=server_env(reg),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert proc.stderr.strip() == (
        f"error: Port {server.port} on 127.0.0.1 is already in use; stop what is listening "
        "there or choose another port with --port."
    )


@pytest.mark.parametrize(
    "uri,needle", [("models:/nope@champion", "does not exist"), ("models:/abc/3", "NaN"), ("models:/abc", "malformed")]
)
def test_bad_model_uris_fail_before_serving(reg, uri, needle):
    proc = subprocess.run(
        [sys.executable, "-m", "aidevops_ext.serving", uri, "--port", str(free_port()), "--allow-pickle"],
        env=server_env(reg),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 2 and needle in proc.stderr and "Traceback" not in proc.stderr


def _listening(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket process `pid` listens on, from /proc (IPv4 and IPv6)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            hex_addr, hex_port = fields[1].split(":")
            raw = bytes.fromhex(hex_addr)
            # /proc prints the address as 32-bit words in host (little-endian) order
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.add((socket.inet_ntop(family, raw), int(hex_port, 16)))
    return found


def _other_local_addresses() -> list[str]:
    """IPv4 addresses of this machine other than 127.0.0.1: 127.0.0.2 (all of 127/8 is local on Linux) and
    each interface's own address."""
    addresses = ["127.0.0.2"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            try:  # SIOCGIFADDR: the interface's IPv4 address
                packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))
            except OSError:  # no IPv4 address on this interface
                continue
            address = socket.inet_ntoa(packed[20:24])
            if address not in addresses and address != "127.0.0.1":
                addresses.append(address)
    return addresses


def _connects(address: str, port: int) -> bool:
    """Whether a TCP connection to address:port is accepted."""
    try:
        with socket.create_connection((address, port), timeout=2):
            return True
    except OSError:
        return False


def test_serves_a_model_file_and_binds_loopback_by_default(reg):
    # Started by hand, not with start_server: that one passes --host 127.0.0.1, and the default is what is tested.
    port = free_port()
    log = reg.root / f"server-default-host-{port}.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "aidevops_ext.serving", str(reg.model_file), "--port", str(port), "--no-request-log"],
        cwd=reg.root,
        env=server_env(reg),
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
    )
    srv = RunningServer(proc, f"http://127.0.0.1:{port}", port, log)
    try:
        wait_until_answering(srv.url + "/ping", proc, log, seconds=90, what="the model server")
        assert _listening(proc.pid) == {("127.0.0.1", port)}
        others = _other_local_addresses()
        assert others and not [a for a in others if _connects(a, port)], f"reachable beyond loopback via {others}"
        with srv.client() as c:
            r = c.post("/invocations", json={"inputs": [[1, 2, 3]]})
            assert r.status_code == 200
            meta = c.get("/v2/models/abc").json()
            assert meta["versions"][0] and meta["inputs"][0]["shape"] == [-1, 3]
    finally:
        stop_server(srv)
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal so the exit status says why
    assert srv.proc.returncode in (0, -15)
    assert "Finished server process" in srv.log.read_text()
