"""Statements our stores share, written once for SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa


def insert_if_absent(db: sa.Connection, table: sa.Table, **values: Any) -> bool:
    """INSERT … ON CONFLICT (primary key) DO NOTHING. True when this statement inserted the
    row: of many concurrent inserts of one key (threads, processes, replicas) exactly one
    does, and the others are told so instead of failing."""
    if db.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    key = list(table.primary_key.columns)
    statement = insert(table).values(**values).on_conflict_do_nothing(
        index_elements=[c.name for c in key]).returning(key[0])
    return db.execute(statement).first() is not None
