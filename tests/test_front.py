"""The front as hosts see it: `orchestrator-mcp serve` in a subprocess, driven by the real
fastmcp Client over stdio and over Streamable HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2
import mcp_types
import pytest
from fastmcp import Client
from fastmcp.client.messages import MessageHandler
from fastmcp.client.transports import StdioTransport, StreamableHttpTransport

from orchestrator_mcp.agents import agent_names
from tests.conftest import free_port, wait_for_port, write_config

FRONT_TOOLS = {"list_servers", "list_tools", "call_tool", "run", "get_run", "list_runs",
               "cancel_run", "approve", "list_profiles", "list_workflows", "run_workflow",
               "audit", "costs", "list_agents", "ask_agent", "search", "list_collections",
               "index_document", "index_folder", "delete_document", "delete_collection",
               "create_key", "list_keys", "revoke_key",
               "list_templates", "run_template", "list_schedules"}
BUILTIN_AGENTS = set(agent_names())


def serve_args(config_dir: Path, data_dir: Path, *extra: str) -> list[str]:
    return ["-m", "orchestrator_mcp", "--config-dir", str(config_dir),
            "--data-dir", str(data_dir), "serve", *extra]


@contextlib.contextmanager
def http_server(config_dir: Path, data_dir: Path, env: dict[str, str]) -> Iterator[str]:
    """A real `serve --http` on a free loopback port; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, *serve_args(config_dir, data_dir, "--http", "--port", str(port))],
        env=env)
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


class ListChanged(MessageHandler):
    def __init__(self) -> None:
        self.seen = asyncio.Event()

    async def on_tool_list_changed(self, message: Any) -> None:
        self.seen.set()


async def wait_for_tool(client: Client, name: str, timeout: float = 30) -> list[mcp_types.Tool]:
    async with asyncio.timeout(timeout):
        while True:
            tools = await client.list_tools()
            if any(t.name == name for t in tools):
                return tools
            await asyncio.sleep(0.05)


@pytest.fixture
def config_dir(tmp_path: Path, everything_cfg: dict, memory_cfg: dict) -> Path:
    return write_config(
        tmp_path / "config",
        {"everything": everything_cfg, "memory": memory_cfg,
         "ghost": {"command": "/no/such/server"}},
        gateway={"passthrough": True, "tool_search_threshold": 100},
    )


@pytest.fixture
async def stdio_client(config_dir: Path, tmp_path: Path) -> AsyncIterator[Client]:
    transport = StdioTransport(sys.executable, serve_args(config_dir, tmp_path / "data"),
                               log_file=tmp_path / "stderr.log")
    async with Client(transport) as client:
        yield client


async def test_handshake_era_host_is_told_when_the_catalog_changes(
    config_dir: Path, tmp_path: Path
) -> None:
    handler = ListChanged()
    transport = StdioTransport(sys.executable, serve_args(config_dir, tmp_path / "data"))
    async with Client(transport, message_handler=handler, mode="legacy") as client:
        assert FRONT_TOOLS <= {t.name for t in await client.list_tools()}
        await asyncio.wait_for(handler.seen.wait(), 20)
        await wait_for_tool(client, "everything_echo")


async def test_modern_era_host_is_told_when_the_catalog_changes(
    config_dir: Path, tmp_path: Path
) -> None:
    from mcp.client.subscriptions import listen
    from mcp.shared.subscriptions import ToolsListChanged

    transport = StdioTransport(sys.executable, serve_args(config_dir, tmp_path / "data"))
    async with Client(transport) as client:
        assert client.protocol_version == "2026-07-28"
        # Listening first, as a host must to miss no change (the spawned servers start
        # connecting as the front comes up).
        async with listen(client.session, tools_list_changed=True) as subscription:
            # The front answers at once, whatever the downstream servers are doing.
            assert FRONT_TOOLS <= {t.name for t in await client.list_tools()}
            event = await asyncio.wait_for(anext(aiter(subscription)), 20)
            assert isinstance(event, ToolsListChanged)
        await wait_for_tool(client, "everything_echo")


async def test_stdio_front_tools(stdio_client) -> None:
    client = stdio_client
    await wait_for_tool(client, "everything_echo")
    await wait_for_tool(client, "memory_read_graph")

    servers = (await client.call_tool("list_servers", {})).structured_content["result"]
    by_name = {s["name"]: s for s in servers}
    assert by_name["everything"]["status"] == "up" and by_name["everything"]["tools"] == 13
    assert by_name["ghost"]["status"] == "unhealthy"
    assert "No such file or directory" in by_name["ghost"]["last_error"]

    listed = await client.call_tool("list_tools", {"server": "memory", "pattern": "*_read_*"})
    assert [t["name"] for t in listed.structured_content["result"]] == ["memory_read_graph"]
    found = await client.call_tool("list_tools", {"text": "echoes back"})
    assert "everything_echo" in [t["name"] for t in found.structured_content["result"]]

    result = await client.call_tool("call_tool", {"name": "everything_get-sum",
                                                  "arguments": {"a": 2, "b": 40}})
    assert "42" in result.content[0].text
    passthrough = await client.call_tool("everything_echo", {"message": "direct"})
    assert passthrough.content[0].text == "Echo: direct"

    unknown = await client.call_tool_mcp("call_tool", {"name": "nope_tool"})
    assert unknown.is_error and "unknown tool 'nope_tool'" in unknown.content[0].text
    down = await client.call_tool_mcp("call_tool", {"name": "ghost_x"})
    assert down.is_error and "server 'ghost' is unhealthy" in down.content[0].text
    bad_server = await client.call_tool_mcp("list_tools", {"server": "nope"})
    assert bad_server.is_error and "configured servers: ansible, code_review, everything, " \
        "ghost, infrastructure, knowledge, logs, memory, network, osquery, system" \
        in bad_server.content[0].text

    resource = await client.read_resource("orchestrator://servers")
    assert {s["name"] for s in json.loads(resource[0].text)} == {
        "everything", "memory", "ghost", "knowledge", *BUILTIN_AGENTS}
    catalog = json.loads((await client.read_resource("orchestrator://tools"))[0].text)
    assert any(t["name"] == "everything_echo" and t["read_only"] for t in catalog)


async def test_spawned_servers_start_once_the_host_has_its_first_list(
    tmp_path: Path, everything_cfg: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Starting a downstream server (a node process, fastmcp's client imported) competes
    with the host's first requests for the CPU, so `serve` starts the spawned servers once
    its front has answered the host's first tools/list — here with the fallback delay made
    long, so only the listing can have started them."""
    import orchestrator_mcp.app as app_module
    from orchestrator_mcp.config import load_config
    from orchestrator_mcp.front.listing import FirstListing

    monkeypatch.setattr(app_module, "START_DELAY", 120.0)
    config = write_config(tmp_path / "config", {"everything": everything_cfg},
                          gateway={"passthrough": True, "tool_search_threshold": 0})
    app = app_module.build_application(load_config(config), tmp_path / "data", None)
    everything = app.gateway.connections["everything"]
    async with Client(app.front) as client:
        await asyncio.sleep(0.5)
        assert everything._task is None  # not started: the host has not listed yet
        assert FRONT_TOOLS <= {t.name for t in await client.list_tools()}
        await wait_for_tool(client, "everything_echo")
        assert app.gateway.connections["system"]._task is None  # the rest: 120 s later
        # Its job done, the watch is no longer a layer of every request.
        assert not any(isinstance(m, FirstListing) for m in app.front.middleware)


async def test_a_host_that_never_lists_still_reaches_downstream_tools(
    tmp_path: Path, everything_cfg: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host that calls a tool it already knows, with no tools/list: the call starts its
    server at once (not START_DELAY later, made long here) and waits for it."""
    import orchestrator_mcp.app as app_module
    from orchestrator_mcp.config import load_config

    monkeypatch.setattr(app_module, "START_DELAY", 120.0)
    config = write_config(tmp_path / "config", {"everything": everything_cfg})
    app = app_module.build_application(load_config(config), tmp_path / "data", None)
    async with Client(app.front) as client, asyncio.timeout(60):
        result = await client.call_tool("call_tool", {"name": "everything_echo",
                                                      "arguments": {"message": "first"}})
        assert result.content[0].text == "Echo: first"


async def test_tool_search_replaces_a_large_catalog(tmp_path: Path, everything_cfg: dict) -> None:
    config = write_config(tmp_path / "config", {"everything": everything_cfg},
                          gateway={"passthrough": True, "tool_search_threshold": 5})
    transport = StdioTransport(sys.executable, serve_args(config, tmp_path / "data"))
    async with Client(transport) as client:
        tools = await wait_for_tool(client, "search_tools")
        assert {t.name for t in tools} == FRONT_TOOLS | {"search_tools"}
        async with asyncio.timeout(30):  # the built-in agents alone exceed the threshold
            while not (await client.call_tool("list_tools", {"server": "everything"})
                       ).structured_content["result"]:
                await asyncio.sleep(0.05)
        found = await client.call_tool("search_tools", {"query": "echo message back"})
        assert "everything_echo" in json.dumps(found.structured_content or found.content[0].text)
        result = await client.call_tool("call_tool", {"name": "everything_echo",
                                                      "arguments": {"message": "s"}})
        assert result.content[0].text == "Echo: s"


def test_invalid_config_exits_2_with_the_problem(tmp_path: Path) -> None:
    (tmp_path / "servers.yaml").write_text("servers:\n  a:\n    comand: x\n")
    proc = subprocess.run([sys.executable, *serve_args(tmp_path, tmp_path / "d")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "servers.a.comand: Extra inputs are not permitted" in proc.stderr
    assert proc.stdout == ""  # stdout belongs to the protocol


# ---- HTTP ---------------------------------------------------------------------------------

TOKEN = "test-token-0123456789"


@pytest.fixture
def http_front(config_dir: Path, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, *serve_args(config_dir, tmp_path / "data", "--http", "--port", str(port))],
        env={**__import__("os").environ, "ORCH_HTTP_TOKEN": TOKEN},
    )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


async def test_http_front_requires_the_token(http_front: str) -> None:
    async with httpx2.AsyncClient() as http:
        assert (await http.get(f"{http_front}/healthz")).json() == {"status": "ok"}
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            response = await http.post(f"{http_front}/mcp", json={}, headers=headers)
            assert response.status_code == 401
            assert response.json()["error"] == "unauthorized"
        assert (await http.get(f"{http_front}/metrics")).status_code == 401

    wrong = Client(StreamableHttpTransport(f"{http_front}/mcp", auth="wrong"))
    with pytest.raises(Exception):  # noqa: B017 - the 401 itself is asserted above
        async with wrong:
            pass

    client = Client(StreamableHttpTransport(f"{http_front}/mcp", auth=TOKEN))
    async with client:
        await wait_for_tool(client, "everything_echo")
        result = await client.call_tool("call_tool", {"name": "everything_echo",
                                                      "arguments": {"message": "over http"}})
        assert result.content[0].text == "Echo: over http"

    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        metrics = (await http.get(f"{http_front}/metrics")).text
        assert 'orchestrator_downstream_up{server="everything"} 1.0' in metrics
        assert ('orchestrator_downstream_calls_total{outcome="ok",server="everything",'
                'tool="echo"}') in metrics
        ready = await http.get(f"{http_front}/readyz")
        assert ready.status_code == 503  # ghost is down
        assert ready.json()["servers"]["ghost"]["status"] == "unhealthy"


@pytest.mark.parametrize(
    ("extra", "env_token", "message"),
    [
        ((), None, "HTTP needs a bearer token"),
        (("--no-auth", "--host", "0.0.0.0"), None, "only allowed on a loopback host"),
    ],
)
def test_http_refuses_to_start_without_auth(
    tmp_path: Path, extra: tuple[str, ...], env_token: str | None, message: str
) -> None:
    env = {k: v for k, v in __import__("os").environ.items() if k != "ORCH_HTTP_TOKEN"}
    proc = subprocess.run(
        [sys.executable, *serve_args(tmp_path, tmp_path / "d", "--http", *extra)],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert proc.returncode == 2
    assert message in proc.stderr


async def test_http_no_auth_on_loopback(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in __import__("os").environ.items() if k != "ORCH_HTTP_TOKEN"}
    proc = subprocess.Popen(
        [sys.executable, *serve_args(tmp_path, tmp_path / "d", "--http", "--no-auth",
                                     "--port", str(port))], env=env)
    try:
        wait_for_port(port)
        async with Client(StreamableHttpTransport(f"http://127.0.0.1:{port}/mcp")) as client:
            assert FRONT_TOOLS <= {t.name for t in await client.list_tools()}
    finally:
        proc.terminate()
        proc.wait(10)


async def test_token_scopes(tmp_path: Path, everything_cfg: dict) -> None:
    reader, approver = "reader-token-0123456789", "approver-token-0123456789"
    config = write_config(
        tmp_path / "config", {"everything": everything_cfg},
        http={"tokens": [{"name": "dashboard", "token": reader, "scopes": ["read"]},
                         {"name": "oncall", "token": approver, "scopes": ["read", "approve"]}]})
    port = free_port()
    env = {k: v for k, v in __import__("os").environ.items() if k != "ORCH_HTTP_TOKEN"}
    proc = subprocess.Popen([sys.executable, *serve_args(config, tmp_path / "d", "--http",
                                                         "--port", str(port))], env=env)
    try:
        wait_for_port(port)
        base = f"http://127.0.0.1:{port}"
        async with Client(StreamableHttpTransport(f"{base}/mcp", auth=reader)) as client:
            await wait_for_tool(client, "call_tool")
            servers = await client.call_tool("list_servers", {})
            assert servers.structured_content["result"][0]["name"] == "everything"
            denied = await client.call_tool_mcp("call_tool", {"name": "everything_echo",
                                                              "arguments": {"message": "x"}})
            assert denied.is_error
            assert "token 'dashboard' lacks the 'run' scope" in denied.content[0].text
            denied = await client.call_tool_mcp("approve", {"run_id": "r", "approved": True})
            assert "lacks the 'approve' scope" in denied.content[0].text
        async with httpx2.AsyncClient() as http:
            read = {"Authorization": f"Bearer {reader}"}
            assert (await http.get(f"{base}/metrics", headers=read)).status_code == 200
            refused = await http.post(f"{base}/approvals/run_x", headers=read,
                                      json={"approved": True})
            assert refused.status_code == 403
            assert "lacks the 'approve' scope" in refused.json()["detail"]
            allowed = await http.post(f"{base}/approvals/run_x",
                                      headers={"Authorization": f"Bearer {approver}"},
                                      json={"approved": True})
            assert allowed.status_code == 404  # authorised; there is no such run
            assert "no run 'run_x'" in allowed.json()["detail"]
    finally:
        proc.terminate()
        proc.wait(10)


async def test_rate_limit_and_request_size_per_token(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config", {},
                          http={"rate_limit_per_second": 0.5, "rate_limit_burst": 3,
                                "max_request_bytes": 4096})
    port = free_port()
    env = {**__import__("os").environ, "ORCH_HTTP_TOKEN": TOKEN}
    proc = subprocess.Popen([sys.executable, *serve_args(config, tmp_path / "d", "--http",
                                                         "--port", str(port))], env=env)
    try:
        wait_for_port(port)
        base = f"http://127.0.0.1:{port}"
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            big = await http.post(f"{base}/mcp", content=b"x" * 10_000,
                                  headers={"Content-Type": "application/json"})
            assert big.status_code == 413 and big.json()["error"] == "too_large"
        async with Client(StreamableHttpTransport(f"{base}/mcp", auth=TOKEN)) as client:
            outcomes = []
            for _ in range(6):
                try:
                    await client.call_tool("list_servers", {})
                    outcomes.append("ok")
                except Exception as exc:  # noqa: BLE001 - the limiter's refusal
                    outcomes.append(str(exc))
        assert "ok" in outcomes
        assert any("Rate limit exceeded" in o for o in outcomes), outcomes
    finally:
        proc.terminate()
        proc.wait(10)


def test_metrics_pass_promtool(http_front: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian package prometheus) is not installed; .ci/run installs it")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    deadline = time.monotonic() + 20
    text = ""
    while time.monotonic() < deadline and "orchestrator_downstream_up" not in text:
        text = httpx2.get(f"{http_front}/metrics", headers=headers, timeout=10).text
        time.sleep(0.2)
    checked = subprocess.run([promtool, "check", "metrics"], input=text, text=True,
                             capture_output=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
