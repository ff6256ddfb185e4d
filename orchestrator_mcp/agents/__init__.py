"""Built-in IT-ops agents: in-process FastMCP servers the gateway mounts beside the
downstream ones (`system_cpu`, `network_tcp_check`, `logs_tail`, ...)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from orchestrator_mcp.config.agents import AgentsSettings

AGENT_NAMES: tuple[str, ...] = (
    "system", "network", "logs", "infrastructure", "osquery", "ansible", "code_review")

def build_enabled_agents(settings: AgentsSettings, config_dir: Path | None = None,
                         data_dir: Path | None = None) -> dict[str, Any]:
    """name → FastMCP server for every enabled agent (modules imported only when enabled)."""
    resolved = settings.resolved(config_dir, data_dir)
    servers: dict[str, Any] = {}
    for name in AGENT_NAMES:
        agent_settings = getattr(resolved, name)
        if agent_settings.enabled:
            module = importlib.import_module(f"orchestrator_mcp.agents.{name}")
            servers[name] = module.build(agent_settings)
    return servers
