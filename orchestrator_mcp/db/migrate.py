"""Bring our tables to the newest schema, with Alembic (revisions in `db/migrations/versions`).

`upgrade(engine)` runs once per engine (the stores call it when they open one; after the
first, a call costs nothing). A database already at HEAD, what nearly every start finds, is
recognised by reading the version table, without importing Alembic: Alembic brings Mako and
Pygments with it, about 8 MB of resident memory that an idle `serve` would otherwise keep
(issue 18). Otherwise it works in one transaction that first takes a lock, so
replicas starting at once never run DDL side by side: `pg_advisory_xact_lock` on
PostgreSQL, `BEGIN IMMEDIATE` (the write lock, waited for up to the busy timeout) on SQLite.
Then:

* a fresh database, or one of the release before migrations (`orch_schema` at 1, no version
  table), is brought up from revision 0001, which creates only the tables that are missing;
* a database at a known revision is upgraded to head, never downgraded;
* a database at a revision this orchestrator does not know (written by a newer one) is
  refused with a DatabaseError, and nothing is changed.

Alembic's version table is `orch_alembic_version`, not `alembic_version`: a shared
PostgreSQL database may hold another application's Alembic history.
"""

from __future__ import annotations

import logging
import weakref

import sqlalchemy as sa

from orchestrator_mcp.runs.database import DatabaseError

log = logging.getLogger(__name__)

SCRIPT_LOCATION = "orchestrator_mcp.db:migrations"
VERSION_TABLE = "orch_alembic_version"
LOCK_KEY = 0x6F7263685F6D6967  # "orch_mig": the advisory lock our migrations hold
# The newest revision in migrations/versions (tests/test_migrations.py checks it is
# Alembic's head): bump it with every new revision.
HEAD = "0007"

_upgraded: weakref.WeakSet[sa.Engine] = weakref.WeakSet()


def upgrade(engine: sa.Engine) -> None:
    """Migrate `engine`'s database to head (see the module doc); a no-op once done."""
    if engine in _upgraded:
        return
    if _at_head(engine):
        _upgraded.add(engine)
        return
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    alembic_log = logging.getLogger("alembic")
    if alembic_log.level == logging.NOTSET:  # its INFO lines each start; ours says what changed
        alembic_log.setLevel(logging.WARNING)
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    script = ScriptDirectory.from_config(config)
    head = script.get_current_head()
    known = {s.revision for s in script.walk_revisions()}
    with engine.connect() as db:
        _lock(db)
        current = MigrationContext.configure(
            db, opts={"version_table": VERSION_TABLE}).get_current_heads()
        newer = sorted(set(current) - known)
        if newer:
            raise DatabaseError(
                f"the database holds schema revision {', '.join(newer)}, newer than this "
                f"orchestrator's head {head} — fix: upgrade orchestrator-mcp on every replica")
        if current != (head,):
            log.info("migrating our tables from revision %s to %s",
                     ", ".join(current) or "none (a new database or the previous release's)",
                     head)
            config.attributes["connection"] = db
            command.upgrade(config, "head")
        db.commit()
    _upgraded.add(engine)


def _at_head(engine: sa.Engine) -> bool:
    """Whether the version table says HEAD (no lock: a database at HEAD needs no DDL)."""
    with engine.connect() as db:
        if not sa.inspect(db).has_table(VERSION_TABLE):
            return False
        version = sa.table(VERSION_TABLE, sa.column("version_num"))
        return db.execute(sa.select(version.c.version_num)).scalars().all() == [HEAD]


def _lock(db: sa.Connection) -> None:
    """Begin the transaction holding the migration lock until it ends."""
    if db.dialect.name == "postgresql":
        db.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
    elif db.dialect.name == "sqlite":
        # pysqlite begins transactions lazily, and only for DML; begin one ourselves, as a
        # writer, so the DDL is in it and a second process waits here.
        db.exec_driver_sql("BEGIN IMMEDIATE")
