"""The Deploy, Monitor and Runs panels' REST API under /aidevops/api/ (described in openapi/aidevops-api.yaml).

Handlers parse HTTP and call the core: request rules live in `aidevops_ext.api.models` (from which the OpenAPI
file is generated), views in `aidevops_ext.api.views`, behaviour in
`aidevops_ext.deploy` and `aidevops_ext.registry`. Every verb is `@tornado.web.authenticated`; state
changes only by POST/DELETE, which Jupyter server XSRF-checks for cookie-authenticated callers.
Core errors a user can cause become 4xx JSON `{"error": sentence}`; the core runs in worker threads
so a deploy (seconds: start, load, smoke-test) never blocks the server's event loop.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from . import jobs, loop
from .api import views
from .api.models import (
    AlertsQuery,
    CanaryRequest,
    DeployRequest,
    DiffQuery,
    HistoryQuery,
    JobsQuery,
    MonitorQuery,
    NotebookQuery,
    Query,
    ReasonRequest,
    Request,
    RerunRequest,
    RunRequest,
    RunsQuery,
    SeriesQuery,
    ShadowRequest,
    UndeployQuery,
)
from .deploy import manager, observe, shadow
from .errors import AidevopsError
from .workspace import Workspace

BASE = "aidevops/api"
R = TypeVar("R", bound=Request)
Q = TypeVar("Q", bound=Query)
NAME = r"(?P<name>[^/]+)"


def _status_for(exc: AidevopsError) -> int:
    """Which 4xx a core error becomes: each error class carries its own (errors.py and its subclasses)."""
    return exc.http_status


def _answers_errors(verb: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """A handler verb whose user errors (the core's AidevopsError) become one-sentence 4xx answers."""

    @functools.wraps(verb)
    async def answer(self: _Handler, *args: str, **kwargs: str) -> None:
        try:
            await verb(self, *args, **kwargs)
        except AidevopsError as exc:
            self.reply({"error": str(exc)}, _status_for(exc))

    return answer


class _Handler(APIHandler):
    """Common parts: the workspace, JSON in and out, core calls off the event loop with errors as 4xx."""

    @property
    def workspace(self) -> Workspace:
        return Workspace.discover(Path(self.settings["aidevops_root"]))

    @property
    def actor(self) -> str:
        # The server runs as its user (alone, or spawned per user by JupyterHub); a token login's Jupyter
        # identity is an anonymous random name, so the history names the server's user instead.
        from .deploy.store import default_actor

        return f"{default_actor()} via JupyterLab"

    def body(self, model: type[R]) -> R:
        """The request body checked by its model (ConfigError, so 400, with the model's sentence)."""
        return model.from_body(self.request.body)

    def query(self, model: type[Q]) -> Q:
        """The query parameters checked by their model (others, such as Jupyter's ?token=, are ignored)."""
        return model.parse({key: self.get_query_argument(key) for key in self.request.query_arguments})

    async def core(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args, **kwargs))

    def reply(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data, default=str))


class ModelsHandler(_Handler):
    @tornado.web.authenticated
    @_answers_errors
    async def get(self) -> None:
        self.reply({"models": await self.core(views.models, self.workspace)})


class ModelHandler(_Handler):
    @tornado.web.authenticated
    @_answers_errors
    async def get(self, name: str) -> None:
        rows = await self.core(views.models, self.workspace, name)
        self.reply(rows[0])


class DeploymentsHandler(_Handler):
    @tornado.web.authenticated
    @_answers_errors
    async def get(self) -> None:
        self.reply({"deployments": await self.core(views.deployments, self.workspace)})

    @tornado.web.authenticated
    @_answers_errors
    async def post(self) -> None:
        """Deploy a model version (a running deployment of that name switches to it)."""
        body = self.body(DeployRequest)
        ws = self.workspace
        result = await self.core(manager.deploy, ws, body.ref, name=body.name, reason=body.reason, actor=self.actor)
        out = result.to_dict()
        out["deployment"] = await self.core(views.deployment, ws, result.deployment.name)
        self.reply(out, 201 if result.action == "started" else 200)


class DeploymentHandler(_Handler):
    @tornado.web.authenticated
    @_answers_errors
    async def get(self, name: str) -> None:
        self.reply(await self.core(views.deployment, self.workspace, name))

    @tornado.web.authenticated
    @_answers_errors
    async def delete(self, name: str) -> None:
        """Undeploy: stop the server; the history stays."""
        reason = self.query(UndeployQuery).reason
        entry = await self.core(manager.undeploy, self.workspace, name, reason=reason, actor=self.actor)
        self.reply({"event": entry.to_dict()})


class _Operation(_Handler):
    """POST /deployments/NAME/<operation>: one change, answered with the event and the deployment after it."""

    takes: type[Request] = ReasonRequest

    def change(self, ws: Workspace, name: str, body: Any) -> Any:
        raise NotImplementedError

    @tornado.web.authenticated
    @_answers_errors
    async def post(self, name: str) -> None:
        body = self.body(self.takes)
        ws = self.workspace
        entry = await self.core(self.change, ws, name, body)
        self.reply({"event": entry.to_dict(), "deployment": await self.core(views.deployment, ws, name)})


class _ReasonOperation(_Operation):
    """An operation that takes only a reason: the core function `does(ws, name, reason=..., actor=...)`."""

    does: staticmethod

    def change(self, ws, name, body):
        return self.does(ws, name, reason=body.reason, actor=self.actor)


class PromoteHandler(_ReasonOperation):
    does = staticmethod(manager.promote)


class RollbackHandler(_ReasonOperation):
    does = staticmethod(manager.rollback)


class ApproveHandler(_ReasonOperation):
    """Switch to the retrained version that awaits approval and make it champion (aidevops_ext/loop.py)."""

    does = staticmethod(loop.approve)


class RejectHandler(_ReasonOperation):
    """Drop the retrained version that awaits approval; the deployment keeps what it serves."""

    does = staticmethod(loop.reject)


class CanaryHandler(_Operation):
    takes = CanaryRequest

    def change(self, ws, name, body):
        return manager.canary(
            ws, name, body.version, share=body.share, clear=body.clear, reason=body.reason, actor=self.actor
        )


class ShadowHandler(_Operation):
    """Mirror live traffic to a version, or stop (deploy/shadow.py): it changes what a server loads, so the same
    Jupyter credential as canary and switch."""

    takes = ShadowRequest

    def change(self, ws, name, body):
        if body.stop:
            return shadow.stop(ws, name, reason=body.reason, actor=self.actor)
        return shadow.start(ws, name, body.version, reason=body.reason, actor=self.actor)


class _DeploymentView(_Handler):
    """GET /deployments/NAME/<view>: what the core shows of the deployment, for the query `asks` parses."""

    asks: type[Query]

    def view(self, ws: Workspace, name: str, query: Any) -> Any:
        raise NotImplementedError

    @tornado.web.authenticated
    @_answers_errors
    async def get(self, name: str) -> None:
        query = self.query(self.asks)
        self.reply(await self.core(self.view, self.workspace, name, query))


class HistoryHandler(_DeploymentView):
    asks = HistoryQuery

    def view(self, ws, name, query):
        return {"history": [h.to_dict() for h in reversed(manager.history(ws, name, query.limit))]}


class RunsHandler(_Handler):
    @tornado.web.authenticated
    @_answers_errors
    async def get(self) -> None:
        query = self.query(RunsQuery)
        self.reply({"runs": await self.core(views.runs, self.workspace, query.pipeline, query.limit)})

    @tornado.web.authenticated
    @_answers_errors
    async def post(self) -> None:
        """Start a pipeline run in the background; follow it with GET /jobs/ID."""
        body = self.body(RunRequest)
        job = await self.core(jobs.start_run, self.workspace, body.pipeline, body.params)
        self.reply({"job": job.to_dict()}, 202)


class RunHandler(_Handler):
    @tornado.web.authenticated
    @_answers_errors
    async def get(self, run_id: str) -> None:
        self.reply(await self.core(views.run, self.workspace, run_id))


class RunNotebookHandler(_Handler):
    @tornado.web.authenticated
    @_answers_errors
    async def get(self, run_id: str, step: str) -> None:
        model = await self.core(views.run_notebook, self.workspace, run_id, step)
        if self.query(NotebookQuery).download != "1":
            self.reply(model)
            return
        # Lab's "Download" of the read-only drive: the .ipynb itself, as a file.
        self.set_header("Content-Disposition", f'attachment; filename="{run_id}-{model["name"]}"')
        self.reply(model["content"])


class MonitorHandler(_DeploymentView):
    asks = MonitorQuery

    def view(self, ws, name, query):
        return manager.monitor_summary(ws, name, refresh=query.now)


class SeriesHandler(_DeploymentView):
    asks = SeriesQuery

    def view(self, ws, name, query):
        return observe.series(ws, name, minutes=query.minutes, buckets=query.buckets)


class AlertsHandler(_DeploymentView):
    asks = AlertsQuery

    def view(self, ws, name, query):
        return observe.alerts(ws, name, limit=query.limit)


class RetrainHandler(_Handler):
    @tornado.web.authenticated
    @_answers_errors
    async def post(self, name: str) -> None:
        """Start a retraining of the deployment's model in the background; follow it with GET /jobs/ID."""
        self.body(ReasonRequest)
        job = await self.core(jobs.start_retrain, self.workspace, name)
        self.reply({"job": job.to_dict()}, 202)


class RerunHandler(_Handler):
    @tornado.web.authenticated
    @_answers_errors
    async def post(self, run_id: str) -> None:
        """Run a run's pipeline again (its params, or new ones); unchanged steps come from the cache."""
        request = self.body(RerunRequest)
        job = await self.core(jobs.rerun, self.workspace, run_id, request.params, request.from_step)
        self.reply({"job": job.to_dict()}, 202)


class JobsHandler(_Handler):
    @tornado.web.authenticated
    @_answers_errors
    async def get(self) -> None:
        limit = self.query(JobsQuery).limit
        found = await self.core(jobs.list_jobs, self.workspace, limit)
        self.reply({"jobs": [j.to_dict() for j in found]})


class JobHandler(_Handler):
    @tornado.web.authenticated
    @_answers_errors
    async def get(self, job_id: str) -> None:
        self.reply(await self.core(views.job, self.workspace, job_id))


class SchedulesHandler(_Handler):
    @tornado.web.authenticated
    @_answers_errors
    async def get(self) -> None:
        from .schedules.store import listing

        self.reply({"schedules": await self.core(listing, self.workspace)})


class DiffHandler(_Handler):
    @tornado.web.authenticated
    @_answers_errors
    async def get(self) -> None:
        query = self.query(DiffQuery)
        self.reply(
            await self.core(
                views.diff,
                self.workspace,
                Path(self.settings["aidevops_root"]),
                query.base,
                query.remote,
                query.step,
            )
        )


ROUTES: list[tuple[str, type[_Handler]]] = [
    (r"/models", ModelsHandler),
    (rf"/models/{NAME}", ModelHandler),
    (r"/deployments", DeploymentsHandler),
    (rf"/deployments/{NAME}", DeploymentHandler),
    (rf"/deployments/{NAME}/promote", PromoteHandler),
    (rf"/deployments/{NAME}/rollback", RollbackHandler),
    (rf"/deployments/{NAME}/canary", CanaryHandler),
    (rf"/deployments/{NAME}/shadow", ShadowHandler),
    (rf"/deployments/{NAME}/approve", ApproveHandler),
    (rf"/deployments/{NAME}/reject", RejectHandler),
    (rf"/deployments/{NAME}/history", HistoryHandler),
    (rf"/deployments/{NAME}/monitor", MonitorHandler),
    (rf"/deployments/{NAME}/series", SeriesHandler),
    (rf"/deployments/{NAME}/alerts", AlertsHandler),
    (rf"/deployments/{NAME}/retrain", RetrainHandler),
    (r"/runs", RunsHandler),
    (r"/runs/(?P<run_id>[^/]+)", RunHandler),
    (r"/runs/(?P<run_id>[^/]+)/notebooks/(?P<step>[^/]+)", RunNotebookHandler),
    (r"/runs/(?P<run_id>[^/]+)/rerun", RerunHandler),
    (r"/jobs", JobsHandler),
    (r"/jobs/(?P<job_id>[^/]+)", JobHandler),
    (r"/diff", DiffHandler),
    (r"/schedules", SchedulesHandler),
]


def setup_route_handlers(web_app: Any, root_dir: str) -> None:
    """Register the API on the Jupyter server's tornado application."""
    web_app.settings["aidevops_root"] = root_dir
    base = url_path_join(web_app.settings["base_url"], BASE)
    web_app.add_handlers(".*$", [(base + pattern + "/?$", handler) for pattern, handler in ROUTES])
    _serve_nbdime_chunks(web_app)


def _serve_nbdime_chunks(web_app: Any) -> None:
    """Serve nbdime's script chunks where its diff page asks for them (the Runs panel shows that page in a tab).

    Inside Jupyter server, nbdime 4's page loads nbdime.js from /static/ but its lazily loaded chunks (syntax
    highlighting, fold icons) from /nbdime/static/, which nbdime's extension does not serve: without this
    they are 404 and the diff shows uncoloured. Public files of an installed package, like /static/ itself.
    """
    try:
        from nbdime.webapp.nbdimeserver import static_path
    except ImportError:  # nbdime is a dependency; without it there is no diff page to help
        return
    prefix = url_path_join(web_app.settings["base_url"], "nbdime/static/")
    web_app.add_handlers(".*$", [(prefix + "(.*)", tornado.web.StaticFileHandler, {"path": static_path})])
