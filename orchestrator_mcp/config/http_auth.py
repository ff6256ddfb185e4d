"""`http.auth` in servers.yaml: OAuth access tokens from an identity provider, next to the
static tokens of `http.tokens`.

`type: jwt` verifies signed JWTs against the provider's JWKS (or one PEM public key);
`type: introspection` asks the provider about opaque tokens (RFC 7662). Either way the
token's scope claim is mapped onto our scopes through `scope_map`.

Refused here rather than at the first request: unsigned (`none`) and shared-secret (HS*)
algorithms — with a public JWKS or key, HS256 is the algorithm-confusion attack, and a
shared secret lets this server mint tokens —, key URLs over plain HTTP to anything but
loopback, and a PEM that is a private key.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, SecretStr, field_validator, model_validator

from orchestrator_mcp.config.base import Strict, is_loopback_host

# read_all: see every run, not only one's own (admin implies it; auth/scopes.py).
Scope = Literal["read", "read_all", "run", "approve", "admin"]
ALL_SCOPES: tuple[Scope, ...] = ("read", "read_all", "run", "approve", "admin")

Algorithm = Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
                    "ES512", "EdDSA", "Ed25519", "Ed448"]
ASYMMETRIC: tuple[str, ...] = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
                               "ES384", "ES512", "EdDSA", "Ed25519", "Ed448")
SCOPE_TOKEN = re.compile(r'^[\x21\x23-\x5b\x5d-\x7e]{1,200}$')
KEY_TYPE_OF = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


def key_type(algorithm: str) -> str:
    return KEY_TYPE_OF[algorithm[:2]]


def check_url(url: str) -> str:
    """An http(s) URL without credentials; plain http only to a loopback host."""
    if not url.isprintable() or any(c in url for c in ' "\\<>'):
        raise ValueError(f"{url!r} has spaces, quotes or other characters a URL may not have")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL")
    if parts.username or parts.password:
        raise ValueError("a URL here may not carry user:password@ (put secrets in "
                         "client_secret)")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError(f"{url!r} must use https (plain http is accepted for loopback "
                         "hosts only: keys and tokens would travel unprotected)")
    return url


Url = Annotated[str, AfterValidator(check_url)]


def _algorithm(value: Any) -> Any:
    if isinstance(value, str) and value.lower() == "none":
        raise ValueError("'none' means unsigned tokens, which are never accepted")
    if isinstance(value, str) and value.upper().startswith("HS"):
        raise ValueError(
            f"{value} is a shared-secret algorithm: with a public JWKS or key it lets anyone "
            "forge tokens (algorithm confusion), and a shared secret lets this server mint "
            "them; configure your identity provider to sign with RS256 or ES256")
    if isinstance(value, str) and value not in ASYMMETRIC:
        raise ValueError(f"{value!r} is not a JWS algorithm; use one of {', '.join(ASYMMETRIC)}")
    return value


class _OAuthSettings(Strict):
    issuer: Url = Field(description="the authorization server, exactly as tokens' `iss` "
                        "says; advertised in /.well-known/oauth-protected-resource")
    resource_url: Url | None = Field(
        default=None, description="this server's public MCP URL (e.g. "
        "https://orchestrator.example.com/mcp), as hosts reach it; default: from each "
        "request's scheme and Host")
    scopes_claim: str = Field(
        default="scope", min_length=1, max_length=200,
        description="the claim holding the caller's scopes or roles: a space-separated string "
        "or a list; a dotted path reaches into objects (Keycloak: realm_access.roles)")
    scope_map: dict[str, list[Scope]] = Field(
        default_factory=dict, description="their scope or role → our scopes; when empty, "
        "tokens' scopes named read/run/approve/admin count as ours")

    @field_validator("scope_map", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: [v] if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("scope_map")
    @classmethod
    def _scope_names(cls, value: dict[str, list[Scope]]) -> dict[str, list[Scope]]:
        for name in value:
            if not SCOPE_TOKEN.match(name):
                raise ValueError(f"{name!r} is not an OAuth scope name (RFC 6749 §3.3: "
                                 "printable ASCII without spaces, '\"' or '\\')")
        return value

    def granted(self, theirs: list[str]) -> frozenset[Scope]:
        """Our scopes for the scope names a token carries."""
        if not self.scope_map:
            return frozenset(s for s in ALL_SCOPES if s in theirs)
        return frozenset(ours for name in theirs for ours in self.scope_map.get(name, ()))

    def granting(self, ours: Scope) -> list[str]:
        """Their scope names that grant one of ours (for a 403's WWW-Authenticate)."""
        if not self.scope_map:
            return [ours]
        return sorted(name for name, scopes in self.scope_map.items() if ours in scopes)

    def advertised_scopes(self) -> list[str]:
        return sorted(self.scope_map) if self.scope_map else list(ALL_SCOPES)

    def _mapping(self) -> str:
        mapped = ", ".join(f"{k}→{'+'.join(v)}" for k, v in sorted(self.scope_map.items()))
        return (f"scopes from '{self.scopes_claim}': "
                f"{mapped or 'read/read_all/run/approve/admin by name'}")


class JwtAuth(_OAuthSettings):
    type: Literal["jwt"]
    audience: str | list[str] = Field(description="what tokens' `aud` must name (one of)")
    jwks_uri: Url | None = Field(default=None, description="the provider's JWKS URL")
    public_key: str | None = Field(default=None, description="or one PEM public key")
    algorithms: list[Algorithm] = Field(
        default_factory=lambda: ["RS256"], min_length=1,
        description="accepted signing algorithms (asymmetric only)")
    clock_skew_seconds: int = Field(default=30, ge=0, le=300,
                                    description="leeway for `nbf`")
    jwks_refresh_seconds: float = Field(
        default=30, ge=0.1, le=3600, description="least time between two JWKS fetches "
        "(a token with an unknown key id triggers one)")

    @field_validator("algorithms", mode="before")
    @classmethod
    def _algorithms(cls, value: Any) -> Any:
        return [_algorithm(v) for v in value] if isinstance(value, list) else value

    @field_validator("audience")
    @classmethod
    def _audience(cls, value: str | list[str]) -> str | list[str]:
        values = [value] if isinstance(value, str) else value
        if not values or any(not v.strip() for v in values):
            raise ValueError("audience must name at least one non-empty value")
        return value

    def describe(self) -> str:
        key = f"jwks_uri {self.jwks_uri}" if self.jwks_uri else "a PEM public key"
        audience = self.audience if isinstance(self.audience, str) else ", ".join(self.audience)
        return (f"jwt from {self.issuer} for audience {audience}, {key}, "
                f"algorithms {', '.join(self.algorithms)}; {self._mapping()}")

    @model_validator(mode="after")
    def _key(self) -> JwtAuth:
        if bool(self.jwks_uri) == bool(self.public_key):
            raise ValueError("give exactly one of 'jwks_uri' (the provider's key set; rotated "
                             "keys are picked up) and 'public_key' (one PEM public key)")
        if self.public_key:
            kind = _pem_key_type(self.public_key)
            wrong = [a for a in self.algorithms if key_type(a) != kind]
            if wrong:
                raise ValueError(f"public_key is an {kind} key, which cannot verify "
                                 f"{', '.join(wrong)}")
        return self


class IntrospectionAuth(_OAuthSettings):
    type: Literal["introspection"]
    endpoint: Url = Field(description="the RFC 7662 introspection URL")
    client_id: str = Field(min_length=1, max_length=500)
    client_secret: SecretStr = Field(description="write ${YOUR_ENV_VARIABLE}")
    audience: str | list[str] | None = Field(
        default=None, description="when set, the answer's `aud` must name one of these")
    cache_seconds: int = Field(
        default=30, ge=0, le=3600, description="how long an answer is reused (0: ask every "
        "time; a revoked token works at most this long)")
    timeout_seconds: int = Field(default=5, ge=1, le=60)

    def describe(self) -> str:
        return (f"introspection at {self.endpoint} as client {self.client_id!r} (secret set), "
                f"issuer {self.issuer}, answers cached {self.cache_seconds} s; "
                f"{self._mapping()}")

    @field_validator("client_secret")
    @classmethod
    def _secret(cls, secret: SecretStr) -> SecretStr:
        if not secret.get_secret_value().strip():  # ${VAR:-} with VAR unset
            raise ValueError("the client secret is empty; set the environment variable "
                             "that client_secret names")
        return secret


HttpAuth = Annotated[JwtAuth | IntrospectionAuth, Field(discriminator="type")]


def _pem_key_type(pem: str) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    if "PRIVATE KEY" in pem:
        raise ValueError("public_key holds a private key: give the public half only "
                         "(openssl pkey -pubout), and replace this key")
    try:
        key = load_pem_public_key(pem.encode())
    except (ValueError, TypeError) as exc:
        raise ValueError(f"public_key is not a PEM public key ({exc})") from None
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC"
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return "OKP"
    raise ValueError("public_key is neither an RSA, EC nor Ed25519/Ed448 key")
