"""The FastMCP server hosts talk to. Thin: every tool delegates to the gateway."""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.tools import ToolResult
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from orchestrator_mcp import __version__
from orchestrator_mcp.config import GatewaySettings
from orchestrator_mcp.config.models import HttpSettings
from orchestrator_mcp.front.knowledge_tools import register_knowledge_tools
from orchestrator_mcp.front.passthrough import (
    CatalogChangeNotifier,
    CatalogProvider,
    HostCalls,
    ThresholdToolSearch,
)
from orchestrator_mcp.front.runs_tools import register_run_tools
from orchestrator_mcp.front.scopes import ScopeGuard, current_principal, rate_limiter
from orchestrator_mcp.gateway import Gateway
from orchestrator_mcp.knowledge import KnowledgeBase
from orchestrator_mcp.runs.engine import RunEngine

INSTRUCTIONS = """\
orchestrator-mcp gathers many MCP servers behind one catalog of tools named
'<server>_<tool>'. Use list_servers to see which servers are up, list_tools to find a
tool, and call_tool to call one. Start a goal-based run with run (or ask one built-in
agent with ask_agent), and search the operators' runbooks with search."""

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)


class ServerInfo(BaseModel):
    name: str
    transport: str
    status: str = Field(description="connecting, up, unhealthy or disabled")
    era: str | None = Field(description="negotiated MCP protocol version")
    tools: int
    last_error: str | None
    connect_seconds: float | None
    connected_since: float | None


class ToolInfo(BaseModel):
    name: str
    server: str
    description: str
    read_only: bool
    destructive: bool | None
    input_schema: dict[str, Any]


def _tool_infos(
    gateway: Gateway, server: str | None, pattern: str | None, text: str | None
) -> list[ToolInfo]:
    if server is not None and server not in gateway.connections:
        known = ", ".join(sorted(gateway.connections)) or "none configured"
        raise ToolError(f"unknown server '{server}'; configured servers: {known}")
    needle = text.lower() if text else None
    infos = []
    for entry in gateway.catalog.tools.values():
        remote = entry.tool
        if server is not None and entry.server != server:
            continue
        if pattern is not None and not fnmatch.fnmatchcase(entry.name, pattern):
            continue
        description = remote.description or ""
        if needle and needle not in f"{entry.name} {description}".lower():
            continue
        hints = remote.annotations
        infos.append(
            ToolInfo(
                name=entry.name,
                server=entry.server,
                description=description,
                read_only=bool(hints and hints.read_only_hint),
                destructive=hints.destructive_hint if hints else None,
                input_schema=remote.input_schema,
            )
        )
    return infos


def _auditor(engine: RunEngine) -> Callable[..., None]:
    """Record a host's catalog call in the audit log without making the host wait."""
    pending: set[asyncio.Task[None]] = set()

    def record(tool: str, arguments: dict[str, Any], outcome: str, seconds: float) -> None:
        if engine.audit is None:
            return
        principal = current_principal()
        caller = f"http:{principal.name}" if principal is not None else "stdio"
        task = asyncio.get_running_loop().create_task(asyncio.to_thread(
            engine.audit.record, kind="tool_call", caller=caller, tool=tool,
            arguments=arguments, outcome=outcome, seconds=seconds))
        pending.add(task)
        task.add_done_callback(pending.discard)

    return record


def build_front(
    gateway: Gateway,
    settings: GatewaySettings,
    engine: RunEngine | None = None,
    lifespan: Callable[[], contextlib.AbstractAsyncContextManager[None]] | None = None,
    http: HttpSettings | None = None,
    knowledge: KnowledgeBase | None = None,
) -> FastMCP:
    """`lifespan` starts and stops the parts behind the front (the composition root's
    job); without it the gateway alone is started. `http`: served over HTTP, so check
    token scopes per tool and rate-limit per token."""
    notifier = CatalogChangeNotifier()

    @contextlib.asynccontextmanager
    async def front_lifespan(_: FastMCP) -> AsyncIterator[dict[str, Any]]:
        if lifespan is not None:
            async with lifespan():
                yield {}
            return
        gateway.start()
        try:
            yield {}
        finally:
            await gateway.stop()

    mcp = FastMCP(
        name="orchestrator-mcp",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=front_lifespan,
        # Token scopes exist only over HTTP; stdio callers are the local user, and every
        # middleware costs each call a little.
        middleware=[ScopeGuard(), rate_limiter(http.rate_limit_per_second,
                                                http.rate_limit_burst)] if http else [],
    )
    notifier.install(mcp)
    host_calls = HostCalls(gateway, _auditor(engine) if engine is not None else None)

    pending: set[asyncio.Task[None]] = set()

    def notify(_: object) -> None:
        task = asyncio.get_running_loop().create_task(notifier.tool_list_changed())
        pending.add(task)
        task.add_done_callback(pending.discard)

    gateway.on_catalog_change(notify)

    def run_changed(run_id: str) -> None:
        task = asyncio.get_running_loop().create_task(
            notifier.resource_updated(f"orchestrator://runs/{run_id}"))
        pending.add(task)
        task.add_done_callback(pending.discard)

    if engine is not None:
        engine.on_change(run_changed)

    @mcp.tool(annotations=READ_ONLY)
    def list_servers() -> list[ServerInfo]:
        """Downstream MCP servers with their health, protocol era, tool count and last error."""
        return [ServerInfo(**h.as_dict()) for h in gateway.health()]

    @mcp.tool(annotations=READ_ONLY)
    def list_tools(
        server: Annotated[str | None, "only tools of this server"] = None,
        pattern: Annotated[str | None, "glob on the catalog name, e.g. 'memory_*'"] = None,
        text: Annotated[str | None, "case-insensitive text in the name or description"] = None,
    ) -> list[ToolInfo]:
        """Search the catalog of downstream tools (names are '<server>_<tool>')."""
        return _tool_infos(gateway, server, pattern, text)

    @mcp.tool
    async def call_tool(
        name: Annotated[str, Field(description="catalog name, '<server>_<tool>'", min_length=1)],
        arguments: Annotated[
            dict[str, Any] | None, "arguments for the tool, as its input schema says"
        ] = None,
    ) -> ToolResult:
        """Call any tool of the catalog by name; the result is the downstream tool's own."""
        return await host_calls.call(name, arguments or {})

    @mcp.resource("orchestrator://servers", mime_type="application/json")
    def servers_resource() -> str:
        """Health of every downstream server."""
        return json.dumps([h.as_dict() for h in gateway.health()], indent=2)

    @mcp.resource("orchestrator://tools", mime_type="application/json")
    def tools_resource() -> str:
        """The catalog of namespaced downstream tools."""
        infos = _tool_infos(gateway, None, None, None)
        return json.dumps([i.model_dump() for i in infos], indent=2)

    if engine is not None:
        register_run_tools(mcp, engine)
    if knowledge is not None:
        register_knowledge_tools(mcp, knowledge)

    if settings.passthrough:
        mcp.add_provider(CatalogProvider(host_calls))
        if settings.tool_search_threshold > 0:
            mcp.add_transform(ThresholdToolSearch(settings.tool_search_threshold))
    return mcp
