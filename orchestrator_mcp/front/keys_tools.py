"""Admin tools for managed API keys (scope admin over HTTP; auth/keys.py and
auth/key_store.py do the work)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

from fastmcp import FastMCP
from mcp_types import ToolAnnotations
from pydantic import Field

from orchestrator_mcp.auth import local_id
from orchestrator_mcp.auth.keys import KeyInfo, NewKey, key_request
from orchestrator_mcp.config.http import PrincipalLimits
from orchestrator_mcp.front.scopes import current_principal
from orchestrator_mcp.runs.engine import RunEngine

if TYPE_CHECKING:
    from orchestrator_mcp.auth.key_store import KeyStore

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)


def _caller() -> str:
    principal = current_principal()
    return principal.id if principal is not None else local_id()


def register_key_tools(mcp: FastMCP, engine: RunEngine) -> None:
    async def store() -> KeyStore:
        from orchestrator_mcp.auth.key_store import KeyStore  # SQLAlchemy: on first use

        return KeyStore(await engine.database_engine())

    @mcp.tool
    async def create_key(
        name: Annotated[str, Field(min_length=1, max_length=32,
                                   description="letters, digits, '_' or '-'")],
        scopes: Annotated[list[str], Field(min_length=1, max_length=5, description=(
            "of read, read_all, run, approve, admin"))],
        expires: Annotated[str, Field(max_length=40, description=(
            "30d, 12h, 2w, a date (UTC), an ISO time, or 'never'"))] = "90d",
        limits: PrincipalLimits | None = None,
    ) -> NewKey:
        """Create an API key for serve --http. The key is in the answer this once only:
        only its hash is kept."""
        request = key_request(name, scopes, expires, limits)
        return await asyncio.to_thread((await store()).create, request, _caller())

    @mcp.tool(annotations=READ_ONLY)
    async def list_keys(include_inactive: bool = False) -> list[KeyInfo]:
        """API keys (never their secrets): scopes, expiry, last use, who created them."""
        keys = await store()
        return await asyncio.to_thread(keys.list, include_inactive=include_inactive)

    @mcp.tool(annotations=ToolAnnotations(destructive_hint=True, idempotent_hint=False))
    async def revoke_key(
        name: Annotated[str, Field(min_length=1, max_length=64,
                                   description="the key's name or prefix")],
    ) -> KeyInfo:
        """Revoke a key: every replica refuses it from its next request on."""
        return await asyncio.to_thread((await store()).revoke, name, _caller())
