"""How hosts discover where to get a token (MCP authorization spec): the protected-resource
metadata document (RFC 9728) and the `WWW-Authenticate` challenges that point at it.

The resource is the MCP endpoint, `<base>/mcp`: `http.auth.resource_url` when set (behind
a proxy it must be), else the request's own scheme and Host. The document is served at
`/.well-known/oauth-protected-resource/mcp` (RFC 9728 §3.1, where the challenge points)
and at `/.well-known/oauth-protected-resource` for hosts that only try the root.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from mcp.server.auth.routes import build_resource_metadata_url
from pydantic import AnyHttpUrl
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Scope

from orchestrator_mcp.config.http import Scope as Permission

if TYPE_CHECKING:
    from orchestrator_mcp.auth.oauth import OAuthVerifier

METADATA_PATH = "/.well-known/oauth-protected-resource"
MCP_PATH = "/mcp"
METADATA_PATHS = frozenset({METADATA_PATH, METADATA_PATH + MCP_PATH})
# A Host header goes into a header and a document we serve: host[:port] characters only.
_HOST = re.compile(r"^[A-Za-z0-9.\-]{1,253}(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?$")


def resource_url(scope: Scope, oauth: OAuthVerifier) -> str:
    if oauth.settings.resource_url:
        return oauth.settings.resource_url
    host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
    if not _HOST.match(host):
        server_host, server_port = scope.get("server") or ("127.0.0.1", 80)
        host = f"[{server_host}]:{server_port}" if ":" in server_host else (
            f"{server_host}:{server_port}")
    return f"{scope.get('scheme', 'http')}://{host}{MCP_PATH}"


def metadata_url(scope: Scope, oauth: OAuthVerifier) -> str:
    return str(build_resource_metadata_url(AnyHttpUrl(resource_url(scope, oauth))))


def unauthorized_challenge(scope: Scope, oauth: OAuthVerifier | None, token_given: bool
                           ) -> str:
    """RFC 6750 §3: no `error` when no token came (the host should start the OAuth flow),
    `invalid_token` when one did; `resource_metadata` tells the host where to look."""
    parts = ['realm="orchestrator-mcp"']
    if oauth is not None:
        if token_given:
            parts.append('error="invalid_token"')
        parts.append(f'resource_metadata="{metadata_url(scope, oauth)}"')
    return "Bearer " + ", ".join(parts)


def forbidden_challenge(scope: Scope, oauth: OAuthVerifier, needed: Permission) -> str:
    """RFC 6750 §3.1 insufficient_scope, with the provider's scope names that grant it."""
    parts = ['realm="orchestrator-mcp"', 'error="insufficient_scope"']
    granting = oauth.settings.granting(needed)
    if granting:
        parts.append(f'scope="{" ".join(granting)}"')
    parts.append(f'resource_metadata="{metadata_url(scope, oauth)}"')
    return "Bearer " + ", ".join(parts)


def metadata_routes(oauth: OAuthVerifier) -> list[Route]:
    async def document(request: Request) -> Response:
        body = oauth.metadata(resource_url(request.scope, oauth))
        return JSONResponse(body, headers={"Cache-Control": "public, max-age=3600",
                                           "Access-Control-Allow-Origin": "*"})

    return [Route(path, document, methods=["GET"]) for path in sorted(METADATA_PATHS)]
