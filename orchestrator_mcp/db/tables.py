"""Every table of ours, in one MetaData: what the migrations (`db/migrations/versions`) build
and what the stores query. DBOS's system tables are DBOS's own and are not here.

A change to a table here needs a new revision that makes it; `tests/test_migrations.py`
checks that the migrated database and this MetaData agree.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# ---- runs (runs/store.py) ---------------------------------------------------------------

runs = sa.Table(
    "orch_runs", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("goal", sa.Text, nullable=False),
    sa.Column("profile", sa.String(64), nullable=False),
    sa.Column("status", sa.String(32), nullable=False, index=True),
    sa.Column("stop_reason", sa.String(32)),
    sa.Column("parent_id", sa.String(64), index=True),
    sa.Column("workflow", sa.String(64)),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("context", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float),
    sa.Column("answer", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("usage", sa.Text, nullable=False),
    sa.Column("pending_approval", sa.Text),
    # Changes so far; each step and event below takes the next number (the run stream's ids).
    sa.Column("seq", sa.Integer, nullable=False, server_default="0"),
    # An idempotent submission's request, hashed (runs/idempotency.py).
    sa.Column("request_hash", sa.String(64)),
    # Who started it (a Principal id: "token:oncall", "key:ci", "jwt:alice", "local:bob",
    # "system:alertmanager"); NULL for runs from before owners were kept.
    sa.Column("owner", sa.String(255), index=True),
)

run_steps = sa.Table(
    "orch_run_steps", metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("n", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("seq", sa.Integer, nullable=False, server_default="0"),
)

# Changes of a run's status, pending approval and answer, as the run stream sends them.
run_events = sa.Table(
    "orch_run_events", metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),  # status | approval | answer | end
    sa.Column("at", sa.Float, nullable=False, index=True),  # what notifications scan
    sa.Column("data", sa.Text, nullable=False),
)

tool_calls = sa.Table(
    "orch_tool_calls", metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("call_id", sa.String(128), primary_key=True),
    sa.Column("tool", sa.String(128), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # started | done
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float),
    sa.Column("result", sa.Text),
)

# Processes executing runs on a shared database, and when each last said it was alive.
executors = sa.Table(
    "orch_executors", metadata,
    sa.Column("executor_id", sa.String(128), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("last_seen", sa.Float, nullable=False, index=True),
)

# ---- managed API keys (auth/keys.py) --------------------------------------------------

api_keys = sa.Table(
    "orch_api_keys", metadata,
    # The key's public prefix: how a presented key finds its row.
    sa.Column("prefix", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, index=True),
    sa.Column("key_hash", sa.String(64), nullable=False),  # sha256 hex of the whole key
    sa.Column("scopes", sa.String(255), nullable=False),  # space-separated
    sa.Column("limits", sa.Text),  # PrincipalLimits as JSON, or NULL for http.limits
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("expires_at", sa.Float),
    sa.Column("last_used_at", sa.Float),
    sa.Column("revoked_at", sa.Float),
    sa.Column("revoked_by", sa.String(255)),
)

# ---- audit (telemetry/audit_store.py) ---------------------------------------------------

audit_log = sa.Table(
    "orch_audit", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),  # tool_call | approval
    sa.Column("run_id", sa.String(64), index=True),
    sa.Column("caller", sa.String(128), nullable=False),
    sa.Column("tool", sa.String(128)),
    sa.Column("arguments", sa.Text),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("duration_ms", sa.Float),
)

# ---- memory (memory/store.py) -----------------------------------------------------------

# Facts a profile's runs remembered for later runs, with where each came from. The LanceDB
# index under the data dir is derived from these rows (and rebuilt from them when missing).
memories = sa.Table(
    "orch_memories", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("profile", sa.String(64), nullable=False, index=True),
    sa.Column("fact", sa.Text, nullable=False),
    sa.Column("tags", sa.Text, nullable=False),  # JSON list of strings
    sa.Column("run_id", sa.String(64)),  # the run that learned it (None: imported)
    sa.Column("source", sa.String(16), nullable=False),  # run | import
    sa.Column("approved_by", sa.String(128)),  # None: written without approval (write: auto)
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, index=True),
)

# ---- alerts (alerts/store.py) -----------------------------------------------------------

notifications = sa.Table(
    "orch_alert_notifications", metadata,
    sa.Column("receipt_id", sa.String(64), primary_key=True),
    sa.Column("group_id", sa.String(64), nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),  # received|deferred|done
    sa.Column("rule", sa.String(64)),
    sa.Column("outcome", sa.String(32)),
    sa.Column("run_id", sa.String(64)),
    sa.Column("detail", sa.Text),
    sa.Column("processed_at", sa.Float),
)

groups = sa.Table(
    "orch_alert_groups", metadata,
    sa.Column("group_id", sa.String(64), primary_key=True),
    sa.Column("rule", sa.String(64), nullable=False, index=True),
    sa.Column("run_id", sa.String(64), index=True),  # which rule opened a run
    sa.Column("opened_at", sa.Float, nullable=False),
    sa.Column("last_seen", sa.Float, nullable=False),
    sa.Column("resolved_at", sa.Float),
    sa.Column("delivered_at", sa.Float),  # written by releases that had alerts.deliver_url
)

# ---- notifications (notifications/store.py) --------------------------------------------

# Run events (orch_run_events) handed to a durable delivery, so none is handed twice.
notification_dispatch = sa.Table(
    "orch_notification_dispatch", metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("at", sa.Float, nullable=False, index=True),  # the run event's time
    sa.Column("targets", sa.Text, nullable=False),  # JSON list of target names
    sa.Column("dispatched_at", sa.Float, nullable=False),
)

# How far the dispatchers have looked through orch_run_events (one row, name "runs").
notification_cursor = sa.Table(
    "orch_notification_cursor", metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("at", sa.Float, nullable=False),
)

# ---- the guard for the release before migrations ----------------------------------------

# That release kept its schema version here (1) and refuses a database whose version is
# higher; migrations keep it above 1 so that release stops instead of misreading the tables.
# What this orchestrator reads is Alembic's version table (db/migrate.py).
schema_guard = sa.Table(
    "orch_schema", metadata,
    sa.Column("version", sa.Integer, nullable=False),
)
