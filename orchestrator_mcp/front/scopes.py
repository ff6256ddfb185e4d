"""Which token scope each front tool needs over HTTP (stdio callers are the local user).

read: look (list_*, get_run, read-only catalog tools); run: act (run, cancel_run,
call_tool, other catalog tools); approve: decide on pending calls; admin: change stored
knowledge. A run's own planner never reaches these tools: it only sees the catalog.
"""

from __future__ import annotations

from typing import Any

from fastmcp.exceptions import ToolError
from fastmcp.server.middleware import Middleware, MiddlewareContext
from fastmcp.server.middleware.middleware import CallNext

TOOL_SCOPES: dict[str, str] = {
    "approve": "approve",
    "run": "run",
    "run_workflow": "run",
    "cancel_run": "run",
    "call_tool": "run",
    "index_document": "admin",
    "index_folder": "admin",
    "delete_collection": "admin",
    "delete_document": "admin",
    "audit": "admin",
}


def required_scope(name: str, read_only: bool) -> str:
    return TOOL_SCOPES.get(name) or ("read" if read_only else "run")


def current_principal() -> Any:
    """The HTTP caller's Principal, or None over stdio (the local user may do anything)."""
    try:
        from fastmcp.server.dependencies import get_http_request

        request = get_http_request()
    except RuntimeError:
        return None  # stdio
    return getattr(request.state, "principal", None)


class ScopeGuard(Middleware):
    async def on_call_tool(self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
                           ) -> Any:
        principal = current_principal()
        if principal is not None:
            name = context.message.name
            tool = await context.fastmcp_context.fastmcp.get_tool(name)
            hints = getattr(tool, "annotations", None)
            needed = required_scope(name, bool(hints and hints.read_only_hint))
            if needed not in principal.scopes:
                raise ToolError(f"token '{principal.name}' lacks the '{needed}' scope "
                                f"needed for {name}")
        return await call_next(context)


def rate_limiter(per_second: float, burst: int) -> Middleware:
    """fastmcp's token bucket, one bucket per HTTP token (stdio has no limiter)."""
    from fastmcp.server.middleware.rate_limiting import RateLimitingMiddleware

    def client_id(context: MiddlewareContext[Any]) -> str:
        principal = current_principal()
        return principal.name if principal is not None else "anonymous"

    return RateLimitingMiddleware(max_requests_per_second=per_second, burst_capacity=burst,
                                  get_client_id=client_id)
