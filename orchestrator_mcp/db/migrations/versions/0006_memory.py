"""Agent memory (`memory/store.py`): facts a profile's runs keep for later runs.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "orch_memories",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("profile", sa.String(64), nullable=False),
        sa.Column("fact", sa.Text, nullable=False),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("run_id", sa.String(64)),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("approved_by", sa.String(128)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float),
    )
    op.create_index("ix_orch_memories_profile", "orch_memories", ["profile"])
    op.create_index("ix_orch_memories_expires_at", "orch_memories", ["expires_at"])
