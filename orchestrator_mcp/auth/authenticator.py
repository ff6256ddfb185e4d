"""The one authentication path of the HTTP face: bearer credentials → Principal.

The static table (servers.yaml `http.tokens`, ORCH_HTTP_TOKEN) is asked first — constant
time, no I/O —, then managed API keys (auth/keys.py: a value shaped like one is looked up in
the database), then the OAuth verifier of `http.auth` (JWT or introspection), which may
fetch keys or ask the authorization server, asynchronously and with timeouts. A principal
without limits of its own gets `http.limits`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from orchestrator_mcp.auth.scopes import Principal
from orchestrator_mcp.auth.tokens import TokenTable, bearer_credentials
from orchestrator_mcp.config.http import HttpSettings, PrincipalLimits
from orchestrator_mcp.config.http_auth import IntrospectionAuth, JwtAuth

if TYPE_CHECKING:  # the OAuth verifiers (joserfc, httpx2) load only when configured
    from orchestrator_mcp.auth.key_store import ManagedKeys
    from orchestrator_mcp.auth.oauth import OAuthVerifier


class Authenticator:
    def __init__(self, tokens: TokenTable, oauth: OAuthVerifier | None = None,
                 default_limits: PrincipalLimits | None = None) -> None:
        self._tokens = tokens
        self.oauth = oauth
        self.keys: ManagedKeys | None = None  # set by `serve` once the database is known
        self._default_limits = default_limits or None

    @classmethod
    def from_settings(cls, settings: HttpSettings) -> Authenticator:
        oauth = None
        if settings.auth is not None:
            from orchestrator_mcp.auth.oauth import OAuthVerifier

            oauth = OAuthVerifier(settings.auth)
        return cls(TokenTable.from_settings(settings), oauth, settings.limits)

    def __bool__(self) -> bool:
        """Whether anyone can get in at all (an empty chain lets nobody in). Managed keys
        do not count: the first one is made by someone who got in otherwise (or the CLI)."""
        return bool(self._tokens) or self.oauth is not None

    @property
    def oauth_settings(self) -> JwtAuth | IntrospectionAuth | None:
        return self.oauth.settings if self.oauth is not None else None

    async def principal(self, authorization: str | bytes | None) -> Principal | None:
        given = bearer_credentials(authorization)
        if given is None:
            return None
        found = self._tokens.lookup(given)
        if found is None and self.keys is not None:
            found = await self.keys.principal(given)
        if found is None and self.oauth is not None:
            found = await self.oauth.principal(given)
        if found is not None and found.limits is None and self._default_limits:
            found = dataclasses.replace(found, limits=self._default_limits)
        return found

    async def aclose(self) -> None:
        if self.oauth is not None:
            await self.oauth.aclose()
