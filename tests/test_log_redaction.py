"""Secrets never land in logs: the redacting filter on every handler, in-process and in a
real `serve` whose downstream server and LLM endpoint both refuse with 401."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastmcp import Client
from fastmcp.client.transports import StdioTransport

from orchestrator_mcp.config import load_config
from orchestrator_mcp.telemetry.audit import redact, redact_text
from orchestrator_mcp.telemetry.logs import config_secrets, configure_logging, redacting_filter

ENV_SECRET = "zq7-env-value-NOT-for-logs-4711"
HTTP_TOKEN = "orch-http-token-3f9c2a7e51"
OPENAI_KEY = "sk-proj-LIVEkey0123456789abcdef"


@pytest.fixture
def logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """configure_logging into tmp_path, then the root logger as pytest had it."""
    monkeypatch.setenv("MY_SERVICE_PASSWORD", ENV_SECRET)
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    yield tmp_path
    for handler in root.handlers:
        handler.close()
    root.handlers[:] = saved
    root.setLevel(level)


def read_log(data_dir: Path) -> str:
    for handler in logging.getLogger().handlers:
        handler.flush()
    return (data_dir / "logs" / "orchestrator.log").read_text()


def test_log_records_are_redacted(logs: Path) -> None:
    configure_logging(logs, "INFO")
    log = logging.getLogger("test.redaction")
    log.info("calling with Authorization: Bearer abc123def456 and api_key=sk-live-123456")
    log.warning("connecting to %s as %s", "postgres://app:pa55w0rd-x@db:5432/x", ENV_SECRET)
    log.info("aws key %s", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    try:
        raise RuntimeError(f"upstream said: token={ENV_SECRET}-suffix")
    except RuntimeError:
        log.exception("call failed")
    text = read_log(logs)
    for secret in ("abc123def456", "sk-live-123456", "pa55w0rd-x", ENV_SECRET,
                   "wJalrXUtnFEMI"):
        assert secret not in text, f"{secret} leaked into the log:\n{text}"
    assert "Authorization: Bearer ***" in text
    assert "api_key=***" in text
    assert "postgres://app:***@db:5432/x" in text
    assert "RuntimeError: upstream said: token=***" in text  # the traceback too
    # ordinary text is left alone
    log.info("input_tokens=100 max_tokens=5, a basic check of the password policy")
    assert "input_tokens=100 max_tokens=5, a basic check of the password policy" in read_log(logs)


def test_configured_tokens_are_redacted(logs: Path) -> None:
    config_dir = logs / "config"
    config_dir.mkdir()
    (config_dir / "servers.yaml").write_text(yaml.safe_dump({
        "http": {"token": "http-token-from-yaml-0001",
                 "tokens": [{"name": "ci", "token": "scoped-token-from-yaml-02",
                             "scopes": ["read"]}]},
        "servers": {"remote": {"url": "http://127.0.0.1:9/mcp",
                               "headers": {"Authorization": "Token header-secret-0003"}},
                    "local": {"command": "true", "env": {"GITHUB_TOKEN": "env-secret-00004",
                                                         "LOG_LEVEL": "debug-level"}}},
    }))
    secrets = config_secrets(load_config(config_dir))
    assert set(secrets) == {"http-token-from-yaml-0001", "scoped-token-from-yaml-02",
                            "Token header-secret-0003", "env-secret-00004"}
    configure_logging(logs, "INFO", secrets=secrets)
    log = logging.getLogger("test.redaction")
    log.info("got %s, %s; sent Token header-secret-0003; env-secret-00004 and debug-level",
             "http-token-from-yaml-0001", "scoped-token-from-yaml-02")
    late = redacting_filter()
    assert late is not None
    late.add(["learnt-later-secret-05"])
    log.info("then learnt-later-secret-05")
    text = read_log(logs)
    assert "yaml-0" not in text and "header-secret" not in text and "env-secret" not in text
    assert "learnt-later" not in text
    assert "debug-level" in text


def test_redact_text_is_what_the_audit_log_uses() -> None:
    assert redact_text("curl -H 'Authorization: Bearer abc123def456'") == (
        "curl -H 'Authorization: Bearer ***'")
    assert redact_text('{"password": "hunter22", "n": 1}') == '{"password": "***", "n": 1}'
    assert redact_text("my value xyzzy-42 here", ["xyzzy-42"]) == "my value *** here"
    # hex digests are not AWS secrets
    digest = "3f786850e387550fdab836ed7e6dc881de23001b"
    assert redact_text(f"commit {digest}") == f"commit {digest}"
    assert redact({"api_key": "x", "cmd": "run --token=abc123"}) == {
        "api_key": "***", "cmd": "run --token=***"}


# ---- a real server --------------------------------------------------------------------


class Refuser:
    """An HTTP server that answers every request 401 and echoes the credentials it got,
    as careless servers do."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _refuse(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.dumps({"error": {
                    "message": f"invalid credentials {self.headers.get('Authorization')} "
                    f"for {self.path}", "type": "invalid_request_error"}}).encode()
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _refuse  # noqa: N815 - the stdlib's names

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def refuser() -> Iterator[Refuser]:
    server = Refuser()
    yield server
    server.close()


async def test_serve_keeps_secrets_out_of_logs_and_runs(tmp_path: Path, refuser: Refuser
                                                        ) -> None:
    config = tmp_path / "config"
    config.mkdir()
    # httpx logs every request URL at INFO: one token in the path, one as a query value.
    (config / "servers.yaml").write_text(yaml.safe_dump({"servers": {"leaky": {
        "url": refuser.url + "/${ORCH_HTTP_TOKEN}/mcp?api_key=${OPENAI_API_KEY}",
        "headers": {"Authorization": "Bearer ${ORCH_HTTP_TOKEN}"}}}}))
    data = tmp_path / "data"
    env = {**os.environ, "ORCH_HTTP_TOKEN": HTTP_TOKEN, "OPENAI_API_KEY": OPENAI_KEY,
           "LLM_PROVIDER": "openai", "OPENAI_BASE_URL": refuser.url + "/v1",
           "OPENAI_MODEL": "fake-planner", "FASTMCP_CHECK_FOR_UPDATES": "off"}
    transport = StdioTransport(
        sys.executable, ["-m", "orchestrator_mcp", "--config-dir", str(config),
                         "--data-dir", str(data), "serve"],
        env=env, log_file=tmp_path / "server-stderr.log")
    async with Client(transport, timeout=120) as client:
        async with asyncio.timeout(30):
            while True:
                servers = (await client.call_tool("list_servers", {})).structured_content
                leaky = next(s for s in servers["result"] if s["name"] == "leaky")
                if leaky["status"] == "unhealthy":
                    break
                await asyncio.sleep(0.2)
        view = (await client.call_tool("run", {"goal": "hello", "wait": True})
                ).structured_content
        assert view["status"] == "failed" and "401" in view["error"]
        record = (await client.call_tool("get_run", {"run_id": view["run_id"]})
                  ).structured_content
    logged = {p.name: p.read_text() for p in (data / "logs").glob("*.log")}
    logged["stderr"] = (tmp_path / "server-stderr.log").read_text()
    assert "***" in logged["orchestrator.log"]  # the leaky URL was logged, redacted
    for name, text in logged.items():
        for secret in (HTTP_TOKEN, OPENAI_KEY):
            assert secret not in text, f"{secret} leaked into {name}"
    kept = json.dumps(record)
    assert HTTP_TOKEN not in kept and OPENAI_KEY not in kept
