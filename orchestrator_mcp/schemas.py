"""JSON schemas of our own tools (the front's, the built-in agents'): `$defs` inlined once,
where fastmcp's dereferencing would do it on every listing with jsonref — whose import
(requests, ≈ 5 MB and ≈ 0.1 s) then falls on a host's first tools/list or on the
gateway's first connection to a built-in agent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastmcp.server.transforms import Transform
from fastmcp.tools import Tool

MAX_INLINE_DEPTH = 8


def inline_defs(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with its local `$ref`s to `$defs` replaced by the definitions (a
    `$ref`'s sibling keywords kept over them) and `$defs` dropped; unchanged when a
    definition refers to itself, directly or not (fastmcp's dereferencing then decides)."""
    defs = schema.get("$defs")
    if not isinstance(defs, dict):
        return schema

    def resolve(node: Any, depth: int) -> Any:
        if isinstance(node, list):
            return [resolve(item, depth) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            target = defs.get(ref.removeprefix("#/$defs/"))
            if target is None or depth >= MAX_INLINE_DEPTH:
                raise RecursionError(ref)
            siblings = {k: resolve(v, depth) for k, v in node.items() if k != "$ref"}
            return {**resolve(target, depth + 1), **siblings}
        return {k: resolve(v, depth) for k, v in node.items() if k != "$defs"}

    try:
        return resolve(schema, 0)
    except RecursionError:
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
