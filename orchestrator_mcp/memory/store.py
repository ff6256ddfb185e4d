"""The memories table (SQLAlchemy Core: SQLite and PostgreSQL). Blocking and short: async
callers go through `asyncio.to_thread`.

Facts are redacted on their way in by the process's redactor, like everything runs write,
so a token a tool printed never becomes a memory.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from orchestrator_mcp.db.tables import memories
from orchestrator_mcp.memory.models import Memory
from orchestrator_mcp.telemetry.redaction import redact_text

EXPORT_BATCH = 500


def _memory(row: Any) -> Memory:
    return Memory.model_construct(**{**row, "tags": json.loads(row["tags"])})


def _live(now: float) -> Any:
    return sa.or_(memories.c.expires_at.is_(None), memories.c.expires_at > now)


class MemoryStore:
    def __init__(self, engine: sa.Engine) -> None:
        """`engine`: the database of our tables, already migrated (the run store's)."""
        self.engine = engine

    def put(self, memory: Memory) -> Memory:
        """Insert or, for a fact already remembered by the profile, update its provenance,
        tags and expiry. Returns what was stored."""
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        values = memory.model_dump()
        values["fact"] = redact_text(memory.fact)
        values["tags"] = json.dumps(memory.tags)
        statement = insert(memories).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=[memories.c.id],
            set_={key: statement.excluded[key] for key in values if key != "id"})
        with self.engine.begin() as db:
            db.execute(statement)
        return memory.model_copy(update={"fact": values["fact"]})

    def get(self, memory_id: str) -> Memory | None:
        with self.engine.connect() as db:
            row = db.execute(sa.select(memories).where(memories.c.id == memory_id)
                             ).mappings().first()
        return _memory(row) if row else None

    def live_among(self, ids: list[str], profile: str) -> dict[str, Memory]:
        """The unexpired memories of `profile` among `ids`."""
        if not ids:
            return {}
        with self.engine.connect() as db:
            rows = db.execute(sa.select(memories).where(
                memories.c.id.in_(ids), memories.c.profile == profile,
                _live(time.time()))).mappings().all()
        return {row["id"]: _memory(row) for row in rows}

    def list(self, *, profile: str | None = None, tag: str | None = None,
             text: str | None = None, limit: int = 50) -> list[Memory]:
        """Unexpired memories, newest first. `text`: a case-insensitive substring of the
        fact; `tag`: one of its tags (checked here, tags are a JSON list)."""
        query = sa.select(memories).where(_live(time.time())).order_by(
            memories.c.created_at.desc(), memories.c.id)
        if profile:
            query = query.where(memories.c.profile == profile)
        if text:
            escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(sa.func.lower(memories.c.fact).like(f"%{escaped}%",
                                                                    escape="\\"))
        found: list[Memory] = []
        with self.engine.connect() as db:
            for row in db.execute(query.execution_options(yield_per=EXPORT_BATCH)).mappings():
                memory = _memory(row)
                if tag is None or tag in memory.tags:
                    found.append(memory)
                    if len(found) >= limit:
                        break
        return found

    def every(self, profile: str | None = None) -> Iterator[list[Memory]]:
        """Every unexpired memory (of `profile`), in batches, oldest first: for export."""
        query = sa.select(memories).where(_live(time.time())).order_by(
            memories.c.created_at, memories.c.id)
        if profile:
            query = query.where(memories.c.profile == profile)
        with self.engine.connect() as db:
            result = db.execute(query.execution_options(yield_per=EXPORT_BATCH)).mappings()
            for rows in result.partitions(EXPORT_BATCH):
                yield [_memory(row) for row in rows]

    def delete(self, memory_id: str) -> Memory | None:
        with self.engine.begin() as db:
            row = db.execute(sa.select(memories).where(memories.c.id == memory_id)
                             ).mappings().first()
            if row is None:
                return None
            db.execute(memories.delete().where(memories.c.id == memory_id))
        return _memory(row)

    def delete_expired(self) -> list[str]:
        """Drop memories whose time is up; returns their ids (to drop from the index)."""
        now = time.time()
        expired = memories.c.expires_at <= now
        with self.engine.begin() as db:
            ids = list(db.execute(sa.select(memories.c.id).where(expired)).scalars())
            if ids:
                db.execute(memories.delete().where(memories.c.id.in_(ids)))
        return ids
