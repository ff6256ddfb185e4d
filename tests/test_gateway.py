"""The gateway against real MCP servers: npm reference servers and a FastMCP server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import mcp_types
import psutil
import pytest

from orchestrator_mcp.config import GatewaySettings, ServerConfig
from orchestrator_mcp.gateway import (
    CallTimeout,
    Gateway,
    ServerStatus,
    ServerUnavailable,
    UnknownTool,
)
from orchestrator_mcp.gateway.catalog import build_catalog
from tests.conftest import CounterServer


def _cfg(raw: dict, **extra: object) -> ServerConfig:
    return ServerConfig.model_validate({**raw, **extra})


@pytest.fixture
async def gateway_factory(tmp_path: Path) -> AsyncIterator:
    made: list[Gateway] = []

    async def make(servers: dict[str, ServerConfig], **settings: object) -> Gateway:
        gateway = Gateway(servers, GatewaySettings(**settings), log_dir=tmp_path)
        gateway.start()
        made.append(gateway)
        await gateway.wait_settled(30)
        return gateway

    yield make
    for gateway in made:
        await gateway.stop()


def _text(result: mcp_types.CallToolResult) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def _kill_children(match: str) -> int:
    killed = 0
    for child in psutil.Process().children(recursive=True):
        if match in " ".join(child.cmdline()):
            child.kill()
            killed += 1
    return killed


async def test_stdio_servers_share_one_namespaced_catalog(
    gateway_factory, everything_cfg: dict, memory_cfg: dict
) -> None:
    gateway = await gateway_factory(
        {"everything": _cfg(everything_cfg), "memory": _cfg(memory_cfg)}
    )
    names = set(gateway.catalog.tools)
    assert {"everything_echo", "everything_get-sum", "memory_create_entities"} <= names
    assert all(len(n) <= 64 for n in names)
    result = await gateway.call_tool("everything_echo", {"message": "hello"})
    assert _text(result) == "Echo: hello"
    health = {h.name: h for h in gateway.health()}
    assert health["everything"].status is ServerStatus.UP
    assert health["everything"].era  # negotiated per server
    assert health["memory"].tools == 9


async def test_allow_and_deny_filters(gateway_factory, everything_cfg: dict) -> None:
    gateway = await gateway_factory(
        {"everything": _cfg(everything_cfg, tools={"allow": ["get-*", "echo"],
                                                   "deny": ["get-env"]})}
    )
    names = set(gateway.catalog.tools)
    assert "everything_echo" in names and "everything_get-sum" in names
    assert "everything_get-env" not in names
    assert "everything_toggle-simulated-logging" not in names
    with pytest.raises(UnknownTool, match="unknown tool 'everything_get-env'"):
        await gateway.call_tool("everything_get-env", {})


async def test_missing_command_is_unhealthy_with_os_error_while_others_work(
    gateway_factory, everything_cfg: dict
) -> None:
    gateway = await gateway_factory(
        {"everything": _cfg(everything_cfg), "ghost": _cfg({"command": "/no/such/mcp-server"})}
    )
    health = {h.name: h for h in gateway.health()}
    assert health["ghost"].status is ServerStatus.UNHEALTHY
    assert "No such file or directory" in (health["ghost"].last_error or "")
    assert health["everything"].status is ServerStatus.UP
    assert not gateway.ready
    with pytest.raises(UnknownTool, match="server 'ghost' is unhealthy"):
        await gateway.call_tool("ghost_anything", {})
    assert _text(await gateway.call_tool("everything_echo", {"message": "x"})) == "Echo: x"


async def test_server_that_cannot_list_is_unhealthy_not_empty(gateway_factory) -> None:
    # `cat` answers nothing an MCP client can read: it must never show as an empty catalog.
    gateway = await gateway_factory({"mute": _cfg({"command": "sleep", "args": ["30"]})},
                                    connect_timeout=1.5)
    health = gateway.health()[0]
    assert health.status is ServerStatus.UNHEALTHY
    assert health.last_error == "timed out"
    assert len(gateway.catalog) == 0


async def test_sigkilled_stdio_server_read_only_call_is_retried_on_new_session(
    gateway_factory, everything_cfg: dict
) -> None:
    gateway = await gateway_factory({"everything": _cfg(everything_cfg)})
    assert _kill_children("server-everything") == 1
    await asyncio.sleep(0.2)
    # echo is annotated read-only: the call reconnects at once and is retried.
    result = await gateway.call_tool("everything_echo", {"message": "again"})
    assert _text(result) == "Echo: again"
    assert gateway.health()[0].status is ServerStatus.UP


async def test_sigkilled_server_non_idempotent_call_is_not_repeated(
    gateway_factory, counter_stdio_cfg: dict
) -> None:
    count_file = Path(counter_stdio_cfg["args"][2])
    gateway = await gateway_factory({"counter": _cfg(counter_stdio_cfg)})
    assert _text(await gateway.call_tool("counter_bump", {})) == "1"
    # Killed while a non-idempotent call is in flight: the call is in doubt, not repeated.
    call = asyncio.ensure_future(gateway.call_tool("counter_slow_write", {"seconds": 5}))
    await asyncio.sleep(0.5)
    assert _kill_children("counter_server.py") == 1
    with pytest.raises(ServerUnavailable) as caught:
        await call
    message = str(caught.value)
    assert "server 'counter' lost the connection during 'slow_write'" in message
    assert "not retried" in message
    assert count_file.read_text().splitlines().count("slow_write") <= 1
    # The next call finds a new session (reconnect was asked for at once, no backoff wait).
    assert _text(await gateway.call_tool("counter_bump", {})) == "2"


async def test_a_call_after_a_server_died_runs_once_on_a_new_session(
    gateway_factory, counter_stdio_cfg: dict
) -> None:
    """The death was seen before the call: nothing is in doubt, the call just runs."""
    count_file = Path(counter_stdio_cfg["args"][2])
    gateway = await gateway_factory({"counter": _cfg(counter_stdio_cfg)})
    assert _text(await gateway.call_tool("counter_bump", {})) == "1"
    assert _kill_children("counter_server.py") == 1
    await asyncio.sleep(0.6)
    assert gateway.connections["counter"].status is ServerStatus.UNHEALTHY
    assert _text(await gateway.call_tool("counter_bump", {})) == "2"
    assert count_file.read_text().splitlines().count("bump") == 2


async def test_http_server_restart_session_not_found_is_reinitialized(
    gateway_factory, counter_http: CounterServer
) -> None:
    gateway = await gateway_factory({"counter": _cfg({"url": counter_http.url})})
    assert _text(await gateway.call_tool("counter_add", {"a": 2, "b": 3})) == "5"
    counter_http.kill()
    counter_http.start()  # same port, new process: the old session id is unknown there
    assert _text(await gateway.call_tool("counter_add", {"a": 1, "b": 1})) == "2"
    assert counter_http.calls("add") == 2


async def test_http_server_down_gives_clear_error_then_recovers(
    gateway_factory, counter_http: CounterServer
) -> None:
    gateway = await gateway_factory({"counter": _cfg({"url": counter_http.url, "timeout": 5})},
                                    connect_timeout=2)
    counter_http.kill()
    with pytest.raises(ServerUnavailable, match="server 'counter'"):
        await gateway.call_tool("counter_bump", {})
    counter_http.start()
    assert _text(await gateway.call_tool("counter_add", {"a": 1, "b": 2})) == "3"


async def test_call_timeout_names_server_and_setting(
    gateway_factory, counter_http: CounterServer
) -> None:
    gateway = await gateway_factory({"counter": _cfg({"url": counter_http.url, "timeout": 0.5})})
    with pytest.raises(CallTimeout, match=r"server 'counter' did not answer 'slow' within 0.5 s"):
        await gateway.call_tool("counter_slow", {"seconds": 5})
    # The session survives a slow call.
    assert _text(await gateway.call_tool("counter_add", {"a": 1, "b": 1})) == "2"


async def test_invalid_tool_names_are_made_valid(gateway_factory, counter_http) -> None:
    gateway = await gateway_factory({"counter": _cfg({"url": counter_http.url})})
    assert "counter_weird_name_with_spaces" in gateway.catalog.tools
    assert _text(await gateway.call_tool("counter_weird_name_with_spaces", {})) == "ok"


def test_collisions_are_deterministic_and_reported() -> None:
    def tool(name: str) -> mcp_types.Tool:
        return mcp_types.Tool(name=name, input_schema={"type": "object"})

    listing = [("a_b", [tool("c")]), ("a", [tool("b_c"), tool("b.c")])]
    first = build_catalog(listing)
    second = build_catalog(list(reversed(listing)))
    assert list(first.tools) == list(second.tools) == ["a_b_c", "a_b_c_2", "a_b_c_3"]
    assert first.tools["a_b_c"].server == "a" and first.tools["a_b_c"].remote_name == "b.c"
    assert len(first.collisions) == 2
    assert "both map to 'a_b_c'" in first.collisions[0]


def test_long_names_are_cut_to_64_with_a_stable_digest() -> None:
    long_tool = mcp_types.Tool(name="x" * 80, input_schema={"type": "object"})
    name = next(iter(build_catalog([("srv", [long_tool])]).tools))
    assert len(name) == 64 and name.startswith("srv_xxx")
    assert name == next(iter(build_catalog([("srv", [long_tool])]).tools))


async def test_in_process_server_is_mounted_beside_the_others(
    gateway_factory, everything_cfg: dict
) -> None:
    from fastmcp import FastMCP

    builtin = FastMCP("builtin")

    @builtin.tool(annotations=mcp_types.ToolAnnotations(read_only_hint=True))
    def ping(host: str) -> str:
        return f"pong {host}"

    gateway = Gateway({"everything": _cfg(everything_cfg)}, GatewaySettings(),
                      in_process={"net": builtin})
    gateway.start()
    try:
        await gateway.wait_settled(30)
        assert "net_ping" in gateway.catalog.tools and "everything_echo" in gateway.catalog.tools
        assert _text(await gateway.call_tool("net_ping", {"host": "h"})) == "pong h"
        health = {h.name: h for h in gateway.health()}
        assert health["net"].transport == "in-process" and health["net"].status is ServerStatus.UP
    finally:
        await gateway.stop()


async def test_a_call_right_after_start_waits_for_a_connecting_server(
    tmp_path: Path, everything_cfg: dict
) -> None:
    """A host's first call_tool must not fail with "server 'everything' is connecting"."""
    gateway = Gateway({"everything": _cfg(everything_cfg)}, GatewaySettings(), log_dir=tmp_path)
    gateway.start()
    try:
        assert gateway.connections["everything"].status is ServerStatus.CONNECTING
        result = await gateway.call_tool("everything_echo", {"message": "early"})
        assert _text(result) == "Echo: early"
    finally:
        await gateway.stop()


async def test_a_connecting_server_that_fails_gives_its_reason(tmp_path: Path) -> None:
    gateway = Gateway({"ghost": _cfg({"command": "/no/such/server"})}, GatewaySettings(),
                      log_dir=tmp_path)
    gateway.start()
    try:
        with pytest.raises(UnknownTool, match="server 'ghost' is unhealthy"):
            await gateway.call_tool("ghost_anything", {})
    finally:
        await gateway.stop()


async def test_a_dead_stdio_server_is_unhealthy_at_once(gateway_factory, everything_cfg: dict
                                                        ) -> None:
    gateway = await gateway_factory({"everything": _cfg(everything_cfg)})
    connection = gateway.connections["everything"]
    assert connection.status is ServerStatus.UP
    assert _kill_children("server-everything") == 1
    started = asyncio.get_running_loop().time()
    while connection.status is ServerStatus.UP:
        await asyncio.sleep(0.02)
        assert asyncio.get_running_loop().time() - started < 5, "still reported up"
    assert connection.last_error == "server process exited"
    assert "everything_echo" not in gateway.catalog.tools
    # and it comes back by itself
    async with asyncio.timeout(20):
        while connection.status is not ServerStatus.UP:
            await asyncio.sleep(0.05)
