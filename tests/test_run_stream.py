"""The live run stream (GET /runs/{id}/stream): a real `serve --http`, a real HTTP client
reading Server-Sent Events, a run that waits for approval (the memory server's write), a
reconnect with Last-Event-ID that gets what it missed and nothing twice."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from orchestrator_mcp.runs.models import RunRecord, RunStatus, StepRecord
from orchestrator_mcp.runs.store import RunStore
from tests.conftest import COUNTER_SERVER, write_config
from tests.fake_openai import FakeOpenAI
from tests.test_front import http_server

MAIN = "main-token-stream-0123456789"
READER = "reader-token-stream-012345"
RUNNER = "runner-token-stream-012345"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("run-stream")
    counts = tmp / "counts.txt"
    counts.touch()
    counter = {"command": sys.executable,
               "args": [str(COUNTER_SERVER), "--count-file", str(counts)]}
    config = write_config(tmp / "config", {"counter": counter}, http={
        "tokens": [{"name": "reader", "token": READER, "scopes": ["read", "read_all"]},
                   {"name": "runner", "token": RUNNER, "scopes": ["run"]}]})
    env = {k: v for k, v in os.environ.items() if k not in ("ORCH_HTTP_TOKEN", "LLM_SCRIPT")}
    with FakeOpenAI() as llm:
        env.update(llm.env(), ORCH_HTTP_TOKEN=MAIN)
        with http_server(config, tmp / "data", env) as url:
            yield url


def bearer(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


Event = tuple[int, str, dict[str, Any]]


async def read_events(http: httpx2.AsyncClient, run_id: str, token: str = READER, *,
                      last_id: int | None = None, until: str = "end",
                      timeout: float = 60) -> tuple[list[Event], bool]:
    """Events of the run's stream until one of kind `until` (then the client hangs up) or
    the server closes it; and whether the server closed it."""
    headers = bearer(token) if last_id is None else bearer(token, **{
        "Last-Event-ID": str(last_id)})
    events: list[Event] = []
    fields: dict[str, str] = {}
    async with asyncio.timeout(timeout), http.stream(
            "GET", f"/runs/{run_id}/stream", headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith(":"):
                continue
            if line:
                name, _, value = line.partition(": ")
                fields[name] = value
                continue
            if "event" in fields:
                events.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
                if fields["event"] == until and until != "end":
                    return events, False
            fields = {}
        return events, True


async def start_run(http: httpx2.AsyncClient, goal: str) -> str:
    started = await http.post("/runs", headers=bearer(RUNNER), json={"goal": goal})
    assert started.status_code == 201, started.text
    return started.json()["id"]


async def test_a_client_follows_a_run_and_resumes_after_a_disconnect(served: str) -> None:
    async with httpx2.AsyncClient(base_url=served, timeout=30) as http:
        run_id = await start_run(http, "CALL counter_bump {}")
        first, closed = await read_events(http, run_id, until="approval")
        assert not closed, first
        ids = [e[0] for e in first]
        assert ids == sorted(set(ids)), "ids increase and never repeat"
        kinds = [e[1] for e in first]
        assert kinds[0] == "status" and first[0][2]["status"] == "queued"
        waiting = first[-1][2]["pending_approval"]
        assert waiting["tool"] == "counter_bump"
        assert any(e[1] == "status" and e[2]["status"] == "awaiting_approval" for e in first)
        assert any(e[1] == "step" and e[2]["kind"] == "llm" for e in first)

        decided = await http.post(f"/approvals/{run_id}", headers=bearer(MAIN),
                                  json={"approved": True})
        assert decided.status_code == 200, decided.text

        rest, closed = await read_events(http, run_id, last_id=ids[-1])
        assert closed, "the server ends the stream after `end`"
        assert rest and all(e[0] > ids[-1] for e in rest), "nothing twice"
        assert [e[0] for e in rest] == sorted({e[0] for e in rest})
        assert rest[-1][1] == "end" and rest[-1][2]["status"] == "completed"
        assert any(e[1] == "approval" and e[2]["pending_approval"] is None for e in rest)
        assert any(e[1] == "step" and e[2]["kind"] == "tool" for e in rest)
        assert any(e[1] == "answer" and e[2]["answer"].startswith("DONE") for e in rest)

        # A new client replays the whole history, the same events under the same ids.
        replay, closed = await read_events(http, run_id)
        assert closed and [e[0] for e in replay] == ids + [e[0] for e in rest]
        assert replay == first + rest
        # A client that saw the end gets nothing more; the stream still ends.
        after_end, closed = await read_events(http, run_id, last_id=replay[-1][0])
        assert closed and after_end == []


async def test_a_finished_run_streams_its_history_and_ends(served: str) -> None:
    async with httpx2.AsyncClient(base_url=served, timeout=30) as http:
        run_id = await start_run(http, "say something")
        events, closed = await read_events(http, run_id)
        assert closed
        assert events[-1][1] == "end" and events[-1][2]["status"] == "completed"
        assert [e[2]["status"] for e in events if e[1] == "status"] == [
            "queued", "running", "completed"]


async def test_stream_needs_read_and_checks_its_input(served: str) -> None:
    async with httpx2.AsyncClient(base_url=served, timeout=30) as http:
        run_id = await start_run(http, "say something")
        path = f"/runs/{run_id}/stream"
        assert (await http.get(path)).status_code == 401
        refused = await http.get(path, headers=bearer(RUNNER))
        assert refused.status_code == 403 and "'read' scope" in refused.json()["detail"]
        missing = await http.get("/runs/run_nope/stream", headers=bearer(READER))
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
        assert (await http.get("/runs/" + "x" * 5000 + "/stream",
                               headers=bearer(READER))).status_code == 404
        for bad in ("-1", "abc", "1e3", "9" * 40, "1 2"):
            answer = await http.get(path, headers=bearer(READER, **{"Last-Event-ID": bad}))
            assert answer.status_code == 400, bad
            assert "Last-Event-ID" in answer.json()["detail"]


# ---- the store's numbering, on a real SQLite file ----------------------------------------


def test_a_step_written_again_keeps_its_number(tmp_path: Path) -> None:
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    now = time.time()
    store.create(RunRecord(id="run_a", goal="g", profile="default", status=RunStatus.QUEUED,
                           created_at=now, updated_at=now))
    step = StepRecord(n=1, kind="llm", at=now, summary="thought", detail={"k": 1})
    store.add_step("run_a", step)
    store.add_step("run_a", step)  # replayed after a crash: the same entry
    _, events = store.events_after("run_a", -1)
    assert [(e.id, e.event) for e in events] == [(1, "status"), (2, "step")]
    store.add_step("run_a", step.model_copy(update={"summary": "thought again"}))
    _, events = store.events_after("run_a", 2)
    assert [(e.id, e.event, e.data["summary"]) for e in events] == [
        (3, "step", "thought again")]
    store.update("run_a", status=RunStatus.COMPLETED, answer="done")
    store.update("run_a", status=RunStatus.RUNNING)  # a late change after the end: ignored
    head, events = store.events_after("run_a", 3)
    assert head is not None and head.status is RunStatus.COMPLETED and head.seq == 6
    assert [e.event for e in events] == ["status", "answer", "end"]
    assert store.events_after("run_nope", -1) == (None, [])
    store.close()
