"""Principals (issue 17): managed API keys (`auth/keys.py`) and the owner of every run.

Runs from before have no owner: only principals with read_all (or admin) see them.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orch_runs") as table:
        table.add_column(sa.Column("owner", sa.String(255)))
        table.create_index("ix_orch_runs_owner", ["owner"])
    op.create_table(
        "orch_api_keys",
        sa.Column("prefix", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("scopes", sa.String(255), nullable=False),
        sa.Column("limits", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("expires_at", sa.Float),
        sa.Column("last_used_at", sa.Float),
        sa.Column("revoked_at", sa.Float),
        sa.Column("revoked_by", sa.String(255)),
    )
    op.create_index("ix_orch_api_keys_name", "orch_api_keys", ["name"])
