"""The dispatchers' own tables (beside the runs): which run events were handed to a
delivery, and how far through the run event log they have looked."""

from __future__ import annotations

import json
import time

import sqlalchemy as sa

from orchestrator_mcp.db import migrate
from orchestrator_mcp.db.tables import notification_cursor, notification_dispatch

CURSOR = "runs"

Key = tuple[str, int]  # (run id, event number)


class NotificationStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        migrate.upgrade(engine)

    def cursor(self) -> float | None:
        with self.engine.connect() as db:
            return db.execute(sa.select(notification_cursor.c.at).where(
                notification_cursor.c.name == CURSOR)).scalar()

    def advance(self, at: float) -> None:
        """Move the cursor forward to `at` (never back: another dispatcher may be ahead)."""
        try:
            self._advance(at)
        except sa.exc.IntegrityError:  # another dispatcher made the row just now
            self._advance(at)

    def _advance(self, at: float) -> None:
        with self.engine.begin() as db:
            moved = db.execute(notification_cursor.update().where(
                (notification_cursor.c.name == CURSOR) & (notification_cursor.c.at < at))
                .values(at=at)).rowcount
            if not moved and db.execute(sa.select(notification_cursor.c.at).where(
                    notification_cursor.c.name == CURSOR)).first() is None:
                db.execute(notification_cursor.insert().values(name=CURSOR, at=at))

    def dispatched(self, keys: list[Key]) -> set[Key]:
        """Which of these events were handed to a delivery already."""
        found: set[Key] = set()
        with self.engine.connect() as db:
            for start in range(0, len(keys), 200):
                found.update((r[0], r[1]) for r in db.execute(
                    sa.select(notification_dispatch.c.run_id, notification_dispatch.c.seq)
                    .where(sa.tuple_(notification_dispatch.c.run_id,
                                     notification_dispatch.c.seq).in_(keys[start:start + 200]))))
        return found

    def mark(self, run_id: str, seq: int, event: str, at: float, targets: list[str]) -> None:
        """Record the event as handed over (a second dispatcher's mark changes nothing)."""
        try:
            self._mark(run_id, seq, event, at, targets)
        except sa.exc.IntegrityError:  # another dispatcher marked it just now
            pass

    def _mark(self, run_id: str, seq: int, event: str, at: float, targets: list[str]) -> None:
        with self.engine.begin() as db:
            if db.execute(sa.select(notification_dispatch.c.run_id).where(
                    (notification_dispatch.c.run_id == run_id)
                    & (notification_dispatch.c.seq == seq))).first() is not None:
                return
            db.execute(notification_dispatch.insert().values(
                run_id=run_id, seq=seq, event=event, at=at, targets=json.dumps(targets),
                dispatched_at=time.time()))
