"""Audit entries and secret redaction (the table lives in audit_store, loaded lazily)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

SECRET_KEY = re.compile(r"pass|secret|token|api[_-]?key|auth|credential|private", re.I)
REDACTED = "***"


def redact(value: Any) -> Any:
    """Values under secret-looking keys become ***; bearer tokens in strings too."""
    if isinstance(value, dict):
        return {k: REDACTED if SECRET_KEY.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return re.sub(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+", r"\1***", value)
    return value


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


