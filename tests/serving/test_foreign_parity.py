"""Serving a foreign model as MLflow would: one corpus of requests to our server and to `mlflow models serve`.

Both serve the same registered scikit-learn pipeline (numeric + text-category columns, missing values
handled by the model). Every request must get the same class of answer (2xx vs 4xx) from both, and the
same predictions where both answer: nulls in numeric columns, ints in double columns, strings and
numbers in category columns, missing and extra columns, wrong types, each payload key, NaN literals.
"""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest

from tests.serving.conftest import ADMIN_TOKEN, server_env, start_server, stop_server
from tests.serving.tabular import COLUMNS, NAME, register
from tests.support.servers import free_port, stop_process, wait_until_answering
from tests.support.store import mlflow_serve_command

ROWS = [[48.5, 30.0, "paris", "pro"], [61.0, 45.0, "nice", "basic"]]


def _split(rows, columns=COLUMNS) -> dict:
    return {"dataframe_split": {"columns": columns, "data": rows}}


def _records(rows, columns=COLUMNS) -> list[dict]:
    return [dict(zip(columns, r)) for r in rows]


CORPUS: dict[str, bytes] = {
    name: json.dumps(body).encode()
    for name, body in {
        "split": _split(ROWS),
        "split null in an optional numeric column": _split([[None, 30.0, "paris", "pro"], ROWS[1]]),
        "split null in a required numeric column": _split([[48.5, None, "paris", "pro"], ROWS[1]]),
        "split null in a category column": _split([[48.5, 30.0, None, "pro"], ROWS[1]]),
        "split ints in double columns": _split([[48, 30, "paris", "pro"], [61, 45, "nice", "basic"]]),
        "split a number in a category column": _split([[48.5, 30.0, 5, "pro"], ROWS[1]]),
        "split a category never trained on": _split([[48.5, 30.0, "tokyo", "pro"], ROWS[1]]),
        "split a boolean in a double column": _split([[True, 30.0, "paris", "pro"], ROWS[1]]),
        "split a word in a double column": _split([["abc", 30.0, "paris", "pro"], ROWS[1]]),
        "split a numeric string in a double column": _split([["50.5", 30.0, "paris", "pro"], ROWS[1]]),
        "split a list in a double column": _split([[[1.0], 30.0, "paris", "pro"], ROWS[1]]),
        "split missing a required column": _split([r[:3] for r in ROWS], COLUMNS[:3]),
        "split missing the optional column": _split([r[1:] for r in ROWS], COLUMNS[1:]),
        "split an extra column": _split([r + [1] for r in ROWS], COLUMNS + ["extra"]),
        "split columns reordered": _split([r[::-1] for r in ROWS], COLUMNS[::-1]),
        "split without columns": {"dataframe_split": {"data": ROWS}},
        "split data not a list": {"dataframe_split": {"columns": COLUMNS, "data": 5}},
        "split no rows": _split([]),
        "records": {"dataframe_records": _records(ROWS)},
        "records with a null": {"dataframe_records": _records([[None, 30.0, "paris", "pro"], ROWS[1]])},
        "records missing a key": {"dataframe_records": [{"income": 1.0, "age": 2.0, "city": "paris"}]},
        "records an extra key": {"dataframe_records": [dict(_records(ROWS)[0], extra="x")]},
        "records not a list": {"dataframe_records": "abc"},
        "instances as records": {"instances": _records(ROWS)},
        "instances with a null": {"instances": _records([[None, 30.0, "paris", "pro"], ROWS[1]])},
        "instances as bare rows": {"instances": ROWS},
        "inputs as records": {"inputs": _records(ROWS)},
        "inputs as columns": {"inputs": {c: [r[i] for r in ROWS] for i, c in enumerate(COLUMNS)}},
        "inputs as columns with a null": {
            "inputs": {"income": [None, 1.0], "age": [1.0, 2.0], "city": ["paris", "nice"], "plan": ["pro", "pro"]}
        },
        "inputs as bare rows": {"inputs": ROWS},
        "two payload keys": {"inputs": ROWS, "instances": ROWS},
        "no payload key": {"data": ROWS},
        "a list, not an object": [1, 2],
    }.items()
}
CORPUS["a NaN literal, as MLflow's own serving example writes it"] = (
    b'{"dataframe_split": {"columns": ["income", "age", "city", "plan"], "data": [[NaN, 30.0, "paris", "pro"]]}}'
)
CORPUS["truncated JSON"] = b'{"dataframe_split": '
CSV = {  # text/csv bodies, as pandas' to_csv writes them: an empty cell is a missing value
    "csv": b"income,age,city,plan\n48.5,30,paris,pro\n61,45,nice,basic\n",
    "csv an empty numeric cell": b"income,age,city,plan\n,30,paris,pro\n",
    "csv a word in a numeric column": b"income,age,city,plan\nabc,30,paris,pro\n",
    "csv missing a column": b"income,age,city\n48.5,30,paris\n",
}


def _mlflow_server(reg, version: str):
    """`mlflow models serve` on the same registered version, from the same registry, on 127.0.0.1."""
    port = free_port()
    env = server_env(reg, MLFLOW_TRACKING_URI=reg.ws.tracking_uri, MLFLOW_REGISTRY_URI=reg.ws.registry_uri)
    log = reg.root / f"mlflow-serve-{port}.log"
    proc = subprocess.Popen(
        mlflow_serve_command(f"models:/{NAME}/{version}", port),
        cwd=reg.root,
        env=env,
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_answering(url + "/ping", proc, log, seconds=120, what="mlflow models serve")
    return proc, url


@pytest.fixture(scope="module")
def peers(reg):
    version = register(reg)
    ours = start_server(reg, f"models:/{NAME}/{version}", "--follow-alias", "0")
    proc = None
    try:
        proc, mlflow_url = _mlflow_server(reg, version)
        yield ours.url, mlflow_url
    finally:
        stop_server(ours)
        if proc is not None:
            stop_process(proc)


def _answer(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, object]:
    r = httpx.post(url + "/invocations", content=body, headers={"Content-Type": content_type}, timeout=60)
    return r.status_code, (r.json().get("predictions") if r.status_code == 200 else r.text[:300])


def test_every_request_of_the_corpus_gets_mlflows_answer(peers):
    ours, theirs = peers
    differ = []
    for name, body in CORPUS.items():
        (s1, p1), (s2, p2) = _answer(ours, body), _answer(theirs, body)
        if s1 // 100 != s2 // 100 or (s1 == 200 and p1 != p2):
            differ.append(f"{name}: ours {s1} {p1!r} | mlflow {s2} {p2!r}")
    for name, body in CSV.items():
        (s1, p1), (s2, p2) = _answer(ours, body, "text/csv"), _answer(theirs, body, "text/csv")
        if s1 // 100 != s2 // 100 or (s1 == 200 and p1 != p2):
            differ.append(f"{name}: ours {s1} {p1!r} | mlflow {s2} {p2!r}")
    assert not differ, "\n".join(differ)


def test_the_corpus_holds_both_answers(peers):
    """Guards the parity test itself: a corpus all refused (or all accepted) would prove little."""
    ours, _ = peers
    codes = {name: _answer(ours, body)[0] for name, body in CORPUS.items()}
    assert codes["split null in an optional numeric column"] == 200  # the 400 "takes numbers but got null"
    assert codes["a NaN literal, as MLflow's own serving example writes it"] == 200
    assert codes["split a word in a double column"] == 400 and codes["split missing a required column"] == 400
    assert 8 <= sum(c == 400 for c in codes.values()) <= len(codes) - 15
    assert _answer(ours, CSV["csv an empty numeric cell"], "text/csv")[0] == 200
    assert _answer(ours, CSV["csv missing a column"], "text/csv")[0] == 400


def test_the_printed_try_it_command_scores_the_model_in_a_shell(peers):
    """The deploy command's curl line, built from the served model's input example, run as a user would paste it
    (with a quote in a category value, which the shell's '...' must survive)."""
    import shutil
    from types import SimpleNamespace

    from aidevops_ext.deploy.manager import curl_example

    if shutil.which("curl") is None:
        pytest.skip("curl is not installed on this machine")
    ours, _ = peers
    admin = httpx.get(ours + "/admin/slots", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30)
    assert admin.status_code == 200, admin.text
    body = admin.json()["active"]["example"]
    assert body["dataframe_split"]["columns"] == COLUMNS and len(body["dataframe_split"]["data"]) == 1
    line = curl_example(SimpleNamespace(url=ours), body=body)
    out = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and len(json.loads(out.stdout)["predictions"]) == 1, out.stdout + out.stderr
    body["dataframe_split"]["data"][0][2] = "l'isle"
    out = subprocess.run(
        ["bash", "-c", curl_example(SimpleNamespace(url=ours), body=body)], capture_output=True, text=True, timeout=60
    )
    assert len(json.loads(out.stdout)["predictions"]) == 1, out.stdout + out.stderr
