"""The console's routes: page shells (no data, no token) and /console/api (fragments and
actions, each behind its scope in auth/scopes.py ROUTE_SCOPES).

    GET  /console, /console/runs, /console/runs/{id}, /console/approvals, /console/start
    GET  /console/static/...                   CSS, JS, vendored htmx
    GET  /console/api/me                       any token: its name and scopes (JSON)
    GET  /console/api/overview                 read     servers, agents, waiting, recent
    GET  /console/api/runs?status&profile&within&offset   read   a page of runs
    GET  /console/api/runs/{id}                read     one run with every step
    GET  /console/api/approvals                read     the inbox (decide buttons: approve)
    POST /console/api/approvals/{id}/preview   approve  the pending call's dry run
    GET  /console/api/start                    read     start forms (with run) and search
    GET  /console/api/search?q=                read     runbook hits
    POST /console/api/workflows {name, inputs}        run   201 {"run_id", "status"}
    POST /console/api/agents {agent, task, context}   run   201 {"run_id", "status"}

A goal run is started with POST /runs and a decision sent with POST /approvals/{id}, the
sidecar's JSON routes; the engine checks modified arguments against the tool's schema.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from orchestrator_mcp.auth import caller_id, run_viewer
from orchestrator_mcp.config.http import ALL_SCOPES
from orchestrator_mcp.front.host_policy import PREVIEWS, dry_run
from orchestrator_mcp.front.runs_tools import enabled_agents, route_to_agent
from orchestrator_mcp.gateway import Gateway
from orchestrator_mcp.knowledge import KnowledgeBase
from orchestrator_mcp.runs.engine import RunEngine, RunNotFound
from orchestrator_mcp.runs.errors import RunConflict
from orchestrator_mcp.runs.models import RunRecord, RunStatus
from orchestrator_mcp.sidecar.console.render import STATIC, render
from orchestrator_mcp.sidecar.runs_routes import (
    InvalidRequest,
    bounded_int,
    parse_status,
    problems,
)
from orchestrator_mcp.workflows.submit import WorkflowRuns

PAGE_SIZE = 25
MAX_RUN_ID = 128
MAX_QUERY = 2000
WITHIN = {"": None, "3600": "last hour", "86400": "last day", "604800": "last week"}
PAGES = {"/console": "overview.html", "/console/": "overview.html",
         "/console/runs": "runs.html", "/console/approvals": "approvals.html",
         "/console/start": "start.html"}


@dataclass(frozen=True)
class ConsoleParts:
    engine: RunEngine
    gateway: Gateway
    workflows: WorkflowRuns | None = None
    knowledge: KnowledgeBase | None = None


@dataclass(frozen=True)
class PendingView:
    """A call waiting for a decision, with what an approver needs to judge it."""

    run: RunRecord
    risk: list[str]
    schema: dict[str, Any] | None
    preview: str | None  # the dry-run tool, when the call has one


class WorkflowRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    inputs: dict[str, Any] | None = None


class AgentRequest(BaseModel):
    """What the MCP `ask_agent` tool takes."""

    model_config = ConfigDict(extra="forbid")

    agent: str = Field(min_length=1, max_length=64)
    task: str = Field(min_length=1, max_length=10_000)
    context: dict[str, Any] | None = None


def scopes_of(request: Request) -> frozenset[str]:
    principal = getattr(request.state, "principal", None)
    return principal.scopes if principal is not None else frozenset(ALL_SCOPES)  # --no-auth


def risk_of(gateway: Gateway, tool: str) -> list[str]:
    """What the tool's MCP annotations say about its risk, in words."""
    entry = gateway.catalog.get(tool)
    if entry is None:
        return ["not in the catalog now"]
    hints = entry.tool.annotations
    if hints is None:
        return ["no annotations: may change anything"]
    words = []
    if hints.read_only_hint:
        words.append("read-only")
    elif hints.destructive_hint is not False:
        words.append("destructive")
    else:
        words.append("writes (not destructive)")
    if not hints.read_only_hint and hints.idempotent_hint is not True:
        words.append("not idempotent")
    if hints.open_world_hint is not False:
        words.append("open world")
    return words


def pending_view(gateway: Gateway, record: RunRecord) -> PendingView | None:
    pending = record.pending_approval
    if record.status is not RunStatus.AWAITING_APPROVAL or pending is None:
        return None
    entry = gateway.catalog.get(pending.tool)
    return PendingView(run=record, risk=risk_of(gateway, pending.tool),
                       schema=entry.tool.input_schema if entry is not None else None,
                       preview=preview_tool(gateway, pending.tool))


def preview_tool(gateway: Gateway, tool: str) -> str | None:
    """The dry-run tool of `tool` when the catalog has it (`ansible_run` -> `ansible_check`)."""
    dry_tool = PREVIEWS.get(tool)
    return dry_tool if dry_tool is not None and dry_tool in gateway.catalog.tools else None


async def _json_body(request: Request, model: type[BaseModel]) -> Any:
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        error = InvalidRequest(f"the body is not a valid {model.__name__}")
        error.detail = problems(exc)
        raise error from None


def _run_id(request: Request) -> str:
    run_id = request.path_params["run_id"]
    if len(run_id) > MAX_RUN_ID:  # no run id is that long
        raise RunNotFound("no run with such an id; the runs page lists the runs there are")
    return run_id


def _viewer(request: Request) -> str | None:
    """Whose runs this caller sees (auth.run_viewer): its own, or every run."""
    return run_viewer(getattr(request.state, "principal", None))


def _approvals_viewer(request: Request) -> str | None:
    """An approver sees every call waiting for a decision (as GET /approvals does)."""
    principal = getattr(request.state, "principal", None)
    return None if principal is None or "approve" in principal.scopes else _viewer(request)


def routes(parts: ConsoleParts) -> list[BaseRoute]:
    engine, gateway = parts.engine, parts.gateway

    async def page(request: Request) -> Response:
        return await render(PAGES[request.url.path])

    async def run_page(request: Request) -> Response:
        return await render("run.html", run_id=_run_id(request))

    async def me(request: Request) -> Response:
        principal = getattr(request.state, "principal", None)
        return JSONResponse({"name": principal.name if principal else "no-auth",
                             "scopes": sorted(scopes_of(request))})

    async def overview(request: Request) -> Response:
        health = gateway.health()
        viewer = _viewer(request)
        waiting = await engine.list(status=RunStatus.AWAITING_APPROVAL, limit=50,
                                    owner=_approvals_viewer(request))
        recent = await engine.list(limit=15, owner=viewer)
        return await render(
            "fragments/overview.html", now=time.time(),
            servers=[h for h in health if h.transport != "in-process"],
            agents=[h for h in health if h.transport == "in-process"],
            waiting=waiting, recent=recent)

    async def runs_page(request: Request) -> Response:
        query = request.query_params
        status = parse_status(query.get("status"))
        profile = (query.get("profile") or "").strip()[:64] or None
        within = query.get("within") or ""
        if within not in WITHIN:
            raise InvalidRequest(f"within={within[:40]!r} is not one of "
                                 f"{', '.join(w for w in WITHIN if w)} (seconds)")
        offset = bounded_int(request, "offset", 0, 0, 10_000_000)
        records = await engine.list(status=status, profile=profile,
                                    since=time.time() - int(within) if within else None,
                                    limit=PAGE_SIZE + 1, offset=offset,
                                    owner=_viewer(request))
        return await render(
            "fragments/runs.html", now=time.time(), runs=records[:PAGE_SIZE],
            offset=offset, page_size=PAGE_SIZE, more=len(records) > PAGE_SIZE,
            filters={"status": status.value if status else "", "profile": profile or "",
                     "within": within})

    async def run_detail(request: Request) -> Response:
        record = await engine.get(_run_id(request), viewer=_viewer(request))
        children = await engine.list(parent_id=record.id, limit=100, owner=_viewer(request))
        return await render("fragments/run.html", now=time.time(), run=record,
                            children=children, pending=pending_view(gateway, record),
                            can_approve="approve" in scopes_of(request))

    async def inbox(request: Request) -> Response:
        waiting = await engine.list(status=RunStatus.AWAITING_APPROVAL, limit=200,
                                    owner=_approvals_viewer(request))
        views = [v for v in (pending_view(gateway, r) for r in waiting) if v is not None]
        return await render("fragments/approvals.html", now=time.time(), pending=views,
                            can_approve="approve" in scopes_of(request))

    async def preview_call(request: Request) -> Response:
        record = await engine.get(_run_id(request), viewer=_approvals_viewer(request))
        view = pending_view(gateway, record)
        if view is None or view.run.pending_approval is None:
            raise RunConflict(f"run '{record.id}' is not waiting for an approval")
        if view.preview is None:
            raise RunConflict(f"{view.run.pending_approval.tool} has no dry run")
        principal = getattr(request.state, "principal", None)
        entries: list[dict[str, Any]] = []

        def audit(tool: str, arguments: dict[str, Any], outcome: str, seconds: float) -> None:
            entries.append(dict(kind="tool_call", run_id=record.id, tool=tool,
                                caller=f"http:{principal.name if principal else 'no-auth'}",
                                arguments=arguments, outcome=outcome, seconds=seconds,
                                at=time.time()))

        preview = await dry_run(gateway, view.run.pending_approval.tool,
                                view.run.pending_approval.arguments, audit)
        if entries:
            await engine.record_audit(entries)
        return await render("fragments/preview.html",
                            text=preview.describe() if preview is not None else "")

    async def start_forms(request: Request) -> Response:
        definitions = parts.workflows.definitions if parts.workflows is not None else {}
        return await render("fragments/start.html", can_run="run" in scopes_of(request),
                            profiles=sorted(engine.profiles.items()),
                            workflows=sorted(definitions.items()),
                            agents=enabled_agents(engine),
                            searchable=parts.knowledge is not None)

    async def search(request: Request) -> Response:
        if parts.knowledge is None:
            raise RunConflict("runbook search is off (knowledge.enabled in servers.yaml)")
        text = (request.query_params.get("q") or "").strip()
        if len(text) > MAX_QUERY:
            raise InvalidRequest(f"the search text is over {MAX_QUERY} characters")
        hits = await parts.knowledge.search(text, limit=10) if text else []
        return await render("fragments/search.html", query=text, hits=hits)

    async def start_workflow(request: Request) -> Response:
        if parts.workflows is None:
            raise RunConflict("workflows are not enabled in this server")
        wanted = await _json_body(request, WorkflowRequest)
        principal = getattr(request.state, "principal", None)
        record = await parts.workflows.submit(
            wanted.name, wanted.inputs, source="console", owner=caller_id(principal),
            limits=principal.limits if principal else None)
        return _started(record)

    async def ask_agent(request: Request) -> Response:
        wanted = await _json_body(request, AgentRequest)
        agent, context, _ = await route_to_agent(engine, wanted.agent, wanted.task,
                                                 wanted.context)
        principal = getattr(request.state, "principal", None)
        record = await engine.submit(wanted.task, agent, context, source="console",
                                     owner=caller_id(principal),
                                     limits=principal.limits if principal else None)
        return _started(record)

    return [
        *(Route(path, page, methods=["GET"]) for path in PAGES),
        Route("/console/runs/{run_id}", run_page, methods=["GET"]),
        Mount("/console/static", app=StaticFiles(directory=STATIC), name="console-static"),
        Route("/console/api/me", me, methods=["GET"]),
        Route("/console/api/overview", overview, methods=["GET"]),
        Route("/console/api/runs", runs_page, methods=["GET"]),
        Route("/console/api/runs/{run_id}", run_detail, methods=["GET"]),
        Route("/console/api/approvals", inbox, methods=["GET"]),
        Route("/console/api/approvals/{run_id}/preview", preview_call, methods=["POST"]),
        Route("/console/api/start", start_forms, methods=["GET"]),
        Route("/console/api/search", search, methods=["GET"]),
        Route("/console/api/workflows", start_workflow, methods=["POST"]),
        Route("/console/api/agents", ask_agent, methods=["POST"]),
    ]


def _started(record: RunRecord) -> Response:
    return JSONResponse({"run_id": record.id, "status": record.status.value},
                        status_code=201, headers={"Location": f"/console/runs/{record.id}"})
