"""Token scopes on the MCP front over HTTP (stdio callers are the local user).

The scope tables live in `orchestrator_mcp.auth.scopes`; this middleware applies them to
tool calls, resource reads and every listing.
"""

from __future__ import annotations

from typing import Any

from fastmcp.exceptions import InsufficientScopeError, ToolError
from fastmcp.server.middleware import Middleware, MiddlewareContext
from fastmcp.server.middleware.middleware import CallNext
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_REQUEST

from orchestrator_mcp.auth.scopes import LISTING_SCOPE, Principal, required_tool_scope


def current_principal() -> Principal | None:
    """The HTTP caller's Principal, or None over stdio (the local user may do anything)."""
    try:
        from fastmcp.server.dependencies import get_http_request

        request = get_http_request()
    except RuntimeError:
        return None  # stdio
    return getattr(request.state, "principal", None)


def caller_name() -> str:
    """Who is calling, as the audit log and approvals name them: 'stdio', or 'http:' and
    the token's name (static tokens) or the principal's id."""
    principal = current_principal()
    if principal is None:
        return "stdio"
    return f"http:{principal.name}" if principal.source == "token" else f"http:{principal.id}"


def _refusal(principal: Principal, needed: str, what: str) -> str:
    return f"{principal.label} lacks the '{needed}' scope needed for {what}"


class ScopeGuard(Middleware):
    async def on_call_tool(self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
                           ) -> Any:
        principal = current_principal()
        if principal is not None:
            name = context.message.name
            tool = await context.fastmcp_context.fastmcp.get_tool(name)
            hints = getattr(tool, "annotations", None)
            needed = required_tool_scope(name, bool(hints and hints.read_only_hint))
            if needed not in principal.scopes:
                raise ToolError(_refusal(principal, needed, name))
        return await call_next(context)

    async def check_resource_access(self, context: MiddlewareContext[Any]) -> None:
        principal = current_principal()
        if principal is not None and LISTING_SCOPE not in principal.scopes:
            raise InsufficientScopeError([LISTING_SCOPE], message=_refusal(
                principal, LISTING_SCOPE, f"reading {context.message.uri}"))

    async def _listing(self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
                       ) -> Any:
        principal = current_principal()
        if principal is not None and LISTING_SCOPE not in principal.scopes:
            # An MCP error with the reason: fastmcp reports other exceptions raised while
            # listing as "Internal server error".
            raise MCPError(INVALID_REQUEST, _refusal(principal, LISTING_SCOPE, context.method))
        return await call_next(context)

    on_list_tools = _listing
    on_list_resources = _listing
    on_list_resource_templates = _listing
    on_list_prompts = _listing


def rate_limiter(per_second: float, burst: int) -> Middleware:
    """fastmcp's token bucket, one bucket per HTTP caller (stdio has no limiter)."""
    from fastmcp.server.middleware.rate_limiting import RateLimitingMiddleware

    def client_id(context: MiddlewareContext[Any]) -> str:
        principal = current_principal()
        return principal.id if principal is not None else "anonymous"

    return RateLimitingMiddleware(max_requests_per_second=per_second, burst_capacity=burst,
                                  get_client_id=client_id)
