"""Audit entries (the table lives in audit_store, loaded lazily).

Redaction lives in `telemetry.redaction`; its names are kept here for older imports.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from orchestrator_mcp.telemetry.redaction import REDACTED, SECRET_KEY, redact, redact_text

__all__ = ["REDACTED", "SECRET_KEY", "AuditEntry", "redact", "redact_text"]


class AuditEntry(BaseModel):
    id: int
    at: float
    kind: str
    run_id: str | None
    caller: str
    tool: str | None
    arguments: Any
    outcome: str
    duration_ms: float | None
