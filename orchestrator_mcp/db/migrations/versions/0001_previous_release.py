"""The schema of the release before migrations: the tables its RunStore, AuditLog and
AlertStore made with `create_all`, and `orch_schema` at version 1.

On a database that release wrote (no version table yet) this adopts what is there: a table
that exists is kept as it is and only missing ones are made. That release made the audit and
alert tables only when those stores were first opened, so a database may lack them.

Revision ID: 0001
Revises: (none)
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    present = set(sa.inspect(op.get_bind()).get_table_names())

    if "orch_runs" not in present:
        op.create_table(
            "orch_runs",
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("goal", sa.Text, nullable=False),
            sa.Column("profile", sa.String(64), nullable=False),
            sa.Column("status", sa.String(32), nullable=False),
            sa.Column("stop_reason", sa.String(32)),
            sa.Column("parent_id", sa.String(64)),
            sa.Column("workflow", sa.String(64)),
            sa.Column("source", sa.String(32), nullable=False),
            sa.Column("context", sa.Text, nullable=False),
            sa.Column("created_at", sa.Float, nullable=False),
            sa.Column("updated_at", sa.Float, nullable=False),
            sa.Column("finished_at", sa.Float),
            sa.Column("answer", sa.Text),
            sa.Column("error", sa.Text),
            sa.Column("usage", sa.Text, nullable=False),
            sa.Column("pending_approval", sa.Text),
        )
        op.create_index("ix_orch_runs_created_at", "orch_runs", ["created_at"])
        op.create_index("ix_orch_runs_parent_id", "orch_runs", ["parent_id"])
        op.create_index("ix_orch_runs_status", "orch_runs", ["status"])

    if "orch_run_steps" not in present:
        op.create_table(
            "orch_run_steps",
            sa.Column("run_id", sa.String(64), primary_key=True),
            sa.Column("n", sa.Integer, primary_key=True),
            sa.Column("kind", sa.String(16), nullable=False),
            sa.Column("at", sa.Float, nullable=False),
            sa.Column("summary", sa.Text, nullable=False),
            sa.Column("detail", sa.Text, nullable=False),
        )

    if "orch_tool_calls" not in present:
        op.create_table(
            "orch_tool_calls",
            sa.Column("run_id", sa.String(64), primary_key=True),
            sa.Column("call_id", sa.String(128), primary_key=True),
            sa.Column("tool", sa.String(128), nullable=False),
            sa.Column("state", sa.String(16), nullable=False),
            sa.Column("started_at", sa.Float, nullable=False),
            sa.Column("finished_at", sa.Float),
            sa.Column("result", sa.Text),
        )

    if "orch_executors" not in present:
        op.create_table(
            "orch_executors",
            sa.Column("executor_id", sa.String(128), primary_key=True),
            sa.Column("host", sa.String(255), nullable=False),
            sa.Column("pid", sa.Integer, nullable=False),
            sa.Column("started_at", sa.Float, nullable=False),
            sa.Column("last_seen", sa.Float, nullable=False),
        )
        op.create_index("ix_orch_executors_last_seen", "orch_executors", ["last_seen"])

    if "orch_audit" not in present:
        op.create_table(
            "orch_audit",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("at", sa.Float, nullable=False),
            sa.Column("kind", sa.String(16), nullable=False),
            sa.Column("run_id", sa.String(64)),
            sa.Column("caller", sa.String(128), nullable=False),
            sa.Column("tool", sa.String(128)),
            sa.Column("arguments", sa.Text),
            sa.Column("outcome", sa.String(32), nullable=False),
            sa.Column("duration_ms", sa.Float),
        )
        op.create_index("ix_orch_audit_at", "orch_audit", ["at"])
        op.create_index("ix_orch_audit_run_id", "orch_audit", ["run_id"])

    if "orch_alert_notifications" not in present:
        op.create_table(
            "orch_alert_notifications",
            sa.Column("receipt_id", sa.String(64), primary_key=True),
            sa.Column("group_id", sa.String(64), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("body", sa.Text, nullable=False),
            sa.Column("received_at", sa.Float, nullable=False),
            sa.Column("state", sa.String(16), nullable=False),
            sa.Column("rule", sa.String(64)),
            sa.Column("outcome", sa.String(32)),
            sa.Column("run_id", sa.String(64)),
            sa.Column("detail", sa.Text),
            sa.Column("processed_at", sa.Float),
        )
        op.create_index("ix_orch_alert_notifications_group_id", "orch_alert_notifications",
                        ["group_id"])
        op.create_index("ix_orch_alert_notifications_state", "orch_alert_notifications",
                        ["state"])

    if "orch_alert_groups" not in present:
        op.create_table(
            "orch_alert_groups",
            sa.Column("group_id", sa.String(64), primary_key=True),
            sa.Column("rule", sa.String(64), nullable=False),
            sa.Column("run_id", sa.String(64)),
            sa.Column("opened_at", sa.Float, nullable=False),
            sa.Column("last_seen", sa.Float, nullable=False),
            sa.Column("resolved_at", sa.Float),
            sa.Column("delivered_at", sa.Float),
        )
        op.create_index("ix_orch_alert_groups_rule", "orch_alert_groups", ["rule"])

    if "orch_schema" not in present:
        op.create_table("orch_schema", sa.Column("version", sa.Integer, nullable=False))
    if op.get_bind().execute(sa.text("SELECT COUNT(*) FROM orch_schema")).scalar() == 0:
        op.execute("INSERT INTO orch_schema (version) VALUES (1)")
