"""One downstream MCP server: connect in the background, watch, reconnect, call.

A supervisor task owns the client session (it enters and leaves it, as anyio requires).
Callers never wait for a backoff tick: a call that finds the server dead asks for an
immediate reconnect and waits a bounded time for it. Attempts are spaced at least
`MIN_ATTEMPT_GAP` apart, so a crash-looping server costs one spawn per gap, whatever
the number of callers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mcp_types
from mcp.shared.exceptions import MCPError

from orchestrator_mcp.config import GatewaySettings, ServerConfig
from orchestrator_mcp.errors import Unavailable, UserError
from orchestrator_mcp.gateway.catalog import tool_allowed
from orchestrator_mcp.telemetry import metrics

if TYPE_CHECKING:
    from fastmcp import Client

log = logging.getLogger(__name__)

MIN_ATTEMPT_GAP = 1.0
HEALTH_INTERVAL = 15.0  # ping a live session this often
LIVENESS_TICK = 0.25  # look this often whether the session's stream has closed


class ServerStatus(StrEnum):
    CONNECTING = "connecting"
    UP = "up"
    UNHEALTHY = "unhealthy"
    DISABLED = "disabled"


class ServerUnavailable(Unavailable):
    """The server could not be reached; the message names it and says why."""


class CallTimeout(UserError):
    """The tool call did not finish within the server's timeout."""

    status = 504
    code = "timeout"


class CallRefused(UserError):
    """The server answered the call with an MCP error (unknown tool, invalid arguments…)."""

    status = 502
    code = "downstream_error"


@dataclass(frozen=True)
class ServerHealth:
    name: str
    transport: str
    status: ServerStatus
    era: str | None
    tools: int
    last_error: str | None
    connect_seconds: float | None
    connected_since: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "transport": self.transport,
            "status": self.status.value,
            "era": self.era,
            "tools": self.tools,
            "last_error": self.last_error,
            "connect_seconds": self.connect_seconds,
            "connected_since": self.connected_since,
        }


def is_connection_failure(exc: BaseException) -> bool:
    """True when the session is gone, False when the server answered with an error."""
    if isinstance(exc, MCPError):
        return exc.error.code == mcp_types.CONNECTION_CLOSED
    return True


def session_closed(client: Client) -> bool:
    """True once the session's transport has closed (a stdio server's process exited, an
    HTTP stream ended). The mcp SDK's dispatcher marks itself closed when its read loop
    ends but offers no public flag or event for it (fastmcp's own stdio transport reads the
    same attribute), so this reads `_closed` and says False when the layout differs."""
    session = getattr(client, "_session_state", None)
    session = getattr(session, "session", None)
    dispatcher = getattr(session, "_dispatcher", None)
    return bool(getattr(dispatcher, "_closed", False))


def describe(exc: BaseException) -> str:
    """A one-line reason, unwrapping fastmcp's generic 'failed to connect' wrapper."""
    while isinstance(exc, RuntimeError) and exc.__cause__ is not None:
        exc = exc.__cause__
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return describe(exc.exceptions[0])
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return text.splitlines()[0][:500]


class ServerConnection:
    def __init__(
        self,
        name: str,
        config: ServerConfig,
        settings: GatewaySettings,
        on_change: Any,
        log_dir: Path | None = None,
        in_process: Callable[[], Any] | None = None,
    ) -> None:
        """`in_process`: gives the FastMCP server of this process (a built-in agent) to
        reach in memory instead of through `config`'s command or URL (asked for when
        connecting)."""
        self.name = name
        self.config = config
        self.settings = settings
        self.timeout = config.timeout or settings.default_timeout
        self.tools: list[mcp_types.Tool] = []
        self.status = ServerStatus.CONNECTING if config.enabled else ServerStatus.DISABLED
        self.last_error: str | None = None
        self.era: str | None = None
        self._on_change = on_change
        self._log_dir = log_dir
        self._client: Client | None = None
        self._up = asyncio.Event()
        self._settled = asyncio.Event()  # the first connection attempt has ended
        self._attempt_ended = asyncio.Event()  # replaced by a new one at each attempt's end
        self._lost = asyncio.Event()
        self._attempt_now = asyncio.Event()
        self._relist = asyncio.Event()
        self._last_attempt = 0.0
        self._connect_seconds: float | None = None
        self._connected_since: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._in_process = in_process

    # ---- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        if self.config.enabled and self._task is None:
            self._task = asyncio.create_task(self._supervise(), name=f"server:{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    @property
    def in_process(self) -> bool:
        """A built-in server of this process, not one started or reached elsewhere."""
        return self._in_process is not None

    def health(self) -> ServerHealth:
        return ServerHealth(
            name=self.name,
            transport="in-process" if self._in_process is not None
            else self.config.transport or "stdio",
            status=self.status,
            era=self.era,
            tools=len(self.tools),
            last_error=self.last_error,
            connect_seconds=self._connect_seconds,
            connected_since=self._connected_since,
        )

    def _transport(self) -> Any:
        # fastmcp's client pulls in its OAuth stack (~0.15 s): imported when the first
        # server connects (in a thread, see _session).
        from fastmcp.client.transports import (
            FastMCPTransport,
            SSETransport,
            StdioTransport,
            StreamableHttpTransport,
        )

        if self._in_process is not None:
            return FastMCPTransport(self._in_process())
        cfg = self.config
        if cfg.transport == "stdio":
            assert cfg.command is not None
            log_file = self._log_dir / f"{self.name}.stderr.log" if self._log_dir else None
            return StdioTransport(
                command=cfg.command,
                args=list(cfg.args),
                env=dict(cfg.env) or None,
                cwd=str(cfg.cwd) if cfg.cwd else None,
                keep_alive=False,
                log_file=log_file,
            )
        assert cfg.url is not None
        if cfg.transport == "sse":
            return SSETransport(cfg.url, headers=dict(cfg.headers))
        return StreamableHttpTransport(cfg.url, headers=dict(cfg.headers))

    async def _supervise(self) -> None:
        backoff = 0.5
        while True:
            self._lost.clear()
            self._attempt_now.clear()
            self._last_attempt = time.monotonic()
            try:
                await self._session()
                backoff = 0.5  # the session was up, then lost: retry soon
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # noqa: BLE001 - every failure makes it unhealthy
                self._mark_unhealthy(describe(exc))
            metrics.SERVER_RECONNECTS.labels(self.name).inc()
            gap = max(backoff, MIN_ATTEMPT_GAP)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(gap):
                    await self._attempt_now.wait()
            # Keep attempts at least MIN_ATTEMPT_GAP apart even when asked to hurry.
            await asyncio.sleep(max(0.0, self._last_attempt + MIN_ATTEMPT_GAP - time.monotonic()))
            backoff = min(backoff * 2, self.settings.reconnect_max_backoff)

    async def _session(self) -> None:
        from fastmcp import Client
        from fastmcp.client.messages import MessageHandler

        relist = self._relist

        class ToolListWatcher(MessageHandler):
            async def on_tool_list_changed(self, message: Any) -> None:
                relist.set()

        started = time.perf_counter()
        # In a thread: a built-in server is built (its modules imported, its tools'
        # schemas generated) and fastmcp's client transports imported on first use, which
        # would hold up the front's answers to its host for most of a second.
        transport = await asyncio.to_thread(self._transport)
        client: Client = Client(transport, mode=self.config.protocol,
                             message_handler=ToolListWatcher())
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                await client.__aenter__()
                listed = await client.list_tools()
        except BaseException:
            with contextlib.suppress(BaseException):
                await client.__aexit__(None, None, None)
            raise
        try:
            self._connect_seconds = round(time.perf_counter() - started, 4)
            self._connected_since = time.time()
            self.era = client.protocol_version
            self.tools = [t for t in listed if tool_allowed(t.name, self.config.tools)]
            self._client = client
            self.status = ServerStatus.UP
            self.last_error = None
            metrics.SERVER_UP.labels(self.name).set(1)
            self._up.set()
            self._end_attempt()
            log.info("server %s up: %d tools, era %s", self.name, len(self.tools), self.era)
            self._on_change()
            await self._watch(client)
        finally:
            self._client = None
            self._up.clear()
            with contextlib.suppress(BaseException):
                await client.__aexit__(None, None, None)

    def _end_attempt(self) -> None:
        """Wake whoever waits for the current attempt (or a loss) to be over."""
        self._settled.set()
        ended, self._attempt_ended = self._attempt_ended, asyncio.Event()
        ended.set()

    async def wait_settled(self, timeout: float) -> None:
        """Wait (bounded) until the first connection attempt has ended, up or not."""
        if self.status is not ServerStatus.CONNECTING:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._settled.wait()

    async def _watch(self, client: Client) -> None:
        """Return when the session is lost: a failed call says so, its stream closes (a
        stdio server's process exited: seen within LIVENESS_TICK), or a ping fails.

        Also re-lists the tools when the server announces `tools/list_changed`.
        """
        next_ping = time.monotonic() + HEALTH_INTERVAL
        while True:
            lost = asyncio.ensure_future(self._lost.wait())
            relist = asyncio.ensure_future(self._relist.wait())
            await asyncio.wait({lost, relist}, timeout=LIVENESS_TICK,
                               return_when=asyncio.FIRST_COMPLETED)
            lost.cancel()
            relist.cancel()
            if self._lost.is_set():
                raise ConnectionError(self.last_error or "connection lost")
            if session_closed(client):
                raise ConnectionError(self._closed_reason())
            if not self._relist.is_set() and time.monotonic() < next_ping:
                continue
            next_ping = time.monotonic() + HEALTH_INTERVAL
            try:
                async with asyncio.timeout(self.settings.connect_timeout):
                    if self._relist.is_set():
                        self._relist.clear()
                        listed = await client.list_tools()
                        self.tools = [t for t in listed if tool_allowed(t.name, self.config.tools)]
                        self._on_change()
                    else:
                        await client.ping()
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # noqa: BLE001
                if session_closed(client):
                    raise ConnectionError(self._closed_reason()) from exc
                if is_connection_failure(exc) or isinstance(exc, TimeoutError):
                    raise ConnectionError(f"health check failed: {describe(exc)}") from exc

    def _closed_reason(self) -> str:
        stdio = self._in_process is None and self.config.transport == "stdio"
        return "server process exited" if stdio else "server closed the connection"

    def _mark_lost(self, reason: str) -> None:
        """A call saw the session die: stop handing it out and wake the supervisor."""
        self.last_error = reason
        self._up.clear()
        self._lost.set()

    def _mark_unhealthy(self, reason: str) -> None:
        changed = self.status is ServerStatus.UP or bool(self.tools)
        if reason != self.last_error or changed:
            log.warning("server %s unhealthy: %s", self.name, reason)
        self.status = ServerStatus.UNHEALTHY
        self.last_error = reason
        self.tools = []
        self._end_attempt()
        metrics.SERVER_UP.labels(self.name).set(0)
        if changed:
            self._on_change()

    # ---- calls -----------------------------------------------------------------------

    async def _reconnect(self, wait: float) -> Client | None:
        """Ask for an immediate attempt and wait, up to `wait` seconds, until a session is
        up or an attempt started after the request has failed (no need to wait longer)."""
        if self._client is not None and not self._lost.is_set():
            return self._client
        if self._task is None:
            return None
        asked = time.monotonic()
        self._attempt_now.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                while not self._up.is_set():
                    await self._attempt_ended.wait()
                    if self._last_attempt >= asked:
                        break
        return self._client if not self._lost.is_set() else None

    async def reconnect_now(self, wait: float) -> bool:
        """For a server that is down: try at once (not at the next backoff tick) and wait,
        bounded, for the outcome. True when it is up."""
        return await self._reconnect(wait) is not None

    def _unavailable(self) -> ServerUnavailable:
        reason = self.last_error or self.status.value
        return ServerUnavailable(f"server '{self.name}' is unavailable: {reason}")

    async def call(
        self, tool: str, arguments: dict[str, Any], *, retry_safe: bool
    ) -> mcp_types.CallToolResult:
        if self.status is ServerStatus.DISABLED:
            raise ServerUnavailable(f"server '{self.name}' is disabled in servers.yaml")
        started = time.perf_counter()
        outcome = "error"
        try:
            result = await self._call_with_recovery(tool, arguments, retry_safe)
            outcome = "tool_error" if result.is_error else "ok"
            return result
        except CallTimeout:
            outcome = "timeout"
            raise
        finally:
            metrics.TOOL_CALLS.labels(self.name, tool, outcome).inc()
            metrics.TOOL_CALL_SECONDS.labels(self.name, tool).observe(
                time.perf_counter() - started)

    async def _call_with_recovery(
        self, tool: str, arguments: dict[str, Any], retry_safe: bool
    ) -> mcp_types.CallToolResult:
        client = self._client
        if client is None or self._lost.is_set():
            client = await self._reconnect(min(self.timeout, self.settings.connect_timeout))
            if client is None:
                raise self._unavailable()
        try:
            return await self._call_once(client, tool, arguments)
        except (CallTimeout, CallRefused):
            raise
        except MCPError as exc:  # only connection failures get here (see _call_once)
            failure: BaseException = exc
        except Exception as exc:  # noqa: BLE001 - transport errors come in many types
            failure = exc
        self._mark_lost(f"connection lost during a call: {describe(failure)}")
        if not retry_safe:
            raise ServerUnavailable(
                f"server '{self.name}' lost the connection during '{tool}' "
                f"({describe(failure)}); not retried because the tool is not marked read-only "
                "or idempotent — check whether it took effect before calling it again"
            ) from None
        client = await self._reconnect(min(self.timeout, self.settings.connect_timeout))
        if client is None:
            raise self._unavailable()
        log.info("server %s reconnected; retrying read-only/idempotent %s", self.name, tool)
        try:
            return await self._call_once(client, tool, arguments)
        except MCPError as exc:
            if is_connection_failure(exc):
                self._mark_lost(f"connection lost again: {describe(exc)}")
                raise self._unavailable() from None
            raise

    async def _call_once(
        self, client: Client, tool: str, arguments: dict[str, Any]
    ) -> mcp_types.CallToolResult:
        try:
            async with asyncio.timeout(self.timeout):
                return await client.call_tool_mcp(tool, arguments)
        except MCPError as exc:
            if is_connection_failure(exc):
                raise
            raise CallRefused(f"server '{self.name}' refused the call of '{tool}': "
                              f"{exc.error.message}") from None
        except TimeoutError:
            raise CallTimeout(
                f"server '{self.name}' did not answer '{tool}' within {self.timeout:g} s "
                "(raise 'timeout' for this server in servers.yaml if it is just slow)"
            ) from None
