"""The managed API keys' table (auth/keys.py says what a key is): SQLAlchemy, so that
what answers a host's first requests loads none of it."""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable

import sqlalchemy as sa

from orchestrator_mcp.auth.keys import (
    KEY_SHAPE,
    TOUCH_EVERY_SECONDS,
    KeyInfo,
    KeyRequest,
    KeyState,
    NewKey,
    digest,
)
from orchestrator_mcp.auth.scopes import Principal
from orchestrator_mcp.config.http import PrincipalLimits
from orchestrator_mcp.db.tables import api_keys
from orchestrator_mcp.errors import Conflict, NotFound

log = logging.getLogger(__name__)


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
            row = dict(prefix=prefix, name=request.name, key_hash=digest(key.encode()),
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
        if row is None or not hmac.compare_digest(digest(key), row["key_hash"]):
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
