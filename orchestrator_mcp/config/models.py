"""Validated shapes of servers.yaml and profiles.yaml.

Every model forbids unknown keys so a typo is an error, not a silently ignored option.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from orchestrator_mcp.config.agents import AgentsSettings
from orchestrator_mcp.config.base import (
    TOKEN_HINT,
    OptionalSecret,
    OptionalToken,
    Strict,
    check_token,
)
from orchestrator_mcp.config.knowledge import KnowledgeSettings
from orchestrator_mcp.config.llm import LLMSettings
from orchestrator_mcp.config.workflows import WorkflowDef

SERVER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
GLOB_CHARS = re.compile(r"^[A-Za-z0-9_.*?\[\]!/-]+$")
Era = Literal["auto", "legacy", "2026-07-28"]


def _check_name(name: str) -> str:
    if not SERVER_NAME.match(name):
        raise ValueError(
            f"name {name!r} must be 1-32 letters, digits, '_' or '-', starting with a letter "
            "or digit (server names prefix tool names)"
        )
    return name


Name = Annotated[str, AfterValidator(_check_name)]


def _check_glob(pattern: str) -> str:
    if not pattern or not GLOB_CHARS.match(pattern):
        raise ValueError(
            f"{pattern!r} is not a tool-name glob; use letters, digits, '_', '-', '.', "
            "and the wildcards '*', '?', '[...]'"
        )
    if pattern.count("[") != pattern.count("]"):
        raise ValueError(f"{pattern!r} has an unclosed '[' character class")
    return pattern


class ToolFilter(Strict):
    """Which of a server's tools reach the catalog: allowed by `allow`, then not by `deny`."""

    allow: list[str] = Field(default_factory=lambda: ["*"])
    deny: list[str] = Field(default_factory=list)

    @field_validator("allow", "deny")
    @classmethod
    def _globs(cls, patterns: list[str]) -> list[str]:
        return [_check_glob(p) for p in patterns]


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
        return [_check_glob(p) for p in patterns]


class GatewaySettings(Strict):
    passthrough: bool = Field(
        default=False, description="Also expose every catalog tool directly on the front."
    )
    tool_search_threshold: int = Field(
        default=40,
        ge=0,
        description="With pass-through, above this many catalog tools hosts get BM25 tool "
        "search instead of the full list (0 disables search).",
    )
    default_timeout: float = Field(default=60, gt=0, le=3600)
    connect_timeout: float = Field(default=30, gt=0, le=600)
    reconnect_max_backoff: float = Field(default=60, ge=1, le=3600)
    host_calls: HostCallPolicy = Field(
        default_factory=HostCallPolicy,
        description="which of hosts' direct calls of catalog tools a human confirms first")


Scope = Literal["read", "run", "approve", "admin"]
ALL_SCOPES: tuple[Scope, ...] = ("read", "run", "approve", "admin")


class HttpToken(Strict):
    name: Name
    token: str = Field(description="at least 16 characters, no spaces")
    scopes: list[Scope] = Field(min_length=1)

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


class AuditSettings(Strict):
    retention_days: float = Field(default=90, gt=0, le=3650,
                                  description="audit entries older than this are dropped")


class RunsSettings(Strict):
    database_url: str | None = Field(
        default=None, description="postgresql://user:password@host:5432/db shared by every "
        "replica (ORCH_DATABASE_URL wins); unset: the embedded SQLite files of the data dir")
    worker_concurrency: int = Field(default=50, ge=1, le=10_000,
                                    description="runs one process executes at once")
    global_concurrency: int | None = Field(
        default=None, ge=1, le=1_000_000,
        description="runs executing at once across all replicas (shared database only)")
    heartbeat_seconds: float = Field(default=2, gt=0, le=60)
    executor_dead_after_seconds: float = Field(
        default=15, gt=0, le=3600, description="a replica silent this long is presumed dead "
        "and its runs are recovered by another")

    @model_validator(mode="after")
    def _dead_after_heartbeats(self) -> RunsSettings:
        if self.executor_dead_after_seconds < 3 * self.heartbeat_seconds:
            raise ValueError("executor_dead_after_seconds must be at least 3 heartbeats")
        return self


class ServersFile(Strict):
    servers: dict[Name, ServerConfig] = Field(default_factory=dict)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    agents: AgentsSettings = Field(default_factory=AgentsSettings)
    knowledge: KnowledgeSettings = Field(default_factory=KnowledgeSettings)
    runs: RunsSettings = Field(default_factory=RunsSettings)

    @model_validator(mode="before")
    @classmethod
    def _accept_host_shape(cls, data: object) -> object:
        if isinstance(data, dict) and "mcpServers" in data:
            data = dict(data)
            if "servers" in data:
                raise ValueError("use either 'servers' or 'mcpServers', not both")
            data["servers"] = data.pop("mcpServers")
        return data



class ApprovalRules(Strict):
    """When a tool call waits for a human. Globs match catalog tool names."""

    require: list[str] = Field(default_factory=list)
    auto_approve: list[str] = Field(default_factory=list)
    destructive: Literal["require", "allow"] = "require"
    timeout_seconds: float = Field(
        default=3600, gt=0, le=7 * 86400,
        description="how long a call waits for a decision before it expires (not executed)")

    @field_validator("require", "auto_approve")
    @classmethod
    def _globs(cls, patterns: list[str]) -> list[str]:
        return [_check_glob(p) for p in patterns]


class Budgets(Strict):
    max_steps: int = Field(default=20, ge=1, le=1000)
    max_tokens: int | None = Field(default=None, ge=1)
    max_cost_usd: float | None = Field(default=None, gt=0)
    max_seconds: float = Field(default=600, gt=0, le=86400)


class ProfileConfig(Strict):
    description: str = ""
    role: str = Field(default="", description="Role prompt given to the planner.")
    servers: list[str] = Field(default_factory=lambda: ["*"])
    tools: ToolFilter = Field(default_factory=ToolFilter)
    model: str | None = None
    provider: Literal["openai", "ollama", "bedrock", "scripted"] | None = None
    approval: ApprovalRules = Field(default_factory=ApprovalRules)
    budgets: Budgets = Field(default_factory=Budgets)
    delegates: list[str] = Field(
        default_factory=list, description="profiles (agents) this one may hand sub-tasks to: "
        "the model gets a delegate_to_agent tool, and each use is a child run")

    @field_validator("servers")
    @classmethod
    def _server_globs(cls, patterns: list[str]) -> list[str]:
        return [_check_glob(p) for p in patterns]


class AlertRule(Strict):
    """Which alerts open which runs. Every `match` label must be equal and every `match_re`
    label must fully match its regex; the first matching rule wins."""

    name: Name
    match: dict[str, str] = Field(default_factory=dict)
    match_re: dict[str, str] = Field(default_factory=dict)
    profile: str = "default"
    goal: str = Field(
        default="Alert {{ labels.alertname }} is {{ status }} on "
        "{{ labels.instance | default('an unknown instance') }}: "
        "{{ annotations.summary | default('') }}. Diagnose the cause with read-only tools "
        "and the runbooks, then propose a remediation.",
        description="Jinja2 template (sandboxed) over status, labels, annotations, alerts.",
    )
    workflow: str | None = Field(
        default=None, description="run this workflow instead of a goal run; its inputs "
        "come from `workflow_inputs` templates")
    workflow_inputs: dict[str, str] = Field(default_factory=dict)
    cancel_on_resolved: bool = False
    max_concurrent: int = Field(default=5, ge=1, le=1000)
    cooldown_seconds: float = Field(default=0, ge=0, le=86400)

    @field_validator("match_re")
    @classmethod
    def _regexes(cls, patterns: dict[str, str]) -> dict[str, str]:
        for label, pattern in patterns.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"match_re.{label}: {pattern!r} is not a valid regex "
                                 f"({exc.msg})") from None
        return patterns

    @field_validator("goal")
    @classmethod
    def _template(cls, goal: str) -> str:
        from jinja2 import TemplateSyntaxError
        from jinja2.sandbox import SandboxedEnvironment

        try:
            SandboxedEnvironment().parse(goal)
        except TemplateSyntaxError as exc:
            raise ValueError(f"goal template error at line {exc.lineno}: {exc.message}") from None
        return goal


class AlertsSettings(Strict):
    token: OptionalToken = Field(
        default=None, description="Bearer token Alertmanager sends (http_config.authorization); "
        "the HTTP token is accepted too.")
    hmac_secret: OptionalSecret = Field(
        default=None, description="If set, requests must carry X-Signature-256: sha256=<hex>.")
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    max_new_runs_per_minute: int = Field(default=30, ge=1, le=100_000)
    deliver_url: str | None = Field(
        default=None, description="POST each alert run's outcome here (Slack-compatible JSON).")
    rules: list[AlertRule] = Field(default_factory=list)


class ProfilesFile(Strict):
    profiles: dict[Name, ProfileConfig] = Field(default_factory=dict)
    alerts: AlertsSettings = Field(default_factory=AlertsSettings)
    workflows: dict[Name, WorkflowDef] = Field(default_factory=dict)


