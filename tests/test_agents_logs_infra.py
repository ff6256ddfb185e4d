"""The logs and infrastructure agents through the MCP surface, on real files, real host
binaries (journalctl, systemctl, docker) when present, and real boto3 against a local fake."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client, FastMCP

from orchestrator_mcp.agents import infrastructure, logs
from orchestrator_mcp.agents.infrastructure_settings import InfrastructureAgentSettings
from orchestrator_mcp.agents.logs_settings import LogsAgentSettings
from tests.mcp_calls import call, data, error

DESTRUCTIVE = {"systemd_start", "systemd_stop", "systemd_restart"}





@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "logs"
    folder.mkdir()
    return folder


@pytest.fixture
def logs_server(root: Path) -> FastMCP:
    return logs.build(LogsAgentSettings(roots=[root]))


@pytest.fixture
def infra() -> FastMCP:
    return infrastructure.build(InfrastructureAgentSettings())


@pytest.fixture
def empty_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No binaries at all on PATH: the host tools really are absent."""
    bare = tmp_path / "bin"
    bare.mkdir()
    monkeypatch.setenv("PATH", str(bare))


# ---- logs: files -------------------------------------------------------------------------

async def test_tail_of_a_large_file_returns_exactly_the_last_lines(
        logs_server: FastMCP, root: Path) -> None:
    (root / "big.log").write_text("".join(f"line {i} some payload\n" for i in range(50_000)))
    (root / "open.log").write_text("first\nsecond\nthird")  # no final newline
    result = data(await call(logs_server, "tail", path="big.log", lines=37))
    assert result["lines"] == [f"line {i} some payload" for i in range(49_963, 50_000)]
    assert result["returned"] == 37 and result["truncated"] is False
    assert data(await call(logs_server, "tail", path=str(root / "open.log"), lines=2)
                )["lines"] == ["second", "third"]
    everything = data(await call(logs_server, "tail", path="open.log", lines=10))
    assert everything["lines"] == ["first", "second", "third"]
    assert everything["truncated"] is False


async def test_tail_says_when_limits_cut_it(root: Path) -> None:
    (root / "big.log").write_text("".join(f"{i:09d}\n" for i in range(10_000)))
    server = logs.build(LogsAgentSettings(roots=[root], max_lines=300, max_scan_bytes=2048))
    clamped = data(await call(server, "tail", path="big.log", lines=20))
    assert clamped["lines"][-1] == "000009999" and clamped["returned"] == 20
    cut = data(await call(server, "tail", path="big.log", lines=500))
    assert cut["truncated"] is True and cut["returned"] < 500
    assert "max_lines" in cut["note"] and "max_scan_bytes" in cut["note"]
    assert cut["lines"][-1] == "000009999"


async def test_tail_and_grep_read_gzip(logs_server: FastMCP, root: Path) -> None:
    with gzip.open(root / "app.log.1.gz", "wt") as handle:
        handle.write("".join(f"row {i}\n" for i in range(1000)))
    assert data(await call(logs_server, "tail", path="app.log.1.gz", lines=2)
                )["lines"] == ["row 998", "row 999"]
    found = data(await call(logs_server, "grep", path="app.log.1.gz", pattern=r"^row 99\d$"))
    assert [m["line_number"] for m in found["matches"]] == list(range(991, 1001))


async def test_grep_returns_line_numbers_and_text(logs_server: FastMCP, root: Path) -> None:
    (root / "app.log").write_text("ok start\nWARN disk 91%\nok\nwarn disk 95%\nok end\n")
    found = data(await call(logs_server, "grep", path="app.log", pattern=r"disk \d+%"))
    assert found["matches"] == [{"line_number": 2, "text": "WARN disk 91%"},
                                {"line_number": 4, "text": "warn disk 95%"}]
    upper = data(await call(logs_server, "grep", path="app.log", pattern="^WARN"))
    assert upper["total_matches"] == 1
    both = data(await call(logs_server, "grep", path="app.log", pattern="^warn",
                           ignore_case=True, max_matches=1))
    assert both["total_matches"] == 2 and both["truncated"] is True
    assert both["matches"] == [{"line_number": 4, "text": "warn disk 95%"}]


async def test_grep_scans_no_more_than_max_scan_bytes(root: Path) -> None:
    (root / "big.log").write_text("needle\n" * 10_000)
    server = logs.build(LogsAgentSettings(roots=[root], max_scan_bytes=7 * 1024))
    found = data(await call(server, "grep", path="big.log", pattern="needle"))
    assert found["bytes_scanned"] == 7 * 1024 and found["total_matches"] == 1024
    assert found["truncated"] is True and "max_scan_bytes" in found["note"]


@pytest.mark.parametrize(("pattern", "message"), [
    ("(unclosed", "invalid regular expression '(unclosed': missing )"),
    ("[a-", "invalid regular expression"),
    ("a" * 501, "at most 500 characters"),
])
async def test_bad_patterns_get_clear_errors(logs_server: FastMCP, root: Path, pattern: str,
                                             message: str) -> None:
    (root / "app.log").write_text("x\n")
    assert message in error(await call(logs_server, "grep", path="app.log", pattern=pattern))


async def test_paths_outside_the_roots_are_refused(logs_server: FastMCP, root: Path,
                                                   tmp_path: Path) -> None:
    (tmp_path / "secret.log").write_text("secret\n")
    (root / "escape.log").symlink_to(tmp_path / "secret.log")
    (root / "etc").symlink_to("/etc")
    for path in ("../../etc/passwd", "/etc/passwd", "escape.log", str(root / "escape.log"),
                 "etc/passwd", "../secret.log"):
        for tool, extra in (("tail", {}), ("grep", {"pattern": "."}), ("error_summary", {})):
            message = error(await call(logs_server, tool, path=path, **extra))
            assert "outside the allowed roots" in message, (tool, path, message)
    assert "outside the allowed roots" in error(
        await call(logs_server, "list_files", directory="/etc"))
    assert "is a directory" in error(await call(logs_server, "tail", path="."))
    assert "does not exist" in error(await call(logs_server, "tail", path="missing.log"))


async def test_error_summary_groups_similar_errors(logs_server: FastMCP, root: Path) -> None:
    lines = []
    for i in range(30):
        lines.append(f"2026-11-01 10:{i:02d}:01,{i:03d} [worker-{i % 4}] ERROR db: connection "
                     f"to 10.0.0.{i % 7 + 2} timed out after {1000 + i * 100}ms")
        lines.append(f"2026-11-01 10:{i:02d}:02,000 [main] INFO request {i} ok")
    for i in range(3):
        lines.append(f"2026-11-01 11:00:0{i},000 [main] ERROR job "
                     f"3fa85f64-5717-4562-b3fc-2c963f66afa{i} failed: exit 0x{i + 10:x}")
    lines += ["2026-11-01 11:01:00,000 [main] WARN disk 91% full",
              "2026-11-01 11:02:00,000 [main] FATAL out of memory"]
    (root / "app.log").write_text("\n".join(lines) + "\n")
    summary = data(await call(logs_server, "error_summary", path="app.log"))
    assert summary["counts"] == {"fatal": 1, "critical": 0, "error": 33, "warning": 1}
    assert summary["lines_analysed"] == len(lines) and summary["distinct_signatures"] == 3
    top = summary["top_signatures"][0]
    assert top["count"] == 30 and top["level"] == "error"
    assert top["signature"] == "ERROR db: connection to <ip> timed out after <n>ms"
    assert "timed out after" in top["example"]
    second = summary["top_signatures"][1]
    assert second["count"] == 3 and "<uuid>" in second["signature"]
    short = data(await call(logs_server, "error_summary", path="app.log", since_lines=2, top=1))
    assert short["lines_analysed"] == 2 and short["counts"]["fatal"] == 1
    assert len(short["top_signatures"]) == 1


async def test_list_files_shows_size_and_time_inside_the_roots(
        logs_server: FastMCP, root: Path, tmp_path: Path) -> None:
    (root / "nginx").mkdir()
    (root / "nginx" / "error.log").write_text("x" * 123)
    (root / "syslog").write_text("y\n")
    os.utime(root / "syslog", (1_700_000_000, 1_700_000_000))
    (tmp_path / "outside.log").write_text("z\n")
    (root / "outside.log").symlink_to(tmp_path / "outside.log")
    listed = data(await call(logs_server, "list_files"))
    paths = [f["path"] for f in listed["files"]]
    assert paths == [str(root / "nginx" / "error.log"), str(root / "syslog")]
    assert listed["files"][0]["size_bytes"] == 123
    assert listed["files"][1]["modified"].startswith("2023-11-14T22:13:20")
    sub = data(await call(logs_server, "list_files", directory="nginx"))
    assert [f["path"] for f in sub["files"]] == [str(root / "nginx" / "error.log")]


# ---- logs: journal -----------------------------------------------------------------------

async def test_journal_reads_the_real_journal_or_says_it_is_missing(
        logs_server: FastMCP) -> None:
    if shutil.which("journalctl") is None:
        assert "journalctl is not available on this host" in error(
            await call(logs_server, "journal"))
        return
    result = data(await call(logs_server, "journal", since="-2h", priority="err", lines=5,
                             grep="fail|error"))
    assert isinstance(result["entries"], list) and len(result["entries"]) <= 5
    for entry in result["entries"]:
        assert entry["priority"] is None or entry["priority"] <= 3
    for since in ("1 hour ago", "today", "yesterday", "2026-11-01 10:00:00", "30min ago"):
        data(await call(logs_server, "journal", since=since, lines=1))


async def test_journal_without_journalctl(logs_server: FastMCP, empty_path: None) -> None:
    message = error(await call(logs_server, "journal"))
    assert "journalctl is not available on this host" in message


@pytest.mark.parametrize(("arguments", "message"), [
    ({"since": "--all"}, "not a time journalctl accepts"),
    ({"since": "1 hour ago; rm -rf /"}, "not a time journalctl accepts"),
    ({"priority": "loud"}, "not a syslog priority"),
    ({"priority": 9}, "not a syslog priority"),
    ({"unit": "-foo"}, "not a valid systemd unit name"),
    ({"grep": "(("}, "invalid regular expression"),
])
async def test_journal_inputs_are_validated(logs_server: FastMCP, arguments: dict,
                                            message: str) -> None:
    assert message in error(await call(logs_server, "journal", **arguments))


# ---- infrastructure: systemd -------------------------------------------------------------

@pytest.mark.parametrize("unit", ["-foo", "a;b", "../x", "a b", "x" * 300, "$(id)", ".service"])
async def test_bad_unit_names_are_refused(infra: FastMCP, unit: str) -> None:
    for tool in ("systemd_status", "systemd_restart", "systemd_logs"):
        message = error(await call(infra, tool, unit=unit))
        assert "unit" in message and ("not a valid systemd unit name" in message
                                      or "at most 255" in message), message


async def test_systemd_status_for_real(infra: FastMCP) -> None:
    """On a systemd host: real state. Elsewhere: systemctl missing, or systemd not PID 1."""
    result = await call(infra, "systemd_status", unit="no-such-unit-for-tests")
    if shutil.which("systemctl") is None:
        assert "systemctl is not available on this host" in error(result)
    elif not Path("/run/systemd/system").is_dir():
        assert "systemd is not running on this host" in error(result)
    else:
        status = data(result)
        assert status["unit"] == "no-such-unit-for-tests.service"
        assert status["load_state"] == "not-found" and status["active_state"] == "inactive"
        assert isinstance(data(await call(infra, "systemd_list_failed")), list)


async def test_systemd_tools_without_binaries(infra: FastMCP, empty_path: None) -> None:
    for tool, arguments in (("systemd_status", {"unit": "nginx"}),
                            ("systemd_restart", {"unit": "nginx"}),
                            ("systemd_stop", {"unit": "nginx.service"}),
                            ("systemd_list_failed", {})):
        assert "systemctl is not available on this host" in error(
            await call(infra, tool, **arguments))
    assert "journalctl is not available on this host" in error(
        await call(infra, "systemd_logs", unit="nginx"))


# ---- infrastructure: docker --------------------------------------------------------------

async def test_docker_real_output_or_a_clear_error(infra: FastMCP) -> None:
    result = await call(infra, "docker_containers", all=True)
    if shutil.which("docker") is None:
        assert "docker is not available on this host" in error(result)
        return
    if result.is_error:
        assert "the Docker daemon is not reachable" in error(result)
        return
    containers = data(result)
    assert isinstance(containers, list)
    missing = await call(infra, "docker_inspect_state", container="no-such-container-xyz")
    assert "no container 'no-such-container-xyz'" in error(missing)


async def test_docker_without_the_cli(infra: FastMCP, empty_path: None) -> None:
    assert "docker is not available on this host" in error(
        await call(infra, "docker_containers"))
    assert "docker is not available on this host" in error(
        await call(infra, "docker_logs", container="web"))


@pytest.mark.parametrize("name", ["-x", "--help", "a;b", "../x", "web app", "_web"])
async def test_bad_container_names_are_refused(infra: FastMCP, name: str) -> None:
    for tool in ("docker_logs", "docker_inspect_state"):
        assert "not a valid container name" in error(await call(infra, tool, container=name))


# ---- annotations and schemas -------------------------------------------------------------

async def test_annotations_are_truthful(logs_server: FastMCP, infra: FastMCP) -> None:
    for server in (logs_server, infra):
        async with Client(server) as client:
            for tool in await client.list_tools():
                hints = tool.annotations
                assert hints is not None and tool.output_schema, tool.name
                if tool.name in DESTRUCTIVE:
                    assert hints.read_only_hint is False and hints.destructive_hint is True
                    assert hints.idempotent_hint is (tool.name != "systemd_restart")
                else:
                    assert hints.read_only_hint is True and hints.idempotent_hint is True
                    assert hints.destructive_hint is False, tool.name


def test_building_makes_no_heavy_imports() -> None:
    code = ("import sys\nfrom orchestrator_mcp.agents import infrastructure, logs\n"
            "from orchestrator_mcp.agents.infrastructure_settings import *\n"
            "from orchestrator_mcp.agents.logs_settings import *\n"
            "infrastructure.build(InfrastructureAgentSettings())\n"
            "logs.build(LogsAgentSettings())\n"
            "print('boto3' in sys.modules, 'botocore' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.strip() == "False False"


# ---- infrastructure: AWS -----------------------------------------------------------------

@pytest.fixture
def no_aws_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                 "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


async def test_aws_disabled_in_config() -> None:
    server = infrastructure.build(InfrastructureAgentSettings(aws=False))
    assert "AWS is disabled in config" in error(await call(server, "aws_summary"))


async def test_aws_without_credentials(infra: FastMCP, no_aws_profile: None) -> None:
    pytest.importorskip("boto3", reason="boto3 is an optional extra (orchestrator-mcp[bedrock])")
    message = error(await call(infra, "aws_summary", region="eu-west-1"))
    assert "no AWS credentials found" in message
    assert "not an AWS region" in error(await call(infra, "aws_summary", region="../x"))


def _cbor(value: Any) -> bytes:
    """Just enough CBOR (RFC 8949) for CloudWatch's rpc-v2-cbor protocol."""
    def head(major: int, n: int) -> bytes:
        if n < 24:
            return bytes([major << 5 | n])
        return bytes([major << 5 | 26]) + struct.pack(">I", n)
    if isinstance(value, dict):
        return head(5, len(value)) + b"".join(_cbor(k) + _cbor(v) for k, v in value.items())
    if isinstance(value, list):
        return head(4, len(value)) + b"".join(_cbor(v) for v in value)
    raw = str(value).encode()
    return head(3, len(raw)) + raw


_EC2_ANSWER = b"""<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
 <requestId>req-1</requestId>
 <reservationSet><item><reservationId>r-1</reservationId><instancesSet><item>
  <instanceId>i-0abc</instanceId><instanceType>t3.micro</instanceType>
  <instanceState><code>16</code><name>running</name></instanceState>
  <placement><availabilityZone>eu-west-1a</availabilityZone></placement>
  <tagSet><item><key>Name</key><value>web-1</value></item></tagSet>
 </item></instancesSet></item></reservationSet>
</DescribeInstancesResponse>"""


class _FakeAws(BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.bodies.append(body)
        alarms = {"MetricAlarms": [{
            "AlarmName": "cpu-high", "MetricName": "CPUUtilization", "Namespace": "AWS/EC2",
            "StateValue": "ALARM", "StateReason": "Threshold Crossed"}], "CompositeAlarms": []}
        if self.path.endswith("/operation/DescribeAlarms"):  # botocore's rpc-v2-cbor
            answer = _cbor(alarms)
            headers = {"Content-Type": "application/cbor", "smithy-protocol": "rpc-v2-cbor"}
        elif "DescribeAlarms" in self.headers.get("X-Amz-Target", ""):  # botocore's json
            answer = json.dumps(alarms).encode()
            headers = {"Content-Type": "application/x-amz-json-1.0"}
        else:
            answer, headers = _EC2_ANSWER, {"Content-Type": "text/xml"}
        self.send_response(200)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


@pytest.fixture
def fake_aws(no_aws_profile: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeAws)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.server_address[1]}")
    _FakeAws.bodies = []
    yield _FakeAws.bodies
    server.shutdown()


async def test_aws_summary_with_real_boto3(fake_aws: list[bytes]) -> None:
    pytest.importorskip("boto3", reason="boto3 is an optional extra (orchestrator-mcp[bedrock])")
    server = infrastructure.build(InfrastructureAgentSettings(aws_region="eu-west-1"))
    summary = data(await call(server, "aws_summary"))
    assert summary["region"] == "eu-west-1" and summary["truncated"] is False
    assert summary["instances"] == [{"id": "i-0abc", "name": "web-1", "state": "running",
                                     "type": "t3.micro", "availability_zone": "eu-west-1a"}]
    assert [a["name"] for a in summary["alarms_in_alarm"]] == ["cpu-high"]
    assert any(b"DescribeInstances" in body for body in fake_aws)
    assert any(b"ALARM" in body for body in fake_aws)
