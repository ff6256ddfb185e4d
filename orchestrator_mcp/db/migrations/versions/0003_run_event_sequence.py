"""A per-run event sequence, for the live run stream (`GET /runs/{id}/stream`).

`orch_runs.seq` counts every change of a run; each history entry (`orch_run_steps.seq`)
and each change of its status, pending approval or answer (`orch_run_events`) takes the next
number in the transaction that writes it, so a stream resumes after the last number a
client saw. Entries written before this revision keep seq 0.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orch_runs") as table:
        table.add_column(sa.Column("seq", sa.Integer, nullable=False, server_default="0"))
    with op.batch_alter_table("orch_run_steps") as table:
        table.add_column(sa.Column("seq", sa.Integer, nullable=False, server_default="0"))
    op.create_table(
        "orch_run_events",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
    )
