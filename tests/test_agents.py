"""Built-in agents against this machine's real state, through the MCP surface."""

from __future__ import annotations

import asyncio
import datetime
import os
import shutil
import socket
import ssl
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from orchestrator_mcp.agents import build_enabled_agents
from orchestrator_mcp.config.agents import AgentsSettings
from tests.mcp_calls import call, data

# The network checks here reach servers the tests start on 127.0.0.1. Loopback is refused by
# default (orchestrator_mcp/agents/_egress.py), so these tests allow it the way an operator
# would, in servers.yaml; tests/test_agents_hostile.py checks the defaults.
LOOPBACK_ALLOWED = {"network": {"allow_cidrs": ["127.0.0.0/8", "::1/128"]}}


@pytest.fixture
def agents() -> dict[str, Any]:
    return build_enabled_agents(AgentsSettings.model_validate(LOOPBACK_ALLOWED))


def without_binaries(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """This process sees no system tools at all: PATH is an empty folder."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))




# Every other built-in tool is read-only; these change the host, so approvals gate them.
CHANGES_THE_HOST = {"infrastructure": {"systemd_start", "systemd_stop", "systemd_restart"},
                    "ansible": {"run"}}


async def test_every_tool_is_annotated_truthfully(agents: dict[str, Any]) -> None:
    assert set(agents) == {"system", "network", "logs", "infrastructure", "osquery",
                           "ansible", "code_review"}
    for name, server in agents.items():
        async with Client(server) as client:
            for tool in await client.list_tools():
                assert tool.annotations and tool.output_schema, f"{name}_{tool.name}"
                if tool.name in CHANGES_THE_HOST.get(name, set()):
                    assert tool.annotations.destructive_hint is True, tool.name
                    assert tool.annotations.read_only_hint is False, tool.name
                else:
                    assert tool.annotations.read_only_hint, f"{name}_{tool.name}"


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


async def test_ping_and_traceroute_to_loopback(agents: dict[str, Any]) -> None:
    if not (shutil.which("ping") and shutil.which("traceroute")):
        pytest.skip("ping/traceroute not installed (.ci/run installs them)")
    pinged = data(await call(agents["network"], "ping", host="127.0.0.1", count=1))
    assert (pinged["sent"], pinged["received"], pinged["loss_percent"]) == (1, 1, 0)
    assert pinged["rtt_avg_ms"] is not None and pinged["rtt_avg_ms"] < 50
    route = data(await call(agents["network"], "traceroute", host="127.0.0.1", max_hops=3))
    assert route["reached"] and route["hops"][0]["address"] == "127.0.0.1"


async def test_missing_system_tools_are_reported_clearly(
    agents: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    without_binaries(monkeypatch, tmp_path)
    result = await call(agents["network"], "ping", host="127.0.0.1", count=1)
    assert result.is_error
    assert "ping is not available on this host" in result.content[0].text


async def test_ping_refuses_option_injection(agents: dict[str, Any]) -> None:
    result = await call(agents["network"], "ping", host="-f", count=1)
    assert result.is_error and "hostname" in result.content[0].text


@pytest.fixture
def code_review(tmp_path: Path) -> Any:
    from orchestrator_mcp.agents import code_review
    from orchestrator_mcp.agents.code_review_settings import CodeReviewAgentSettings

    return code_review.build(CodeReviewAgentSettings(roots=[tmp_path / "repo"]))


def _repository(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "node_modules").mkdir(parents=True)
    (repo / "node_modules" / "ignored.js").write_text("eval(x)\n")
    (repo / "deploy.py").write_text(
        "import subprocess\n"
        "def restart(name):\n"
        "    subprocess.run(f'systemctl restart {name}', shell=True)\n"
        "API_TOKEN = 'abcd1234efgh'\n"
        "requests.get(url, verify=False)\n")
    (repo / "broken.py").write_text("def f(:\n    pass\n")
    return repo


async def test_code_review_flags_risky_patterns_and_syntax_errors(
    code_review: Any, tmp_path: Path
) -> None:
    repo = _repository(tmp_path)
    files = data(await call(code_review, "list_files"))
    assert {Path(f["path"]).name for f in files} == {"deploy.py", "broken.py"}
    risky = data(await call(code_review, "risky_patterns"))
    rules = {(Path(f["path"]).name, f["line"], f["rule"]) for f in risky["findings"]}
    assert {("deploy.py", 3, "shell-injection"), ("deploy.py", 4, "hardcoded-secret"),
            ("deploy.py", 5, "tls-verify-off")} <= rules
    lint = data(await call(code_review, "lint_python", path=str(repo / "broken.py")))
    assert lint["findings"] and lint["findings"][0]["line"] == 1
    text = data(await call(code_review, "read_file", path="deploy.py", start_line=3,
                           end_line=3))
    assert "shell=True" in text["text"] and text["total_lines"] == 5


async def test_code_review_stays_inside_its_roots(code_review: Any, tmp_path: Path) -> None:
    repo = _repository(tmp_path)
    (repo / "escape").symlink_to("/etc")
    for path in ("../../etc/passwd", "/etc/passwd", "escape/passwd"):
        result = await call(code_review, "read_file", path=path)
        assert result.is_error and "outside the allowed roots" in result.content[0].text


async def test_code_review_git_diff(code_review: Any, tmp_path: Path) -> None:
    if not shutil.which("git"):
        pytest.skip("git not installed")
    import subprocess

    repo = _repository(tmp_path)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "first"], check=True)
    (repo / "deploy.py").write_text("print('safer')\n")
    diff = data(await call(code_review, "git_diff"))
    assert diff["files_changed"] == ["deploy.py"] and "+print('safer')" in diff["diff"]
    injected = await call(code_review, "git_diff", base="--output=/tmp/x")
    assert injected.is_error


async def test_code_review_of_a_unified_diff(code_review: Any, tmp_path: Path) -> None:
    repo = _repository(tmp_path)
    (repo / "deploy.py").write_text(
        "import subprocess\n"
        "def restart(name):\n"
        "    subprocess.run(['systemctl', 'restart', name])\n"
        "def wipe(path):\n"
        "    subprocess.run(f'rm -rf {path}', shell=True)\n")
    diff = ("--- a/deploy.py\n+++ b/deploy.py\n@@ -1,3 +1,5 @@\n import subprocess\n"
            " def restart(name):\n     subprocess.run(['systemctl', 'restart', name])\n"
            "+def wipe(path):\n+    subprocess.run(f'rm -rf {path}', shell=True)\n")
    report = data(await call(code_review, "review_diff", diff=diff, repository="."))
    at_five = {f["rule"] for f in report["findings"] if f["line"] == 5}
    assert "shell-injection" in at_five
    if shutil.which("bandit") or (Path(sys.executable).parent / "bandit").exists():
        assert any(rule.startswith("bandit:B602") for rule in at_five), report
        assert "bandit" in report["tool"]
    assert all(f["path"] == "deploy.py" and f["line"] in (4, 5) for f in report["findings"])
    not_a_diff = await call(code_review, "review_diff", diff="hello")
    assert not_a_diff.is_error and "unified diff" in not_a_diff.content[0].text
