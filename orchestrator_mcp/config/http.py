"""The `http:` section of servers.yaml: bearer tokens and their scopes, OAuth access tokens
(`http.auth`, config/http_auth.py), limits, and the Host/Origin guard of `serve --http`.
ORCH_HTTP_TOKEN (config/environment.py) wins over `http.token`."""

from __future__ import annotations

from pydantic import Field, field_validator

from orchestrator_mcp.config.base import TOKEN_HINT, Name, OptionalToken, Strict, check_token
from orchestrator_mcp.config.http_auth import ALL_SCOPES, HttpAuth, Scope

__all__ = ["ALL_SCOPES", "HttpSettings", "HttpToken", "PrincipalLimits", "Scope"]


class PrincipalLimits(Strict):
    """What one caller (token, managed key or OAuth subject) may start; unset: no limit."""

    # Checked when a run is submitted (runs/limits.py). The docstring is host-facing: it is
    # the description of create_key's `limits` in the front's listing.

    max_concurrent_runs: int | None = Field(
        default=None, ge=1, le=100_000, description="runs of this caller not yet ended")
    monthly_cost_usd: float | None = Field(
        default=None, gt=0, le=1_000_000,
        description="model cost of this caller's runs started this calendar month (UTC)")

    def __bool__(self) -> bool:
        return self.max_concurrent_runs is not None or self.monthly_cost_usd is not None


class HttpToken(Strict):
    name: Name
    token: str = Field(description="at least 16 characters, no spaces")
    scopes: list[Scope] = Field(min_length=1)
    limits: PrincipalLimits | None = Field(
        default=None, description="this token's own limits, instead of http.limits")

    @field_validator("token")
    @classmethod
    def _token(cls, token: str) -> str:
        if not token.strip():  # e.g. ${VAR:-} with VAR unset
            raise ValueError(f"the token is empty; {TOKEN_HINT}")
        check_token(token)
        return token


class HttpSettings(Strict):
    token: OptionalToken = Field(
        default=None, description="Bearer token with every scope (ORCH_HTTP_TOKEN wins); "
        "empty or blank means none.")
    tokens: list[HttpToken] = Field(
        default_factory=list, description="More tokens, each with its own scopes.")
    auth: HttpAuth | None = Field(
        default=None, description="OAuth access tokens from an identity provider (type jwt "
        "or introspection), accepted besides the tokens above")
    limits: PrincipalLimits = Field(
        default_factory=PrincipalLimits, description="limits of every HTTP caller that has "
        "none of its own (a token's or managed key's `limits`)")
    rate_limit_per_second: float = Field(
        default=20, gt=0, le=100_000, description="MCP requests per second per token")
    rate_limit_burst: int = Field(default=40, ge=1, le=1_000_000)
    max_request_bytes: int = Field(default=4 * 1_048_576, ge=1024, le=256 * 1_048_576,
                                   description="largest request body on /mcp and /approvals")
    allowed_hosts: list[str] = Field(
        default_factory=list, description="Host header names accepted besides the loopback "
        "names on a loopback bind (DNS-rebinding guard); globs like '*.example.com'")
    allowed_origins: list[str] = Field(
        default_factory=list, description="browser origins accepted besides loopback ones, "
        "e.g. 'https://console.example.com'")

    @field_validator("tokens")
    @classmethod
    def _distinct(cls, tokens: list[HttpToken]) -> list[HttpToken]:
        names = [t.name for t in tokens]
        values = [t.token for t in tokens]
        if len(set(names)) != len(names):
            raise ValueError("two tokens have the same name")
        if len(set(values)) != len(values):
            raise ValueError("two tokens have the same value")
        return tokens
