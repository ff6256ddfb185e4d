"""The `agents:` section of servers.yaml: which built-in agents are mounted, and their limits."""

from __future__ import annotations

from pydantic import Field

from orchestrator_mcp.config.base import Strict


class SystemAgentSettings(Strict):
    enabled: bool = True
    top_processes: int = Field(default=10, ge=1, le=200)


class NetworkAgentSettings(Strict):
    enabled: bool = True
    timeout: float = Field(default=5, gt=0, le=60, description="seconds per check")
    max_redirects: int = Field(default=5, ge=0, le=20)


class AgentsSettings(Strict):
    system: SystemAgentSettings = Field(default_factory=SystemAgentSettings)
    network: NetworkAgentSettings = Field(default_factory=NetworkAgentSettings)
