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
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                               max_size=4),
    max_leaves=12,
)
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
                             "steps": [{"id": "a", "tool": "nothing_here"}]}}}))
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


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
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
    "list_tools": st.fixed_dictionaries({}, optional={"server": json_values,
                                                      "pattern": json_values,
                                                      "text": json_values}),
    "call_tool": st.fixed_dictionaries({"name": json_values},
                                       optional={"arguments": json_values}),
    "run": st.fixed_dictionaries({"goal": json_values},
                                 optional={"profile": json_values, "context": json_values,
                                           "wait_seconds": json_values}),
    "get_run": st.fixed_dictionaries({"run_id": json_values}),
    "list_runs": st.fixed_dictionaries({}, optional={"status": json_values,
                                                     "since": json_values,
                                                     "limit": json_values}),
    "cancel_run": st.fixed_dictionaries({"run_id": json_values}),
    "approve": st.fixed_dictionaries({"run_id": json_values, "approved": json_values},
                                     optional={"modified_arguments": json_values,
                                               "reason": json_values}),
    "run_workflow": st.fixed_dictionaries({"name": json_values},
                                          optional={"inputs": json_values}),
    "audit": st.fixed_dictionaries({}, optional={"since": json_values, "kind": json_values,
                                                 "limit": json_values}),
    "costs": st.fixed_dictionaries({}, optional={"since": json_values,
                                                 "group_by": json_values}),
    "list_agents": st.just({}),
    "ask_agent": st.fixed_dictionaries({"agent": json_values, "task": json_values},
                                       optional={"context": json_values,
                                                 "wait": st.just(False)}),
    "search": st.fixed_dictionaries({"query": json_values},
                                    optional={"collection": json_values, "limit": json_values,
                                              "mode": json_values, "filters": json_values}),
    "list_collections": st.just({}),
    "index_document": st.fixed_dictionaries({"collection": json_values, "id": json_values,
                                             "text": json_values},
                                            optional={"metadata": json_values}),
    "index_folder": st.fixed_dictionaries({"path": json_values},
                                          optional={"collection": json_values}),
    "delete_document": st.fixed_dictionaries({"collection": json_values, "id": json_values}),
    "delete_collection": st.fixed_dictionaries({"name": json_values}),
}


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
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
