"""db/peek.py: the read-only looks an idle server makes before opening its tables."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from orchestrator_mcp.db.peek import finds_a_row, sqlite_path

QUERY = "SELECT 1 FROM workflow_status WHERE status = 'PENDING' LIMIT 1"


def test_a_missing_file_or_table_finds_nothing_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "dbos.sqlite"
    assert finds_a_row(str(missing), QUERY) is False
    assert not missing.exists()
    sqlite3.connect(missing).close()  # an empty database: no tables yet
    assert finds_a_row(str(missing), QUERY) is False


def test_a_row_is_found_and_the_file_is_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "dbos.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE workflow_status (status TEXT)")
        db.execute("INSERT INTO workflow_status VALUES ('SUCCESS')")
    assert finds_a_row(sqlite_path(f"sqlite:///{path}"), QUERY) is False
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO workflow_status VALUES ('PENDING')")
    before = path.read_bytes()
    assert finds_a_row(str(path), QUERY) is True
    assert path.read_bytes() == before


def test_a_damaged_file_is_reported_not_taken_for_empty(tmp_path: Path) -> None:
    """The callers then open the store or launch DBOS, which say what is wrong."""
    path = tmp_path / "dbos.sqlite"
    path.write_bytes(b"not a database " * 1000)
    with pytest.raises(sqlite3.DatabaseError):
        finds_a_row(str(path), QUERY)
