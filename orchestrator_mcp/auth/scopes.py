"""The scope every MCP tool, MCP listing/resource and HTTP route needs, declared once.

read: look (listings, resources, get_run, read-only catalog tools, /metrics, GET /approvals,
GET /runs, the console's views), at one's own runs only; read_all: at every run (admin
implies it); run: act (run, cancel_run, call_tool, other catalog tools, POST /runs, the
console's start forms); approve: decide on pending calls (and see every call that waits
for a decision); admin: change stored knowledge, read the audit log, manage API keys, list
and delete agent memories (their facts came from tool output and are fed to models). Stdio
callers are the local user and are not checked. A run's own planner never reaches these: it
only sees the catalog.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from typing import Literal

from orchestrator_mcp.config.http import PrincipalLimits, Scope

# How a caller proved who it is: a token from servers.yaml, a managed API key (auth/keys.py),
# a verified JWT, or an opaque token its authorization server vouched for (RFC 7662).
PrincipalSource = Literal["token", "key", "jwt", "introspection"]


@dataclass(frozen=True)
class Principal:
    """Who is calling and what they may do. `name` is the token's name (servers.yaml) or
    the access token's subject; `id` is unique across sources, and is what anything kept
    per caller (rate limits, and later run ownership, limits, audit) is keyed on."""

    name: str
    scopes: frozenset[str]
    source: PrincipalSource = "token"
    # What it may start (runs/limits.py): its own, else http.limits; set by the authenticator.
    limits: PrincipalLimits | None = field(default=None, compare=False, hash=False)

    @property
    def id(self) -> str:
        return f"{self.source}:{self.name}"

    @property
    def label(self) -> str:
        """How messages name the caller: "token 'oncall'", "subject 'alice' (jwt)"."""
        if self.source in ("token", "key"):
            return f"{self.source} '{self.name}'"
        return f"subject '{self.name}' ({self.source})"

    @property
    def sees_all_runs(self) -> bool:
        return "read_all" in self.scopes or "admin" in self.scopes


def local_id() -> str:
    """The principal id of the local user (stdio, the CLI): who owns and decides there."""
    try:
        return f"local:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name (a container's bare uid)
        return "local:unknown"


def label_of(principal_id: str) -> str:
    """How text names a principal given its id: "token 'oncall'", "subject 'alice' (jwt)",
    "local user 'bob'", "system 'alertmanager'". Not the bare id in text: "token:oncall"
    is a credential's shape to the redactor, which would hide the name."""
    source, _, name = principal_id.partition(":")
    if source in ("token", "key", "jwt", "introspection"):
        return Principal(name, frozenset(), source).label  # type: ignore[arg-type]
    if source == "local":
        return f"local user '{name}'"
    return f"{source} '{name}'" if name else repr(principal_id)


def caller_id(principal: Principal | None) -> str:
    """Who a run or decision is recorded as: the principal, or the local user (None)."""
    return principal.id if principal is not None else local_id()


def run_viewer(principal: Principal | None) -> str | None:
    """Whose runs a caller may see: None for every run (the local user, read_all, admin),
    else its own principal id. Runs without an owner (older ones) and system runs (alerts:
    'system:alertmanager') are nobody's own, so only read_all/admin see them."""
    if principal is None or principal.sees_all_runs:
        return None
    return principal.id


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
    "list_memories": "admin",
    "forget": "admin",
    "create_key": "admin",
    "list_keys": "admin",
    "revoke_key": "admin",
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
