"""Statements our stores share, written once for SQLite and PostgreSQL."""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa


def insert_if_absent(db: sa.Connection, table: sa.Table, **values: Any) -> bool:
    """INSERT … ON CONFLICT (primary key) DO NOTHING. True when this statement inserted the
    row: of many concurrent inserts of one key (threads, processes, replicas) exactly one
    does, and the others are told so instead of failing."""
    return db.execute(_insert_if_absent(db.dialect.name, table), values).first() is not None


@functools.cache
def _insert_if_absent(dialect: str, table: sa.Table) -> sa.Insert:
    """Built once per table (it is on every webhook's and every run's path)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    key = list(table.primary_key.columns)
    return insert(table).on_conflict_do_nothing(
        index_elements=[c.name for c in key]).returning(key[0])
