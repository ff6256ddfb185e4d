"""Bearer tokens: one table, one comparison, for every HTTP route and the webhook."""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from orchestrator_mcp.auth.scopes import Principal
from orchestrator_mcp.config.http import ALL_SCOPES, HttpSettings


def bearer_credentials(authorization: str | bytes | None) -> bytes | None:
    """The token of an `Authorization: Bearer <token>` value (scheme case-insensitive,
    RFC 7235), or None when the header is missing or another scheme."""
    if not authorization:
        return None
    if isinstance(authorization, str):
        authorization = authorization.encode("latin-1", "replace")
    scheme, _, credentials = authorization.strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return None
    return credentials.strip() or None


class TokenTable:
    """Token → who it is and what it may do. Empty means nobody gets in (never "open")."""

    def __init__(self, entries: Iterable[tuple[str, Principal]] = ()) -> None:
        self._entries = [(token.encode(), principal) for token, principal in entries if token]

    @classmethod
    def from_settings(cls, settings: HttpSettings) -> TokenTable:
        """`http.tokens` with their scopes, plus `http.token` (or ORCH_HTTP_TOKEN, applied
        by the config loader) with every scope as principal 'main'."""
        entries = [(t.token, Principal(t.name, frozenset(t.scopes), limits=t.limits))
                   for t in settings.tokens]
        if settings.token:
            entries.append((settings.token, Principal("main", frozenset(ALL_SCOPES))))
        return cls(entries)

    def __bool__(self) -> bool:
        return bool(self._entries)

    def principal(self, authorization: str | bytes | None) -> Principal | None:
        given = bearer_credentials(authorization)
        return None if given is None else self.lookup(given)

    def lookup(self, given: bytes) -> Principal | None:
        # Compare with every entry (constant time each) so timing says nothing of which.
        found = None
        for token, principal in self._entries:
            if hmac.compare_digest(given, token):
                found = principal
        return found
