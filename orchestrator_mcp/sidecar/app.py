"""The HTTP face: MCP at /mcp plus /healthz, /readyz, /metrics, runs, approvals and the
console (/console), behind a bearer token."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastmcp import FastMCP
from fastmcp.server.http import HostOriginGuardMiddleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from orchestrator_mcp.alerts.service import AlertService, Rejection
from orchestrator_mcp.auth import (
    Authenticator,
    caller_id,
    is_public_page,
    required_route_scope,
    run_viewer,
)
from orchestrator_mcp.config.http import HttpSettings
from orchestrator_mcp.errors import UserError
from orchestrator_mcp.gateway import Gateway
from orchestrator_mcp.knowledge import KnowledgeBase
from orchestrator_mcp.runs.engine import RunEngine
from orchestrator_mcp.runs.models import RunStatus
from orchestrator_mcp.sidecar import console, run_stream, runs_routes
from orchestrator_mcp.sidecar.oauth import (
    METADATA_PATHS,
    forbidden_challenge,
    metadata_routes,
    unauthorized_challenge,
)
from orchestrator_mcp.sidecar.runs_routes import principal_of
from orchestrator_mcp.telemetry.metrics import ALERT_REJECTED, REGISTRY, WEBHOOK_SECONDS
from orchestrator_mcp.workflows.submit import WorkflowRuns


class ApprovalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approved: StrictBool  # "yes" or 1 is an error, not a yes
    modified_arguments: dict[str, Any] | None = None
    reason: str | None = Field(default=None, max_length=2000)
    decided_by: str | None = Field(default=None, max_length=200)  # kept as a note ('via')


APPROVAL_BODY_LIMIT = 65_536

# Probes are open; the webhook checks its own token (Alertmanager's may differ from ours).
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/webhooks/alertmanager"})


class BearerAuth:
    """Require `Authorization: Bearer <token>` on every path but the open ones and the
    console's page shells, ask the authenticator who it is, and check the route's scope
    (auth.scopes); put the caller in
    `scope["state"]` for the per-tool checks of /mcp. `authenticator=None` is
    `serve --no-auth` (loopback only); an empty one lets nobody in. With `http.auth`, 401
    and 403 answers carry the challenge that points hosts at the authorization server."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator | None) -> None:
        self.app = app
        self._authenticator = authenticator
        self._open = OPEN_PATHS | (METADATA_PATHS if authenticator and authenticator.oauth
                                   else frozenset())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        authenticator = self._authenticator
        if authenticator is None or scope["type"] != "http" or scope["path"] in self._open \
                or is_public_page(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"authorization")
        principal = await authenticator.principal(given)
        oauth = authenticator.oauth
        if principal is None:
            reason = "missing bearer token" if not given else "invalid bearer token"
            where = ("ORCH_HTTP_TOKEN, servers.yaml http.tokens or an access token from "
                     f"{oauth.settings.issuer}" if oauth is not None else
                     "ORCH_HTTP_TOKEN or servers.yaml http.tokens")
            await _deny(scope, receive, send, 401, "unauthorized",
                        f"{reason}; send 'Authorization: Bearer <token>' with a token from "
                        f"{where}",
                        unauthorized_challenge(scope, oauth, token_given=bool(given)))
            return
        needed = required_route_scope(scope["method"], scope["path"])
        if needed and needed not in principal.scopes:
            await _deny(scope, receive, send, 403, "forbidden",
                        f"{principal.label} lacks the '{needed}' scope",
                        forbidden_challenge(scope, oauth, needed) if oauth else None)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


class BodyLimit:
    """413 for request bodies over `limit` bytes (declared or streamed); the webhook has
    its own limit (alerts.max_body_bytes)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/webhooks/alertmanager":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await _deny(scope, receive, send, 413, "too_large",
                        f"request body over {self.limit} bytes (http.max_request_bytes)")
            return
        seen = 0

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:  # streamed without a length: stop reading it
                return {"type": "http.disconnect"}
            return message

        await self.app(scope, counted, send)


async def _deny(scope: Scope, receive: Receive, send: Send, status: int, error: str,
                detail: str, challenge: str | None = None) -> None:
    headers = {"WWW-Authenticate": challenge} if challenge else {}
    response = JSONResponse({"error": error, "detail": detail}, status_code=status,
                            headers=headers)
    await response(scope, receive, send)


def _error(status: int, error: str, detail: Any) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status)


async def user_error(_: Request, exc: Exception) -> Response:
    """Every route's user errors, answered once: {"error": code, "detail": …}."""
    assert isinstance(exc, UserError)
    return _error(exc.status, exc.code, exc.detail if exc.detail is not None else str(exc))


async def _read_capped(request: Request, cap: int, setting: str) -> bytes:
    """The body, or a 413 that names the limit and the setting (if any) that sets it."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise Rejection(413, "too_large", f"body is {declared} bytes; the limit is {cap} "
                        f"({setting})")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            raise Rejection(413, "too_large", f"body exceeds {cap} bytes ({setting})")
    return bytes(body)


async def metrics(_: Request) -> Response:
    # In a thread: some gauges are read from the runs database at scrape time.
    body = await asyncio.to_thread(generate_latest, REGISTRY)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


async def healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


def build_metrics_app(authenticator: Authenticator) -> Starlette:
    """What a `worker` serves with --metrics-port: /healthz (open) and /metrics (`read`),
    because the runs, tool calls and model calls a worker executes are counted there."""
    app = Starlette(routes=[Route("/healthz", healthz), Route("/metrics", metrics)])
    app.add_middleware(BearerAuth, authenticator=authenticator)
    return app


def build_app(
    front: FastMCP,
    gateway: Gateway,
    authenticator: Authenticator | None,
    settings: HttpSettings,
    engine: RunEngine | None = None,
    alerts: AlertService | None = None,
    workflows: WorkflowRuns | None = None,
    knowledge: KnowledgeBase | None = None,
) -> Starlette:
    """`authenticator=None`: no authentication (`serve --no-auth`, which the CLI allows on
    a loopback bind only). The console (/console) is there when runs are."""
    mcp_app = front.http_app(path="/mcp")
    oauth = authenticator.oauth if authenticator is not None else None

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            async with mcp_app.lifespan(app):
                yield
        finally:
            if authenticator is not None:
                await authenticator.aclose()

    async def alertmanager_webhook(request: Request) -> Response:
        started = time.perf_counter()
        code = "500"
        try:
            response = await _alertmanager_webhook(request)
            code = str(response.status_code)
            return response
        except UserError as exc:
            code = str(exc.status)
            raise
        finally:
            WEBHOOK_SECONDS.labels(code).observe(time.perf_counter() - started)

    async def _alertmanager_webhook(request: Request) -> Response:
        if alerts is None:
            return _error(404, "not_found", "alert handling is not configured")
        try:
            body = await _read_capped(request, alerts.settings.max_body_bytes,
                                      "alerts.max_body_bytes in profiles.yaml")
            alerts.authenticate(request.headers.get("authorization"), body,
                                request.headers.get("x-signature-256"))
            notification = alerts.parse(body)
        except Rejection as exc:
            ALERT_REJECTED.labels(exc.code).inc()
            raise
        receipt, new = await alerts.receive(notification)
        return JSONResponse({"status": "accepted" if new else "already_received",
                             "receipt": receipt})

    async def list_approvals(request: Request) -> Response:
        """Calls waiting for a decision: an approver (scope approve) sees every one, as it
        must to decide; anyone else those of the runs it may see."""
        if engine is None:
            return _error(404, "not_found", "runs are not enabled")
        principal = principal_of(request)
        approver = principal is None or "approve" in principal.scopes
        waiting = await engine.list(status=RunStatus.AWAITING_APPROVAL, limit=200,
                                    owner=None if approver else run_viewer(principal))
        return JSONResponse([
            {"run_id": r.id, "goal": r.goal, "profile": r.profile, "owner": r.owner,
             "pending_approval": r.pending_approval.model_dump() if r.pending_approval else None}
            for r in waiting
        ])

    async def decide_approval(request: Request) -> Response:
        if engine is None:
            return _error(404, "not_found", "runs are not enabled")
        try:
            decision = ApprovalRequest.model_validate_json(await _read_capped(
                request, APPROVAL_BODY_LIMIT, "a fixed limit for approval decisions"))
        except ValidationError as exc:
            return _error(400, "invalid_body", [
                {"field": ".".join(str(p) for p in e["loc"]) or "(body)", "problem": e["msg"]}
                for e in exc.errors(include_input=False, include_url=False)])
        record = await engine.approve(
            request.path_params["run_id"], decision.approved,
            modified_arguments=decision.modified_arguments, reason=decision.reason,
            decided_by=caller_id(principal_of(request)),
            via=f"http ({decision.decided_by})" if decision.decided_by else "http")
        return JSONResponse({"run_id": record.id, "status": record.status.value})

    async def readyz(_: Request) -> Response:
        servers: dict[str, Any] = {
            h.name: {"status": h.status.value, "last_error": h.last_error}
            for h in gateway.health()
        }
        database = await engine.healthy() if engine is not None else None
        ready = gateway.ready and database is None
        return JSONResponse(
            {"status": "ready" if ready else "degraded", "servers": servers,
             "database": database or "ok"},
            status_code=200 if ready else 503,
        )

    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            Route("/webhooks/alertmanager", alertmanager_webhook, methods=["POST"]),
            Route("/approvals", list_approvals, methods=["GET"]),
            Route("/approvals/{run_id}", decide_approval, methods=["POST"]),
            *(runs_routes.routes(engine) if engine is not None else []),
            *(run_stream.routes(engine) if engine is not None else []),
            *(console.routes(console.ConsoleParts(engine, gateway, workflows, knowledge))
              if engine is not None else []),
            *(metadata_routes(oauth) if oauth is not None else []),
            Mount("/", app=mcp_app),
        ],
        lifespan=lifespan,
        exception_handlers={UserError: user_error},
    )
    app.add_middleware(BodyLimit, limit=settings.max_request_bytes)
    app.add_middleware(BearerAuth, authenticator=authenticator)
    app.add_middleware(console.SecurityHeaders)  # outside the auth: refusals get them too
    # DNS rebinding: on a loopback bind, Host must be a loopback name and a browser's
    # Origin a loopback origin (plus http.allowed_hosts / allowed_origins), on every route.
    app.add_middleware(HostOriginGuardMiddleware, mode="auto",
                       allowed_hosts=settings.allowed_hosts or None,
                       allowed_origins=settings.allowed_origins or None)
    return app
