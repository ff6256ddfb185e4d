"""How the front lists its own tools: short output schemas, and no schema text that says
nothing.

A host that shows its model the raw tools/list pays for every character of it, and the
front's typed result models were over half of its listing (RunView alone is 1.9k
characters, on seven tools; bench/README.md, *catalog.py*). So the listing declares only
what a host needs to take a result: structured content is an object or, for a list result,
an object whose `result` is an array (fastmcp's wrapping, which its clients unwrap by the
`x-fastmcp-wrap-result` flag). Input schemas lose what JSON Schema treats as absent anyway
(`"default": null`, `"additionalProperties": true`), and read-only tools the hints the MCP
spec calls meaningful only for tools that write (idempotent, destructive). Their `$defs`
are inlined here, once per tool, as fastmcp's dereferencing would do on every listing: it
uses jsonref (schemas.py).

Results do not change: fastmcp builds them from each tool's return type as before (the
wrap flag, the only part of the schema it reads then, is kept), and they conform to the
short schemas as they did to the long ones. Arguments are validated against the tools'
signatures, not their listed schemas. Downstream tools passed through (GatewayTool) are
listed as their servers declare them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.server.transforms import Transform
from fastmcp.tools import Tool

from orchestrator_mcp.front.passthrough import GatewayTool
from orchestrator_mcp.schemas import inline_defs

if TYPE_CHECKING:
    from fastmcp import FastMCP

WRAPPED = "x-fastmcp-wrap-result"


def short_output_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The short form of a generated output schema: the outer type, and the type of a
    wrapped result."""
    if not schema.get(WRAPPED):
        return {"type": "object"}
    kind = schema.get("properties", {}).get("result", {}).get("type")
    return {"type": "object", "properties": {"result": {"type": kind} if isinstance(
        kind, str) else {}}, "required": ["result"], WRAPPED: True}


def without_noise(schema: Any) -> Any:
    """A JSON schema without `"default": null` and `"additionalProperties": true`, which
    constrain and tell nothing. Property names are kept whatever they are called."""
    if isinstance(schema, list):
        return [without_noise(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    kept = {}
    for key, value in schema.items():
        if key == "properties" and isinstance(value, dict):
            kept[key] = {name: without_noise(sub) for name, sub in value.items()}
        elif not ((key == "default" and value is None)
                  or (key == "additionalProperties" and value is True)):
            kept[key] = without_noise(value)
    return kept


def listed(tool: Tool) -> Tool:
    """How the front lists one of its own tools."""
    update: dict[str, Any] = {"parameters": inline_defs(without_noise(tool.parameters))}
    if tool.output_schema is not None:
        update["output_schema"] = short_output_schema(tool.output_schema)
    hints = tool.annotations
    if hints is not None and hints.read_only_hint:
        update["annotations"] = hints.model_copy(update={"idempotent_hint": None,
                                                         "destructive_hint": None})
    return tool.model_copy(update=update)


class CompactListing(Transform):
    """Lists the front's own tools as `listed` makes them (add it after every other
    transform, so it sees search_tools too). Calls are untouched."""

    def __init__(self) -> None:
        self._listed: dict[str, tuple[Tool, Tool]] = {}  # key → (tool, as listed)

    async def list_tools(self, tools: Sequence[Tool]) -> Sequence[Tool]:
        return [tool if isinstance(tool, GatewayTool) else self._compact(tool)
                for tool in tools]

    def _compact(self, tool: Tool) -> Tool:
        known = self._listed.get(tool.key)
        if known is None or known[0] is not tool:
            known = self._listed[tool.key] = (tool, listed(tool))
        return known[1]


class FirstListing(Middleware):
    """Calls `then` once, when `server` has answered its first tools/list, and leaves
    the server's middleware then (each one is a layer of every later request)."""

    def __init__(self, server: FastMCP, then: Callable[[], None]) -> None:
        self._server = server
        self._then: Callable[[], None] | None = then
        server.add_middleware(self)

    async def on_list_tools(self, context: MiddlewareContext[Any],
                            call_next: CallNext[Any, Any]) -> Any:
        result = await call_next(context)
        if self._then is not None:
            then, self._then = self._then, None
            with contextlib.suppress(ValueError):
                self._server.middleware.remove(self)
            then()
        return result
