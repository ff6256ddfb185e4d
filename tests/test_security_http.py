"""The HTTP face as an attacker and a careless operator meet it: a real `serve --http`,
real HTTP requests and a real MCP client (issue 12: tokens, scopes, DNS rebinding,
hostile webhook bodies, small validation gaps)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
import yaml
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport

from tests.conftest import REPO, free_port, wait_for_port, write_config
from tests.test_front import http_server, serve_args, wait_for_tool

MAIN = "main-token-0123456789abcdef"
READER = "reader-token-0123456789abc"
APPROVER = "approver-token-0123456789"
ALERT = "alert-token-0123456789abcd"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ORCH_HTTP_TOKEN"}
    return {**env, **extra}


def _serve(config: Path, data: Path, *args: str, env: dict[str, str] | None = None,
           timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *serve_args(config, data, "--http", *args)],
                          capture_output=True, text=True, timeout=timeout, env=env or _env())


# ---- no unauthenticated serve ------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "   ", "\t"])
def test_shipped_config_refuses_an_open_public_bind(tmp_path: Path, token: str | None) -> None:
    """The repository's own servers.yaml (`http.token: ${ORCH_HTTP_TOKEN:-}`), as a new
    user runs it, with the variable unset or blank."""
    env = _env() if token is None else _env(ORCH_HTTP_TOKEN=token)
    proc = _serve(REPO, tmp_path / "d", "--host", "0.0.0.0", "--port",
                  str(free_port()), env=env)
    assert proc.returncode == 2, proc.stderr
    assert "HTTP needs a bearer token and none is set" in proc.stderr
    assert "export ORCH_HTTP_TOKEN=" in proc.stderr


def test_blank_or_short_tokens_are_config_errors(tmp_path: Path) -> None:
    short = _serve(tmp_path, tmp_path / "d", env=_env(ORCH_HTTP_TOKEN="abc"))
    assert short.returncode == 2
    assert "ORCH_HTTP_TOKEN: a token needs at least 16 characters" in short.stderr

    config = write_config(tmp_path / "c", {}, http={"tokens": [
        {"name": "blank", "token": "   ", "scopes": ["read"]}]})
    blank = _serve(config, tmp_path / "d")
    assert blank.returncode == 2
    assert "http.tokens[0].token" in blank.stderr and "the token is empty" in blank.stderr


def test_no_auth_ignores_tokens_only_on_loopback(tmp_path: Path) -> None:
    proc = _serve(tmp_path, tmp_path / "d", "--no-auth", "--host", "0.0.0.0",
                  env=_env(ORCH_HTTP_TOKEN=MAIN))
    assert proc.returncode == 2
    assert "only allowed on a loopback host" in proc.stderr


# ---- one server with scoped tokens ---------------------------------------------------------


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("secured")
    config = write_config(
        tmp / "config", {},
        http={"tokens": [{"name": "dashboard", "token": READER, "scopes": ["approve"]},
                         {"name": "oncall", "token": APPROVER, "scopes": ["read", "approve"]}],
              "max_request_bytes": 8192})
    (config / "profiles.yaml").write_text(yaml.safe_dump({"alerts": {"token": ALERT}}))
    with http_server(config, tmp / "data", _env(ORCH_HTTP_TOKEN=MAIN, LLM_PROVIDER="scripted")
                     ) as url:
        yield url


async def test_resources_and_listings_need_read(secured: str) -> None:
    """`dashboard` may approve but not read: no run records, no server list, no listings."""
    async with Client(StreamableHttpTransport(f"{secured}/mcp", auth=READER)) as client:
        for uri in ("orchestrator://servers", "orchestrator://runs/run_x",
                    "orchestrator://tools"):
            with pytest.raises(Exception, match="lacks the 'read' scope"):
                await client.read_resource(uri)
        with pytest.raises(Exception, match="lacks the 'read' scope"):
            await client.list_resources()
        with pytest.raises(Exception, match="lacks the 'read' scope"):
            await client.list_tools()
    async with Client(StreamableHttpTransport(f"{secured}/mcp", auth=APPROVER)) as client:
        await wait_for_tool(client, "list_servers")
        assert (await client.read_resource("orchestrator://servers"))[0].text.startswith("[")


async def test_every_method_is_checked(secured: str) -> None:
    async with httpx2.AsyncClient() as http:
        assert (await http.head(f"{secured}/metrics")).status_code == 401
        denied = await http.head(f"{secured}/metrics",
                                 headers={"Authorization": f"Bearer {READER}"})
        assert denied.status_code == 403
        allowed = await http.head(f"{secured}/metrics",
                                  headers={"Authorization": f"Bearer {APPROVER}"})
        assert allowed.status_code == 200
        # An unlisted route or method is not open to every token.
        other = await http.delete(f"{secured}/approvals/run_x",
                                  headers={"Authorization": f"Bearer {APPROVER}"})
        assert other.status_code == 403
        # The scheme is case-insensitive (RFC 7235).
        lower = await http.get(f"{secured}/approvals", headers={"authorization":
                                                                 f"bearer {APPROVER}"})
        assert lower.status_code == 200
        assert (await http.get(f"{secured}/approvals",
                               headers={"Authorization": f"Basic {APPROVER}"})).status_code == 401


async def test_approval_route_validation(secured: str) -> None:
    auth = {"Authorization": f"Bearer {APPROVER}"}
    async with httpx2.AsyncClient(headers=auth) as http:
        missing = await http.post(f"{secured}/approvals/run_nope", json={"approved": True})
        assert missing.status_code == 404
        assert "no run 'run_nope'" in missing.json()["detail"]
        for wrong in ("yes", 1, "true", None):
            bad = await http.post(f"{secured}/approvals/run_nope", json={"approved": wrong})
            assert bad.status_code == 400, wrong
            assert bad.json()["detail"][0]["field"] == "approved"
        big = await http.post(f"{secured}/approvals/run_nope",
                              content=b'{"reason": "' + b"x" * 70_000 + b'"}')
        assert big.status_code == 413
        # the server-wide http.max_request_bytes (8192 here) stops it first, and says so
        assert "http.max_request_bytes" in big.json()["detail"]
        mid = await http.post(f"{secured}/approvals/run_nope",
                              content=b'{"reason": "' + b"x" * 7000 + b'"}')
        assert mid.status_code == 400  # under both limits: a validation error, not 413


async def test_front_tool_arguments_are_strict(secured: str) -> None:
    async with Client(StreamableHttpTransport(f"{secured}/mcp", auth=MAIN)) as client:
        await wait_for_tool(client, "approve")
        for since in ("nan", "1e309", "-5", "inf"):
            result = await client.call_tool_mcp("list_runs", {"since": since})
            assert result.is_error, since
            assert "is not a time" in result.content[0].text
        result = await client.call_tool_mcp("approve", {"run_id": "run_x", "approved": "yes"})
        assert result.is_error
        assert "approved" in result.content[0].text
        ok = await client.call_tool_mcp("list_runs", {"since": "2026-01-01T00:00:00+00:00"})
        assert not ok.is_error


async def test_hostile_webhook_bodies(secured: str) -> None:
    auth = {"Authorization": f"Bearer {ALERT}", "Content-Type": "application/json"}
    async with httpx2.AsyncClient(headers=auth) as http:
        deep = b"[" * 100_000 + b"]" * 100_000
        response = await http.post(f"{secured}/webhooks/alertmanager", content=deep)
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_json"
        surrogate = (b'{"version": "4", "groupKey": "g", "status": "firing", "receiver": "r",'
                     b' "alerts": [{"status": "firing", "fingerprint": "f1",'
                     b' "labels": {"alertname": "A\\ud800"}}]}')
        response = await http.post(f"{secured}/webhooks/alertmanager", content=surrogate)
        assert response.status_code == 400
        assert "surrogate" in response.json()["detail"]
        # the server is still there
        assert (await http.get(f"{secured}/healthz")).status_code == 200


# ---- DNS rebinding -------------------------------------------------------------------------


@pytest.fixture
def open_loopback(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, *serve_args(tmp_path, tmp_path / "d", "--http", "--no-auth",
                                     "--port", str(port))], env=_env())
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


async def test_dns_rebinding_is_refused_without_auth(open_loopback: str) -> None:
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "evil", "version": "1"}}}
    headers = {"Accept": "application/json, text/event-stream"}
    async with httpx2.AsyncClient(headers=headers) as http:
        rebound = await http.post(f"{open_loopback}/mcp", json=initialize,
                                  headers={"Host": "evil.example",
                                           "Origin": "http://evil.example"})
        assert rebound.status_code in (403, 421)
        foreign = await http.post(f"{open_loopback}/mcp", json=initialize,
                                  headers={"Origin": "http://evil.example"})
        assert foreign.status_code == 403
        approvals = await http.get(f"{open_loopback}/approvals",
                                   headers={"Host": "evil.example"})
        assert approvals.status_code == 421
        local = await http.post(f"{open_loopback}/mcp", json=initialize,
                                headers={"Origin": open_loopback})
        assert local.status_code == 200
