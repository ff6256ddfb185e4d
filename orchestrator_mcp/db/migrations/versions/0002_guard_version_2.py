"""`orch_schema` at version 2: the release before migrations reads that table and refuses a
database whose version is above its 1, instead of misreading a migrated schema. (No table
changes.)

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE orch_schema SET version = 2")
