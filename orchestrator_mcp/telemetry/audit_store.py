"""Append-only audit log table: every tool call and approval decision, secrets redacted."""

from __future__ import annotations

import json
import time
from typing import Any

import sqlalchemy as sa

from orchestrator_mcp.telemetry.audit import AuditEntry, redact

metadata = sa.MetaData()

audit_log = sa.Table(
    "orch_audit", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),  # tool_call | approval
    sa.Column("run_id", sa.String(64), index=True),
    sa.Column("caller", sa.String(128), nullable=False),
    sa.Column("tool", sa.String(128)),
    sa.Column("arguments", sa.Text),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("duration_ms", sa.Float),
)

class AuditLog:
    def __init__(self, engine: sa.Engine, retention_days: float = 90) -> None:
        self.engine = engine
        self.retention_days = retention_days
        metadata.create_all(engine)

    def record(self, *, kind: str, caller: str, outcome: str, run_id: str | None = None,
               tool: str | None = None, arguments: Any = None,
               seconds: float | None = None, at: float | None = None) -> None:
        self.record_many([dict(kind=kind, caller=caller, outcome=outcome, run_id=run_id,
                               tool=tool, arguments=arguments, seconds=seconds, at=at)])

    def record_many(self, entries: list[dict[str, Any]]) -> None:
        """Several entries (keyword sets of `record`) in one transaction."""
        rows = [dict(
            at=e.get("at") or time.time(), kind=e["kind"], run_id=e.get("run_id"),
            caller=e["caller"][:128], tool=e.get("tool"),
            arguments=json.dumps(redact(e["arguments"]), default=str)[:20_000]
            if e.get("arguments") is not None else None,
            outcome=e["outcome"],
            duration_ms=round(e["seconds"] * 1000, 3) if e.get("seconds") else None)
            for e in entries]
        with self.engine.begin() as db:
            db.execute(audit_log.insert(), rows)

    def query(self, *, run_id: str | None = None, tool: str | None = None,
              kind: str | None = None, since: float | None = None,
              limit: int = 100) -> list[AuditEntry]:
        query = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        if run_id:
            query = query.where(audit_log.c.run_id == run_id)
        if tool:
            query = query.where(audit_log.c.tool.like(tool.replace("*", "%")))
        if kind:
            query = query.where(audit_log.c.kind == kind)
        if since:
            query = query.where(audit_log.c.at >= since)
        with self.engine.connect() as db:
            rows = db.execute(query).mappings().all()
        return [AuditEntry(**{**row, "arguments": json.loads(row["arguments"])
                              if row["arguments"] else None}) for row in rows]

    def purge(self) -> int:
        """Drop entries older than the retention period; returns how many."""
        cutoff = time.time() - self.retention_days * 86400
        with self.engine.begin() as db:
            return db.execute(audit_log.delete().where(audit_log.c.at < cutoff)).rowcount
