"""The REST contract: the committed OpenAPI file is what the models generate, every routed verb is described, and
every hostile request the lab tests send is refused in process with the same sentence and nothing changed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aidevops_ext.api import openapi
from aidevops_ext.routes import ROUTES

COMMITTED = Path(openapi.__file__).resolve().parents[1] / "openapi" / "aidevops-api.yaml"


def test_the_committed_openapi_file_is_what_the_models_generate():
    assert COMMITTED.read_text() == openapi.render(), (
        "aidevops-api.yaml is stale: run `python -m aidevops_ext.api.openapi > aidevops_ext/openapi/aidevops-api.yaml`"
    )


def test_every_routed_verb_has_exactly_one_described_operation():
    routed = {
        (verb, re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", pattern))
        for pattern, handler in ROUTES
        for verb in ("get", "post", "delete")
        if any(verb in vars(c) for c in handler.__mro__[:-1] if c.__module__ == "aidevops_ext.routes")
    }
    described = [(op.method, op.path) for op in openapi.OPERATIONS]
    assert len(described) == len(set(described))
    assert set(described) == routed


# The hostile requests of tests/lab/test_api.py and test_monitor_api.py whose refusal is the request's own rules
# (so they need no registered model or pipeline run): the same needles, 400 before anything is looked up.
HOSTILE = [
    ("POST", "deployments", {}, "Field 'model' is missing"),
    ("POST", "deployments", {"model": "digits"}, "exactly one of 'alias'"),
    ("POST", "deployments", {"model": "digits", "alias": "champion", "version": "1"}, "exactly one of 'alias'"),
    ("POST", "deployments", {"model": "digits", "version": "0"}, "not a version number"),
    ("POST", "deployments", {"model": "digits", "version": True}, "not a version number"),
    ("POST", "deployments", {"model": "digits", "alias": "champion", "port": 80}, "Unknown field(s) port"),
    ("POST", "deployments", {"model": "$(rm -rf /)", "alias": "champion"}, "not a registered model's name"),
    ("POST", "deployments", {"model": "digits", "alias": "champion", "reason": "x" * 501}, "at most 500 characters"),
    ("POST", "deployments", {"model": "digits", "alias": "../x"}, "not an alias"),
    ("POST", "deployments/nope/canary", {"version": "2"}, "Field 'share' is missing"),
    ("POST", "deployments/nope/canary", {"version": "2", "share": 1.5}, "between 0 and 1"),
    ("POST", "deployments/nope/canary", {"version": "2", "share": True}, "between 0 and 1"),
    ("POST", "deployments/nope/canary", {"clear": True, "share": 0.1}, "'clear' takes no version or share"),
    ("POST", "deployments/nope/canary", {"clear": "yes"}, "must be true or false"),
    ("POST", "deployments/nope/promote", {"reason": 3}, "Field 'reason' must be text"),
    ("POST", "deployments/nope/rollback", {"why": "x"}, "Unknown field(s) why"),
    ("POST", "deployments/nope/retrain", {"rows": 5}, "Unknown field(s) rows"),
    ("POST", "runs", {}, "Field 'pipeline' is missing"),
    ("POST", "runs", {"pipeline": "../../etc/passwd"}, "which is not the name of a pipeline"),
    ("POST", "runs", {"pipeline": "ci", "params": [1, 2]}, "must be a JSON object of param names"),
    ("POST", "runs", {"pipeline": "ci", "force": True}, "Unknown field(s) force"),
    ("POST", "runs/nope/rerun", {"params": "epochs=3"}, "must be a JSON object of param names"),
    ("GET", "runs?limit=abc", None, "'limit' must be a whole number"),
    ("GET", "jobs?limit=501", None, "'limit' must be a whole number from 1 to 500"),
    ("GET", "deployments/nope/history?limit=0", None, "'limit' must be a whole number from 1 to 500"),
    ("GET", "deployments/nope/series?minutes=lots", None, "'minutes' must be a number"),
    ("GET", "deployments/nope/series?buckets=5.5", None, "'buckets' must be a whole number"),
    ("DELETE", "deployments/nope?reason=" + "x" * 501, None, "at most 500 characters"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "needle"), HOSTILE, ids=[f"{m} {p[:40]} {str(b)[:40]}" for m, p, b, _ in HOSTILE]
)
async def test_a_request_breaking_its_model_is_one_400_sentence_and_changes_nothing(api, method, path, body, needle):
    status, answer = await api(method, path, body)
    assert status == 400 and set(answer) == {"error"} and needle in answer["error"], answer
    assert answer["error"].endswith((".", ")")) and "pydantic" not in answer["error"] and "\n" not in answer["error"]
    assert await api("GET", "deployments") == (200, {"deployments": []})
    assert await api("GET", "jobs") == (200, {"jobs": []})


async def test_a_request_that_keeps_the_rules_reaches_the_core(api):
    # Past the model, the core answers: no such deployment (404), no such pipeline spec (400 naming it).
    assert (await api("POST", "deployments/nope/canary", {"version": 2, "share": 0.1}))[0] == 404
    assert (await api("POST", "deployments/nope/canary", {"clear": True, "reason": None}))[0] == 404
    status, answer = await api("POST", "runs", {"pipeline": "ci", "params": {"epochs": 2}})
    assert status == 400 and "pipeline spec 'ci' not found" in answer["error"], answer
    assert await api("GET", "runs?limit=7&pipeline=") == (200, {"runs": []})
