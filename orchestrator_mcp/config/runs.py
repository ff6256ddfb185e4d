"""The `runs:` section of servers.yaml: where runs live and how many execute at once.
ORCH_DATABASE_URL (config/environment.py) wins over `runs.database_url`."""

from __future__ import annotations

from pydantic import Field, model_validator

from orchestrator_mcp.config.base import Strict


class RunsSettings(Strict):
    database_url: str | None = Field(
        default=None, description="postgresql://user:password@host:5432/db shared by every "
        "replica (ORCH_DATABASE_URL wins); unset: the embedded SQLite files of the data dir")
    worker_concurrency: int = Field(default=50, ge=1, le=10_000,
                                    description="runs one process executes at once")
    global_concurrency: int | None = Field(
        default=None, ge=1, le=1_000_000,
        description="runs executing at once across all replicas (shared database only)")
    queue_poll_seconds: float | None = Field(
        default=None, ge=0.005, le=10,
        description="how often an executing process looks for queued runs: the most a "
        "queued run waits to start; every look is a database transaction, also when idle. "
        "Default: 1 for `serve` and commands on the embedded files (they start the runs they "
        "are asked for at once; only runs submitted by another process, such as the CLI "
        "beside a server, are queued), else 0.1 (workers, and every process on a shared "
        "database, where every run is queued)")

    def poll_seconds(self, *, shared: bool, worker: bool) -> float:
        """`queue_poll_seconds`, or its default for this process and database."""
        if self.queue_poll_seconds is not None:
            return self.queue_poll_seconds
        return 0.1 if shared or worker else 1.0
    heartbeat_seconds: float = Field(default=2, gt=0, le=60)
    executor_dead_after_seconds: float = Field(
        default=15, gt=0, le=3600, description="a replica silent this long is presumed dead "
        "and its runs are recovered by another")

    @model_validator(mode="after")
    def _dead_after_heartbeats(self) -> RunsSettings:
        if self.executor_dead_after_seconds < 3 * self.heartbeat_seconds:
            raise ValueError("executor_dead_after_seconds must be at least 3 heartbeats")
        return self
