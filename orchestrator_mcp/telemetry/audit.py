"""Audit entries and secret redaction (the table lives in audit_store, loaded lazily)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

SECRET_KEY = re.compile(r"pass|secret|token|api[_-]?key|auth|credential|private", re.I)
REDACTED = "***"

# Secrets in free text, each replaced by its group 1 (what precedes the secret) plus ***.
_TEXT_SECRETS = [re.compile(p) for p in (
    # Bearer <token>; Authorization: Basic <base64>
    r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{4,}",
    r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?basic\s+)[A-Za-z0-9+/=]+",
    # key=value, key: value, "key": "value" for secret-looking keys
    r"(?i)((?:api[_-]?key|apikey|passw(?:or)?d|secret|client[_-]?secret|access[_-]?key"
    r"|secret[_-]?access[_-]?key|session[_-]?token|access[_-]?token|refresh[_-]?token"
    r"|auth[_-]?token|token|private[_-]?key)[\"']?\s*[:=]\s*[\"']?)"
    r"(?!\*\*\*)[^\s\"',;&}\]]+",
    # credentials in URLs: scheme://user:password@host
    r"(?i)([a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s@]+(?=@)",
    # well-known key shapes: OpenAI/Anthropic, GitHub, Slack, AWS access key ids
    r"(\b)(?:sk-[A-Za-z0-9_-]{8,}|gh[pousr]_[A-Za-z0-9]{20,}|xox[abprs]-[A-Za-z0-9-]{10,}"
    r"|(?:AKIA|ASIA)[A-Z0-9]{16})",
    # PEM private keys
    r"(-----BEGIN [A-Z ]*PRIVATE KEY-----)[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
)]
# AWS secret access keys: 40 characters of base64 with upper, lower case and a digit (so
# hex digests and plain words are left alone).
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")


def _aws_secret(match: re.Match[str]) -> str:
    text = match.group(0)
    mixed = (any(c.islower() for c in text) and any(c.isupper() for c in text)
             and any(c.isdigit() for c in text))
    return REDACTED if mixed else text


def redact_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with the given secret values, and anything shaped like a credential, as ***."""
    for secret in secrets:
        if secret and len(secret) >= 4 and secret in text:
            text = text.replace(secret, REDACTED)
    for pattern in _TEXT_SECRETS:
        text = pattern.sub(rf"\1{REDACTED}", text)
    return _AWS_SECRET.sub(_aws_secret, text)


def redact(value: Any) -> Any:
    """Values under secret-looking keys become ***; secrets inside strings too."""
    if isinstance(value, dict):
        return {k: REDACTED if SECRET_KEY.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
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


