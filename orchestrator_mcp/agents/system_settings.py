"""The system agent in the registry: `agents.system` in servers.yaml and its profile.
Its tools are in system.py (psutil), imported only when it is enabled."""

from __future__ import annotations

from pydantic import Field

from orchestrator_mcp.agents import Agent, AgentSettings


class SystemAgentSettings(AgentSettings):
    top_processes: int = Field(default=10, ge=1, le=200)


AGENT = Agent(
    name="system",
    settings=SystemAgentSettings,
    description="Host health: CPU, memory, disks, processes, ports.",
    role="You are a Linux system engineer. Measure before you conclude; quote the figures "
         "you rely on.",
    server="orchestrator_mcp.agents.system",
)
