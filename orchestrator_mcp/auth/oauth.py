"""OAuth access tokens → a Principal, through fastmcp's verifiers (never our own JWT code).

`JWTVerifier` checks the signature (JWKS cached; a token with an unknown `kid` triggers a
refetch, at most one per `jwks_refresh_seconds`, so rotation is picked up and a flood of
made-up key ids costs one fetch), `exp`, `iss` and `aud`, for exactly one algorithm: one
verifier per configured algorithm, chosen by the token's `alg` header, so a token naming
any other algorithm (`none`, HS256 …) is refused before a key is looked at. On top of it
we require `exp`, check `nbf` (fastmcp does not) and map the scope claim onto our scopes.
`IntrospectionTokenVerifier` asks the authorization server about opaque tokens.

Every failure is a refusal (None), never an exception: what the caller sent is hostile.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections import OrderedDict
from typing import Any

import httpx2
from fastmcp.server.auth import AccessToken, TokenVerifier
from fastmcp.server.auth.providers.introspection import IntrospectionTokenVerifier
from fastmcp.server.auth.providers.jwt import JWTVerifier
from fastmcp.utilities.auth import decode_jwt_header
from mcp.shared.auth import ProtectedResourceMetadata

from orchestrator_mcp.auth.scopes import Principal, PrincipalSource
from orchestrator_mcp.config.http_auth import IntrospectionAuth, JwtAuth, key_type

log = logging.getLogger(__name__)

# Longer bearer values are refused unread (a JWT with a few claims is well under 2 KiB).
MAX_TOKEN_CHARS = 16_384
MAX_NAME_CHARS = 200
# Verified JWTs are remembered (by digest) until they expire, at most this long, so a host's
# stream of requests with one token costs one signature check (~0.3 ms here) instead of
# one each; a JWT cannot be revoked before its `exp` anyway.
VERIFIED_CACHE_SECONDS = 300
VERIFIED_CACHE_SIZE = 4096
RESOURCE_NAME = "orchestrator-mcp"


class OAuthVerifier:
    """One identity provider's access tokens, as `http.auth` describes it."""

    def __init__(self, settings: JwtAuth | IntrospectionAuth) -> None:
        self.settings = settings
        timeout = settings.timeout_seconds if isinstance(settings, IntrospectionAuth) else 5
        # One pooled client for JWKS fetches or introspection calls, closed by aclose().
        self._http = httpx2.AsyncClient(timeout=httpx2.Timeout(timeout),
                                        follow_redirects=False)
        self._by_algorithm: dict[str, TokenVerifier] = {}
        self._verified: OrderedDict[bytes, tuple[float, Principal]] = OrderedDict()
        self._introspection: IntrospectionTokenVerifier | None = None
        if isinstance(settings, JwtAuth):
            for algorithm in settings.algorithms:
                self._by_algorithm[algorithm] = JWTVerifier(
                    jwks_uri=settings.jwks_uri, public_key=settings.public_key,
                    issuer=settings.issuer, audience=settings.audience, algorithm=algorithm,
                    http_client=self._http if settings.jwks_uri else None,
                    jwks_refresh_interval=settings.jwks_refresh_seconds)
        else:
            self._introspection = IntrospectionTokenVerifier(
                introspection_url=settings.endpoint, client_id=settings.client_id,
                client_secret=settings.client_secret, audience=settings.audience,
                timeout_seconds=settings.timeout_seconds,
                cache_ttl_seconds=settings.cache_seconds or None, http_client=self._http)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def principal(self, token: bytes) -> Principal | None:
        if len(token) > MAX_TOKEN_CHARS or not token.isascii():
            return None
        text = token.decode("ascii")
        try:
            if self._introspection is not None:  # it keeps its own cache (cache_seconds)
                access = await self._introspection.verify_token(text)
                if access is None or not self._claims_hold(access.claims):
                    return None
                return self._principal(access, "introspection")
            return await self._jwt_principal(text)
        except Exception as exc:  # a hostile token must never become a 500
            log.debug("access token refused: %s", type(exc).__name__)
            return None

    async def _jwt_principal(self, token: str) -> Principal | None:
        digest = hashlib.sha256(token.encode()).digest()
        now = time.time()
        cached = self._verified.get(digest)
        if cached is not None:
            if now < cached[0]:
                self._verified.move_to_end(digest)
                return cached[1]
            del self._verified[digest]
        access = await self._verify_jwt(token)
        if access is None or not self._claims_hold(access.claims):
            return None
        principal = self._principal(access, "jwt")
        if principal is not None:
            self._verified[digest] = (min(float(access.claims["exp"]),
                                          now + VERIFIED_CACHE_SECONDS), principal)
            if len(self._verified) > VERIFIED_CACHE_SIZE:
                self._verified.popitem(last=False)
        return principal

    async def _verify_jwt(self, token: str) -> AccessToken | None:
        try:
            header = decode_jwt_header(token)
        except Exception:
            return None
        algorithm = header.get("alg") if isinstance(header, dict) else None
        verifier = self._by_algorithm.get(algorithm) if isinstance(algorithm, str) else None
        if verifier is None:
            log.debug("access token refused: algorithm %r is not in http.auth.algorithms",
                      str(algorithm)[:20])
            return None
        return await verifier.verify_token(token)

    def _claims_hold(self, claims: dict[str, Any]) -> bool:
        """What fastmcp leaves to us: JWTs must expire and be valid already; an
        introspection answer that names an issuer must name ours."""
        settings = self.settings
        if isinstance(settings, JwtAuth):
            expires, not_before = claims.get("exp"), claims.get("nbf", 0)
            if not _is_number(expires) or not _is_number(not_before):
                log.debug("access token refused: no numeric exp, or a non-numeric nbf")
                return False
            if not_before > time.time() + settings.clock_skew_seconds:
                log.debug("access token refused: not valid before %s", not_before)
                return False
            return True
        issuer = claims.get("iss")
        return issuer is None or issuer == settings.issuer

    def _principal(self, access: AccessToken, source: PrincipalSource) -> Principal | None:
        claims = access.claims
        name = next((v for v in (claims.get("sub"), claims.get("client_id"), claims.get("azp"))
                     if isinstance(v, str) and v.strip()), None)
        if name is None:
            log.debug("access token refused: it names no subject (sub, client_id or azp)")
            return None
        name = "".join(c for c in name if c.isprintable())[:MAX_NAME_CHARS]
        theirs = scope_names(claim(claims, self.settings.scopes_claim))
        return Principal(name, frozenset(self.settings.granted(theirs)), source)

    async def probe(self) -> tuple[bool, str]:
        """For `check`: whether the provider's key set is there and usable."""
        settings = self.settings
        if not isinstance(settings, JwtAuth) or not settings.jwks_uri:
            return True, "not probed (nothing to fetch before a token comes)"
        wanted = {key_type(a) for a in settings.algorithms}
        try:
            response = await self._http.get(settings.jwks_uri)
            response.raise_for_status()
            keys = response.json().get("keys")
        except (httpx2.HTTPError, ValueError, AttributeError) as exc:
            return False, f"JWKS {settings.jwks_uri} unusable: {type(exc).__name__}: {exc}"
        usable = [k for k in keys if isinstance(k, dict) and k.get("kty") in wanted
                  ] if isinstance(keys, list) else []
        if not usable:
            return False, (f"JWKS {settings.jwks_uri} has no {'/'.join(sorted(wanted))} key "
                           f"for {', '.join(settings.algorithms)}")
        return True, f"JWKS {settings.jwks_uri}: {len(usable)} usable key(s)"

    def metadata(self, resource_url: str) -> dict[str, Any]:
        """The RFC 9728 protected-resource document for `resource_url`."""
        document = ProtectedResourceMetadata(
            resource=resource_url,  # type: ignore[arg-type]
            authorization_servers=[self.settings.issuer],  # type: ignore[list-item]
            scopes_supported=self.settings.advertised_scopes(),
            resource_name=RESOURCE_NAME)
        return document.model_dump(mode="json", exclude_none=True)


def claim(claims: dict[str, Any], path: str) -> Any:
    """`claims[path]`, or else the dotted path followed into objects (realm_access.roles);
    an exact key wins because claim names may contain dots (Auth0's namespaced claims)."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def scope_names(value: Any) -> list[str]:
    """A space-separated string or a list of strings; anything else carries no scope."""
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _is_number(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))
