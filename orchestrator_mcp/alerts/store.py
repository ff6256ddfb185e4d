"""Alert notifications and groups, stored beside the runs table (same database)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from orchestrator_mcp.db import migrate
from orchestrator_mcp.db.statements import insert_if_absent
from orchestrator_mcp.db.tables import groups, notifications


@dataclass(frozen=True)
class StoredNotification:
    receipt_id: str
    body: dict[str, Any]
    state: str
    outcome: str | None
    run_id: str | None


@dataclass(frozen=True)
class Group:
    group_id: str
    rule: str
    run_id: str | None
    opened_at: float
    resolved_at: float | None


class AlertStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        migrate.upgrade(engine)

    def receive(self, receipt_id: str, group_id: str, status: str, body: dict[str, Any]) -> bool:
        """Store a notification before it is acknowledged. False: already received (also
        when a retry races its original)."""
        with self.engine.begin() as db:
            return insert_if_absent(
                db, notifications, receipt_id=receipt_id, group_id=group_id, status=status,
                body=json.dumps(body), received_at=time.time(), state="received")

    def pending(self, state: str = "received") -> list[StoredNotification]:
        with self.engine.connect() as db:
            rows = db.execute(sa.select(notifications).where(notifications.c.state == state)
                              .order_by(notifications.c.received_at)).mappings().all()
        return [self._notification(r) for r in rows]

    def get(self, receipt_id: str) -> StoredNotification | None:
        with self.engine.connect() as db:
            row = db.execute(sa.select(notifications).where(
                notifications.c.receipt_id == receipt_id)).mappings().first()
        return self._notification(row) if row else None

    def count(self) -> int:
        with self.engine.connect() as db:
            return int(db.execute(sa.select(sa.func.count()).select_from(notifications))
                       .scalar_one())

    @staticmethod
    def _notification(row: Any) -> StoredNotification:
        return StoredNotification(receipt_id=row["receipt_id"], body=json.loads(row["body"]),
                                  state=row["state"], outcome=row["outcome"],
                                  run_id=row["run_id"])

    def settle(self, receipt_id: str, *, state: str, outcome: str, rule: str | None,
               run_id: str | None = None, detail: str | None = None) -> None:
        with self.engine.begin() as db:
            db.execute(notifications.update().where(notifications.c.receipt_id == receipt_id)
                       .values(state=state, outcome=outcome, rule=rule, run_id=run_id,
                               detail=detail, processed_at=time.time()))

    def oldest_deferred(self) -> str | None:
        """The receipt id of the oldest deferred notification (it names the storm watcher)."""
        with self.engine.connect() as db:
            return db.execute(sa.select(notifications.c.receipt_id)
                              .where(notifications.c.state == "deferred")
                              .order_by(notifications.c.received_at).limit(1)).scalar()

    def deferred_count(self) -> int:
        with self.engine.connect() as db:
            return int(db.execute(sa.select(sa.func.count()).select_from(notifications)
                                  .where(notifications.c.state == "deferred")).scalar_one())

    def settle_deferred(self, receipt_ids: list[str], *, outcome: str, rule: str | None,
                        run_id: str | None = None, detail: str | None = None) -> int:
        """Settle those of these notifications that are still deferred, in one statement per
        500 (so two summarisers racing settle each notification once); how many it did."""
        done = 0
        with self.engine.begin() as db:
            for start in range(0, len(receipt_ids), 500):
                done += db.execute(notifications.update().where(
                    notifications.c.receipt_id.in_(receipt_ids[start:start + 500])
                    & (notifications.c.state == "deferred")).values(
                        state="done", outcome=outcome, rule=rule, run_id=run_id,
                        detail=detail, processed_at=time.time())).rowcount
        return done

    def group(self, group_id: str) -> Group | None:
        with self.engine.connect() as db:
            row = db.execute(sa.select(groups).where(groups.c.group_id == group_id)) \
                .mappings().first()
        if row is None:
            return None
        return Group(group_id=row["group_id"], rule=row["rule"], run_id=row["run_id"],
                     opened_at=row["opened_at"], resolved_at=row["resolved_at"])

    def open_group(self, group_id: str, rule: str, run_id: str) -> None:
        now = time.time()
        with self.engine.begin() as db:
            db.execute(groups.delete().where(groups.c.group_id == group_id))
            db.execute(groups.insert().values(group_id=group_id, rule=rule, run_id=run_id,
                                              opened_at=now, last_seen=now))

    def touch_group(self, group_id: str, *, resolved: bool = False) -> None:
        values: dict[str, Any] = {"last_seen": time.time()}
        if resolved:
            values["resolved_at"] = time.time()
        with self.engine.begin() as db:
            db.execute(groups.update().where(groups.c.group_id == group_id).values(**values))

    def rule_of_run(self, run_id: str) -> str | None:
        """The rule whose alert group opened this run (None: no alert opened it)."""
        with self.engine.connect() as db:
            return db.execute(sa.select(groups.c.rule).where(groups.c.run_id == run_id)
                              .limit(1)).scalar()

    def runs_of_rule(self, rule: str) -> list[str]:
        """Runs this rule opened (the run engine says which have not ended)."""
        with self.engine.connect() as db:
            return [r[0] for r in db.execute(sa.select(groups.c.run_id).where(
                (groups.c.rule == rule) & groups.c.run_id.isnot(None)))]

    def last_run_opened(self, rule: str) -> float | None:
        with self.engine.connect() as db:
            return db.execute(sa.select(sa.func.max(groups.c.opened_at)).where(
                groups.c.rule == rule)).scalar_one()

    def storming(self, max_new_runs_per_minute: int) -> bool:
        """Alerts opened as many runs in the last minute as they may."""
        return self.runs_opened_since(time.time() - 60) >= max_new_runs_per_minute

    def runs_opened_since(self, since: float) -> int:
        with self.engine.connect() as db:
            return int(db.execute(sa.select(sa.func.count()).select_from(groups).where(
                groups.c.opened_at >= since)).scalar_one())
