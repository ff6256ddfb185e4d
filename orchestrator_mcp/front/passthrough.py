"""Pass-through: the gateway catalog exposed as the front's own tools.

`HostCalls` is the one path of hosts' catalog calls (call_tool and pass-through tools):
host-call policy, gateway, audit. `CatalogProvider` turns each catalog entry into a tool
that forwards to it (keeping the tool's own annotations, so hosts' prompts stay truthful);
`ThresholdToolSearch` hides a large catalog behind `search_tools` + `call_tool` only while
the catalog is larger than the threshold; its hits say what calling each tool would risk
under the caller's policy (ranking: front/tool_search.py).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.server.middleware import Middleware, MiddlewareContext
from fastmcp.server.middleware.middleware import CallNext
from fastmcp.server.providers import Provider
from fastmcp.server.transforms import GetToolNext, Transform
from fastmcp.tools import Tool, ToolResult
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler
from mcp.shared.subscriptions import ResourceUpdated, ToolsListChanged
from mcp_types import (
    CallToolResult,
    EmptyResult,
    SubscribeRequestParams,
    SubscriptionsListenRequestParams,
    ToolAnnotations,
    UnsubscribeRequestParams,
)
from pydantic import BaseModel, Field

from orchestrator_mcp.auth.scopes import required_tool_scope
from orchestrator_mcp.config.gateway import HostCallPolicy
from orchestrator_mcp.front.host_policy import HostCallGuard, Verdict, rule_for
from orchestrator_mcp.front.scopes import current_principal
from orchestrator_mcp.front.tool_search import SearchMode, ToolSearch, read_only
from orchestrator_mcp.gateway import Catalog, CatalogTool, Gateway


def to_tool_result(result: CallToolResult) -> ToolResult:
    return ToolResult(
        content=list(result.content),
        structured_content=result.structured_content,
        meta=result.meta,
        is_error=bool(result.is_error),
    )


class HostCalls:
    """Catalog calls made by hosts (call_tool, pass-through): decided on by the host-call
    policy when the tool needs it, made through the gateway, then handed to
    `audit(tool, arguments, outcome, seconds)`, which must not block. The outcome is the
    call's ("ok", "tool_error", "error"), after the policy's verdict when there was one
    ("confirmed; ok", "declined", "denied by policy", ...)."""

    def __init__(self, gateway: Gateway, audit: Callable[..., None] | None = None,
                 policy: HostCallPolicy | None = None) -> None:
        self.gateway = gateway
        self._audit = audit
        self.policy = policy or HostCallPolicy()
        self._guard = HostCallGuard(gateway, self.policy, audit)

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        started = time.perf_counter()
        outcome = "error"
        verdict: Verdict | None = None
        try:
            try:
                rule = self._guard.rule(name)
            except KeyError:  # first call of this tool in this catalog version
                rule = await self._guard.resolve(name)
            if rule is not None:
                decision = await self._guard.decide(name, arguments, rule)
                verdict = decision.verdict
                if decision.ask is not None:
                    return decision.ask
                if not verdict.runs:
                    raise ToolError(decision.refusal or f"{name} was not called")
            result = to_tool_result(await self.gateway.call_tool(name, arguments))
            outcome = "tool_error" if result.is_error else "ok"
            return result
        finally:
            if self._audit is not None:
                if verdict is not None:
                    outcome = verdict.value if not verdict.runs else f"{verdict}; {outcome}"
                self._audit(name, arguments, outcome, time.perf_counter() - started)


class GatewayTool(Tool):
    """A catalog tool as seen by hosts; running it is a gateway call."""

    def __init__(self, calls: HostCalls, entry: CatalogTool) -> None:
        remote = entry.tool
        super().__init__(
            name=entry.name,
            title=remote.title,
            description=f"[{entry.server}] {remote.description or remote.name}",
            parameters=remote.input_schema,
            output_schema=remote.output_schema,
            annotations=remote.annotations,
        )
        self._calls = calls

    async def run(self, arguments: dict[str, Any]) -> ToolResult:
        return await self._calls.call(self.name, arguments)


class CatalogProvider(Provider):
    def __init__(self, calls: HostCalls) -> None:
        super().__init__()
        self._calls = calls
        self._gateway = calls.gateway
        self._built_for: Catalog | None = None
        self._tools: dict[str, GatewayTool] = {}

    def _current(self) -> dict[str, GatewayTool]:
        catalog = self._gateway.catalog
        if catalog is not self._built_for:
            self._tools = {n: GatewayTool(self._calls, e) for n, e in catalog.tools.items()}
            self._built_for = catalog
        return self._tools

    async def _list_tools(self) -> Sequence[Tool]:
        return list(self._current().values())

    async def _get_tool(self, name: str, version: Any = None) -> Tool | None:
        return self._current().get(name)


Risk = Literal["read-only", "changes state", "destructive", "needs approval",
               "denied by policy", "denied for this caller"]
MAX_QUERY_CHARS = 500
MAX_HITS = 20


class ToolHit(BaseModel):
    name: str = Field(description="catalog name: call it with call_tool")
    server: str
    description: str
    risk: Risk = Field(description="what calling it means under your policy: read-only; "
                       "changes state (not destructive); destructive (runs without "
                       "asking); needs approval (your user is asked first); denied")
    score: float = Field(description="relevance, higher is better (scale depends on ranking)")
    input_schema: dict[str, Any]


class ToolSearchResult(BaseModel):
    ranking: SearchMode = Field(description="bm25, or hybrid (BM25 and embeddings)")
    hits: list[ToolHit]


class ThresholdToolSearch(Transform):
    """`search_tools` in place of the catalog's tools, only above `threshold` catalog tools.

    The front's own tools stay listed; its `call_tool` calls what search found. Each hit
    carries its risk under the host-call policy (gateway.host_calls) and, over HTTP, the
    caller's scopes, so a host can prefer the look before the change.
    """

    NAME = "search_tools"

    def __init__(self, threshold: int, calls: HostCalls, search: ToolSearch) -> None:
        self._threshold = threshold
        self._policy = calls.policy
        self._search = search
        self._tool = Tool.from_function(
            fn=self._search_tools, name=self.NAME,
            annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True,
                                        open_world_hint=False))

    async def _search_tools(
        self,
        query: Annotated[str, Field(
            min_length=1, max_length=MAX_QUERY_CHARS,
            description="what you want to do, in words, e.g. 'restart nginx on web-3'")],
        limit: Annotated[int, Field(ge=1, le=MAX_HITS, description="how many tools")] = 8,
    ) -> ToolSearchResult:
        """Find catalog tools for a task, best first, each with its input schema and its
        risk under your policy (read-only tools first among equally relevant ones). Call
        the one you pick with call_tool."""
        found, ranking = await self._search.search(query, limit)
        return ToolSearchResult(ranking=ranking, hits=[
            ToolHit(name=entry.name, server=entry.server,
                    description=entry.tool.description or entry.tool.name,
                    risk=self.risk(entry), score=round(score, 4),
                    input_schema=entry.tool.input_schema)
            for entry, score in found])

    def risk(self, entry: CatalogTool) -> Risk:
        principal = current_principal()
        if principal is not None and required_tool_scope(
                entry.name, read_only(entry)) not in principal.scopes:
            return "denied for this caller"
        rule = rule_for(entry, self._policy)
        if rule is None:
            return "read-only" if read_only(entry) else "changes state"
        return {"allow": "destructive", "confirm": "needs approval",
                "deny": "denied by policy"}[rule.action]

    async def list_tools(self, tools: Sequence[Tool]) -> Sequence[Tool]:
        own = [t for t in tools if not isinstance(t, GatewayTool)]
        if len(tools) - len(own) <= self._threshold:
            return tools
        return [*own, self._tool]

    async def get_tool(self, name: str, call_next: GetToolNext, *,
                       version: Any = None) -> Tool | None:
        if name == self.NAME:
            return self._tool
        return await call_next(name, version=version)


class CatalogChangeNotifier(Middleware):
    """Tells connected hosts that the tool list changed, in both protocol eras.

    Also serves resource subscriptions (`resources/subscribe`; listen streams in the
    modern era), which fastmcp does not, for the runs resource.

    Handshake era: a `notifications/tools/list_changed` on each connection seen at
    `initialize` (mcp 2.x builds a ServerSession per request; the connection under it lives
    as long as the host, so that is what is kept, weakly). Modern era (2026-07-28): there is
    no back-channel, so the event goes to `subscriptions/listen` streams, which fastmcp does
    not serve yet; `install` registers the SDK's own listen handler on the low-level server.
    """

    def __init__(self) -> None:
        self.connections: weakref.WeakSet[Any] = weakref.WeakSet()
        self.subscriptions: weakref.WeakKeyDictionary[Any, set[str]] = (
            weakref.WeakKeyDictionary())
        self.bus = InMemorySubscriptionBus()

    def install(self, mcp: FastMCP) -> None:
        mcp.add_middleware(self)
        server = mcp._mcp_server  # fastmcp 4.1 has no public hook for these handlers
        server.add_request_handler(
            "subscriptions/listen", SubscriptionsListenRequestParams, ListenHandler(self.bus))
        server.add_request_handler("resources/subscribe", SubscribeRequestParams,
                                   self._subscribe)
        server.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams,
                                   self._unsubscribe)

    async def _subscribe(self, ctx: Any, params: SubscribeRequestParams) -> EmptyResult:
        connection = getattr(ctx.session, "_connection", None)
        if connection is not None:
            self.subscriptions.setdefault(connection, set()).add(params.uri)
        return EmptyResult()

    async def _unsubscribe(self, ctx: Any, params: UnsubscribeRequestParams) -> EmptyResult:
        connection = getattr(ctx.session, "_connection", None)
        self.subscriptions.get(connection, set()).discard(params.uri)
        return EmptyResult()

    async def resource_updated(self, uri: str) -> None:
        """Tell subscribers a resource changed: `notifications/resources/updated` in the
        handshake era, a ResourceUpdated event on listen streams in the 2026-07-28 era."""
        await self.bus.publish(ResourceUpdated(uri))
        for connection, uris in list(self.subscriptions.items()):
            if uri in uris:
                try:
                    await connection.outbound.notify("notifications/resources/updated",
                                                     {"uri": uri})
                except Exception:  # noqa: BLE001 - a closed connection must not stop others
                    self.subscriptions.pop(connection, None)

    async def on_initialize(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        result = await call_next(context)
        if context.fastmcp_context is not None:
            connection = getattr(context.fastmcp_context.session, "_connection", None)
            if connection is not None:
                self.connections.add(connection)
        return result

    async def tool_list_changed(self) -> None:
        await self.bus.publish(ToolsListChanged())
        for connection in list(self.connections):
            try:
                await connection.outbound.notify("notifications/tools/list_changed", None)
            except Exception:  # noqa: BLE001 - a closed connection must not stop the others
                self.connections.discard(connection)
