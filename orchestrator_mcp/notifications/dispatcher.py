"""The outbox reader: turns runs' approval waits and ends into durable deliveries.

The run event log (`orch_run_events`, written with each change of a run) is the outbox. A
dispatcher runs in each process that executes runs: woken at once when a run of this
process changes, and every `poll_seconds` for runs executed elsewhere, it reads the events
since its cursor, starts one delivery workflow per event and matching target (its id says
which, so two dispatchers or a restart never start it twice), and marks the event as
handed over. A crash between an event and its delivery's start is repaired at the next
look: the cursor only moves past events that were handed over. The cursor trails the
newest event by SLACK seconds, because an event's time is taken before its transaction
commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from orchestrator_mcp.config.notifications import NotificationEvent, NotificationsSettings
from orchestrator_mcp.notifications import kinds
from orchestrator_mcp.runs.engine import RunEngine
from orchestrator_mcp.runs.models import RunMilestone

if TYPE_CHECKING:
    from orchestrator_mcp.alerts.store import AlertStore
    from orchestrator_mcp.notifications.store import NotificationStore

log = logging.getLogger(__name__)

SLACK = 60.0  # seconds an event may take to commit after its time was taken
PAGE = 500
ALERT_SOURCE = "alertmanager"
# The alert service records which rule opened a run just after submitting it; an event of
# an alert run whose rule is not recorded yet waits this long for it.
RULE_WAIT = 10.0
CURSOR_WRITE_SECONDS = 10.0
WAKE_DELAY = 0.05  # a woken dispatcher waits this long, so a burst of changes is one look


class NotificationDispatcher:
    def __init__(self, settings: NotificationsSettings, engine: RunEngine) -> None:
        self.settings = settings
        self.engine = engine
        self._store: NotificationStore | None = None
        self._alerts: AlertStore | None = None
        self._seen: dict[tuple[str, int], float] = {}  # handed over → the event's time
        self._cursor: float | None = None  # as far as this dispatcher has looked
        self._saved: float | None = None  # the cursor as last written
        self._woken = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Dispatch from now on (nothing to do without targets)."""
        if not self.settings.targets:
            return
        from orchestrator_mcp.alerts.store import AlertStore
        from orchestrator_mcp.notifications.store import NotificationStore

        await self.engine.ready()
        self._store = await asyncio.to_thread(NotificationStore, self.engine.sql_engine)
        self._alerts = await asyncio.to_thread(AlertStore, self.engine.sql_engine)
        self.engine.on_change(lambda _run_id: self._woken.set())
        self._task = asyncio.create_task(self._loop(), name="notifications:dispatcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            self._woken.clear()
            try:
                await self.dispatch()
            except Exception:  # noqa: BLE001 - the database may be down for a while
                log.exception("notifications could not be dispatched; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), self.settings.poll_seconds)
                await asyncio.sleep(WAKE_DELAY)

    async def dispatch(self) -> None:
        """Hand every event since the cursor that some target wants to its deliveries."""
        store = self._store
        assert store is not None
        now = time.time()
        if self._cursor is None:
            self._saved = self._cursor = await asyncio.to_thread(store.cursor)
            if self._cursor is None:  # the first look ever: from now on
                self._cursor = now - SLACK
        cursor = self._cursor
        since = max(cursor - SLACK, now - self.settings.catch_up_hours * 3600)
        held: float | None = None  # the oldest event left for the next look
        after: tuple[float, str, int] | None = None
        while True:
            page = await self.engine.milestones(since, after, PAGE)
            fresh = [m for m in page if (m.run_id, m.seq) not in self._seen]
            done = await asyncio.to_thread(store.dispatched,
                                           [(m.run_id, m.seq) for m in fresh]) if fresh else set()
            for milestone in fresh:
                key = (milestone.run_id, milestone.seq)
                if key not in done and not await self._hand_over(milestone, now):
                    held = milestone.at if held is None else min(held, milestone.at)
                    continue
                self._seen[key] = milestone.at
            if len(page) < PAGE:
                break
            last = page[-1]
            after = (last.at, last.run_id, last.seq)
        reached = now - 1 if held is None else min(held, now - 1)
        self._cursor = max(cursor, reached)
        # Written now and then, not on every look (a restart just looks a little further
        # back; what was handed over is not handed over again).
        if self._saved is None or self._cursor - self._saved >= CURSOR_WRITE_SECONDS:
            await asyncio.to_thread(store.advance, self._cursor)
            self._saved = self._cursor
        self._seen = {k: at for k, at in self._seen.items() if at >= reached - 2 * SLACK}

    async def _hand_over(self, milestone: RunMilestone, now: float) -> bool:
        """Start the event's deliveries and mark it; False: left for the next look."""
        assert self._store is not None and self._alerts is not None
        event = NotificationEvent(milestone.status.value)
        rule = None
        if milestone.source == ALERT_SOURCE and any(t.alert_rules
                                                    for t in self.settings.targets):
            rule = await asyncio.to_thread(self._alerts.rule_of_run, milestone.run_id)
            if rule is None and now - milestone.at < RULE_WAIT:
                return False
        targets = [t.name for t in self.settings.targets
                   if t.wants(event, milestone.profile, rule)]
        for target in targets:
            await self.engine.start_durable(
                kinds.DELIVERY, kinds.delivery_id(milestone.run_id, milestone.seq, target),
                milestone.run_id, milestone.seq, target, rule)
        await asyncio.to_thread(self._store.mark, milestone.run_id, milestone.seq,
                                event.value, milestone.at, targets)
        return True
