"""Managed API keys: created and revoked without a restart (`orchestrator-mcp keys`, the
admin MCP tools), kept in our database, so every replica refuses a revoked key on its next
request.

A key reads `orch_<prefix>_<secret>`: the prefix (8 hex characters, public: it finds the
key's row and is what `keys list` shows) and 43 base64url characters of secret (256 random
bits). Only sha256 of the whole key is stored — a 256-bit random secret has no dictionary
to guess from, so a slow password hash would buy nothing — and it is compared in constant
time. Every request looks its key up (one SELECT by primary key, no cache: revocation and
expiry hold from the next request on, in every replica); `last_used_at` is written at most
once a minute per key and process.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Literal

import sqlalchemy as sa
from pydantic import BaseModel, Field, ValidationError, field_validator

from orchestrator_mcp.auth.scopes import Principal
from orchestrator_mcp.config.base import check_name
from orchestrator_mcp.config.http import ALL_SCOPES, PrincipalLimits, Scope
from orchestrator_mcp.db.tables import api_keys
from orchestrator_mcp.errors import Conflict, NotFound, UserError

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


def _digest(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()


def _state(row: sa.RowMapping, now: float) -> KeyState:
    if row["revoked_at"] is not None:
        return "revoked"
    if row["expires_at"] is not None and row["expires_at"] <= now:
        return "expired"
    return "active"


def _info(row: sa.RowMapping, now: float) -> KeyInfo:
    return KeyInfo(
        name=row["name"], prefix=row["prefix"], scopes=row["scopes"].split(),
        limits=PrincipalLimits.model_validate_json(row["limits"]) if row["limits"] else None,
        created_at=row["created_at"], created_by=row["created_by"],
        expires_at=row["expires_at"], last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"], revoked_by=row["revoked_by"], state=_state(row, now))


def _active(now: float) -> sa.ColumnElement[bool]:
    return api_keys.c.revoked_at.is_(None) & (
        api_keys.c.expires_at.is_(None) | (api_keys.c.expires_at > now))


class KeyStore:
    """The keys table (blocking calls; async callers use asyncio.to_thread). The database
    is migrated by whoever opened the engine (RunStore)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._touched: dict[str, float] = {}
        self._touch_lock = threading.Lock()

    def create(self, request: KeyRequest, created_by: str) -> NewKey:
        now = time.time()
        with self.engine.begin() as db:
            taken = db.execute(sa.select(api_keys.c.prefix).where(
                (api_keys.c.name == request.name) & _active(now))).first()
            if taken is not None:
                raise Conflict(f"an active key is already named {request.name!r} (prefix "
                               f"{taken[0]}); revoke it first or choose another name")
            for _ in range(5):  # a 32-bit prefix: a collision is rare, never fatal
                prefix = secrets.token_hex(4)
                if db.execute(sa.select(api_keys.c.prefix).where(
                        api_keys.c.prefix == prefix)).first() is None:
                    break
            key = f"orch_{prefix}_{secrets.token_urlsafe(32)}"
            row = dict(prefix=prefix, name=request.name, key_hash=_digest(key.encode()),
                       scopes=" ".join(request.scopes),
                       limits=request.limits.model_dump_json() if request.limits else None,
                       created_at=now, created_by=created_by[:255],
                       expires_at=request.expires_at, last_used_at=None, revoked_at=None,
                       revoked_by=None)
            db.execute(api_keys.insert().values(**row))
        return NewKey(key=key, info=_info(row, now))  # type: ignore[arg-type]

    def list(self, *, include_inactive: bool = False) -> list[KeyInfo]:
        now = time.time()
        query = sa.select(api_keys).order_by(api_keys.c.name, api_keys.c.created_at)
        if not include_inactive:
            query = query.where(_active(now))
        with self.engine.connect() as db:
            return [_info(row, now) for row in db.execute(query.limit(10_000)).mappings()]

    def revoke(self, name_or_prefix: str, revoked_by: str) -> KeyInfo:
        """Revoke the active key with this name (or prefix)."""
        now = time.time()
        wanted = name_or_prefix.strip()[:64]
        with self.engine.begin() as db:
            row = db.execute(sa.select(api_keys).where(
                ((api_keys.c.name == wanted) | (api_keys.c.prefix == wanted)) & _active(now)
            )).mappings().first()
            if row is None:
                raise NotFound(f"no active key named {wanted!r} (nor with that prefix); "
                               "`orchestrator-mcp keys list` shows them")
            db.execute(api_keys.update().where(api_keys.c.prefix == row["prefix"]).values(
                revoked_at=now, revoked_by=revoked_by[:255]))
            return _info({**row, "revoked_at": now, "revoked_by": revoked_by[:255]},
                         now)  # type: ignore[arg-type]

    def verify(self, key: bytes) -> KeyInfo | None:
        """The active key `key` is, or None; notes its use (at most once a minute)."""
        shape = KEY_SHAPE.match(key)
        if shape is None:
            return None
        prefix = shape[1].decode()
        now = time.time()
        with self.engine.connect() as db:
            row = db.execute(sa.select(api_keys).where(api_keys.c.prefix == prefix)
                             ).mappings().first()
        if row is None or not hmac.compare_digest(_digest(key), row["key_hash"]):
            return None
        info = _info(row, now)
        if info.state != "active":
            return None
        self._touch(prefix, row["last_used_at"], now)
        return info

    def _touch(self, prefix: str, last_used: float | None, now: float) -> None:
        with self._touch_lock:
            if now - max(self._touched.get(prefix, 0.0), last_used or 0.0) < TOUCH_EVERY_SECONDS:
                return
            self._touched[prefix] = now
        with self.engine.begin() as db:  # replicas: the WHERE keeps it once a minute too
            db.execute(api_keys.update().where(
                (api_keys.c.prefix == prefix)
                & (api_keys.c.last_used_at.is_(None)
                   | (api_keys.c.last_used_at < now - TOUCH_EVERY_SECONDS))
            ).values(last_used_at=now))


class ManagedKeys:
    """The managed-keys link of the Authenticator chain. The table is in the run engine's
    database, which opens after the HTTP face: `engine()` waits for it."""

    def __init__(self, engine: Callable[[], Awaitable[sa.Engine]]) -> None:
        self._engine = engine
        self._store: KeyStore | None = None

    @staticmethod
    def looks_like_a_key(token: bytes) -> bool:
        return KEY_SHAPE.match(token) is not None

    async def store(self) -> KeyStore:
        if self._store is None:
            self._store = KeyStore(await self._engine())
        return self._store

    async def principal(self, token: bytes) -> Principal | None:
        if not self.looks_like_a_key(token):
            return None
        try:
            store = await self.store()
            info = await asyncio.to_thread(store.verify, token)
        except Exception as exc:  # noqa: BLE001 - a database outage refuses, never a 500
            log.warning("managed API key not checked: %s", exc)
            return None
        if info is None:
            return None
        return Principal(info.name, frozenset(info.scopes), "key", limits=info.limits)
