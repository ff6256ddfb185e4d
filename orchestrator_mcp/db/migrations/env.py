"""Alembic's environment: runs the revisions on the connection `db.migrate.upgrade` hands
over, inside the transaction that holds the migration lock (so no transaction of its own).
For a new revision, copy the last one in `versions/` and write its `op.*` calls by hand
(column changes inside `op.batch_alter_table`, which SQLite needs); tests/test_migrations.py
checks the result against `db.tables`."""

from alembic import context

from orchestrator_mcp.db.migrate import VERSION_TABLE
from orchestrator_mcp.db.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the migrations through orchestrator_mcp.db.migrate.upgrade")
context.configure(connection=connection, target_metadata=metadata,
                  version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
