"""The scope every MCP tool, MCP listing/resource and HTTP route needs, declared once.

read: look (listings, resources, get_run, read-only catalog tools, /metrics, GET /approvals,
GET /runs, the console's views); run: act (run, cancel_run, call_tool, other catalog tools,
POST /runs, the console's start forms); approve: decide on pending calls; admin: change
stored knowledge, read the audit log, list and delete agent memories (their facts came from
tool output and are fed to models). Stdio callers are the local user and are not checked.
A run's own planner never reaches these: it only sees the catalog.
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
    "cancel_run": "run",
    "call_tool": "run",
    "ask_agent": "run",
    "index_document": "admin",
    "index_folder": "admin",
    "delete_collection": "admin",
    "delete_document": "admin",
    "audit": "admin",
    "list_memories": "admin",
    "forget": "admin",
}

# Listing tools/resources/prompts and reading a resource (run records hold tool results).
LISTING_SCOPE: Scope = "read"

# Sidecar routes by path prefix (the longest entry that matches whole segments) and method
# (HEAD is GET).
ROUTE_SCOPES: dict[str, dict[str, Scope]] = {
    "/metrics": {"GET": "read"},
    "/approvals": {"GET": "read", "POST": "approve"},
    "/runs": {"GET": "read", "POST": "run"},
    # The console's data: fragments to read, forms that start work, decisions.
    "/console/api": {"GET": "read"},
    "/console/api/workflows": {"POST": "run"},
    "/console/api/agents": {"POST": "run"},
    "/console/api/approvals": {"GET": "read", "POST": "approve"},
}
# Any valid token, and the route itself decides: /mcp (and below) per tool and resource;
# the console's "who am I" answers every token with its own name and scopes.
MCP_ROUTE = "/mcp"
SELF_CHECKED_ROUTES = frozenset({"/console/api/me"})

# Open without a token (GET/HEAD only): the console's page shells and assets hold no data
# (a browser's navigation cannot send a bearer header); what they show is fetched from
# /console/api with one.
PUBLIC_PAGES = frozenset({"/console", "/console/", "/console/runs", "/console/approvals",
                          "/console/start"})
PUBLIC_PREFIXES = ("/console/runs/", "/console/static/")


def required_tool_scope(name: str, read_only: bool) -> Scope:
    return TOOL_SCOPES.get(name) or ("read" if read_only else "run")


def is_public_page(method: str, path: str) -> bool:
    return method in ("GET", "HEAD") and (path in PUBLIC_PAGES
                                          or path.startswith(PUBLIC_PREFIXES))


def required_route_scope(method: str, path: str) -> Scope | None:
    """None for the self-checked routes (any valid token); every other route needs the
    scope of its longest table entry, and an unlisted route or method needs 'admin' (fail
    closed: a route added without an entry is not open to every token)."""
    segments = path.strip("/").split("/")
    if segments[0] == MCP_ROUTE[1:] or "/" + "/".join(segments) in SELF_CHECKED_ROUTES:
        return None
    method = "GET" if method == "HEAD" else method
    for length in range(len(segments), 0, -1):
        route = "/" + "/".join(segments[:length])
        if route in ROUTE_SCOPES:
            return ROUTE_SCOPES[route].get(method, "admin")
    return "admin"
