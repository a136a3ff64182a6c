"""The REST API's handlers in process: authentication, XSRF, one-sentence 4xx answers by error class, and the
views over a workspace's run records and jobs."""

from __future__ import annotations

import json

import pytest
from tornado.httpclient import HTTPClientError

from aidevops_ext.pipeline.records import RunRecord
from aidevops_ext.routes import ROUTES


async def _call(jp_fetch, path: str, method: str = "GET", body: object = None, **kwargs):
    """(status, JSON answer) of /aidevops/api/PATH; a 4xx comes back as its answer instead of raising."""
    if body is not None:
        kwargs["body"] = body if isinstance(body, (bytes, str)) else json.dumps(body)
    elif method == "POST":
        kwargs["body"] = "{}"
    path, _, query = path.partition("?")
    if query:
        kwargs["params"] = dict(pair.split("=", 1) for pair in query.split("&"))
    try:
        response = await jp_fetch("aidevops", "api", *path.split("/"), method=method, **kwargs)
    except HTTPClientError as exc:
        return exc.code, json.loads(exc.response.body)
    return response.code, json.loads(response.body)


def _concrete(pattern: str) -> str:
    return (
        pattern.lstrip("/")
        .replace("(?P<name>[^/]+)", "nope")
        .replace("(?P<run_id>[^/]+)", "nope")
        .replace("(?P<step>[^/]+)", "train")
        .replace("(?P<job_id>[^/]+)", "nope")
    )


VERBS = [
    (pattern, verb.upper())
    for pattern, handler in ROUTES
    for verb in ("get", "post", "delete")
    if verb in vars(handler)
]


@pytest.mark.parametrize(("pattern", "method"), VERBS)
async def test_every_route_and_verb_refuses_a_request_without_credentials(jp_fetch, pattern, method):
    with pytest.raises(HTTPClientError) as refused:
        await jp_fetch(
            "aidevops",
            "api",
            *_concrete(pattern).split("/"),
            method=method,
            body="{}" if method == "POST" else None,
            headers={"Authorization": ""},
        )
    assert refused.value.code == 403


async def test_a_post_without_token_or_xsrf_is_refused_before_the_core_runs(jp_fetch):
    with pytest.raises(HTTPClientError) as refused:
        await jp_fetch(
            "aidevops",
            "api",
            "deployments",
            method="POST",
            body=json.dumps({"model": "m", "alias": "a"}),
            headers={"Authorization": "", "Cookie": "_xsrf=abc"},
        )
    assert refused.value.code == 403


async def test_a_fresh_workspace_lists_no_deployments_runs_or_jobs(jp_fetch):
    assert await _call(jp_fetch, "deployments") == (200, {"deployments": []})
    assert await _call(jp_fetch, "runs") == (200, {"runs": []})
    assert await _call(jp_fetch, "jobs") == (200, {"jobs": []})


@pytest.mark.parametrize(
    ("method", "path", "status", "needle"),
    [
        ("GET", "deployments/nope", 404, "There is no deployment named 'nope'"),
        ("GET", "deployments/nope/history", 404, "There is no deployment named 'nope'"),
        ("POST", "deployments/nope/promote", 404, "There is no deployment named 'nope'"),
        ("GET", "runs/nope", 404, "There is no pipeline run 'nope'"),
        ("GET", "runs/latest", 404, "There is no pipeline run 'latest'"),
        ("GET", "jobs/nope", 404, "there is no job 'nope'"),
        ("GET", "jobs/..%2F..%2Fetc", 400, "is not valid"),
        ("GET", "runs?limit=abc", 400, "'limit' must be a whole number"),
        ("POST", "deployments/nope/canary", 400, "Field 'share' is missing"),
        ("POST", "runs", 400, "Field 'pipeline' is missing"),
    ],
)
async def test_bad_requests_get_one_sentence_with_the_status_of_their_error_class(
    jp_fetch, method, path, status, needle
):
    body = {"version": "2"} if path.endswith("canary") else None
    got, answer = await _call(jp_fetch, path, method, body)
    assert got == status and set(answer) == {"error"} and needle in answer["error"], answer
    assert answer["error"].endswith((".", ")"))


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"\xff\xfe"])
async def test_a_body_that_is_not_a_json_object_is_400(jp_fetch, raw):
    status, answer = await _call(jp_fetch, "deployments", "POST", raw)
    assert status == 400 and "JSON" in answer["error"]


async def test_runs_show_the_workspace_records_newest_first_and_one_by_exact_id(jp_fetch, workspace):
    for run_id, status in (("20261201-100000-000-aaaaaa", "succeeded"), ("20261202-100000-000-bbbbbb", "failed")):
        folder = workspace / ".aidevops" / "runs" / "ci" / run_id
        folder.mkdir(parents=True)
        RunRecord(
            folder,
            {
                "run_id": run_id,
                "pipeline": "ci",
                "status": status,
                "params": {"seed": 1},
                "steps": {"prepare": {"status": "ran"}},
            },
        ).save()
    status, answer = await _call(jp_fetch, "runs")
    assert status == 200
    assert [(r["run_id"], r["status"]) for r in answer["runs"]] == [
        ("20261202-100000-000-bbbbbb", "failed"),
        ("20261201-100000-000-aaaaaa", "succeeded"),
    ]
    status, one = await _call(jp_fetch, "runs/20261201-100000-000-aaaaaa")
    assert status == 200 and one["run_id"] == "20261201-100000-000-aaaaaa" and one["params"] == {"seed": 1}
    status, answer = await _call(jp_fetch, "runs/20261201")  # a prefix is not an id: a link never changes meaning
    assert status == 404


def _job_record(workspace, job_id: str, **fields) -> None:
    folder = workspace / ".aidevops" / "jobs"
    folder.mkdir(parents=True, exist_ok=True)
    record = {
        "id": job_id,
        "kind": "run",
        "argv": ["run", "ci"],
        "started": 1.0,
        "status": "failed",
        "exit_code": 1,
        "finished": 2.0,
        **fields,
    }
    (folder / f"{job_id}.json").write_text(json.dumps(record))


async def test_a_job_record_naming_a_log_outside_the_jobs_folder_shows_no_log(jp_fetch, workspace, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("do not show\n")
    _job_record(workspace, "abc1", log=str(secret))
    own = workspace / ".aidevops" / "jobs" / "abc2.log"
    _job_record(workspace, "abc2", log=str(own))
    own.write_text("step prepare ran\n")
    status, job = await _call(jp_fetch, "jobs/abc1")
    assert status == 200 and job["log_tail"] == []
    status, job = await _call(jp_fetch, "jobs/abc2")
    assert status == 200 and job["log_tail"] == ["step prepare ran"]


async def test_a_damaged_job_record_is_one_sentence_and_the_listing_goes_on(jp_fetch, workspace):
    _job_record(workspace, "good1")
    (workspace / ".aidevops" / "jobs" / "bad1.json").write_text("{not json")
    status, answer = await _call(jp_fetch, "jobs/bad1")
    assert status == 400 and "bad1.json is not a readable job" in answer["error"]
    status, answer = await _call(jp_fetch, "jobs")
    assert status == 200 and [j["id"] for j in answer["jobs"]] == ["good1"]


async def test_an_executed_notebook_that_is_not_json_is_one_sentence_not_a_500(jp_fetch, workspace):
    run_id = "20261203-100000-000-cccccc"
    folder = workspace / ".aidevops" / "runs" / "ci" / run_id
    (folder / "train").mkdir(parents=True)
    (folder / "train" / "02_train.ipynb").write_bytes(b"\xff{ not a notebook")
    RunRecord(
        folder,
        {
            "run_id": run_id,
            "pipeline": "ci",
            "status": "failed",
            "params": {},
            "steps": {"train": {"status": "failed", "notebook": str(folder / "train" / "02_train.ipynb")}},
        },
    ).save()
    status, answer = await _call(jp_fetch, f"runs/{run_id}/notebooks/train")
    assert status == 400 and "not a readable notebook" in answer["error"]
