"""Append-only audit log table: every tool call and approval decision, secrets redacted.

Arguments are stored as JSON of at most ARGUMENTS_LIMIT characters, and always valid JSON:
a long string keeps its start and a "…[truncated, N characters in all]" marker, long lists
and objects keep their first items and say how many were left out, deep nesting is cut.
(Cutting the JSON text itself, as earlier versions did, stored invalid JSON; `query`
still reads such rows, as a marked string.) The work is bounded before anything is
redacted or encoded, so a 4 MiB argument costs about what a 20,000-character one does.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import sqlalchemy as sa

from orchestrator_mcp.db import migrate
from orchestrator_mcp.db.tables import audit_log
from orchestrator_mcp.telemetry.audit import AuditEntry
from orchestrator_mcp.telemetry.redaction import redact, redact_text, shorten

log = logging.getLogger(__name__)

ARGUMENTS_LIMIT = 20_000  # characters of JSON kept per entry
MAX_ITEMS = 200  # items kept per list or object
MAX_NODES = 2_000  # values kept per entry, all levels together
MAX_DEPTH = 16


class AuditLog:
    def __init__(self, engine: sa.Engine, retention_days: float = 90) -> None:
        self.engine = engine
        self.retention_days = retention_days
        migrate.upgrade(engine)

    def record(self, *, kind: str, caller: str, outcome: str, run_id: str | None = None,
               tool: str | None = None, arguments: Any = None,
               seconds: float | None = None, at: float | None = None) -> None:
        self.record_many([dict(kind=kind, caller=caller, outcome=outcome, run_id=run_id,
                               tool=tool, arguments=arguments, seconds=seconds, at=at)])

    def record_many(self, entries: list[dict[str, Any]]) -> None:
        """Several entries (keyword sets of `record`) in one transaction."""
        rows = [self.row(**e) for e in entries]
        with self.engine.begin() as db:
            db.execute(audit_log.insert(), rows)

    @staticmethod
    def row(*, kind: str, caller: str, outcome: str, run_id: str | None = None,
            tool: str | None = None, arguments: Any = None, seconds: float | None = None,
            at: float | None = None) -> dict[str, Any]:
        """The table row of an entry, for a transaction of someone else's to insert
        (`RunStore.finish_tool_call`)."""
        return dict(at=at or time.time(), kind=kind, run_id=run_id, caller=caller[:128],
                    tool=tool, arguments=bounded_json(arguments) if arguments is not None
                    else None, outcome=outcome,
                    duration_ms=round(seconds * 1000, 3) if seconds else None)

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
        return [AuditEntry(**{**row, "arguments": _stored(row["arguments"])}) for row in rows]

    def purge(self) -> int:
        """Drop entries older than the retention period; returns how many."""
        cutoff = time.time() - self.retention_days * 86400
        with self.engine.begin() as db:
            return db.execute(audit_log.delete().where(audit_log.c.at < cutoff)).rowcount


# ---- bounded JSON ------------------------------------------------------------------


class _Bound:
    """Copies a JSON-like value with at most `items` items per list or object, MAX_NODES
    values in all and MAX_DEPTH levels; what is left out is said in place. Values that
    are not JSON become their str()."""

    def __init__(self, items: int) -> None:
        self.items, self.nodes = items, MAX_NODES

    def __call__(self, value: Any, depth: int = 0) -> Any:
        self.nodes -= 1
        if isinstance(value, bool | int | float | str) or value is None:
            return value
        if not isinstance(value, dict | list | tuple):
            return str(value)
        if depth >= MAX_DEPTH:
            return f"…[nested deeper than {MAX_DEPTH} levels]"
        keep = max(0, min(self.items, self.nodes))
        if isinstance(value, dict):
            out = {shorten(str(k), 200): self(v, depth + 1)
                   for k, v in list(value.items())[:keep]}
            if len(value) > keep:
                out["…"] = f"[{len(value) - keep} more keys]"
            return out
        out_list = [self(v, depth + 1) for v in value[:keep]]
        if len(value) > keep:
            out_list.append(f"…[{len(value) - keep} more items]")
        return out_list


def bounded_json(value: Any, limit: int = ARGUMENTS_LIMIT) -> str:
    """`value` redacted, as valid JSON of at most `limit` characters (see module doc).
    Tries smaller caps (characters per string, items per container) until it fits; each
    string is cut before it is redacted, which bounds the work."""
    text = ""
    for chars, items in ((limit - 100, MAX_ITEMS), (limit // 10, 50), (limit // 100, 10),
                         (40, 3)):
        text = json.dumps(redact(_Bound(items)(value), limit=chars))
        if len(text) <= limit:
            return text
    return json.dumps(f"…[arguments too large to keep: {len(text)} characters as JSON]")


def _stored(text: str | None) -> Any:
    """A stored `arguments` value; rows cut mid-JSON by earlier versions come back as
    their (redacted) text with a marker instead of failing the whole query."""
    if not text:
        return None
    try:
        return redact(json.loads(text))
    except ValueError:
        log.debug("audit row with invalid JSON arguments (%d characters)", len(text))
        return redact_text(text, limit=2_000) + " …[stored cut, not valid JSON]"
