"""The scope every MCP tool, MCP listing/resource and HTTP route needs, declared once.

read: look (listings, resources, get_run, read-only catalog tools, /metrics, GET /approvals,
GET /runs); run: act (run, cancel_run, call_tool, other catalog tools, POST /runs); approve:
decide on pending calls; admin: change stored knowledge, read the audit log. Stdio callers
are the local user and are not checked. A run's own planner never reaches these: it only
sees the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from orchestrator_mcp.config.http import Scope

# How a caller proved who it is: a token from servers.yaml, a verified JWT, or an opaque
# token its authorization server vouched for (RFC 7662).
PrincipalSource = Literal["token", "jwt", "introspection"]


@dataclass(frozen=True)
class Principal:
    """Who is calling and what they may do. `name` is the token's name (servers.yaml) or
    the access token's subject; `id` is unique across sources, and is what anything kept
    per caller (rate limits, and later run ownership, limits, audit) is keyed on."""

    name: str
    scopes: frozenset[str]
    source: PrincipalSource = "token"

    @property
    def id(self) -> str:
        return f"{self.source}:{self.name}"

    @property
    def label(self) -> str:
        """How messages name the caller: "token 'oncall'", "subject 'alice' (jwt)"."""
        if self.source == "token":
            return f"token '{self.name}'"
        return f"subject '{self.name}' ({self.source})"


TOOL_SCOPES: dict[str, Scope] = {
    "approve": "approve",
    "run": "run",
    "run_workflow": "run",
    "run_template": "run",
    "cancel_run": "run",
    "call_tool": "run",
    "ask_agent": "run",
    "index_document": "admin",
    "index_folder": "admin",
    "delete_collection": "admin",
    "delete_document": "admin",
    "audit": "admin",
}

# Listing tools/resources/prompts and reading a resource (run records hold tool results).
LISTING_SCOPE: Scope = "read"

# Sidecar routes by first path segment and method (HEAD is GET); /mcp is checked per call.
ROUTE_SCOPES: dict[str, dict[str, Scope]] = {
    "/metrics": {"GET": "read"},
    "/approvals": {"GET": "read", "POST": "approve"},
    "/runs": {"GET": "read", "POST": "run"},
}
MCP_ROUTE = "/mcp"


def required_tool_scope(name: str, read_only: bool) -> Scope:
    return TOOL_SCOPES.get(name) or ("read" if read_only else "run")


def required_route_scope(method: str, path: str) -> Scope | None:
    """None for the MCP endpoint (checked per tool and resource); every other route needs
    the scope of its table entry, and an unlisted route or method needs 'admin' (fail
    closed: a route added without an entry is not open to every token)."""
    route = "/" + path.strip("/").split("/")[0]
    if route == MCP_ROUTE:
        return None
    method = "GET" if method == "HEAD" else method
    return ROUTE_SCOPES.get(route, {}).get(method, "admin")
