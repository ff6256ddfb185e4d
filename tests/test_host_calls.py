"""Hosts' direct calls of catalog tools under gateway.host_calls: `orchestrator-mcp serve` in
a subprocess, the real fastmcp Client in both protocol eras, the npm server-memory (whose
`delete_entities` is marked destructive) and the built-in ansible agent's dry run."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import mcp_types
import pytest
from fastmcp import Client
from fastmcp.client.elicitation import ElicitResult
from fastmcp.client.transports import StdioTransport, StreamableHttpTransport

from tests.conftest import free_port, npm_server, wait_for_port, write_config

REPO = Path(__file__).resolve().parent.parent
ERAS = ["legacy", "auto"]  # handshake era (elicitation); 2026-07-28 (input-required)
DELETE = {"name": "memory_delete_entities", "arguments": {"entityNames": ["alice"]}}


def config(tmp_path: Path, http: dict | None = None, **host_calls: Any) -> Path:
    memory = {"command": "node", "args": [str(npm_server("memory"))],
              "env": {"MEMORY_FILE_PATH": str(tmp_path / "memory.jsonl")}}
    everything = {"command": "node", "args": [str(npm_server("everything")), "stdio"]}
    gateway: dict[str, Any] = {"passthrough": True, "tool_search_threshold": 1000}
    if host_calls:
        gateway["host_calls"] = host_calls
    return write_config(tmp_path / "config", {"memory": memory, "everything": everything},
                        gateway=gateway, http=http or {},
                        agents={"ansible": {"playbooks_dir": str(REPO / "playbooks")}})


class Asker:
    """An elicitation handler that answers every question the same way and keeps them."""

    def __init__(self, approve: bool) -> None:
        self.approve = approve
        self.questions: list[str] = []

    async def __call__(self, message: str, response_type: Any, params: Any,
                       context: Any) -> Any:
        self.questions.append(message)
        if self.approve:
            return {"approved": True, "reason": "checked"}
        return ElicitResult(action="decline")


@asynccontextmanager
async def front(tmp_path: Path, mode: str = "auto", asker: Asker | None = None,
                **host_calls: Any) -> AsyncIterator[Client]:
    transport = StdioTransport(
        sys.executable, ["-m", "orchestrator_mcp", "--config-dir",
                         str(config(tmp_path, **host_calls)), "--data-dir",
                         str(tmp_path / "data"), "serve"],
        log_file=tmp_path / "stderr.log")
    async with Client(transport, mode=mode, elicitation_handler=asker, timeout=120) as client:
        await ready(client)
        yield client


async def ready(client: Client) -> None:
    """Wait for the catalog, then put alice into the memory graph (create_entities is not
    destructive, so it needs no confirmation)."""
    async with asyncio.timeout(30):
        while not (await client.call_tool("list_tools", {"server": "memory"})
                   ).structured_content["result"]:
            await asyncio.sleep(0.05)
    await client.call_tool("call_tool", {"name": "memory_create_entities", "arguments": {
        "entities": [{"name": "alice", "entityType": "person", "observations": ["x"]}]}})


async def names_in_graph(client: Client) -> set[str]:
    graph = await client.call_tool("call_tool", {"name": "memory_read_graph"})
    return {e["name"] for e in graph.structured_content["entities"]}


async def audited(client: Client, tool: str, count: int = 1) -> list[str]:
    """The audit outcomes of `tool`, oldest first, once there are `count` of them (host
    calls are audited in the background, after the run engine has opened the log)."""
    async with asyncio.timeout(20):
        while True:
            await asyncio.sleep(0.3)
            entries = (await client.call_tool("audit", {"tool": tool})
                       ).structured_content["result"]
            if len(entries) >= count:
                await asyncio.sleep(0.3)  # nothing more comes
                entries = (await client.call_tool("audit", {"tool": tool})
                           ).structured_content["result"]
                return [e["outcome"] for e in reversed(entries)]


@pytest.mark.parametrize("mode", ERAS)
async def test_confirmed_destructive_call_runs(tmp_path: Path, mode: str) -> None:
    asker = Asker(approve=True)
    async with front(tmp_path, mode, asker) as client:
        assert (client.protocol_version == "2026-07-28") == (mode == "auto")
        result = await client.call_tool_mcp("call_tool", DELETE)
        assert not result.is_error, result.content
        assert await names_in_graph(client) == set()
        outcomes = await audited(client, "memory_delete_entities", 1 + (mode == "auto"))
    assert len(asker.questions) == 1
    question = asker.questions[0]
    assert "memory_delete_entities (server 'memory')" in question
    assert '{"entityNames": ["alice"]}' in question and "marked destructive" in question
    expected = ["confirmed; ok"] if mode == "legacy" else ["confirmation asked",
                                                          "confirmed; ok"]
    assert outcomes == expected


@pytest.mark.parametrize("mode", ERAS)
async def test_declined_destructive_call_does_not_run(tmp_path: Path, mode: str) -> None:
    asker = Asker(approve=False)
    async with front(tmp_path, mode, asker) as client:
        result = await client.call_tool_mcp("call_tool", DELETE)
        assert result.is_error
        assert result.content[0].text == "memory_delete_entities was not called: the user " \
            "declined"
        # A pass-through tool goes through the same policy and keeps its own annotations.
        listed = {t.name: t for t in await client.list_tools()}
        assert listed["memory_delete_entities"].annotations.destructive_hint is True
        direct = await client.call_tool_mcp("memory_delete_entities",
                                            {"entityNames": ["alice"]})
        assert direct.is_error and "the user declined" in direct.content[0].text
        assert await names_in_graph(client) == {"alice"}
        outcomes = await audited(client, "memory_delete_entities",
                                 2 if mode == "legacy" else 4)
    assert len(asker.questions) == 2
    assert outcomes.count("declined") == 2 and not any("ok" in o for o in outcomes)


@pytest.mark.parametrize("mode", ERAS)
async def test_host_without_elicitation_is_told_how_to_proceed(tmp_path: Path,
                                                               mode: str) -> None:
    async with front(tmp_path, mode) as client:
        result = await client.call_tool_mcp("call_tool", DELETE)
        assert result.is_error
        text = result.content[0].text
        assert text.startswith("memory_delete_entities was not called: it is marked "
                               "destructive, so gateway.host_calls asks the host's user to "
                               "confirm it, but this host cannot ask its user")
        assert "start a run with `run`" in text and "`approve`" in text
        assert "gateway.host_calls.allow: ['memory_delete_entities']" in text
        assert "destructive: allow" in text
        # Read-only and non-destructive tools pass without a prompt.
        echo = await client.call_tool("call_tool", {"name": "everything_echo",
                                                    "arguments": {"message": "hi"}})
        assert echo.content[0].text == "Echo: hi"
        assert await names_in_graph(client) == {"alice"}
        outcomes = await audited(client, "memory_delete_entities")
    assert outcomes == ["refused: could not ask"]


async def test_read_only_tools_are_never_asked_about(tmp_path: Path) -> None:
    asker = Asker(approve=True)
    async with front(tmp_path, "legacy", asker) as client:
        await client.call_tool("call_tool", {"name": "everything_get-sum",
                                             "arguments": {"a": 1, "b": 2}})
        await client.call_tool("everything_echo", {"message": "direct"})
        assert await names_in_graph(client) == {"alice"}
        outcomes = await audited(client, "everything_get-sum")
    assert asker.questions == []
    assert outcomes == ["ok"]


async def test_deny_policy_refuses_without_asking(tmp_path: Path) -> None:
    asker = Asker(approve=True)
    async with front(tmp_path, "legacy", asker, destructive="deny") as client:
        result = await client.call_tool_mcp("call_tool", DELETE)
        assert result.is_error
        text = result.content[0].text
        assert "gateway.host_calls.destructive is 'deny' in servers.yaml" in text
        assert "start a run with `run`" in text
        assert await names_in_graph(client) == {"alice"}
        outcomes = await audited(client, "memory_delete_entities")
    assert asker.questions == []
    assert outcomes == ["denied by policy"]


@pytest.mark.parametrize("policy", [{"allow": ["memory_delete_*"]}, {"destructive": "allow"}])
async def test_allow_policy_runs_without_asking(tmp_path: Path, policy: dict) -> None:
    async with front(tmp_path, "legacy", None, **policy) as client:  # cannot ask anyway
        result = await client.call_tool_mcp("call_tool", DELETE)
        assert not result.is_error, result.content
        assert await names_in_graph(client) == set()
        outcomes = await audited(client, "memory_delete_entities")
    assert outcomes == ["allowed by policy; ok"]


async def test_require_asks_even_for_a_read_only_tool(tmp_path: Path) -> None:
    asker = Asker(approve=False)
    async with front(tmp_path, "auto", asker, require=["everything_get-*"]) as client:
        refused = await client.call_tool_mcp("call_tool", {"name": "everything_get-sum",
                                                           "arguments": {"a": 1, "b": 2}})
        assert refused.is_error and "the user declined" in refused.content[0].text
    assert len(asker.questions) == 1
    assert "gateway.host_calls.require matches 'everything_get-*'" in asker.questions[0]


async def test_http_token_needs_the_approve_scope_to_confirm(tmp_path: Path) -> None:
    runner, operator = "runner-token-0123456789", "operator-token-0123456789"
    cfg = config(tmp_path, http={"tokens": [
        {"name": "ci", "token": runner, "scopes": ["read", "run"]},
        {"name": "oncall", "token": operator, "scopes": ["read", "run", "approve"]}]})
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "ORCH_HTTP_TOKEN"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator_mcp", "--config-dir", str(cfg), "--data-dir",
         str(tmp_path / "data"), "serve", "--http", "--port", str(port)], env=env)
    try:
        wait_for_port(port)
        url = f"http://127.0.0.1:{port}/mcp"
        asker = Asker(approve=True)
        async with Client(StreamableHttpTransport(url, auth=runner),
                          elicitation_handler=asker, timeout=120) as client:
            await ready(client)
            refused = await client.call_tool_mcp("call_tool", DELETE)
            assert refused.is_error
            assert "token 'ci' lacks the 'approve' scope" in refused.content[0].text
            assert "with a token that has the 'approve' scope" in refused.content[0].text
            assert await names_in_graph(client) == {"alice"}
        assert asker.questions == []
        async with Client(StreamableHttpTransport(url, auth=operator),
                          elicitation_handler=asker, timeout=120) as client:
            result = await client.call_tool_mcp("call_tool", DELETE)
            assert not result.is_error, result.content
            assert await names_in_graph(client) == set()
        assert len(asker.questions) == 1
    finally:
        proc.terminate()
        proc.wait(10)


async def test_ansible_run_is_confirmed_with_its_check_diff(tmp_path: Path) -> None:
    pytest.importorskip("ansible_runner")
    target = tmp_path / "app-logs"
    target.mkdir()
    month_ago = time.time() - 30 * 86400
    for name in ("old.log", "new.log"):
        (target / name).write_text(name)
    os.utime(target / "old.log", (month_ago, month_ago))
    call = {"name": "ansible_run", "arguments": {"playbook": "clean-old-files",
                                                 "extra_vars": {"target_dir": str(target)}}}
    declining = Asker(approve=False)
    async with front(tmp_path, "legacy", declining) as client:
        refused = await client.call_tool_mcp("call_tool", call)
        assert refused.is_error and "the user declined" in refused.content[0].text
        assert {p.name for p in target.iterdir()} == {"old.log", "new.log"}
        outcomes = await audited(client, "ansible_check")
    question = declining.questions[0]
    assert "Dry run (ansible_check):" in question and "1 task(s) would change" in question
    assert str(target / "old.log") in question and "new.log" not in question
    assert outcomes == ["dry run; ok"]

    accepting = Asker(approve=True)
    async with front(tmp_path, "legacy", accepting) as client:
        result = await client.call_tool("call_tool", call)
        assert result.structured_content["succeeded"]
    assert {p.name for p in target.iterdir()} == {"new.log"}


@pytest.mark.parametrize("mode", ERAS)
async def test_arguments_as_json_text(tmp_path: Path, mode: str) -> None:
    """The MCP Inspector CLI and several models send nested objects as JSON text."""
    async with front(tmp_path, mode) as client:
        echo = await client.call_tool("call_tool", {"name": "everything_echo",
                                                    "arguments": '{"message": "as text"}'})
        assert echo.content[0].text == "Echo: as text"
        for text, problem in (
            ('["message", "hi"]', "got a string holding an array: '[\"message\", \"hi\"]'"),
            ('"hi"', "got a string holding a string"),
            ("{message: hi}", "got a string that is not valid JSON (Expecting property name "
                              "enclosed in double quotes at character 1): '{message: hi}'"),
        ):
            result = await client.call_tool_mcp("call_tool", {"name": "everything_echo",
                                                              "arguments": text})
            assert result.is_error
            message = result.content[0].text
            assert message.startswith("arguments must be a JSON object of the tool's "
                                      "arguments, e.g. {\"message\": \"hi\"}, or the JSON "
                                      "text of one; "), message
            assert problem in message, message


async def test_a_confirmation_is_bound_to_its_call_and_spent_once(tmp_path: Path) -> None:
    """2026-07-28 era, driven by hand: the retry must carry the state the front sealed for
    this very call; a forged answer without it is asked again, the state does not fit other
    arguments, and a replay of an accepted retry does not run the call twice."""
    accept = {"approval": mcp_types.ElicitResult(action="accept",
                                                 content={"approved": True})}
    async with front(tmp_path, "auto", Asker(approve=True)) as client:
        await client.call_tool("call_tool", {"name": "memory_create_entities", "arguments": {
            "entities": [{"name": "bob", "entityType": "person", "observations": []}]}})
        session = client.session
        forged = await session.call_tool("call_tool", DELETE, input_responses=accept,
                                         allow_input_required=True)
        assert isinstance(forged, mcp_types.InputRequiredResult)  # asked, not run
        assert await names_in_graph(client) == {"alice", "bob"}

        other = {"name": "memory_delete_entities", "arguments": {"entityNames": ["bob"]}}
        with pytest.raises(Exception, match="Invalid or expired requestState"):
            await session.call_tool("call_tool", other, input_responses=accept,
                                    request_state=forged.request_state,
                                    allow_input_required=True)
        assert await names_in_graph(client) == {"alice", "bob"}

        done = await session.call_tool("call_tool", DELETE, input_responses=accept,
                                       request_state=forged.request_state,
                                       allow_input_required=True)
        assert not done.is_error, done.content
        replay = await session.call_tool("call_tool", DELETE, input_responses=accept,
                                         request_state=forged.request_state,
                                         allow_input_required=True)
        assert replay.is_error
        assert "this confirmation was already used" in replay.content[0].text
        assert await names_in_graph(client) == {"bob"}


async def test_a_call_right_after_start_is_still_asked_about(tmp_path: Path) -> None:
    """Calls wait for a server that is still connecting; the policy waits with them rather
    than letting a tool it has not seen yet through."""
    asker = Asker(approve=False)
    transport = StdioTransport(
        sys.executable, ["-m", "orchestrator_mcp", "--config-dir", str(config(tmp_path)),
                         "--data-dir", str(tmp_path / "data"), "serve"])
    async with Client(transport, mode="legacy", elicitation_handler=asker,
                      timeout=120) as client:
        result = await client.call_tool_mcp("call_tool", DELETE)
    assert result.is_error and "the user declined" in result.content[0].text
    assert len(asker.questions) == 1
