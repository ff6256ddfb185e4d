"""Which tools a profile sees, and which tools may be destructive."""

from __future__ import annotations

import fnmatch

from orchestrator_mcp.config import ProfileConfig
from orchestrator_mcp.gateway import Catalog, CatalogTool
from orchestrator_mcp.gateway.catalog import tool_allowed

DEFAULT_PROFILE = "default"


def matching(name: str, patterns: list[str]) -> str | None:
    """The first glob of `patterns` that `name` matches."""
    return next((p for p in patterns if fnmatch.fnmatchcase(name, p)), None)


def profile_tools(catalog: Catalog, profile: ProfileConfig) -> dict[str, CatalogTool]:
    """The only tools a run with this profile may see or call."""
    return {
        name: entry for name, entry in catalog.tools.items()
        if matching(entry.server, profile.servers) and tool_allowed(name, profile.tools)
    }


def is_destructive(entry: CatalogTool) -> bool:
    """MCP's defaults: without annotations a tool may be destructive."""
    hints = entry.tool.annotations
    if hints is None:
        return True
    if hints.read_only_hint:
        return False
    return hints.destructive_hint is not False
