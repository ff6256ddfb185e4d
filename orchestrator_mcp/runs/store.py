"""Our own tables beside DBOS's: one row per run (what listing reads), its step history,
and the tool-call ledger that tells a completed call from one that is in doubt.

SQLAlchemy Core, so the same code serves the embedded SQLite file and PostgreSQL. Calls are
blocking and short; async callers go through `asyncio.to_thread`.

What runs produce is redacted here, on its way in, by the process's redactor
(`telemetry.redaction`: configured secrets and credential shapes): step summaries and
details, tool results in the ledger, answers, errors and pending approvals, so `get_run`
and the tables never hold a tool result's URL password or a configured token. A run's goal
and context are kept as given: the run reads them back to work on them.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

import sqlalchemy as sa

from orchestrator_mcp.db import migrate
from orchestrator_mcp.db.tables import executors, run_steps, runs, tool_calls
from orchestrator_mcp.runs.models import (
    PendingApproval,
    RunRecord,
    RunStatus,
    StepRecord,
    StopReason,
    Usage,
)
from orchestrator_mcp.telemetry.redaction import redact, redact_text


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str, separators=(",", ":"))


def _wal(cursor: Any) -> None:
    """Put the file in WAL mode. On a new file, processes opening it at once (a front and a
    worker) may be told it is locked without the busy timeout being waited: try again."""
    deadline = time.monotonic() + 10
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class RunStore:
    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url, future=True)
        if url.startswith("sqlite"):
            @sa.event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_connection: Any, _: Any) -> None:
                cursor = dbapi_connection.cursor()
                _wal(cursor)
                # WAL + NORMAL: a commit survives a process crash (what runs must
                # survive); only a power loss may drop the last commits.
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute("PRAGMA busy_timeout=10000")
                cursor.close()
        migrate.upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> None:
        with self.engine.connect() as db:
            db.execute(sa.text("SELECT 1"))

    # ---- executors (shared database) -------------------------------------------------

    def heartbeat(self, executor_id: str, host: str, pid: int, started_at: float) -> None:
        now = time.time()
        with self.engine.begin() as db:
            updated = db.execute(executors.update().where(
                executors.c.executor_id == executor_id).values(last_seen=now)).rowcount
            if not updated:
                db.execute(executors.insert().values(
                    executor_id=executor_id, host=host, pid=pid, started_at=started_at,
                    last_seen=now))

    def silent_executors(self, since: float) -> list[str]:
        """Executors not heard from since `since` (epoch seconds)."""
        with self.engine.connect() as db:
            return list(db.execute(sa.select(executors.c.executor_id).where(
                executors.c.last_seen < since)).scalars())

    def forget_executor(self, executor_id: str, silent_since: float) -> None:
        with self.engine.begin() as db:
            db.execute(executors.delete().where(executors.c.executor_id == executor_id,
                                                executors.c.last_seen < silent_since))

    def live_executors(self, since: float) -> list[str]:
        """Executors heard from since `since` (epoch seconds)."""
        with self.engine.connect() as db:
            return list(db.execute(sa.select(executors.c.executor_id).where(
                executors.c.last_seen >= since)).scalars())

    # ---- runs ----------------------------------------------------------------------

    def create(self, record: RunRecord) -> None:
        with self.engine.begin() as db:
            exists = db.execute(sa.select(runs.c.id).where(runs.c.id == record.id)).first()
            if exists:
                return
            db.execute(runs.insert().values(
                id=record.id, goal=record.goal, profile=record.profile,
                status=record.status.value, parent_id=record.parent_id,
                workflow=record.workflow, source=record.source,
                context=_dumps(record.context), created_at=record.created_at,
                updated_at=record.updated_at, usage=record.usage.model_dump_json(),
            ))

    def update(
        self,
        run_id: str,
        *,
        status: RunStatus | None = None,
        stop_reason: StopReason | None = None,
        answer: str | None = None,
        error: str | None = None,
        usage: Usage | None = None,
        pending: PendingApproval | None | bool = False,
    ) -> None:
        """Change some fields; `pending=None` clears the pending approval, False leaves it."""
        now = time.time()
        values: dict[str, Any] = {"updated_at": now}
        if status is not None:
            values["status"] = status.value
            if status.finished:
                values["finished_at"] = now
                values["pending_approval"] = None
        if stop_reason is not None:
            values["stop_reason"] = stop_reason.value
        if answer is not None:
            values["answer"] = redact_text(answer)
        if error is not None:
            values["error"] = redact_text(error)
        if usage is not None:
            values["usage"] = usage.model_dump_json()
        if pending is None:
            values["pending_approval"] = None
        elif isinstance(pending, PendingApproval):
            values["pending_approval"] = pending.model_copy(update={
                "arguments": redact(pending.arguments), "reason": redact_text(pending.reason),
            }).model_dump_json()
        with self.engine.begin() as db:
            query = runs.update().where(runs.c.id == run_id)
            if status is not None:
                # A finished run keeps its outcome (e.g. a late step after a cancel).
                query = query.where(runs.c.status.notin_(
                    [s.value for s in RunStatus if s.finished]))
            db.execute(query.values(**values))

    def get(self, run_id: str, *, with_steps: bool = True) -> RunRecord | None:
        with self.engine.connect() as db:
            row = db.execute(sa.select(runs).where(runs.c.id == run_id)).mappings().first()
            if row is None:
                return None
            steps = []
            if with_steps:
                steps = [
                    StepRecord(n=s["n"], kind=s["kind"], at=s["at"], summary=s["summary"],
                               detail=json.loads(s["detail"]))
                    for s in db.execute(
                        sa.select(run_steps).where(run_steps.c.run_id == run_id)
                        .order_by(run_steps.c.n)
                    ).mappings()
                ]
        return self._record(row, steps)

    def list(
        self,
        *,
        status: RunStatus | None = None,
        profile: str | None = None,
        since: float | None = None,
        parent_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[RunRecord]:
        query = sa.select(runs).order_by(runs.c.created_at.desc(), runs.c.id)
        if status is not None:
            query = query.where(runs.c.status == status.value)
        if profile is not None:
            query = query.where(runs.c.profile == profile)
        if since is not None:
            query = query.where(runs.c.created_at >= since)
        if parent_id is not None:
            query = query.where(runs.c.parent_id == parent_id)
        with self.engine.connect() as db:
            rows = db.execute(query.limit(limit).offset(offset)).mappings().all()
        return [self._record(row, []) for row in rows]

    def count(self, status: RunStatus) -> int:
        with self.engine.connect() as db:
            return int(db.execute(sa.select(sa.func.count()).select_from(runs).where(
                runs.c.status == status.value)).scalar_one())

    def oldest_waiting_since(self) -> float | None:
        """When the longest-waiting run started waiting for approval (its last change)."""
        with self.engine.connect() as db:
            return db.execute(sa.select(sa.func.min(runs.c.updated_at)).where(
                runs.c.status == RunStatus.AWAITING_APPROVAL.value)).scalar_one()

    def unfinished_ids(self) -> list[str]:
        with self.engine.connect() as db:
            return [r[0] for r in db.execute(sa.select(runs.c.id).where(
                runs.c.status.notin_([s.value for s in RunStatus if s.finished])))]

    def unfinished_among(self, run_ids: list[str]) -> set[str]:
        with self.engine.connect() as db:
            return {r[0] for r in db.execute(sa.select(runs.c.id).where(
                runs.c.id.in_(run_ids)
                & runs.c.status.notin_([s.value for s in RunStatus if s.finished])))}

    @staticmethod
    def _record(row: Any, steps: list[StepRecord]) -> RunRecord:
        return RunRecord(
            id=row["id"], goal=row["goal"], profile=row["profile"],
            status=RunStatus(row["status"]),
            stop_reason=StopReason(row["stop_reason"]) if row["stop_reason"] else None,
            parent_id=row["parent_id"], workflow=row["workflow"], source=row["source"],
            context=json.loads(row["context"]), created_at=row["created_at"],
            updated_at=row["updated_at"], finished_at=row["finished_at"],
            answer=row["answer"], error=row["error"],
            usage=Usage.model_validate_json(row["usage"]),
            pending_approval=PendingApproval.model_validate_json(row["pending_approval"])
            if row["pending_approval"] else None,
            steps=steps,
        )

    # ---- steps and the tool-call ledger ---------------------------------------------

    def add_step(self, run_id: str, step: StepRecord, *, usage: Usage | None = None) -> None:
        """Idempotent: a step replayed after a crash overwrites its own row. With `usage`,
        the run's usage is updated in the same transaction."""
        with self.engine.begin() as db:
            self._put_step(db, run_id, step)
            if usage is not None:
                db.execute(runs.update().where(runs.c.id == run_id).values(
                    usage=usage.model_dump_json(), updated_at=time.time()))

    NOTES_FROM = 1_000_000  # history entries added from outside a run are numbered from here

    def add_note(self, run_id: str, step: StepRecord) -> bool:
        """A history entry from outside the run, numbered after NOTES_FROM (the run's own
        entries are numbered by its workflow, which a note must never take). False: there
        is no such run."""
        with self.engine.begin() as db:
            if db.execute(sa.select(runs.c.id).where(runs.c.id == run_id)).first() is None:
                return False
            last = db.execute(sa.select(sa.func.max(run_steps.c.n)).where(
                (run_steps.c.run_id == run_id) & (run_steps.c.n >= self.NOTES_FROM))).scalar()
            note = step.model_copy(update={"n": self.NOTES_FROM if last is None else last + 1})
            self._put_step(db, run_id, note)
        return True

    @staticmethod
    def _put_step(db: Any, run_id: str, step: StepRecord) -> None:
        db.execute(run_steps.delete().where(
            (run_steps.c.run_id == run_id) & (run_steps.c.n == step.n)))
        db.execute(run_steps.insert().values(
            run_id=run_id, n=step.n, kind=step.kind, at=step.at,
            summary=redact_text(step.summary), detail=_dumps(redact(step.detail))))

    def begin_tool_call(self, run_id: str, call_id: str, tool: str) -> tuple[str, Any]:
        """Record that a call is about to be sent; say what an earlier attempt left.

        ("new", None): first attempt. ("done", result): it completed and its result was
        kept, but the step's own record was lost in a crash — use the result, do not call
        again. ("started", None): it was sent and the process died before a result came
        back — in doubt.
        """
        with self.engine.begin() as db:
            row = db.execute(sa.select(tool_calls.c.state, tool_calls.c.result).where(
                (tool_calls.c.run_id == run_id) & (tool_calls.c.call_id == call_id))).first()
            if row is not None:
                return row[0], json.loads(row[1]) if row[1] else None
            db.execute(tool_calls.insert().values(
                run_id=run_id, call_id=call_id, tool=tool, state="started",
                started_at=time.time()))
            return "new", None

    def finish_tool_call(self, run_id: str, call_id: str, result: Any,
                         step: StepRecord) -> None:
        """Keep the call's result and its history entry, in one transaction."""
        with self.engine.begin() as db:
            db.execute(tool_calls.update().where(
                (tool_calls.c.run_id == run_id) & (tool_calls.c.call_id == call_id)
            ).values(state="done", finished_at=time.time(), result=_dumps(redact(result))))
            self._put_step(db, run_id, step)
