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
import time
from typing import Any

import sqlalchemy as sa

from orchestrator_mcp.db import migrate
from orchestrator_mcp.db.engines import sqlite_engine
from orchestrator_mcp.db.statements import insert_if_absent
from orchestrator_mcp.db.tables import (
    audit_log,
    executors,
    run_events,
    run_steps,
    runs,
    tool_calls,
)
from orchestrator_mcp.runs.changes import notify_status
from orchestrator_mcp.runs.models import (
    PendingApproval,
    RunEvent,
    RunHead,
    RunMilestone,
    RunRecord,
    RunStatus,
    StepRecord,
    StopReason,
    Usage,
)
from orchestrator_mcp.telemetry.redaction import redact, redact_text


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str, separators=(",", ":"))


# The statements of every step, built once: building and keying a statement costs more
# than SQLite takes to run it.
_STEP_KEPT = sa.select(run_steps.c.kind, run_steps.c.summary, run_steps.c.detail).where(
    (run_steps.c.run_id == sa.bindparam("run_id")) & (run_steps.c.n == sa.bindparam("n")))
_STEP_DELETE = run_steps.delete().where(
    (run_steps.c.run_id == sa.bindparam("run_id")) & (run_steps.c.n == sa.bindparam("n")))
_STEP_INSERT = run_steps.insert()
_NEXT_SEQ = runs.update().where(runs.c.id == sa.bindparam("run_id")).values(
    seq=runs.c.seq + 1).returning(runs.c.seq)
_NEXT_SEQ_USAGE = runs.update().where(runs.c.id == sa.bindparam("run_id")).values(
    seq=runs.c.seq + 1, usage=sa.bindparam("new_usage"),
    updated_at=sa.bindparam("at")).returning(runs.c.seq)
_HEAD = sa.select(runs.c.status, runs.c.seq).where(runs.c.id == sa.bindparam("run_id"))
_CALL_KEPT = sa.select(tool_calls.c.state, tool_calls.c.result).where(
    (tool_calls.c.run_id == sa.bindparam("run_id"))
    & (tool_calls.c.call_id == sa.bindparam("call_id")))
_CALL_INSERT = tool_calls.insert()
# (an UPDATE's parameters are named apart from the columns it sets)
_CALL_DONE = tool_calls.update().where(
    (tool_calls.c.run_id == sa.bindparam("of_run"))
    & (tool_calls.c.call_id == sa.bindparam("of_call"))
).values(state="done", finished_at=sa.bindparam("at"), result=sa.bindparam("outcome"))
_AUDIT_INSERT = audit_log.insert()


class RunStore:
    def __init__(self, url: str) -> None:
        self.engine = (sqlite_engine(url) if url.startswith("sqlite")
                       else sa.create_engine(url))
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

    def create(self, record: RunRecord, request_hash: str | None = None) -> str | None:
        """Record a new run; with its id already recorded nothing changes (one of many
        concurrent creates of an id wins). None when this call created it; otherwise the
        request hash kept with the run that was there ("" when it has none)."""
        with self.engine.begin() as db:
            created = insert_if_absent(
                db, runs, id=record.id, goal=record.goal, profile=record.profile,
                status=record.status.value, parent_id=record.parent_id,
                workflow=record.workflow, source=record.source,
                context=_dumps(record.context), created_at=record.created_at,
                updated_at=record.updated_at, usage=record.usage.model_dump_json(), seq=1,
                request_hash=request_hash, owner=record.owner)
            if not created:
                kept = db.execute(sa.select(runs.c.request_hash).where(
                    runs.c.id == record.id)).scalar()
                return kept or ""
            db.execute(run_events.insert().values(
                run_id=record.id, seq=1, kind="status", at=record.created_at,
                data=_dumps(self._status_event(record.status, None, record.created_at))))
        return None

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
        events = self._events_of(values, status, stop_reason, now)
        if events:
            values["seq"] = runs.c.seq + len(events)
        with self.engine.begin() as db:
            query = runs.update().where(runs.c.id == run_id)
            if status is not None:
                # A finished run keeps its outcome (e.g. a late step after a cancel).
                query = query.where(runs.c.status.notin_(
                    [s.value for s in RunStatus if s.finished]))
            last = db.execute(query.values(**values).returning(runs.c.seq)).scalar()
            if last is not None and status is not None:
                notify_status(db, run_id)
            if last is not None and events:
                first = last - len(events) + 1
                db.execute(run_events.insert(), [
                    {"run_id": run_id, "seq": first + i, "kind": kind, "at": now,
                     "data": _dumps(data)} for i, (kind, data) in enumerate(events)])

    @staticmethod
    def _status_event(status: RunStatus, stop_reason: StopReason | None,
                      at: float) -> dict[str, Any]:
        return {"status": status.value,
                "stop_reason": stop_reason.value if stop_reason else None, "updated_at": at}

    @classmethod
    def _events_of(cls, values: dict[str, Any], status: RunStatus | None,
                   stop_reason: StopReason | None, now: float) -> list[tuple[str, Any]]:
        """What the run stream sends for this change (values already redacted)."""
        events: list[tuple[str, Any]] = []
        if status is not None:
            events.append(("status", cls._status_event(status, stop_reason, now)))
        if "pending_approval" in values and not (status and status.finished):
            pending = values["pending_approval"]
            events.append(("approval", {"pending_approval": json.loads(pending)
                                        if pending else None}))
        if "answer" in values:
            events.append(("answer", {"answer": values["answer"]}))
        if status is not None and status.finished:
            events.append(("end", {"status": status.value,
                                   "stop_reason": stop_reason.value if stop_reason else None,
                                   "error": values.get("error"), "finished_at": now}))
        return events

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

    def head(self, run_id: str) -> RunHead | None:
        """The run's status and last sequence number (what waiting for it reads)."""
        with self.engine.connect() as db:
            row = db.execute(_HEAD, {"run_id": run_id}).first()
        return None if row is None else RunHead(status=RunStatus(row.status), seq=row.seq)

    def list(
        self,
        *,
        status: RunStatus | None = None,
        profile: str | None = None,
        since: float | None = None,
        parent_id: str | None = None,
        owner: str | None = None,
        id_prefix: str | None = None,
        unfinished: bool = False,
        limit: int = 50,
        offset: int = 0,
    ) -> list[RunRecord]:
        """`owner`: only that principal's runs (None: everyone's)."""
        query = sa.select(runs).order_by(runs.c.created_at.desc(), runs.c.id)
        if owner is not None:
            query = query.where(runs.c.owner == owner)
        if id_prefix is not None:
            # LIKE narrows (SQLite's ignores case); the comparison is exact.
            query = query.where(runs.c.id.startswith(id_prefix, autoescape=True),
                                sa.func.substr(runs.c.id, 1, len(id_prefix)) == id_prefix)
        if unfinished:
            query = query.where(runs.c.status.notin_([s.value for s in RunStatus
                                                      if s.finished]))
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

    def usage_of(self, owner: str, since: float) -> tuple[int, float]:
        """The owner's runs that have not ended, and the model cost of its runs started
        since `since` (what per-principal limits are checked against)."""
        with self.engine.connect() as db:
            active = db.execute(sa.select(sa.func.count()).select_from(runs).where(
                (runs.c.owner == owner)
                & runs.c.status.notin_([s.value for s in RunStatus if s.finished]))
            ).scalar_one()
            usages = db.execute(sa.select(runs.c.usage).where(
                (runs.c.owner == owner) & (runs.c.created_at >= since))).scalars().all()
        cost = sum(Usage.model_validate_json(u).cost_usd or 0.0 for u in usages)
        return int(active), round(cost, 6)

    def queue_counts(self) -> tuple[int, int, int]:
        """Runs queued (top-level, children) and executing (an approval wait included)."""
        child = runs.c.parent_id.is_not(None)
        with self.engine.connect() as db:
            counts = {(status, bool(is_child)): n for status, is_child, n in db.execute(
                sa.select(runs.c.status, child, sa.func.count())
                .where(runs.c.status.in_([s.value for s in RunStatus if not s.finished]))
                .group_by(runs.c.status, child))}
        queued = RunStatus.QUEUED.value
        executing = sum(n for (status, _), n in counts.items() if status != queued)
        return counts.get((queued, False), 0), counts.get((queued, True), 0), executing

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
            owner=row["owner"],
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
            self._put_step(db, run_id, step,
                           usage=None if usage is None else usage.model_dump_json())

    NOTES_FROM = 1_000_000  # history entries added from outside a run are numbered from here

    def add_note(self, run_id: str, step: StepRecord) -> bool:
        """A history entry from outside the run, numbered after NOTES_FROM (the run's own
        entries are numbered by its workflow, which a note must never take). False: there
        is no such run."""
        with self.engine.begin() as db:
            # A write first: it locks the run (its row on PostgreSQL, the file on SQLite)
            # until the note is in, so notes added at once (two notifications) never take
            # the same number.
            if not db.execute(runs.update().where(runs.c.id == run_id)
                              .values(seq=runs.c.seq)).rowcount:
                return False
            last = db.execute(sa.select(sa.func.max(run_steps.c.n)).where(
                (run_steps.c.run_id == run_id) & (run_steps.c.n >= self.NOTES_FROM))).scalar()
            note = step.model_copy(update={"n": self.NOTES_FROM if last is None else last + 1})
            self._put_step(db, run_id, note)
        return True

    @staticmethod
    def _put_step(db: Any, run_id: str, step: StepRecord, usage: str | None = None) -> None:
        """Write a history entry under the run's next sequence number, with the run's
        `usage` (JSON) set in the same statement. The same entry written again (a step
        replayed after a crash) keeps its number, so a stream does not send it twice."""
        summary, detail = redact_text(step.summary), _dumps(redact(step.detail))
        key = {"run_id": run_id, "n": step.n}
        kept = db.execute(_STEP_KEPT, key).first()
        if kept is not None and tuple(kept) == (step.kind, summary, detail):
            if usage is not None:
                db.execute(runs.update().where(runs.c.id == run_id).values(
                    usage=usage, updated_at=time.time()))
            return
        if usage is None:
            seq = db.execute(_NEXT_SEQ, {"run_id": run_id}).scalar()
        else:
            seq = db.execute(_NEXT_SEQ_USAGE, {"run_id": run_id, "new_usage": usage,
                                               "at": time.time()}).scalar()
        if kept is not None:
            db.execute(_STEP_DELETE, key)
        db.execute(_STEP_INSERT, {**key, "kind": step.kind, "at": step.at, "summary": summary,
                                  "detail": detail, "seq": seq or 0})

    # ---- the run stream ---------------------------------------------------------------

    def events_after(self, run_id: str, after: int,
                     limit: int = 200) -> tuple[RunHead | None, list[RunEvent]]:
        """The run's state and up to `limit` of its events numbered above `after`, in
        order: history entries (`step`) and changes (`status`, `approval`, `answer`,
        `end`). None for a run there is not."""
        with self.engine.connect() as db:
            head = db.execute(sa.select(
                runs.c.status, runs.c.seq, runs.c.stop_reason, runs.c.updated_at,
                runs.c.pending_approval).where(runs.c.id == run_id)).first()
            if head is None:
                return None, []
            steps = db.execute(
                sa.select(run_steps).where((run_steps.c.run_id == run_id)
                                           & (run_steps.c.seq > after))
                .order_by(run_steps.c.seq, run_steps.c.n).limit(limit)).mappings().all()
            changes = db.execute(
                sa.select(run_events).where((run_events.c.run_id == run_id)
                                            & (run_events.c.seq > after))
                .order_by(run_events.c.seq).limit(limit)).mappings().all()
        events = [RunEvent(id=s["seq"], event="step", data={
            "n": s["n"], "kind": s["kind"], "at": s["at"], "summary": s["summary"],
            "detail": json.loads(s["detail"])}) for s in steps]
        events += [RunEvent(id=c["seq"], event=c["kind"], data=json.loads(c["data"]))
                   for c in changes]
        events.sort(key=lambda e: e.id)  # stable: legacy entries (all 0) keep step order
        status = RunStatus(head.status)
        if head.seq == 0 and after < 0:
            # Written before events were kept (an older release): its state as it is now.
            events.append(RunEvent(id=0, event="status", data=self._status_event(
                status, StopReason(head.stop_reason) if head.stop_reason else None,
                head.updated_at)))
            if head.pending_approval:
                events.append(RunEvent(id=0, event="approval", data={
                    "pending_approval": json.loads(head.pending_approval)}))
        return RunHead(status=status, seq=head.seq), events[:limit]

    # A run waiting for an approval: its status event, as `update` writes it (_dumps).
    _AWAITING = f'%"status":"{RunStatus.AWAITING_APPROVAL.value}"%'

    def milestones(self, since: float, after: tuple[float, str, int] | None = None,
                   limit: int = 500) -> list[RunMilestone]:
        """Runs' events at `since` or later that start an approval wait or end the run,
        in (at, run_id, seq) order; `after`: that key of the last one a previous page
        returned."""
        query = (sa.select(run_events.c.run_id, run_events.c.seq, run_events.c.at,
                           run_events.c.kind, run_events.c.data, runs.c.profile,
                           runs.c.source)
                 .join(runs, runs.c.id == run_events.c.run_id)
                 .where(run_events.c.at >= since,
                        (run_events.c.kind == "end")
                        | ((run_events.c.kind == "status")
                           & run_events.c.data.like(self._AWAITING)))
                 .order_by(run_events.c.at, run_events.c.run_id, run_events.c.seq)
                 .limit(limit))
        if after is not None:
            query = query.where(sa.tuple_(run_events.c.at, run_events.c.run_id,
                                          run_events.c.seq) > sa.tuple_(*after))
        with self.engine.connect() as db:
            rows = db.execute(query).mappings().all()
        return [RunMilestone(run_id=r["run_id"], seq=r["seq"], at=r["at"],
                             status=RunStatus(json.loads(r["data"])["status"]),
                             profile=r["profile"], source=r["source"]) for r in rows]

    def begin_tool_call(self, run_id: str, call_id: str, tool: str) -> tuple[str, Any]:
        """Record that a call is about to be sent; say what an earlier attempt left.

        ("new", None): first attempt. ("done", result): it completed and its result was
        kept, but the step's own record was lost in a crash — use the result, do not call
        again. ("started", None): it was sent and the process died before a result came
        back — in doubt.
        """
        key = {"run_id": run_id, "call_id": call_id}
        with self.engine.begin() as db:
            row = db.execute(_CALL_KEPT, key).first()
            if row is not None:
                return row[0], json.loads(row[1]) if row[1] else None
            db.execute(_CALL_INSERT, {**key, "tool": tool, "state": "started",
                                      "started_at": time.time()})
            return "new", None

    def finish_tool_call(self, run_id: str, call_id: str, result: Any, step: StepRecord,
                         audit: dict[str, Any] | None = None) -> None:
        """Keep the call's result, its history entry and its audit row (`AuditLog.row`),
        in one transaction."""
        with self.engine.begin() as db:
            db.execute(_CALL_DONE, {"of_run": run_id, "of_call": call_id, "at": time.time(),
                                    "outcome": _dumps(redact(result))})
            self._put_step(db, run_id, step)
            if audit is not None:
                db.execute(_AUDIT_INSERT, audit)
