"""The gateway: every downstream server behind one catalog of namespaced tools."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import mcp_types

from orchestrator_mcp.config import GatewaySettings, ServerConfig
from orchestrator_mcp.errors import NotFound
from orchestrator_mcp.gateway.catalog import Catalog, CatalogTool, build_catalog
from orchestrator_mcp.gateway.connection import ServerConnection, ServerHealth, ServerStatus
from orchestrator_mcp.telemetry import metrics

log = logging.getLogger(__name__)


class UnknownTool(NotFound, LookupError):
    """No tool of the catalog has this name."""


class Gateway:
    def __init__(
        self,
        servers: dict[str, ServerConfig],
        settings: GatewaySettings | None = None,
        log_dir: Path | None = None,
        in_process: Mapping[str, Any] | None = None,
    ) -> None:
        """`in_process`: name → FastMCP server of this process (built-in agents), mounted
        beside the configured servers; a configured server of the same name wins. A server
        is taken from the mapping when first connected (agents.LazyServers builds it then)."""
        self.settings = settings or GatewaySettings()
        self.connections = {
            name: ServerConnection(name, cfg, self.settings, self._rebuild, log_dir)
            for name, cfg in servers.items()
        }
        in_process = in_process or {}
        for name in in_process:
            if name in self.connections:
                log.warning("servers.yaml defines %r; the built-in %r is not mounted", name, name)
                continue
            placeholder = ServerConfig(command="(in-process)")
            self.connections[name] = ServerConnection(
                name, placeholder, self.settings, self._rebuild, log_dir,
                in_process=functools.partial(in_process.__getitem__, name))
        self.catalog = Catalog()
        self._listeners: list[Callable[[Catalog], None]] = []
        self._settled = asyncio.Event()

    def start(self, *, spawned_only: bool = False) -> None:
        """Connect to every enabled server in the background; returns at once. Again:
        only to those not started yet. `spawned_only`: only to the servers that run in
        processes of their own (their start-up costs this process little CPU), not yet to
        the built-in ones."""
        for connection in self.connections.values():
            if not (spawned_only and connection.in_process):
                connection.start()

    async def stop(self) -> None:
        await asyncio.gather(*(c.stop() for c in self.connections.values()))

    def on_catalog_change(self, listener: Callable[[Catalog], None]) -> None:
        self._listeners.append(listener)

    def _rebuild(self) -> None:
        previous = self.catalog
        self.catalog = build_catalog(
            (name, c.tools) for name, c in self.connections.items() if c.tools
        )
        metrics.CATALOG_TOOLS.set(len(self.catalog))
        for collision in set(self.catalog.collisions) - set(previous.collisions):
            log.warning("tool name collision: %s", collision)
        if previous.tools.keys() != self.catalog.tools.keys() or any(
            previous.tools[n].tool != t.tool for n, t in self.catalog.tools.items()
        ):
            for listener in self._listeners:
                listener(self.catalog)

    def health(self) -> list[ServerHealth]:
        return [c.health() for c in self.connections.values()]

    @property
    def ready(self) -> bool:
        """True when every enabled server is up."""
        return all(
            c.status in (ServerStatus.UP, ServerStatus.DISABLED)
            for c in self.connections.values()
        )

    async def wait_settled(self, timeout: float) -> None:
        """Wait until no enabled server is still on its first connection attempt."""
        await asyncio.gather(*(c.wait_settled(timeout) for c in self.connections.values()))

    def _server_of(self, name: str) -> str | None:
        """The server whose prefix `name` has (the longest, when names nest)."""
        matches = [s for s in self.connections if name.startswith(f"{s}_")]
        return max(matches, key=len) if matches else None

    async def resolve_when_ready(self, name: str) -> CatalogTool:
        """`resolve`, but a tool of a server that is not up waits (bounded) instead of
        failing at once: for the first connection attempt right after start-up
        (connect_timeout), or for an immediate reconnect of a server that went down."""
        entry = self.catalog.get(name)
        if entry is not None:
            return entry
        server = self._server_of(name)
        if server is not None:
            connection = self.connections[server]
            if connection.status is ServerStatus.CONNECTING:
                connection.start()  # not started yet (`serve` starts some a little later)
                await connection.wait_settled(self.settings.connect_timeout)
            elif connection.status is ServerStatus.UNHEALTHY:
                await connection.reconnect_now(
                    min(connection.timeout, self.settings.connect_timeout))
        return self.resolve(name)

    def resolve(self, name: str) -> CatalogTool:
        entry = self.catalog.get(name)
        if entry is not None:
            return entry
        server = self._server_of(name)
        if server is not None and self.connections[server].status is not ServerStatus.UP:
            health = self.connections[server].health()
            raise UnknownTool(
                f"tool '{name}' is not available: server '{server}' is {health.status.value}"
                + (f" ({health.last_error})" if health.last_error else "")
            )
        raise UnknownTool(
            f"unknown tool '{name}'; list the catalog with list_tools (names are "
            "'<server>_<tool>')"
        )

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> mcp_types.CallToolResult:
        entry = await self.resolve_when_ready(name)
        connection = self.connections[entry.server]
        return await connection.call(entry.remote_name, arguments, retry_safe=entry.retry_safe)
