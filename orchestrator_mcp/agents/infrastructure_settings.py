"""The infrastructure agent in the registry: `agents.infrastructure` in servers.yaml and its
profile. Its tools are in infrastructure.py, imported only when it is enabled."""

from __future__ import annotations

from pydantic import Field

from orchestrator_mcp.agents import Agent, AgentSettings


class InfrastructureAgentSettings(AgentSettings):
    timeout: float = Field(default=30, gt=0, le=600, description="seconds per command")
    aws: bool = Field(default=True, description="AWS summary when boto3 and credentials exist")
    aws_region: str | None = None


AGENT = Agent(
    name="infrastructure",
    settings=InfrastructureAgentSettings,
    description="Services and containers: systemd units, Docker, AWS summary.",
    role="You are an infrastructure engineer. Read status and logs before acting; restart or "
         "stop a service only when the evidence says so.",
    server="orchestrator_mcp.agents.infrastructure",
)
