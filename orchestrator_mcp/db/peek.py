"""Look into an embedded SQLite file without SQLAlchemy: for the checks an idle process makes
before deciding whether to open its tables (runs/engine.py, alerts/service.py)."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path


def sqlite_path(url: str) -> str:
    """The file of one of our embedded `sqlite:///…` URLs (runs/database.py makes them)."""
    return url.removeprefix("sqlite:///")


def finds_a_row(path: str, query: str) -> bool:
    """Whether `query` returns a row from the SQLite file at `path`, opened read-only;
    False when the file or the table does not exist yet. Other sqlite3 errors (a locked or
    damaged file) are raised."""
    if not Path(path).exists():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True,
                                                timeout=5)) as db:
            return db.execute(query).fetchone() is not None
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return False
        raise
