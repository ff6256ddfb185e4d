"""The `profiles:` section of profiles.yaml: agent profiles for runs (role, tools, model,
approval rules, budgets, delegates, memory)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from orchestrator_mcp.config.base import Strict, check_glob
from orchestrator_mcp.config.gateway import ToolFilter


class ApprovalRules(Strict):
    """When a tool call waits for a human. Globs match catalog tool names."""

    require: list[str] = Field(default_factory=list)
    auto_approve: list[str] = Field(default_factory=list)
    destructive: Literal["require", "allow"] = "require"
    timeout_seconds: float = Field(
        default=3600, gt=0, le=7 * 86400,
        description="how long a call waits for a decision before it expires (not executed)")
    separate_approver: bool = Field(
        default=False, description="four eyes: whoever started the run may not approve its "
        "calls (they may still reject them)")
    approvers: int = Field(
        default=1, ge=1, le=10, description="distinct principals who must approve a call; "
        "it runs after the last approval, and one rejection rejects it")

    @field_validator("require", "auto_approve")
    @classmethod
    def _globs(cls, patterns: list[str]) -> list[str]:
        return [check_glob(p) for p in patterns]


class Budgets(Strict):
    max_steps: int = Field(default=20, ge=1, le=1000)
    max_tokens: int | None = Field(default=None, ge=1)
    max_cost_usd: float | None = Field(default=None, gt=0)
    max_seconds: float = Field(default=600, gt=0, le=86400)


class MemorySettings(Strict):
    """Facts a profile's runs keep for later runs (orchestrator_mcp/memory)."""

    enabled: bool = Field(default=False, description="give runs memory_recall (and "
                          "memory_remember unless write is off) and the goal's top memories")
    write: Literal["auto", "approve", "off"] = Field(
        default="approve", description="approve: every memory_remember waits for a human "
        "like a risky tool call (a tool result may try to plant a 'fact'); auto: written at "
        "once (still audited); off: runs only recall")
    recall_top_k: int = Field(default=3, ge=0, le=20, description="memories given to the "
                              "model at the start of a run (0: none; memory_recall still "
                              "works)")


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
    memory: MemorySettings = Field(default_factory=MemorySettings)

    @field_validator("servers")
    @classmethod
    def _server_globs(cls, patterns: list[str]) -> list[str]:
        return [check_glob(p) for p in patterns]
