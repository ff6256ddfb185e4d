"""The `audit:` section of servers.yaml."""

from __future__ import annotations

from pydantic import Field

from orchestrator_mcp.config.base import Strict


class AuditSettings(Strict):
    retention_days: float = Field(default=90, gt=0, le=3650,
                                  description="audit entries older than this are dropped")
