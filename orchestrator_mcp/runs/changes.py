"""Run status changes across processes on PostgreSQL.

The run store NOTIFYs when a run's status changes, inside the transaction that changes it (so
it is delivered at commit, to every listening session). A process that does not execute runs
(a front, the CLI) LISTENs on one connection of its own and wakes its waiters at once, instead
of finding the change at its next re-read of the runs table. Steps are not notified: they are
many per run, and only progress reports wait for them, which re-read every second.

Nothing here runs on the embedded SQLite files: there one process executes every run and
wakes its waiters itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

log = logging.getLogger(__name__)

CHANNEL = "orch_run_status"
_NOTIFY = sa.select(sa.func.pg_notify(CHANNEL, sa.bindparam("run_id")))
RECONNECT_SECONDS = (0.5, 1, 2, 5, 10)  # backoff after the listening connection fails


def notify_status(db: sa.Connection, run_id: str) -> None:
    """Tell listening processes, when this transaction commits, that the run's status
    changed (nothing on SQLite)."""
    if db.dialect.name == "postgresql":
        db.execute(_NOTIFY, {"run_id": run_id})


class StatusListener:
    """LISTENs for status changes and calls `on_change(run_id)` on the event loop for each;
    after its connection was lost (changes may have been missed meanwhile) it calls
    `on_reconnect()` once connected again. `listening` says whether it is connected now."""

    def __init__(self, url: str, on_change: Callable[[str], None],
                 on_reconnect: Callable[[], None], scrub: Callable[[str], str]) -> None:
        self._url = url  # postgresql://…, as psycopg takes it
        self._on_change = on_change
        self._on_reconnect = on_reconnect
        self._scrub = scrub
        self.listening = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="runs:status-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self.listening = False

    async def _listen(self) -> None:
        import psycopg

        failures = 0
        while True:
            try:
                connection: Any = await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True, connect_timeout=10)
                async with connection:
                    await connection.execute(f"LISTEN {CHANNEL}")
                    self.listening = True
                    if failures:
                        self._on_reconnect()
                    failures = 0
                    async for note in connection.notifies():
                        self._on_change(note.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the database may be down for a while
                self.listening = False
                delay = RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)]
                failures += 1
                log.warning("listening for run changes failed (%s); waiters re-read the runs "
                            "table meanwhile; retrying in %g s",
                            self._scrub(str(exc)).splitlines()[0] if str(exc) else
                            type(exc).__name__, delay)
                await asyncio.sleep(delay)
