"""Schema migrations (db/migrate.py, Alembic) on SQLite and on a real PostgreSQL cluster: a
database the release before migrations wrote is adopted with every row intact, a fresh one
matches the tables' MetaData, one migrated by a newer orchestrator is refused untouched, and
processes opening one database at once all succeed."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from orchestrator_mcp.alerts.store import AlertStore, Group, StoredNotification
from orchestrator_mcp.config.runs import RunsSettings
from orchestrator_mcp.db import migrate
from orchestrator_mcp.db.tables import metadata
from orchestrator_mcp.gateway import Gateway
from orchestrator_mcp.runs.database import Database, DatabaseError
from orchestrator_mcp.runs.engine import RunEngine
from orchestrator_mcp.runs.models import (
    PendingApproval,
    RunRecord,
    RunStatus,
    StepRecord,
    StopReason,
    Usage,
)
from orchestrator_mcp.runs.store import RunStore
from orchestrator_mcp.telemetry.audit import AuditEntry
from orchestrator_mcp.telemetry.audit_store import AuditLog
from tests import postgres

HEAD = "0007"

# What the release before migrations created, as SQLAlchemy emitted it for that release's
# tables (the same on SQLite and PostgreSQL but for the audit id: INTEGER / SERIAL), in the
# order it opened them: RunStore (with its schema version), AuditLog, AlertStore.
PREVIOUS_RUN_TABLES = """
CREATE TABLE orch_executors (
    executor_id VARCHAR(128) NOT NULL,
    host VARCHAR(255) NOT NULL,
    pid INTEGER NOT NULL,
    started_at FLOAT NOT NULL,
    last_seen FLOAT NOT NULL,
    PRIMARY KEY (executor_id)
);
CREATE INDEX ix_orch_executors_last_seen ON orch_executors (last_seen);
CREATE TABLE orch_run_steps (
    run_id VARCHAR(64) NOT NULL,
    n INTEGER NOT NULL,
    kind VARCHAR(16) NOT NULL,
    at FLOAT NOT NULL,
    summary TEXT NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (run_id, n)
);
CREATE TABLE orch_runs (
    id VARCHAR(64) NOT NULL,
    goal TEXT NOT NULL,
    profile VARCHAR(64) NOT NULL,
    status VARCHAR(32) NOT NULL,
    stop_reason VARCHAR(32),
    parent_id VARCHAR(64),
    workflow VARCHAR(64),
    source VARCHAR(32) NOT NULL,
    context TEXT NOT NULL,
    created_at FLOAT NOT NULL,
    updated_at FLOAT NOT NULL,
    finished_at FLOAT,
    answer TEXT,
    error TEXT,
    usage TEXT NOT NULL,
    pending_approval TEXT,
    PRIMARY KEY (id)
);
CREATE INDEX ix_orch_runs_created_at ON orch_runs (created_at);
CREATE INDEX ix_orch_runs_parent_id ON orch_runs (parent_id);
CREATE INDEX ix_orch_runs_status ON orch_runs (status);
CREATE TABLE orch_tool_calls (
    run_id VARCHAR(64) NOT NULL,
    call_id VARCHAR(128) NOT NULL,
    tool VARCHAR(128) NOT NULL,
    state VARCHAR(16) NOT NULL,
    started_at FLOAT NOT NULL,
    finished_at FLOAT,
    result TEXT,
    PRIMARY KEY (run_id, call_id)
);
CREATE TABLE IF NOT EXISTS orch_schema (version INTEGER NOT NULL);
INSERT INTO orch_schema (version) VALUES (1);
"""

PREVIOUS_OTHER_TABLES = """
CREATE TABLE orch_audit (
    id {audit_id} NOT NULL,
    at FLOAT NOT NULL,
    kind VARCHAR(16) NOT NULL,
    run_id VARCHAR(64),
    caller VARCHAR(128) NOT NULL,
    tool VARCHAR(128),
    arguments TEXT,
    outcome VARCHAR(32) NOT NULL,
    duration_ms FLOAT,
    PRIMARY KEY (id)
);
CREATE INDEX ix_orch_audit_at ON orch_audit (at);
CREATE INDEX ix_orch_audit_run_id ON orch_audit (run_id);
CREATE TABLE orch_alert_groups (
    group_id VARCHAR(64) NOT NULL,
    rule VARCHAR(64) NOT NULL,
    run_id VARCHAR(64),
    opened_at FLOAT NOT NULL,
    last_seen FLOAT NOT NULL,
    resolved_at FLOAT,
    delivered_at FLOAT,
    PRIMARY KEY (group_id)
);
CREATE INDEX ix_orch_alert_groups_rule ON orch_alert_groups (rule);
CREATE TABLE orch_alert_notifications (
    receipt_id VARCHAR(64) NOT NULL,
    group_id VARCHAR(64) NOT NULL,
    status VARCHAR(16) NOT NULL,
    body TEXT NOT NULL,
    received_at FLOAT NOT NULL,
    state VARCHAR(16) NOT NULL,
    rule VARCHAR(64),
    outcome VARCHAR(32),
    run_id VARCHAR(64),
    detail TEXT,
    processed_at FLOAT,
    PRIMARY KEY (receipt_id)
);
CREATE INDEX ix_orch_alert_notifications_group_id ON orch_alert_notifications (group_id);
CREATE INDEX ix_orch_alert_notifications_state ON orch_alert_notifications (state);
"""

NO_POSTGRES = pytest.mark.skipif(postgres.bin_dir() is None,
                                 reason="PostgreSQL is not installed (.ci/run installs it)")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=NO_POSTGRES)]


@pytest.fixture(scope="module")
def pg_server() -> Iterator[str]:
    with postgres.cluster() as url:
        yield url


class Target:
    """One empty database: the data dir and database URL a RunEngine is given, and the
    SQLAlchemy URL of our tables."""

    def __init__(self, data_dir: Path, database_url: str | None) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir, self.database_url = data_dir, database_url
        self.url = Database.for_data_dir(data_dir, database_url).store_url
        self.postgres = database_url is not None
        self._engines: list[sa.Engine] = []

    def engine(self) -> sa.Engine:
        """A new engine (as a new process would have) on the database."""
        engine = sa.create_engine(self.url)
        self._engines.append(engine)
        return engine

    def run_sql(self, script: str) -> None:
        script = script.format(audit_id="SERIAL" if self.postgres else "INTEGER")
        with self.engine().begin() as db:
            for statement in filter(str.strip, script.split(";")):
                db.exec_driver_sql(statement)

    def tables(self) -> set[str]:
        return set(sa.inspect(self.engine()).get_table_names())

    def value(self, query: str) -> Any:
        with self.engine().connect() as db:
            return db.execute(sa.text(query)).scalar_one()

    def close(self) -> None:
        for engine in self._engines:
            engine.dispose()


@pytest.fixture(params=BACKENDS)
def target(request: pytest.FixtureRequest, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Target]:
    monkeypatch.delenv("ORCH_DATABASE_URL", raising=False)
    url = (postgres.create_database(request.getfixturevalue("pg_server"))
           if request.param == "postgresql" else None)
    made = Target(tmp_path / "data", url)
    yield made
    made.close()


def differences(engine: sa.Engine) -> list[Any]:
    with engine.connect() as db:
        context = MigrationContext.configure(db, opts={"version_table": migrate.VERSION_TABLE})
        return compare_metadata(context, metadata)


def assert_at_head(target: Target) -> None:
    assert target.value(f"SELECT version_num FROM {migrate.VERSION_TABLE}") == HEAD
    assert target.value("SELECT COUNT(*) FROM orch_schema") == 1
    assert target.value("SELECT version FROM orch_schema") == 2  # the previous release's guard
    assert differences(target.engine()) == []


# ---- (a) a database of the previous release ---------------------------------------------

NOW = time.time()
PARENT = RunRecord(
    id="run_parent", goal="check the disks", profile="ops", status=RunStatus.COMPLETED,
    stop_reason=StopReason.ANSWERED, source="alert", context={"host": "db-1", "n": [1, 2]},
    created_at=NOW - 60, updated_at=NOW - 30, finished_at=NOW - 30, answer="disks are fine",
    usage=Usage(input_tokens=200, output_tokens=40, cost_usd=0.0123),
    steps=[StepRecord(n=1, kind="llm", at=NOW - 50, summary="model asked for df",
                      detail={"usage": {"input_tokens": 100}}),
           StepRecord(n=2, kind="tool", at=NOW - 40, summary="system_disk: ok",
                      detail={"tool": "system_disk", "result": "/ 42%"})])
CHILD = RunRecord(
    id="run_child", goal="clean /tmp", profile="ops", status=RunStatus.AWAITING_APPROVAL,
    parent_id="run_parent", workflow="cleanup", source="run", created_at=NOW - 20,
    updated_at=NOW - 10, usage=Usage(input_tokens=5),
    pending_approval=PendingApproval(call_id="1:c", tool="system_clean",
                                     arguments={"path": "/tmp"}, reason="destructive",
                                     requested_at=NOW - 10, expires_at=NOW + 3600))
TOOL_RESULT = {"text": "/ 42%", "is_error": False}
AUDIT = AuditEntry(id=1, at=NOW - 40, kind="tool_call", run_id="run_parent", caller="run",
                   tool="system_disk", arguments={"path": "/"}, outcome="ok",
                   duration_ms=12.5)
ALERT_BODY = {"status": "firing", "alerts": [{"labels": {"alertname": "HighDiskUsage"}}]}


def insert_previous_rows(target: Target) -> None:
    """A row in every table, written as the previous release's stores wrote them."""
    def run_row(r: RunRecord) -> dict[str, Any]:
        return dict(id=r.id, goal=r.goal, profile=r.profile, status=r.status.value,
                    stop_reason=r.stop_reason.value if r.stop_reason else None,
                    parent_id=r.parent_id, workflow=r.workflow, source=r.source,
                    context=json.dumps(r.context, separators=(",", ":")),
                    created_at=r.created_at, updated_at=r.updated_at,
                    finished_at=r.finished_at, answer=r.answer, error=r.error,
                    usage=r.usage.model_dump_json(),
                    pending_approval=r.pending_approval.model_dump_json()
                    if r.pending_approval else None)

    with target.engine().begin() as db:
        def insert(table: str, rows: list[dict[str, Any]]) -> None:
            names = list(rows[0])
            db.execute(sa.text(f"INSERT INTO {table} ({', '.join(names)}) VALUES "  # noqa: S608
                               f"({', '.join(':' + n for n in names)})"), rows)

        insert("orch_runs", [run_row(PARENT), run_row(CHILD)])
        insert("orch_run_steps", [dict(run_id=PARENT.id, n=s.n, kind=s.kind, at=s.at,
                                       summary=s.summary,
                                       detail=json.dumps(s.detail, separators=(",", ":")))
                                  for s in PARENT.steps])
        insert("orch_tool_calls", [dict(run_id=PARENT.id, call_id="2:c", tool="system_disk",
                                        state="done", started_at=NOW - 45,
                                        finished_at=NOW - 40, result=json.dumps(TOOL_RESULT))])
        insert("orch_executors", [dict(executor_id="w1-123", host="w1", pid=123,
                                       started_at=NOW - 3600, last_seen=NOW - 1800)])
        insert("orch_audit", [dict(at=AUDIT.at, kind=AUDIT.kind, run_id=AUDIT.run_id,
                                   caller=AUDIT.caller, tool=AUDIT.tool,
                                   arguments=json.dumps(AUDIT.arguments),
                                   outcome=AUDIT.outcome, duration_ms=AUDIT.duration_ms)])
        insert("orch_alert_groups", [dict(group_id="g1", rule="disk", run_id=CHILD.id,
                                          opened_at=NOW - 20, last_seen=NOW - 5,
                                          resolved_at=None, delivered_at=None)])
        insert("orch_alert_notifications", [dict(
            receipt_id="r1", group_id="g1", status="firing", body=json.dumps(ALERT_BODY),
            received_at=NOW - 21, state="done", rule="disk", outcome="run_started",
            run_id=CHILD.id, detail=None, processed_at=NOW - 20)])


async def test_a_previous_release_database_is_adopted_with_its_rows(target: Target) -> None:
    target.run_sql(PREVIOUS_RUN_TABLES + PREVIOUS_OTHER_TABLES)
    insert_previous_rows(target)
    assert migrate.VERSION_TABLE not in target.tables()

    engine = RunEngine(target.data_dir, Gateway({}), {}, lambda profile: None,
                       lambda *cost: None,
                       settings=RunsSettings(database_url=target.database_url))
    await engine.start(execute=False)
    try:
        assert await engine.healthy() is None
        assert_at_head(target)
        store = RunStore(target.url)  # the same tables, read directly
        alerts = AlertStore(engine.sql_engine)
        try:
            assert await engine.get(PARENT.id) == PARENT
            assert await engine.get(CHILD.id) == CHILD
            assert [r.id for r in await engine.list(parent_id=PARENT.id)] == [CHILD.id]
            assert store.begin_tool_call(PARENT.id, "2:c", "system_disk") == ("done",
                                                                              TOOL_RESULT)
            assert store.silent_executors(NOW - 60) == ["w1-123"]
            # The run stream shows what the older release wrote: history, then the state.
            head, events = store.events_after(CHILD.id, -1)
            assert head is not None and head.seq == 0
            assert [(e.id, e.event) for e in events] == [(0, "status"), (0, "approval")]
            assert events[1].data["pending_approval"]["tool"] == "system_clean"
            _, events = store.events_after(PARENT.id, -1)
            assert [(e.id, e.event, e.data.get("n")) for e in events] == [
                (0, "step", 1), (0, "step", 2), (0, "status", None)]
            assert store.events_after(PARENT.id, 0)[1] == []
        finally:
            store.close()
        assert await engine.audit(run_id=PARENT.id) == [AUDIT]
        assert alerts.get("r1") == StoredNotification(
            receipt_id="r1", body=ALERT_BODY, state="done", outcome="run_started",
            run_id=CHILD.id)
        assert alerts.group("g1") == Group(group_id="g1", rule="disk", run_id=CHILD.id,
                                           opened_at=NOW - 20, resolved_at=None)
        assert await engine.unfinished(alerts.runs_of_rule("disk")) == {CHILD.id}
        assert alerts.rule_of_run(CHILD.id) == "disk" and alerts.rule_of_run("run_x") is None
        # and the adopted tables take new rows (the audit id goes on from the old one)
        await engine.record_audit([dict(kind="approval", caller="host", outcome="approved",
                                        run_id=CHILD.id)])
        assert [e.id for e in await engine.audit()] == [2, 1]
    finally:
        await engine.stop()


def test_a_previous_release_database_without_audit_and_alert_tables(target: Target) -> None:
    """That release made the audit and alert tables when those stores first opened."""
    target.run_sql(PREVIOUS_RUN_TABLES)
    RunStore(target.url).close()
    assert_at_head(target)


# ---- (b) a fresh database ---------------------------------------------------------------

def test_a_fresh_database_is_migrated_to_the_metadata(target: Target) -> None:
    RunStore(target.url).close()
    assert_at_head(target)
    # Another process's engine on a database at head: a version read, no DDL, no writes;
    # the same engine again: nothing at all.
    engine = target.engine()
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute",
                    lambda conn, cursor, statement, *rest: statements.append(statement))
    migrate.upgrade(engine)
    assert any(migrate.VERSION_TABLE in s for s in statements)
    assert not [s for s in statements
                if s.split()[0].upper() in ("CREATE", "ALTER", "DROP", "INSERT", "UPDATE")]
    statements.clear()
    migrate.upgrade(engine)
    assert statements == []


def test_stores_opened_alone_migrate_their_engine(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'alone.sqlite'}")
    AuditLog(engine).record(kind="tool_call", caller="host", outcome="ok")
    assert AlertStore(engine).count() == 0
    assert differences(engine) == []


# ---- (c) a database of a newer orchestrator ----------------------------------------------

def test_a_newer_schema_is_refused_and_left_alone(target: Target) -> None:
    target.run_sql(f"CREATE TABLE {migrate.VERSION_TABLE} (version_num VARCHAR(32) NOT NULL);"
                   f"INSERT INTO {migrate.VERSION_TABLE} VALUES ('0107')")
    with pytest.raises(DatabaseError) as refused:
        RunStore(target.url)
    assert str(refused.value) == (
        f"the database holds schema revision 0107, newer than this orchestrator's head "
        f"{HEAD} — fix: upgrade orchestrator-mcp on every replica")
    assert target.tables() == {migrate.VERSION_TABLE}
    assert target.value(f"SELECT version_num FROM {migrate.VERSION_TABLE}") == "0107"


# ---- (d) replicas starting at once ------------------------------------------------------

def test_concurrent_first_opens_all_succeed(target: Target) -> None:
    """Four processes' worth of engines open one fresh database at the same moment."""
    barrier = threading.Barrier(4)
    failures: list[BaseException] = []

    def open_store() -> None:
        try:
            barrier.wait()
            RunStore(target.url).close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    assert_at_head(target)


# ---- start-up weight -------------------------------------------------------------------

def test_alembic_is_imported_only_when_upgrading(tmp_path: Path) -> None:
    """Not at import, and not when the database is already at head (what nearly every start
    finds): Alembic, with Mako and Pygments, is about 8 MB of an idle server's memory."""
    url = f"sqlite:///{tmp_path / 'runs.sqlite'}"
    RunStore(url).close()  # migrated to head here
    code = ("import sys, orchestrator_mcp.app, orchestrator_mcp.runs.store, "
            "orchestrator_mcp.telemetry.audit_store, orchestrator_mcp.alerts.store\n"
            "assert 'alembic' not in sys.modules, 'alembic imported'\n"
            "from orchestrator_mcp.runs.store import RunStore\n"
            "from orchestrator_mcp.telemetry.audit_store import AuditLog\n"
            f"store = RunStore({url!r}); AuditLog(store.engine); store.close()\n"
            "assert 'alembic' not in sys.modules, 'alembic imported at head'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def test_the_head_read_without_alembic_is_alembics_head() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", migrate.SCRIPT_LOCATION)
    assert migrate.HEAD == ScriptDirectory.from_config(config).get_current_head() == HEAD
