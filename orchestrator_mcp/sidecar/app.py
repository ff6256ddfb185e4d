"""The HTTP face: MCP at /mcp plus /healthz, /readyz and /metrics, behind a bearer token."""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

from fastmcp import FastMCP
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from orchestrator_mcp.gateway import Gateway
from orchestrator_mcp.telemetry.metrics import REGISTRY

OPEN_PATHS = frozenset({"/healthz", "/readyz"})


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class BearerAuth:
    """Require `Authorization: Bearer <token>` on every path but the health probes."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self._expected is None
            or scope["type"] != "http"
            or scope["path"] in OPEN_PATHS
        ):
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"authorization", b"")
        if not hmac.compare_digest(given, self._expected):
            reason = "missing bearer token" if not given else "invalid bearer token"
            response = JSONResponse(
                {"error": "unauthorized", "detail": f"{reason}; send 'Authorization: Bearer "
                 "<token>' with the token set in ORCH_HTTP_TOKEN or servers.yaml http.token"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="orchestrator-mcp"'},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def build_app(front: FastMCP, gateway: Gateway, token: str | None) -> Starlette:
    mcp_app = front.http_app(path="/mcp")

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        servers: dict[str, Any] = {
            h.name: {"status": h.status.value, "last_error": h.last_error}
            for h in gateway.health()
        }
        ready = gateway.ready
        return JSONResponse(
            {"status": "ready" if ready else "degraded", "servers": servers},
            status_code=200 if ready else 503,
        )

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            Mount("/", app=mcp_app),
        ],
        lifespan=mcp_app.lifespan,
    )
    app.add_middleware(BearerAuth, token=token)
    return app
