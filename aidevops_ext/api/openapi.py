"""The OpenAPI description of the panels' REST API, generated from the request and answer models.

`python -m aidevops_ext.api.openapi > aidevops_ext/openapi/aidevops-api.yaml` writes the committed file; a test
(tests/api/test_contract.py) fails when the file differs from what this prints, so the description cannot drift
from the rules the handlers apply. `OPERATIONS` is the one table of what each route and verb takes and answers.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from ..errors import ConfigError
from . import models as m

REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class Operation:
    """One verb of one route: what it takes (body, query) and answers (status: model or description)."""

    method: str
    path: str
    summary: str
    answers: dict[int, Any]
    errors: tuple[int, ...] = (400, 404)
    body: type[m.Request] | None = None  # required unless an empty body passes its rules
    query: type[m.Query] | None = None
    notes: dict[int, str] = field(default_factory=dict)


def _read(
    path: str,
    summary: str,
    answer: type[BaseModel],
    *,
    errors: tuple[int, ...] = (400, 404),
    query: type[m.Query] | None = None,
) -> Operation:
    """A GET answering `answer`."""
    return Operation("get", path, summary, {200: answer}, errors=errors, query=query)


def _change(
    verb: str,
    summary: str,
    *,
    body: type[m.Request] = m.ReasonRequest,
    errors: tuple[int, ...] = (400, 404, 409),
) -> Operation:
    """A POST that changes a running deployment and answers the history row it wrote."""
    return Operation("post", f"/deployments/{{name}}/{verb}", summary, {200: m.Change}, errors=errors, body=body)


def _start(path: str, summary: str, body: type[m.Request], *, errors: tuple[int, ...] = (400, 404)) -> Operation:
    """A POST that starts a background job and answers 202 with the job's id."""
    return Operation("post", path, summary, {202: m.JobStarted}, errors=errors, body=body)


OPERATIONS: list[Operation] = [
    _read(
        "/models",
        "Registered models with versions, aliases, metrics, gate decisions and lineage.",
        m.Models,
        errors=(400,),
    ),
    _read("/models/{name}", "One registered model.", m.Model),
    _read(
        "/deployments",
        "Every deployment with live health, endpoint, slots and recent history.",
        m.Deployments,
        errors=(),
    ),
    Operation(
        "post",
        "/deployments",
        "Deploy a model version locally (a running deployment of that name switches to it, zero downtime).",
        {201: m.DeployResult, 200: m.DeployResult},
        errors=(400, 404, 409, 422),
        body=m.DeployRequest,
        notes={201: "Started.", 200: "Switched or unchanged."},
    ),
    _read("/deployments/{name}", "One deployment.", m.Deployment),
    Operation(
        "delete",
        "/deployments/{name}",
        "Undeploy (stop its server; the history stays).",
        {200: m.Undeployed},
        query=m.UndeployQuery,
    ),
    _change("promote", "Make the canary the active version (the old active is kept as previous)."),
    _change("rollback", "Swap the active and previous versions (no downtime)."),
    _change(
        "canary",
        "Send a share of traffic to a version (checked like a switch), change the share, or clear the canary.",
        body=m.CanaryRequest,
        errors=(400, 404, 409, 422),
    ),
    _change(
        "shadow",
        "Mirror live traffic to a version after each answer is sent (its answers are logged beside the active "
        "version's; the monitor shows agreement and accuracies), or stop.",
        body=m.ShadowRequest,
        errors=(400, 404, 409, 422),
    ),
    _change(
        "approve",
        "Switch to the retrained version that awaits approval (`promote: manual`) and make it champion.",
        errors=(400, 404, 409, 422),
    ),
    _change("reject", "Drop the retrained version that awaits approval; the deployment keeps serving its version."),
    _read("/deployments/{name}/history", "The deployment's changes, newest first.", m.History, query=m.HistoryQuery),
    _read(
        "/deployments/{name}/monitor",
        "The live monitor's latest pass (drift per feature, prediction "
        "drift, live quality, request stats, alert states) and recent alert events.",
        m.MonitorSummary,
        errors=(400, 404, 409),
        query=m.MonitorQuery,
    ),
    _read(
        "/deployments/{name}/series",
        "Time series for charts over the last minutes (request rate, latency "
        "percentiles, error rate; live accuracy with its interval; prediction distribution against the "
        "reference).",
        m.Series,
        query=m.SeriesQuery,
    ),
    _read(
        "/deployments/{name}/alerts",
        "Each alert rule's state and the recent fired/resolved events "
        "(newest first); answers for a stopped deployment too.",
        m.Alerts,
        query=m.AlertsQuery,
    ),
    _start(
        "/deployments/{name}/retrain",
        "Start a retraining in the background (the pipeline to register, on labelled live rows when its spec "
        "opts in; the gate; a pass is switched in, or awaits approval under promote: manual).",
        m.ReasonRequest,
    ),
    _read("/runs", "Pipeline runs, newest first.", m.Runs, errors=(400,), query=m.RunsQuery),
    _start(
        "/runs",
        "Start a pipeline run in the background with param overrides (checked before anything starts).",
        m.RunRequest,
        errors=(400,),
    ),
    _read("/runs/{run_id}", "One run by its exact id, with params, git state and notebooks.", m.Run),
    _read(
        "/runs/{run_id}/notebooks/{step}",
        "A step's executed notebook as a read-only Jupyter contents model (type notebook, format json).",
        m.NotebookContents,
        query=m.NotebookQuery,
    ),
    _start(
        "/runs/{run_id}/rerun",
        "Run a run's pipeline again with its overrides (or the given ones); "
        "unchanged steps come from the cache, so a failed run resumes at its failed step.",
        m.RerunRequest,
    ),
    _read(
        "/jobs",
        "Background jobs (pipeline runs and retrainings started here), newest first.",
        m.Jobs,
        errors=(400,),
        query=m.JobsQuery,
    ),
    _read("/jobs/{job_id}", "One job with the tail of its output and the pipeline run it produced.", m.JobDetail),
    _read(
        "/diff",
        "Where nbdime's diff page finds one step's executed notebooks of two runs, and the params that differ.",
        m.Diff,
        query=m.DiffQuery,
    ),
    _read(
        "/schedules",
        "Pipeline schedules (aidevops schedule add) with their next and last run.",
        m.Schedules,
        errors=(400,),
    ),
]

DESCRIPTION = """\
REST API of the aidevops Jupyter server extension (aidevops_ext/routes.py), under the Jupyter server's base URL.
Generated from aidevops_ext/api/models.py by `python -m aidevops_ext.api.openapi`; do not edit by hand.
Every operation needs an authenticated Jupyter user (token or login cookie); POST and DELETE from a
cookie-authenticated client also need the `X-XSRFToken` header (Jupyter server's XSRF protection).
Errors a user can cause answer 4xx with `{"error": "<one sentence>"}`: 400 bad input, 404 unknown
model/deployment/run/job, 409 deployment not running, 422 model version refused (failed to load, smoke test
or prediction check).
"""


def _untitled(schema: Any) -> Any:
    """Drop pydantic's generated titles (noise in a description readers scan), keeping properties named 'title'."""
    if isinstance(schema, list):
        return [_untitled(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    return {
        k: ({p: _untitled(s) for p, s in v.items()} if k == "properties" else _untitled(v))
        for k, v in schema.items()
        if not (k == "title" and isinstance(v, str))
    }


def _schemas() -> dict[str, Any]:
    found: list[type[BaseModel]] = [m.Error]
    for op in OPERATIONS:
        found += [a for a in op.answers.values() if isinstance(a, type)] + ([op.body] if op.body else [])
    unique = list(dict.fromkeys(found))
    _, defs = models_json_schema([(model, "validation") for model in unique], ref_template=REF)
    return _untitled(dict(sorted(defs["$defs"].items())))


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _query(model: type[m.Query]) -> list[dict[str, Any]]:
    schema = _untitled(model.model_json_schema())
    out = []
    for name, prop in schema.get("properties", {}).items():
        param = {"name": name, "in": "query", "schema": {k: v for k, v in prop.items() if k != "description"}}
        if "description" in prop:
            param["description"] = prop["description"]
        out.append(param)
    return out


def _requires_body(model: type[m.Request]) -> bool:
    """Whether a client must send a body: an empty one breaks the model's rules (the handlers read none as {})."""
    try:
        model.from_body(b"")
    except ConfigError:
        return True
    return False


def _operation(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {"summary": op.summary}
    params = [
        {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
        for p in ("name", "run_id", "step", "job_id")
        if "{" + p + "}" in op.path
    ]
    params += _query(op.query) if op.query else []
    if params:
        out["parameters"] = params
    if op.body is not None:
        required = _requires_body(op.body)
        out["requestBody"] = {"required": required, "content": {"application/json": {"schema": _ref(op.body)}}}
    responses: dict[str, Any] = {}
    for status, answer in op.answers.items():
        doc = op.notes.get(status) or (answer.__doc__ or "").strip().split("\n")[0] or "OK."
        responses[str(status)] = {"description": doc, "content": {"application/json": {"schema": _ref(answer)}}}
    for status in op.errors:
        responses[str(status)] = {"$ref": "#/components/responses/Error"}
    out["responses"] = responses
    return out


def spec() -> dict[str, Any]:
    """The OpenAPI 3.1 document as a dict."""
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "aidevops panels API (Deploy, Monitor, Runs)",
            "version": "0.1.0",
            "description": DESCRIPTION,
        },
        "servers": [{"url": "/aidevops/api"}],
        "security": [{"jupyterToken": []}, {"jupyterCookie": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "jupyterToken": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "token <jupyter token>",
                },
                "jupyterCookie": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "username-<host>-<port>",
                    "description": "Jupyter login cookie; POST/DELETE also need X-XSRFToken.",
                },
            },
            "responses": {
                "Error": {
                    "description": "A user-caused problem, in one sentence naming it and the fix.",
                    "content": {"application/json": {"schema": _ref(m.Error)}},
                }
            },
            "schemas": _schemas(),
        },
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line text as a `|` block, so the description reads as written."""


_Dumper.add_representer(
    str,
    lambda dumper, text: dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None),
)


def render() -> str:
    """The YAML text of the committed file."""
    return (
        "# Generated by `python -m aidevops_ext.api.openapi` from aidevops_ext/api/models.py; do not edit.\n"
        + yaml.dump(spec(), Dumper=_Dumper, sort_keys=False, width=110, allow_unicode=True)
    )


if __name__ == "__main__":
    sys.stdout.write(render())
