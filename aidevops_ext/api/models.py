"""The Jupyter REST API's contract: one pydantic model per request body, query and answer (docs/architecture.md).

Each rule a request must follow is written once, here: the handlers (aidevops_ext/routes.py) parse with these
models, the core's shared checks (`manager.canary`) use the same model, and the OpenAPI file is generated from
them (`python -m aidevops_ext.api.openapi`). A refused request becomes one ConfigError sentence naming the field
and the fix: each field carries its sentences in a `Rule` beside its type, and `Request.parse` turns pydantic's
ValidationError into that sentence (pydantic's own wording never reaches a user).

Answers are described, not enforced: the views build plain dicts and these models are their documented shape
(extra keys allowed), which the schemathesis test checks the live answers against.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from typing_extensions import Self

from ..deploy.observe import MAX_MINUTES
from ..errors import ConfigError
from ..monitoring.series import MAX_BUCKETS

MAX_REASON = 500
MAX_LIMIT = 500
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\- ]{0,127}$"  # registered model names as MLflow users write them
ALIAS_PATTERN = r"^[A-Za-z_][A-Za-z0-9_\-]{0,62}$"
VERSION_PATTERN = r"^[1-9][0-9]{0,8}$"
PIPELINE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,127}$"


class Rule:
    """The sentences a field's refusal says: `missing` when absent, `bad` (with {value}, and {key} for the field's
    name) when wrong."""

    def __init__(self, *, bad: str, missing: str = "") -> None:
        self.bad = bad
        self.missing = missing


def text_rule(key: str, what: str) -> Rule:
    return Rule(
        missing=f"Field '{key}' is missing; give {what}.",
        bad=f"Field '{key}' has the value {{value}}, which is not {what}.",
    )


def refuse(sentence: str) -> PydanticCustomError:
    """A whole-request refusal from a model validator, kept word for word (the sentence may hold braces)."""
    return PydanticCustomError("aidevops", "{sentence}", {"sentence": sentence})


# --------------------------------------------------------------------------- requests


class Request(BaseModel):
    """A request body: unknown fields are refused (a typo must not be silently ignored); null or "" is absent."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    where: ClassVar[str] = "Field"  # how a sentence names one of its fields

    @model_validator(mode="before")
    @classmethod
    def _absent(cls, data: Any) -> Any:
        return {k: v for k, v in data.items() if v is not None and v != ""} if isinstance(data, dict) else data

    @classmethod
    def parse(cls, data: Any) -> Self:
        """The checked request, or ConfigError with one sentence (HTTP 400)."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(cls.sentence(exc, data)) from None

    @classmethod
    def from_body(cls, raw: bytes) -> Self:
        """Parse an HTTP body ({} when empty): JSON, an object, then the model's rules."""
        data: Any = {}
        if raw and raw.strip():
            try:
                data = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                raise ConfigError(
                    'The request body is not valid JSON; send a JSON object such as {"reason": "..."}.'
                ) from None
        if not isinstance(data, dict):
            raise ConfigError('The request body must be a JSON object, e.g. {"reason": "..."}.')
        return cls.parse(data)

    @classmethod
    def sentence(cls, exc: ValidationError, data: Any) -> str:
        """pydantic's errors as the project's one sentence: unknown fields first, then the first problem."""
        errors = exc.errors()
        extra = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden")
        if extra:
            takes = ", ".join(cls.model_fields) or "no fields"
            return f"Unknown field(s) {', '.join(extra)}; this operation takes {takes}."
        error = errors[0]
        if not error["loc"] or error["loc"][0] not in cls.model_fields:  # a rule across fields: its own sentence
            return error["msg"].removeprefix("Value error, ")
        key = str(error["loc"][0])
        rule = next((m for m in cls.model_fields[key].metadata if isinstance(m, Rule)), None)
        if rule is None:
            return f"{cls.where} '{key}' is not valid ({error['msg']})."
        if error["type"] == "missing":
            return rule.missing or f"{cls.where} '{key}' is missing."
        value = data.get(key) if isinstance(data, dict) else None
        return rule.bad.format(key=key, value=repr(str(value)[:80]))


def _stripped(value: str) -> str:
    return value.strip()


def _version_number(value: Any) -> Any:
    """A version may come as a JSON number (2) as well as text ("2")."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _named_params(value: Any) -> Any:
    if isinstance(value, dict) and not all(value):  # names are checked against the spec by the core
        raise ValueError("empty param name")
    return value


# The fields several requests share, each with its rule and its clean-up (a reason is kept stripped).
Reason = Annotated[
    str,
    Field(max_length=MAX_REASON, strict=True, description="Why, kept in the deployment history."),
    Rule(bad=f"Field 'reason' must be text of at most {MAX_REASON} characters."),
    AfterValidator(_stripped),
]
Version = Annotated[
    str | None,
    Field(pattern=VERSION_PATTERN, strict=True, description='A model version number, e.g. "2".'),
    text_rule("version", "a version number such as '2'"),
    BeforeValidator(_version_number),
]
Flag = Annotated[StrictBool, Rule(bad="Field '{key}' must be true or false.")]
Params = Annotated[
    dict[str, Any] | None,
    Field(strict=True, description="Overrides {name: value}; step.name for one step's own param."),
    Rule(bad="Field 'params' must be a JSON object of param names to values, e.g. {{\"epochs\": 4}}."),
    AfterValidator(_named_params),
]


class DeployRequest(Request):
    """POST /deployments: deploy NAME@ALIAS or NAME/VERSION (a running deployment of that name switches to it)."""

    model: Annotated[
        str,
        Field(pattern=NAME_PATTERN, strict=True, description="Registered model name."),
        text_rule("model", "a registered model's name"),
    ]
    alias: Annotated[
        str | None,
        Field(
            pattern=ALIAS_PATTERN,
            strict=True,
            description="Alias to serve, e.g. champion (exactly one of alias and version).",
        ),
        text_rule("alias", "an alias such as 'champion'"),
    ] = None
    version: Version = None
    name: Annotated[
        str | None,
        Field(strict=True, description="Deployment name (default the model's name)."),
        text_rule("name", "a deployment name"),
    ] = None
    reason: Reason = ""

    @model_validator(mode="after")
    def _one_of_alias_or_version(self) -> Self:
        if (self.alias is None) == (self.version is None):
            raise refuse(
                "Give exactly one of 'alias' (e.g. \"champion\") or 'version' (e.g. \"2\") to say what to deploy."
            )
        return self

    @property
    def ref(self) -> str:
        """The model reference the core deploys: NAME@ALIAS or NAME/VERSION."""
        return f"{self.model}@{self.alias}" if self.alias else f"{self.model}/{self.version}"


class ReasonRequest(Request):
    """POST promote, rollback, retrain, approve, reject: only why."""

    reason: Reason = ""


class CanaryRequest(Request):
    """POST /deployments/NAME/canary (and `aidevops canary`): a version and share, a new share, or clear."""

    version: Version = None  # omitted: change the current canary's share
    share: Annotated[
        float | None,
        Field(ge=0, le=1, strict=True, description="The canary's share of traffic, 0 to 1."),
        Rule(bad="Field 'share' must be a number between 0 and 1 (e.g. 0.1 for 10 %), got {value}."),
    ] = None
    clear: Annotated[Flag, Field(description="Remove the canary (takes no version or share).")] = False
    reason: Reason = ""

    @field_validator("share", mode="before")
    @classmethod
    def _no_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):  # JSON true is not a share (strict float would take it as 1)
            raise ValueError("a boolean")
        return value

    @model_validator(mode="after")
    def _clear_or_share(self) -> Self:
        if self.clear and (self.version is not None or self.share is not None):
            raise refuse("'clear' takes no version or share; it only removes the canary.")
        if not self.clear and self.share is None:
            raise refuse(
                "Field 'share' is missing; give the canary's share of traffic between 0 and 1 (e.g. 0.1; --share 0.1 on the command line)."
            )
        return self


class ShadowRequest(Request):
    """POST /deployments/NAME/shadow (and `aidevops shadow`): mirror live traffic to a version, or stop."""

    version: Version = None
    stop: Annotated[
        Flag, Field(description="Stop mirroring traffic to the shadow and unload it (takes no version).")
    ] = False
    reason: Reason = ""

    @model_validator(mode="after")
    def _version_or_stop(self) -> Self:
        if self.stop == (self.version is not None):
            raise refuse("Give either 'version' (the version to shadow) or 'stop': true, not both or neither.")
        return self


class RunRequest(Request):
    """POST /runs: start a pipeline run with param overrides."""

    pipeline: Annotated[
        str,
        Field(pattern=PIPELINE_PATTERN, strict=True, description="A spec in pipelines/, e.g. ci."),
        text_rule("pipeline", "the name of a pipeline in pipelines/ (e.g. ci)"),
    ]
    params: Params = None


class RerunRequest(Request):
    """POST /runs/ID/rerun: the run's own overrides, or new ones; optionally from one step on (`run --from`)."""

    params: Params = None
    from_step: Annotated[
        str | None,
        Field(
            pattern=PIPELINE_PATTERN,
            strict=True,
            description="Run this step and everything downstream of it again, even when cached (aidevops run "
            "--from STEP --force); upstream steps come from the cache. A step of the run's pipeline.",
        ),
        text_rule("from_step", "the name of a step of the run's pipeline (e.g. train)"),
    ] = None


# --------------------------------------------------------------------------- query parameters


class Query(Request):
    """Query parameters: text that must parse; other parameters (Jupyter's ?token=) are not ours to refuse."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    where = "Query parameter"


def _limit(default: int) -> Any:
    return Field(default=default, ge=1, le=MAX_LIMIT)


LIMIT_RULE = Rule(bad=f"Query parameter 'limit' must be a whole number from 1 to {MAX_LIMIT}, got {{value}}.")


class HistoryQuery(Query):
    limit: Annotated[int, _limit(50), LIMIT_RULE] = 50


class AlertsQuery(Query):
    limit: Annotated[int, _limit(50), LIMIT_RULE] = 50


class JobsQuery(Query):
    limit: Annotated[int, _limit(20), LIMIT_RULE] = 20


class RunsQuery(Query):
    pipeline: str | None = Field(default=None, description="Only this pipeline's runs.")
    limit: Annotated[int, _limit(20), LIMIT_RULE] = 20


class UndeployQuery(Query):
    reason: Reason = ""


class MonitorQuery(Query):
    refresh: str = Field(default="", description="1 or true: compute a pass now instead of returning the latest.")

    @property
    def now(self) -> bool:
        return self.refresh in ("1", "true")


class SeriesQuery(Query):
    # The ranges are the core's (deploy/observe.check_range, shared with the CLI); the schema shows them.
    minutes: Annotated[
        float,
        Field(default=60.0, json_schema_extra={"minimum": 1, "maximum": MAX_MINUTES}),
        Rule(bad="Query parameter 'minutes' must be a number, got {value}."),
    ] = 60.0
    buckets: Annotated[
        int,
        Field(default=60, json_schema_extra={"minimum": 1, "maximum": MAX_BUCKETS}),
        Rule(bad="Query parameter 'buckets' must be a whole number, got {value}."),
    ] = 60


class NotebookQuery(Query):
    download: str = Field(default="", description="1: the .ipynb itself, as an attachment.")


class DiffQuery(Query):
    base: str = Field(default="", description="The first run's id.")
    remote: str = Field(default="", description="The second run's id.")
    step: str | None = Field(default=None, description="Default the first step both runs have a notebook for.")


# --------------------------------------------------------------------------- answers


class Answer(BaseModel):
    """An answer's documented shape; the server may add keys (the schema leaves them open)."""

    model_config = ConfigDict(extra="allow")


class Error(Answer):
    error: str = Field(description="A user-caused problem, in one sentence naming it and the fix.")


class RunNotebook(Answer):
    step: str
    name: str
    available: bool
    status: str | None = None


class GateComparison(Answer):
    summary: str | None = None
    compared_on: str | None = None
    candidate: dict[str, float | None] = {}
    champion: dict[str, float | None] | None = None
    champion_version: str | None = None
    rows: dict[str, Any] | None = None


class Lineage(Answer):
    pipeline: str | None = None
    pipeline_run_id: str | None = None
    git_commit: str | None = None
    data_hash: str | None = None
    source: str | None = None
    run_in_workspace: bool = False
    notebooks: list[RunNotebook] = []


class ModelVersion(Answer):
    version: str
    aliases: list[str] = []
    run_id: str | None = Field(default=None, description="MLflow run that logged the model.")
    gate_passed: bool | None = None
    gate_reasons: str | None = None
    gate_summary: str | None = Field(
        default=None,
        description='The gate\'s own comparison for the badge, e.g. "accuracy 0.9638 vs v1 0.9499 on 359 rows".',
    )
    gate_comparison: GateComparison | None = Field(
        default=None,
        description="Candidate and champion metrics on the same test rows (none of which either trained on).",
    )
    metrics: dict[str, float | None] = Field(default={}, description="This version's own test metrics.")
    lineage: Lineage | None = None


class Model(Answer):
    name: str
    description: str | None = None
    aliases: dict[str, str] = {}
    versions: list[ModelVersion] = []


class Models(Answer):
    models: list[Model]


class HistoryEntry(Answer):
    deployment: str
    ts: float
    when: str
    operation: str
    from_version: str | None = None
    to_version: str | None = None
    reason: str = ""
    actor: str = ""
    ok: bool = True
    detail: str = ""


class History(Answer):
    history: list[HistoryEntry]


class Example(Answer):
    body: Any
    curl: str


DeploymentState = Literal["starting", "running", "restarting", "failed", "stopped", "dead", "rendered", "applied"]


class ApprovalGate(Answer):
    """The gate's decision on the version that awaits approval (the retraining run's registration.json)."""

    passed: bool | None = None
    summary: str | None = Field(default=None, description='e.g. "accuracy 0.9638 vs v1 0.9499 on 359 rows".')
    reasons: list[str] = []
    compared_on: str | None = None
    comparison: dict[str, Any] | None = None


class AwaitingApproval(Answer):
    """A retrained version held for a person (`promote: manual`): approve switches to it, reject drops it."""

    version: str = Field(description="The retrained version (alias challenger).")
    from_version: str | None = Field(default=None, description="The version serving when the retraining started.")
    retraining: int = Field(description="The retraining's id (`aidevops retrains NAME`).")
    pipeline_run_id: str | None = None
    gate: ApprovalGate
    trigger: str = Field(description="What started the retraining: the alert's message, or who retrained by hand.")
    rule: str | None = Field(default=None, description="The alert rule, when an alert started it.")
    live_rows: int = Field(default=0, description="Labelled live rows that joined its training data.")
    live_since: str | None = Field(default=None, description="When the oldest of those rows was logged (ISO 8601).")
    since: str | None = Field(default=None, description="When it began to await approval (ISO 8601).")
    shadow: ShadowSummary | None = Field(
        default=None, description="Its evidence from mirrored live traffic, if it was shadowed (`aidevops shadow`)."
    )


class Deployment(Answer):
    name: str
    model: str
    ref: str
    target: str
    state: DeploymentState
    health: str = Field(description="healthy (the server answered now), unreachable, or the state.")
    error: str | None = None
    url: str | None = None
    endpoints: dict[str, str] = {}
    active_version: str | None = None
    previous_version: str | None = None
    canary_version: str | None = None
    canary_share: float = 0.0
    restarts: int = 0
    updated: float | None = None
    example: Example | None = None
    history: list[HistoryEntry] = Field(default=[], description="Newest first.")
    awaiting_approval: AwaitingApproval | None = Field(
        default=None, description="A retrained version held for approval (`promote: manual`), with its evidence."
    )


class Deployments(Answer):
    deployments: list[Deployment]


class DeployResult(Answer):
    action: Literal["started", "switched", "unchanged"]
    version: str
    previous: str | None = None
    verified: bool = False
    detail: str = ""
    deployment: Deployment


class Change(Answer):
    """The recorded change and the deployment after it."""

    event: HistoryEntry
    deployment: Deployment


class Undeployed(Answer):
    event: HistoryEntry


class StepState(Answer):
    status: str | None = Field(default=None, description="pending, not selected, running, ran, cached or failed.")
    cache: Literal["hit", "miss"] | None = None
    duration_s: float | None = None
    error: str | None = None
    params: dict[str, Any] = {}
    why: list[str] = Field(
        default=[],
        description="Why the step ran (what changed since its last run: a code cell, "
        "param, upstream output, input file, kernel, aidevops_ext version or registry value), or which "
        "run's output it reused.",
    )


class Run(Answer):
    run_id: str
    pipeline: str | None = None
    status: str | None = Field(default=None, description="running, succeeded, failed or interrupted.")
    started: str | None = None
    finished: str | None = None
    duration_s: float | None = None
    resumed_from: str | None = Field(default=None, description="The failed run this one resumed.")
    overrides: dict[str, Any] = Field(default={}, description="The params given on the command line or in the panel.")
    params: dict[str, Any] = Field(default={}, description="The resolved pipeline params.")
    steps: dict[str, StepState] = {}
    notebooks: list[RunNotebook] = []


class Runs(Answer):
    runs: list[Run]


class Job(Answer):
    id: str
    kind: Literal["run", "retrain"]
    argv: list[str] = []
    status: Literal["running", "succeeded", "failed"]
    started: float
    finished: float | None = None
    exit_code: int | None = None
    pipeline: str | None = None
    deployment: str | None = None
    run_id: str | None = Field(default=None, description="The pipeline run the job produced, once it exists.")
    message: str = ""


class JobDetail(Job):
    log_tail: list[str] = []
    run: Run | None = None


class Jobs(Answer):
    jobs: list[Job]


class JobStarted(Answer):
    job: Job


class AlertState(Answer):
    rule: str
    state: Literal["ok", "firing", "resolved"]
    since: float | None = None
    value: float | None = None
    features: list[str] = []
    metric: str | None = None
    op: str | None = None
    threshold: float | None = None
    action: str | None = None


class AlertEvent(Answer):
    id: int
    rule: str
    event: Literal["fired", "resolved"]
    at: float
    value: float | None = None
    features: list[str] = []
    message: str = ""


class Alerts(Answer):
    alerts: list[AlertState]
    events: list[AlertEvent] = Field(description="Newest first.")


class Accuracy(Answer):
    value: float = Field(description="Share of labelled rows predicted right.")
    low: float = Field(description="Wilson interval, lower bound (95 %).")
    high: float = Field(description="Wilson interval, upper bound (95 %).")
    labels: int = Field(description="Labelled rows it is measured on.")


class ShadowSummary(Answer):
    """A shadow version's evidence beside the active version's, from the mirrored requests both answered."""

    version: str = Field(description="The shadow version.")
    active_version: str | None = Field(default=None, description="The active version it was compared with.")
    running: bool = Field(default=False, description="Whether the shadow still gets mirrored traffic.")
    requests: int = Field(description="Mirrored requests the shadow answered (or failed on) and were logged.")
    rows: int = 0
    errors: int = 0
    agreement_rate: float | None = Field(description="Share of rows where both versions predict the same.")
    active_accuracy: Accuracy | None = Field(description="The active version on the labelled mirrored rows.")
    shadow_accuracy: Accuracy | None = Field(description="The shadow version on the same labelled rows.")
    dropped: int = Field(description="Requests not mirrored because the shadow's queue was full.")


class MonitorSummary(Answer):
    status: str
    model: str | None = None
    version: str | None = None
    at: float | None = None
    logged_rows: int | None = None
    settings: dict[str, Any] = {}
    drift: dict[str, Any] | None = None
    prediction_drift: dict[str, Any] | None = None
    quality: dict[str, Any] | None = None
    requests: dict[str, Any] = {}
    alerts: list[AlertState] = []
    events: list[AlertEvent] = Field(default=[], description="Newest last.")
    shadow: ShadowSummary | None = Field(default=None, description="The shadow's evidence; null: never shadowed.")


class RequestSeries(Answer):
    t: list[float]
    rate: list[float]
    error_rate: list[float | None]
    p50_ms: list[float | None]
    p95_ms: list[float | None]
    p99_ms: list[float | None]
    requests: list[int]


class Series(Answer):
    start: float
    end: float
    task: str | None = None
    requests: RequestSeries
    quality: list[dict[str, Any]] = []
    predictions: dict[str, Any] | None = None


class NotebookContents(Answer):
    """A Jupyter contents model (type notebook, format json) with the notebook as `content`."""

    name: str
    path: str
    type: Literal["notebook"]
    format: Literal["json"]
    writable: bool
    content: dict[str, Any]


class Diff(Answer):
    base: str
    remote: str
    step: str
    steps: list[str]
    base_path: str
    remote_path: str
    url: str = Field(description="nbdime's diff page, relative to the Jupyter base URL.")
    params: dict[str, list[Any]] = Field(description="The params that differ: name to [base value, remote value].")


class ScheduleSummary(Answer):
    name: str
    pipeline: str
    cron: str = Field(description="Five cron fields or a name such as @daily, in UTC.")
    params: dict[str, Any] = Field(default={}, description="The params each run overrides.")
    notify: str | None = Field(
        default=None, description="The webhook's host only: its full URL (a Slack webhook's path) is a secret."
    )
    next_run: str = Field(description="The next slot after now, ISO 8601 in UTC.")
    last_run: str | None = Field(default=None, description="When the last run started, ISO 8601 in UTC.")
    last_status: str | None = Field(default=None, description="running, succeeded or failed.")
    last_run_id: str | None = Field(default=None, description="The pipeline run the last slot produced.")


class Schedules(Answer):
    schedules: list[ScheduleSummary] = Field(description="By name.")
