"""The `servers:` and `gateway:` sections of servers.yaml: downstream servers, which of their
tools reach the catalog, and how the gateway calls them."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from orchestrator_mcp.config.base import Strict, check_glob

Era = Literal["auto", "legacy", "2026-07-28"]


class ToolFilter(Strict):
    """Which of a server's tools reach the catalog: allowed by `allow`, then not by `deny`."""

    allow: list[str] = Field(default_factory=lambda: ["*"])
    deny: list[str] = Field(default_factory=list)

    @field_validator("allow", "deny")
    @classmethod
    def _globs(cls, patterns: list[str]) -> list[str]:
        return [check_glob(p) for p in patterns]


class ServerConfig(Strict):
    """One downstream MCP server, in the same shape as a host's `mcpServers` entry."""

    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: Path | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    transport: Literal["stdio", "http", "streamable-http", "sse"] | None = None
    enabled: bool = True
    timeout: float | None = Field(default=None, gt=0, le=3600)
    tools: ToolFilter = Field(default_factory=ToolFilter)
    tags: list[str] = Field(default_factory=list)
    protocol: Era = "auto"
    description: str | None = None
    # Keys hosts put in their own entries; accepted so a pasted host config loads.
    type: Literal["stdio", "http", "streamable-http", "sse"] | None = Field(
        default=None, exclude=True
    )
    disabled: bool | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _transport(self) -> ServerConfig:
        if self.disabled is not None:
            self.enabled = not self.disabled
        kind = self.transport or self.type
        if self.command and self.url:
            raise ValueError("give either 'command' (stdio) or 'url' (HTTP/SSE), not both")
        if not self.command and not self.url:
            raise ValueError("give 'command' (a stdio server) or 'url' (an HTTP or SSE server)")
        if self.command:
            if kind not in (None, "stdio"):
                raise ValueError(f"transport {kind!r} needs 'url', not 'command'")
            kind = "stdio"
        else:
            assert self.url is not None
            if not self.url.startswith(("http://", "https://")):
                raise ValueError(f"url {self.url!r} must start with http:// or https://")
            if kind == "stdio":
                raise ValueError("transport 'stdio' needs 'command', not 'url'")
            if kind in (None, "streamable-http"):
                kind = "http"
        self.transport = kind
        return self


class HostCallPolicy(Strict):
    """Hosts' direct catalog calls (call_tool, pass-through tools) that a human confirms
    first: `call_tool` is one generic tool to a host, so the host's own per-tool prompt
    cannot tell an echo from a restart. Checked in order: `allow`, `require`, `destructive`.
    Read-only tools never need confirming unless `require` names them."""

    destructive: Literal["confirm", "allow", "deny"] = Field(
        default="confirm", description="calls of tools marked destructive, or not read-only "
        "and without annotations: ask the host's user inline, run them, or refuse them")
    require: list[str] = Field(
        default_factory=list, description="catalog-name globs always confirmed")
    allow: list[str] = Field(
        default_factory=list, description="catalog-name globs never confirmed")

    @field_validator("require", "allow")
    @classmethod
    def _globs(cls, patterns: list[str]) -> list[str]:
        return [check_glob(p) for p in patterns]


class GatewaySettings(Strict):
    passthrough: bool = Field(
        default=False, description="Also expose every catalog tool directly on the front."
    )
    tool_search_threshold: int = Field(
        default=40,
        ge=0,
        description="With pass-through, above this many catalog tools hosts get "
        "search_tools instead of the full list (0 disables search).",
    )
    tool_search: Literal["bm25", "hybrid"] = Field(
        default="bm25",
        description="How search_tools ranks: bm25 (words), or hybrid (BM25 fused with "
        "embeddings of the local model; needs the embeddings extra, loads the model and "
        "embeds every tool description once per catalog change).",
    )
    default_timeout: float = Field(default=60, gt=0, le=3600)
    connect_timeout: float = Field(default=30, gt=0, le=600)
    reconnect_max_backoff: float = Field(default=60, ge=1, le=3600)
    host_calls: HostCallPolicy = Field(
        default_factory=HostCallPolicy,
        description="which of hosts' direct calls of catalog tools a human confirms first")
