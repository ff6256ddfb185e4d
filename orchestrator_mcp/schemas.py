"""JSON schemas of our own tools (the front's, the built-in agents'): `$defs` inlined once,
where fastmcp's dereferencing would do it on every listing with jsonref — whose import
(requests, ≈ 5 MB and ≈ 0.1 s) then falls on a host's first tools/list or on the
gateway's first connection to a built-in agent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastmcp.server.transforms import Transform
from fastmcp.tools import Tool

from orchestrator_mcp.llm.schemas import UnresolvedRef, inline_refs


def inline_defs(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with its local `$ref`s to `$defs` replaced by the definitions (a
    `$ref`'s sibling keywords kept over them) and `$defs` dropped; unchanged when a
    definition refers to itself, directly or not (fastmcp's dereferencing then decides)."""
    if not isinstance(schema.get("$defs"), dict):
        return schema
    try:
        return inline_refs(schema, unresolved="raise")
    except UnresolvedRef:
        return schema


class InlineDefinitions(Transform):
    """Lists a server's tools with their input and output schemas' `$defs` inlined (each
    tool once). Calls are untouched."""

    def __init__(self) -> None:
        self._listed: dict[str, tuple[Tool, Tool]] = {}  # key → (tool, as listed)

    async def list_tools(self, tools: Sequence[Tool]) -> Sequence[Tool]:
        return [self._inlined(tool) for tool in tools]

    def _inlined(self, tool: Tool) -> Tool:
        known = self._listed.get(tool.key)
        if known is None or known[0] is not tool:
            update: dict[str, Any] = {"parameters": inline_defs(tool.parameters)}
            if tool.output_schema is not None:
                update["output_schema"] = inline_defs(tool.output_schema)
            known = self._listed[tool.key] = (tool, tool.model_copy(update=update))
        return known[1]
