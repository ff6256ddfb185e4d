"""SQLAlchemy engines for the embedded SQLite files, set up one way for ours and DBOS's.

Every connection: WAL journal (readers run beside the writer, and a commit is an append),
`synchronous=NORMAL` (a commit survives a crash or kill -9 of the process, which is what runs
must survive; only a power loss or kernel crash may drop the last commits, never corrupt the
file) and a busy timeout, so a second process waits for the writer instead of failing.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import sqlalchemy as sa


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


def sqlite_engine(url: str, *, busy_timeout_ms: int = 10_000, immediate: bool = False,
                  foreign_keys: bool = False) -> sa.Engine:
    """An engine for the SQLite file at `url`. `immediate`: every transaction takes the
    write lock when it begins (what DBOS's own SQLite engine does to serialize its writers);
    `foreign_keys`: enforce them (DBOS's tables rely on it)."""
    engine = sa.create_engine(url)

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _: Any) -> None:
        if immediate:
            dbapi_connection.isolation_level = "IMMEDIATE"
        cursor = dbapi_connection.cursor()
        _wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        if foreign_keys:
            cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine
