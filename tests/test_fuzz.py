"""Hypothesis-generated input for the webhook and every front tool: only clear errors, never
a crash, a 500 or a dead server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import free_port, wait_for_port, write_config

TOKEN = "fuzz-token-0123456789"


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"a": [value]}
    return value


# Inputs that once stalled or crashed the server (issue 12): quadratic redaction, lone
# surrogates, catastrophic regexes, very long and deeply nested values.
SENDABLE_HOSTILE = st.sampled_from([
    "a://" + ":" * 40_000, "://" * 20_000, "bearer " * 10_000, "password=" * 8_000,
    "(a+)+$", "(x*)*y", "x" * 200_000, "A" * 39 + "/" * 20_000,
]) | st.integers(min_value=20, max_value=45).map(_nested)  # deeper: see the raw test below
# Lone surrogates are valid as JSON escapes and nesting has no limit in JSON, so a raw HTTP
# body can carry both, but an MCP client cannot encode them (nor nesting past ~100 levels):
# the webhook fuzz sends them, the front's /mcp gets them in a raw test.
HOSTILE = SENDABLE_HOSTILE | st.integers(min_value=100, max_value=400).map(_nested) | st.just(
    "\ud800") | st.text(
    alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1,
    max_size=3)


def _json_values(hostile: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
        | st.text(max_size=40, alphabet=st.characters(exclude_categories=("Cs",))) | hostile,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
            st.text(max_size=12, alphabet=st.characters(exclude_categories=("Cs",))), inner,
            max_size=4),
        max_leaves=12,
    )


json_values = _json_values(HOSTILE)
tool_values = _json_values(SENDABLE_HOSTILE)
ALERT_KEYS = ["version", "groupKey", "status", "receiver", "alerts", "commonLabels",
              "groupLabels", "commonAnnotations", "externalURL", "truncatedAlerts"]
alert = st.fixed_dictionaries({}, optional={
    "status": st.sampled_from(["firing", "resolved", "weird"]) | json_values,
    "labels": st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3)
    | json_values,
    "fingerprint": st.text(max_size=20) | json_values,
    "startsAt": st.text(max_size=25),
})
near_valid = st.fixed_dictionaries({}, optional={
    "version": st.sampled_from(["4", "3", 4]) | json_values,
    "groupKey": st.text(max_size=30) | json_values,
    "status": st.sampled_from(["firing", "resolved"]) | json_values,
    "receiver": st.text(max_size=10) | json_values,
    "alerts": st.lists(alert, max_size=3) | json_values,
    "commonLabels": st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3),
})


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("fuzz")
    config = write_config(tmp / "config", {},  # thousands of requests: no rate limit here
                          http={"rate_limit_per_second": 100000, "rate_limit_burst": 100000})
    (config / "profiles.yaml").write_text(yaml.safe_dump(
        {"alerts": {"rules": [{"name": "any", "match_re": {"alertname": ".*"}}]},
         "workflows": {"w": {"inputs": {"n": {"type": "integer", "default": 1}},
                             "steps": [{"id": "a", "tool": "nothing_here"}]}},
         "templates": {"t": {"parameters": {"n": {"type": "integer", "default": 1},
                                            "hosts": {"type": "array", "default": []}},
                             "goal": "count {{ n }} {% for h in hosts %}{{ h }}{% endfor %}"}}}))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator_mcp", "--config-dir", str(config), "--data-dir",
         str(tmp / "data"), "--log-level", "ERROR", "serve", "--http", "--port", str(port)],
        env={**os.environ, "ORCH_HTTP_TOKEN": TOKEN, "LLM_PROVIDER": "scripted",
             "LLM_SCRIPT": str(Path(__file__).parent.parent / "examples" / "scripted-llm.yaml")},
        stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def _post(url: str, body: bytes) -> httpx2.Response:
    return httpx2.post(f"{url}/webhooks/alertmanager", content=body, timeout=30,
                       headers={"Authorization": f"Bearer {TOKEN}",
                                "Content-Type": "application/json"})


# A deadline per example (generous for a shared 2-core machine) catches work that grows
# faster than the input: a quadratic pattern on 200 kB takes minutes, not seconds.
@settings(max_examples=150, deadline=10_000, suppress_health_check=list(HealthCheck))
@given(body=near_valid | json_values)
def test_webhook_bodies_never_crash_it(sidecar: str, body: Any) -> None:
    response = _post(sidecar, json.dumps(body).encode())
    assert response.status_code in (200, 400, 503), response.text
    assert "error" in response.json() or response.json()["status"] in (
        "accepted", "already_received")


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=st.binary(max_size=300))
def test_webhook_raw_bytes_never_crash_it(sidecar: str, raw: bytes) -> None:
    assert _post(sidecar, raw).status_code in (200, 400)


TOOL_ARGS: dict[str, Any] = {
    "list_tools": st.fixed_dictionaries({}, optional={"server": tool_values,
                                                      "pattern": tool_values,
                                                      "text": tool_values}),
    "call_tool": st.fixed_dictionaries({"name": tool_values},
                                       optional={"arguments": tool_values}),
    "run": st.fixed_dictionaries({"goal": tool_values},
                                 optional={"profile": tool_values, "context": tool_values,
                                           "wait_seconds": tool_values}),
    "get_run": st.fixed_dictionaries({"run_id": tool_values}),
    "list_runs": st.fixed_dictionaries({}, optional={"status": tool_values,
                                                     "since": tool_values,
                                                     "limit": tool_values}),
    "cancel_run": st.fixed_dictionaries({"run_id": tool_values}),
    "approve": st.fixed_dictionaries({"run_id": tool_values, "approved": tool_values},
                                     optional={"modified_arguments": tool_values,
                                               "reason": tool_values}),
    "run_workflow": st.fixed_dictionaries({"name": tool_values},
                                          optional={"inputs": tool_values}),
    "run_template": st.fixed_dictionaries({"name": st.just("t") | tool_values},
                                          optional={"params": tool_values,
                                                    "idempotency_key": tool_values,
                                                    "wait_seconds": tool_values}),
    "list_templates": st.just({}),
    "list_schedules": st.just({}),
    "audit": st.fixed_dictionaries({}, optional={"since": tool_values, "kind": tool_values,
                                                 "limit": tool_values}),
    "costs": st.fixed_dictionaries({}, optional={"since": tool_values,
                                                 "group_by": tool_values}),
    "list_agents": st.just({}),
    "ask_agent": st.fixed_dictionaries({"agent": tool_values, "task": tool_values},
                                       optional={"context": tool_values,
                                                 "wait": st.just(False)}),
    "search": st.fixed_dictionaries({"query": tool_values},
                                    optional={"collection": tool_values, "limit": tool_values,
                                              "mode": tool_values, "filters": tool_values}),
    "list_collections": st.just({}),
    "index_document": st.fixed_dictionaries({"collection": tool_values, "id": tool_values,
                                             "text": tool_values},
                                            optional={"metadata": tool_values}),
    "index_folder": st.fixed_dictionaries({"path": tool_values},
                                          optional={"collection": tool_values}),
    "delete_document": st.fixed_dictionaries({"collection": tool_values, "id": tool_values}),
    "delete_collection": st.fixed_dictionaries({"name": tool_values}),
}


@settings(max_examples=200, deadline=20_000, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_front_tools_answer_bad_arguments_with_clear_errors(sidecar: str, data: Any) -> None:
    name = data.draw(st.sampled_from(sorted(TOOL_ARGS)))
    arguments = data.draw(TOOL_ARGS[name])

    async def call() -> Any:
        async with Client(StreamableHttpTransport(f"{sidecar}/mcp", auth=TOKEN)) as client:
            return await client.call_tool_mcp(name, arguments)

    result = asyncio.run(call())
    if result.is_error:
        text = result.content[0].text if result.content else ""
        assert text and "Traceback" not in text
        assert not text.startswith("Error calling tool"), f"{name}({arguments}): {text}"
    assert httpx2.get(f"{sidecar}/healthz", timeout=10).status_code == 200


def test_hostile_webhook_bodies_keep_the_server_responsive(sidecar: str) -> None:
    """Each is refused (or accepted) at once, and /healthz answers in between."""
    valid = {"version": "4", "groupKey": "g", "status": "firing", "receiver": "r",
             "alerts": [{"status": "firing", "fingerprint": "f", "labels": {"alertname": "x"}}]}
    bodies = [b"[" * 200_000 + b"]" * 200_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
              json.dumps({**valid, "commonLabels": {"k": "\ud800"}}).encode(),
              json.dumps({**valid, "receiver": "x" * 900_000}).encode(),
              b'{"version": "4", "alerts": [' + b'{},' * 100_000 + b'{}]}']
    for body in bodies:
        assert _post(sidecar, body).status_code in (400, 413)
        health = httpx2.get(f"{sidecar}/healthz", timeout=5)
        assert health.status_code == 200


def test_raw_hostile_mcp_requests_get_json_rpc_errors(sidecar: str) -> None:
    """What an MCP client cannot send but an attacker can: deep nesting and lone
    surrogates in a tools/call body get an error and the server keeps answering."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json",
               "Accept": "application/json, text/event-stream"}
    with httpx2.Client(base_url=sidecar, headers=headers, timeout=30) as http:
        init = http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                       "params": {"protocolVersion": "2025-06-18",
                                                  "capabilities": {},
                                                  "clientInfo": {"name": "raw", "version": "1"}}})
        assert init.status_code == 200
        if session := init.headers.get("mcp-session-id"):
            http.headers["mcp-session-id"] = session
        http.post("/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        call = '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get_run",' \
               '"arguments":{"run_id":%s}}}'
        for value in ("[" * 100_000 + "]" * 100_000, json.dumps(_nested(300)),
                      '"\\ud800"', '"' + "\\ud800" * 50_000 + '"'):
            response = http.post("/mcp", content=(call % value).encode())
            assert response.status_code in (200, 400), response.text[:300]
            assert "error" in response.text or '"isError":true' in response.text
            assert "Traceback" not in response.text
            assert http.get("/healthz", timeout=5).status_code == 200
