"""What an idempotent submission asked for, kept on its run (`runs/idempotency.py`): the
same key with another request is refused by comparing this hash.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orch_runs") as table:
        table.add_column(sa.Column("request_hash", sa.String(64)))
