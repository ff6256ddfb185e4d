"""Run status changes heard across processes on PostgreSQL (runs/changes.py): the store
notifies in the transaction that changes a run's status, a listening process hears it at
commit, steps are not notified, and a listener whose connection is killed reconnects, says
so (its waiters re-read) and hears again. Real PostgreSQL cluster, real psycopg connections."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import psycopg
import pytest

from orchestrator_mcp.runs.changes import CHANNEL, StatusListener
from orchestrator_mcp.runs.models import RunRecord, RunStatus, StepRecord, StopReason
from orchestrator_mcp.runs.store import RunStore
from tests import postgres

pytestmark = pytest.mark.skipif(postgres.bin_dir() is None,
                                reason="PostgreSQL is not installed (.ci/run installs it)")


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with postgres.cluster() as server:
        yield postgres.create_database(server)


async def eventually(predicate: object, timeout: float = 20) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.05)


async def test_status_changes_are_heard_by_a_listener_steps_are_not(database_url: str) -> None:
    store = RunStore(database_url.replace("postgresql://", "postgresql+psycopg://"))
    heard: asyncio.Queue[str] = asyncio.Queue()
    reconnects: list[float] = []
    listener = StatusListener(database_url, heard.put_nowait,
                              lambda: reconnects.append(time.time()), str)
    listener.start()
    try:
        await eventually(lambda: listener.listening)
        now = time.time()
        run = RunRecord(id="run_changes_1", goal="g", profile="default",
                        status=RunStatus.QUEUED, created_at=now, updated_at=now)
        await asyncio.to_thread(store.create, run)
        await asyncio.to_thread(store.update, run.id, status=RunStatus.RUNNING)
        assert await asyncio.wait_for(heard.get(), 10) == run.id

        step = StepRecord(n=1, kind="llm", at=time.time(), summary="model answered")
        await asyncio.to_thread(store.add_step, run.id, step)
        await asyncio.to_thread(store.update, run.id, status=RunStatus.COMPLETED,
                                stop_reason=StopReason.ANSWERED, answer="done")
        assert await asyncio.wait_for(heard.get(), 10) == run.id
        assert heard.empty(), "a step is not a status change"

        # The listening session is killed (a failover, a DBA): it comes back, says so, and
        # hears the next change.
        with psycopg.connect(database_url, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE query LIKE %s", (f"LISTEN {CHANNEL}%",)).fetchone()
        assert killed == (1,)
        await eventually(lambda: reconnects and listener.listening)
        await asyncio.to_thread(store.create, run.model_copy(update={"id": "run_changes_2"}))
        await asyncio.to_thread(store.update, "run_changes_2", status=RunStatus.CANCELLED)
        assert await asyncio.wait_for(heard.get(), 10) == "run_changes_2"
    finally:
        await listener.stop()
        store.close()
