"""Managed API keys: created and revoked without a restart (`orchestrator-mcp keys`, the
admin MCP tools), kept in our database, so every replica refuses a revoked key on its next
request.

A key reads `orch_<prefix>_<secret>`: the prefix (8 hex characters, public: it finds the
key's row and is what `keys list` shows) and 43 base64url characters of secret (256 random
bits). Only sha256 of the whole key is stored — a 256-bit random secret has no dictionary
to guess from, so a slow password hash would buy nothing — and it is compared in constant
time. Every request looks its key up (one SELECT by primary key, no cache: revocation and
expiry hold from the next request on, in every replica); `last_used_at` is written at most
once a minute per key and process. The table's code is in auth/key_store.py.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from orchestrator_mcp.config.base import check_name
from orchestrator_mcp.config.http import ALL_SCOPES, PrincipalLimits, Scope
from orchestrator_mcp.errors import UserError

log = logging.getLogger(__name__)

KEY_SHAPE = re.compile(rb"^orch_([0-9a-f]{8})_[A-Za-z0-9_-]{43}$")
TOUCH_EVERY_SECONDS = 60.0
MAX_LIFETIME_DAYS = 3660
_DURATION = re.compile(r"^(\d{1,6})([mhdw])$")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
EXPIRY_HINT = ("give a duration like 30d, 12h, 2w or 90m, a date like 2027-01-31 (UTC), an "
               "ISO 8601 time, or 'never'")


class InvalidKeyRequest(UserError):
    code = "invalid_request"


def parse_expiry(text: str, now: float | None = None) -> float | None:
    """When a key given `--expires text` expires (epoch seconds), None for 'never'."""
    now = time.time() if now is None else now
    given = text.strip()
    if given.lower() == "never":
        return None
    shown = given[:40]
    duration = _DURATION.match(given.lower())
    if duration:
        at = now + int(duration[1]) * _UNIT_SECONDS[duration[2]]
    else:
        try:
            moment = datetime.fromisoformat(given)
        except ValueError:
            raise InvalidKeyRequest(f"expiry {shown!r} is not a time; {EXPIRY_HINT}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        at = moment.timestamp()
    if at <= now:
        raise InvalidKeyRequest(f"expiry {shown!r} is not in the future; {EXPIRY_HINT}")
    if at > now + MAX_LIFETIME_DAYS * 86400:
        raise InvalidKeyRequest(f"expiry {shown!r} is more than {MAX_LIFETIME_DAYS} days away; use "
                        "'never' for a key that does not expire")
    return at


class KeyRequest(BaseModel):
    """What a new key is asked for, from the CLI or the create_key tool."""

    name: str = Field(min_length=1, max_length=32)
    scopes: list[Scope] = Field(min_length=1, max_length=len(ALL_SCOPES))
    expires_at: float | None = None
    limits: PrincipalLimits | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        return check_name(name)

    @field_validator("scopes")
    @classmethod
    def _distinct(cls, scopes: list[Scope]) -> list[Scope]:
        return sorted(set(scopes), key=ALL_SCOPES.index)


def key_request(name: str, scopes: list[str] | str, expires: str,
                limits: PrincipalLimits | None = None) -> KeyRequest:
    """A KeyRequest from what a person typed, or a UserError saying what is wrong."""
    if isinstance(scopes, str):
        scopes = [s for s in re.split(r"[,\s]+", scopes[:1000]) if s]
    unknown = sorted({str(s)[:40] for s in scopes} - set(ALL_SCOPES))
    if unknown:
        raise InvalidKeyRequest(f"unknown scope(s) {', '.join(map(repr, unknown))}; scopes are "
                        f"{', '.join(ALL_SCOPES)} (comma-separated)")
    try:
        return KeyRequest(name=name, scopes=scopes, expires_at=parse_expiry(expires),
                          limits=limits)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in
                             exc.errors(include_input=False, include_url=False)[:5])
        raise InvalidKeyRequest(f"the key request is invalid: {problems}") from None


KeyState = Literal["active", "expired", "revoked"]


class KeyInfo(BaseModel):
    """A key as listed: never its secret, nor its hash."""

    name: str
    prefix: str
    scopes: list[str]
    limits: PrincipalLimits | None = None
    created_at: float
    created_by: str
    expires_at: float | None
    last_used_at: float | None
    revoked_at: float | None
    revoked_by: str | None
    state: KeyState

    @property
    def principal_id(self) -> str:
        return f"key:{self.name}"


class NewKey(BaseModel):
    key: str = Field(description="the key itself: shown this once, stored only hashed")
    info: KeyInfo


def digest(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()
