"""Built-in agents against this machine's real state, through the MCP surface."""

from __future__ import annotations

import asyncio
import datetime
import os
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from orchestrator_mcp.agents import build_enabled_agents
from orchestrator_mcp.config.agents import AgentsSettings


@pytest.fixture
def agents() -> dict[str, Any]:
    return build_enabled_agents(AgentsSettings())


async def call(server: Any, tool: str, **arguments: Any) -> Any:
    async with Client(server) as client:
        return await client.call_tool_mcp(tool, arguments)


def data(result: Any) -> Any:
    assert not result.is_error, result.content
    content = result.structured_content
    return content["result"] if set(content) == {"result"} else content


async def test_every_tool_is_annotated_read_only(agents: dict[str, Any]) -> None:
    for server in agents.values():
        async with Client(server) as client:
            for tool in await client.list_tools():
                assert tool.annotations and tool.annotations.read_only_hint, tool.name
                assert tool.output_schema, tool.name


async def test_memory_matches_proc(agents: dict[str, Any]) -> None:
    memory = data(await call(agents["system"], "memory"))
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    assert memory["total_bytes"] == int(meminfo["MemTotal"].split()[0]) * 1024


async def test_cpu_disks_processes_uptime(agents: dict[str, Any]) -> None:
    cpu = data(await call(agents["system"], "cpu"))
    assert cpu["cores_logical"] == os.cpu_count()
    assert 0 <= cpu["cpu_percent"] <= 100
    disks = data(await call(agents["system"], "disk_usage"))
    assert any(d["mountpoint"] == "/" for d in disks)
    processes = data(await call(agents["system"], "top_processes", sort_by="memory", limit=5))
    assert len(processes) == 5
    assert processes[0]["memory_bytes"] >= processes[-1]["memory_bytes"]
    uptime = data(await call(agents["system"], "uptime"))
    proc_uptime = float(Path("/proc/uptime").read_text().split()[0])
    assert abs(uptime["uptime_seconds"] - proc_uptime) < 5


async def test_listening_ports_show_a_socket_the_test_opens(agents: dict[str, Any]) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        ports = data(await call(agents["system"], "listening_ports"))
    mine = [p for p in ports if p["port"] == port and p["protocol"] == "tcp"]
    assert mine and mine[0]["pid"] == os.getpid()


async def test_tcp_check_open_and_closed(agents: dict[str, Any]) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        opened = data(await call(agents["network"], "tcp_check", host="127.0.0.1", port=port))
    assert opened["open"] is True and opened["seconds"] < 5
    closed = data(await call(agents["network"], "tcp_check", host="127.0.0.1", port=port))
    assert closed["open"] is False and "refused" in closed["error"].lower()


async def test_dns_for_localhost(agents: dict[str, Any]) -> None:
    answer = data(await call(agents["network"], "dns_lookup", name="localhost"))
    assert "127.0.0.1" in answer["values"]


@pytest.mark.parametrize(("arguments", "message"), [
    ({"host": "bad host!", "port": 80}, "neither an IP address nor a valid hostname"),
    ({"host": "-leading.example", "port": 80}, "valid hostname"),
    ({"host": "localhost", "port": 70000}, "less than or equal to 65535"),
    ({"host": "localhost", "port": 0}, "greater than or equal to 1"),
])
async def test_bad_inputs_are_refused(agents: dict[str, Any], arguments: dict,
                                      message: str) -> None:
    result = await call(agents["network"], "tcp_check", **arguments)
    assert result.is_error and message in result.content[0].text


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/old":
            self.send_response(301)
            self.send_header("Location", "/new")
            self.end_headers()
            return
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")


@pytest.fixture
def http_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


async def test_http_check_follows_redirects(agents: dict[str, Any], http_server: str) -> None:
    result = data(await call(agents["network"], "http_check", url=f"{http_server}/old"))
    assert result["status"] == 200 and result["final_url"].endswith("/new")
    assert result["redirects"] == [f"{http_server}/old"]
    bad = await call(agents["network"], "http_check", url="ftp://example.com/")
    assert bad.is_error and "not an http:// or https:// URL" in bad.content[0].text


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, datetime.datetime]]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    expires = now + datetime.timedelta(days=12)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(expires)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], expires
    server.shutdown()


async def test_tls_expiry_of_a_self_signed_certificate(
    agents: dict[str, Any], tls_server: tuple[int, datetime.datetime]
) -> None:
    port, expires = tls_server
    cert = data(await call(agents["network"], "tls_certificate", host="127.0.0.1", port=port))
    assert cert["subject"] == "CN=localhost"
    assert 11.9 < cert["days_left"] <= 12
    checked = data(await call(agents["network"], "http_check",
                              url=f"https://127.0.0.1:{port}/"))
    assert checked["status"] == 200
    assert 11.9 < checked["certificate"]["days_left"] <= 12


async def test_agents_appear_in_the_gateway_catalog(agents: dict[str, Any]) -> None:
    from orchestrator_mcp.config import GatewaySettings
    from orchestrator_mcp.gateway import Gateway

    gateway = Gateway({}, GatewaySettings(), in_process=agents)
    gateway.start()
    try:
        await gateway.wait_settled(30)
        assert {"system_memory", "network_tcp_check", "network_dns_lookup"} <= set(
            gateway.catalog.tools)
        result = await gateway.call_tool("network_dns_lookup", {"name": "localhost"})
        assert "127.0.0.1" in result.content[0].text
    finally:
        await gateway.stop()
    await asyncio.sleep(0)
