"""Which tools a profile sees, and which calls wait for a human."""

from __future__ import annotations

import fnmatch

from orchestrator_mcp.config import ProfileConfig
from orchestrator_mcp.gateway import Catalog, CatalogTool
from orchestrator_mcp.gateway.catalog import tool_allowed

DEFAULT_PROFILE = "default"


def _matches(name: str, patterns: list[str]) -> str | None:
    return next((p for p in patterns if fnmatch.fnmatchcase(name, p)), None)


def profile_tools(catalog: Catalog, profile: ProfileConfig) -> dict[str, CatalogTool]:
    """The only tools a run with this profile may see or call."""
    return {
        name: entry for name, entry in catalog.tools.items()
        if _matches(entry.server, profile.servers) and tool_allowed(name, profile.tools)
    }


def is_destructive(entry: CatalogTool) -> bool:
    """MCP's defaults: without annotations a tool may be destructive."""
    hints = entry.tool.annotations
    if hints is None:
        return True
    if hints.read_only_hint:
        return False
    return hints.destructive_hint is not False


def approval_reason(entry: CatalogTool, profile: ProfileConfig) -> str | None:
    """Why this call must wait for a human, or None when it may run at once."""
    rules = profile.approval
    if _matches(entry.name, rules.auto_approve):
        return None
    pattern = _matches(entry.name, rules.require)
    if pattern is not None:
        return f"the profile requires approval for tools matching {pattern!r}"
    if rules.destructive == "require" and is_destructive(entry):
        return "the tool is not marked read-only and may be destructive"
    return None
