"""Secrets never land in logs, the audit log or run records: the redacting filter on every
handler, in-process; a real `serve` whose downstream server and LLM endpoint both refuse
with 401; and a real `serve --http` whose host calls, runs and downstream URLs carry
secrets (issue 12, items 5 and 12)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastmcp import Client
from fastmcp.client.transports import StdioTransport, StreamableHttpTransport

from orchestrator_mcp.config import load_config
from orchestrator_mcp.telemetry.audit import redact, redact_text
from orchestrator_mcp.telemetry.logs import config_secrets, configure_logging, redacting_filter
from tests.conftest import free_port, wait_for_port
from tests.test_front import serve_args

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
                            "Token header-secret-0003", "header-secret-0003", "env-secret-00004"}
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


# ---- one redactor for logs, audit and run records: a real `serve --http` -----------------

URL_PW = "url-pw-in-call-8841"  # a URL password in a host's call
DB_PW = "db-pw-in-result-5150"  # in a downstream server's env: comes back in a tool result
ECHO_PW = "echo-pw-in-run-6262"  # in the arguments and result of a run's tool call
LICENSE = "license-value-0x77aa"  # a query value of a downstream URL (a name not secret)
SERVE_TOKEN = "serve-http-token-0123456789"


async def _until(fetch: Any, done: Any, timeout: float = 60) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            value = await fetch()
            if done(value):
                return value
            await asyncio.sleep(0.2)


async def test_serve_http_redacts_audit_runs_and_logs(tmp_path: Path, refuser: Refuser,
                                                      everything_cfg: dict) -> None:
    """Issue 12, item 5: the HTTP token, a secret-named env value, a URL password and a
    URL's query value never come back from `audit`, `get_run`, the SQLite tables or the
    logs; item 12: an audit entry over 20,000 characters is kept as valid JSON."""
    config = tmp_path / "config"
    config.mkdir()
    script = tmp_path / "script.yaml"
    script.write_text(yaml.safe_dump({"scripts": [{"turns": [
        {"tool_calls": [
            {"name": "everything_get-env", "arguments": {}},
            {"name": "everything_echo",
             "arguments": {"message": f"retry with redis://:{ECHO_PW}@cache:6379"}}]},
        {"text": "checked"}]}]}))
    (config / "servers.yaml").write_text(yaml.safe_dump({
        "servers": {
            "everything": {**everything_cfg, "env": {
                "DATABASE_URL": f"postgres://admin:{DB_PW}@db:5432/app"}},
            # httpx logs "HTTP Request: POST <url>" on every attempt
            "licensed": {"url": refuser.url + "/mcp?license=${LICENSE_KEY}&v=1"}},
        "llm": {"provider": "scripted", "script": str(script)}}))
    data = tmp_path / "data"
    port = free_port()
    env = {**os.environ, "ORCH_HTTP_TOKEN": SERVE_TOKEN, "MY_SERVICE_PASSWORD": ENV_SECRET,
           "LICENSE_KEY": LICENSE, "FASTMCP_CHECK_FOR_UPDATES": "off"}
    secrets = (SERVE_TOKEN, ENV_SECRET, LICENSE, URL_PW, DB_PW, ECHO_PW)
    stderr = tmp_path / "stderr.log"
    with stderr.open("wb") as err:
        proc = subprocess.Popen([sys.executable, *serve_args(config, data, "--http", "--port",
                                                             str(port))], env=env, stderr=err)
        try:
            wait_for_port(port, 60)
            transport = StreamableHttpTransport(f"http://127.0.0.1:{port}/mcp",
                                                auth=SERVE_TOKEN)
            async with Client(transport, timeout=120) as client:
                await _until(lambda: client.call_tool("list_servers", {}), lambda r: any(
                    s["name"] == "everything" and s["status"] == "up"
                    for s in r.structured_content["result"]))
                said = (f"connect postgres://app:{URL_PW}@db/x with {SERVE_TOKEN}, "
                        f"{ENV_SECRET} and ?license={LICENSE}")
                await client.call_tool("call_tool", {"name": "everything_echo",
                                                     "arguments": {"message": said}})
                await client.call_tool("call_tool", {"name": "everything_echo",
                                                     "arguments": {"message": "L" * 50_000}})
                entries = (await _until(
                    lambda: client.call_tool("audit", {"tool": "everything_echo"}),
                    lambda r: len(r.structured_content["result"]) >= 2)
                ).structured_content["result"]
                long, short = entries[0]["arguments"], entries[1]["arguments"]
                assert long["message"].endswith("…[truncated, 50000 characters in all]")
                assert short["message"] == ("connect postgres://app:***@db/x with ***, *** "
                                            "and ?license=***")
                view = (await client.call_tool("run", {"goal": "check the environment",
                                                       "wait": True})).structured_content
                assert view["status"] == "completed", view
                record = (await client.call_tool("get_run", {"run_id": view["run_id"]})
                          ).structured_content
                audit = (await client.call_tool("audit", {"limit": 20})).structured_content
        finally:
            proc.terminate()
            proc.wait(20)
    shown = json.dumps([record, audit])
    assert "postgres://admin:***@db:5432/app" in shown  # get-env's result, redacted
    assert "redis://:***@cache:6379" in shown
    with sqlite3.connect(data / "runs.sqlite") as db:
        tables = json.dumps([db.execute(f"SELECT * FROM {t}").fetchall()  # noqa: S608
                             for t in ("orch_runs", "orch_run_steps", "orch_tool_calls",
                                       "orch_audit")])
        for (arguments,) in db.execute("SELECT arguments FROM orch_audit"):
            json.loads(arguments)  # every row, the 50,000-character one too, is valid JSON
    logged = {p.name: p.read_text() for p in (data / "logs").glob("*.log")}
    logged["stderr"] = stderr.read_text()
    assert "?license=***&v=1" in logged["orchestrator.log"]  # httpx's line, redacted
    for name, text in {"get_run and audit": shown, "tables": tables, **logged}.items():
        for secret in secrets:
            assert secret not in text, f"{secret} in {name}"
