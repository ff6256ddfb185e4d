"""The osquery agent in the registry: `agents.osquery` in servers.yaml and its profile.
Its tools are in osquery.py, imported only when it is enabled."""

from __future__ import annotations

from pydantic import Field

from orchestrator_mcp.agents import Agent, AgentSettings


class OsqueryAgentSettings(AgentSettings):
    binary: str = "osqueryi"
    timeout: float = Field(default=30, gt=0, le=600)
    max_rows: int = Field(default=1000, ge=1, le=100_000)


AGENT = Agent(
    name="osquery",
    settings=OsqueryAgentSettings,
    description="Host inventory and state through read-only osquery SQL.",
    role="You answer questions about this host with osquery SELECT statements; prefer the "
         "presets.",
    server="orchestrator_mcp.agents.osquery",
)
