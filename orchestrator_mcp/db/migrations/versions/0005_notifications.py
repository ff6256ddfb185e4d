"""Outbound notifications: which run events were handed to a delivery, and how far the
dispatchers have looked through the run event log.

`orch_run_events.at` is indexed for that look (events since the cursor), and
`orch_alert_groups.run_id` for finding the alert rule that opened a run.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_orch_run_events_at", "orch_run_events", ["at"])
    op.create_index("ix_orch_alert_groups_run_id", "orch_alert_groups", ["run_id"])
    op.create_table(
        "orch_notification_dispatch",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("targets", sa.Text, nullable=False),
        sa.Column("dispatched_at", sa.Float, nullable=False),
    )
    op.create_index("ix_orch_notification_dispatch_at", "orch_notification_dispatch", ["at"])
    op.create_table(
        "orch_notification_cursor",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("at", sa.Float, nullable=False),
    )
