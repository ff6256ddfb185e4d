"""Runs.worker_concurrency on the embedded files, where the serving process starts the runs
it submits at once instead of through DBOS's queue: a run holds one of the process's slots
while it executes, the others wait QUEUED and start as slots free; none is lost. Real DBOS
on real SQLite files, a real in-process FastMCP tool, the scripted model."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastmcp import FastMCP
from mcp_types import ToolAnnotations

from orchestrator_mcp.config import GatewaySettings, ProfileConfig
from orchestrator_mcp.config.runs import RunsSettings
from orchestrator_mcp.gateway import Gateway
from orchestrator_mcp.llm.scripted import ScriptedProvider, ScriptFile
from orchestrator_mcp.runs.engine import RunEngine
from orchestrator_mcp.runs.models import RunStatus

SCRIPT = ScriptFile.model_validate({"scripts": [{"turns": [
    {"tool_calls": [{"name": "gate_wait", "arguments": {}}]}, {"text": "done"}]}]})


async def test_no_more_runs_execute_at_once_than_worker_concurrency(tmp_path: Path) -> None:
    opened = asyncio.Event()
    inside = 0
    most_inside = 0
    server = FastMCP("gate")

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    async def wait() -> str:
        nonlocal inside, most_inside
        inside += 1
        most_inside = max(most_inside, inside)
        try:
            await opened.wait()
        finally:
            inside -= 1
        return "open"

    gateway = Gateway({}, GatewaySettings(), in_process={"gate": server})
    gateway.start()
    await gateway.wait_settled(30)
    provider = ScriptedProvider(SCRIPT)
    engine = RunEngine(tmp_path, gateway, {"default": ProfileConfig()}, lambda _: provider,
                       lambda *_: 0.0, settings=RunsSettings(worker_concurrency=2))
    await engine.start()
    try:
        ids = [(await engine.submit(f"run {i}")).id for i in range(5)]

        async def statuses() -> list[RunStatus]:
            return [(await engine.get(i, with_steps=False)).status for i in ids]

        async with asyncio.timeout(30):
            while inside < 2:
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # room for a third run to get in, if it could
        now = await statuses()
        assert inside == 2 and now.count(RunStatus.RUNNING) == 2, now
        assert now.count(RunStatus.QUEUED) == 3, now

        opened.set()
        finished = [await engine.wait(i, 60, until_attention=False) for i in ids]
        assert [r.status for r in finished] == [RunStatus.COMPLETED] * 5
        assert most_inside == 2
    finally:
        await engine.stop()
        await gateway.stop()
