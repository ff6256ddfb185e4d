"""Built-in IT-ops agents: in-process FastMCP servers the gateway mounts beside the
downstream ones (`system_cpu`, `network_tcp_check`, ...)."""

from __future__ import annotations

from typing import Any

from orchestrator_mcp.config.agents import AgentsSettings

AGENT_NAMES: tuple[str, ...] = ("system", "network")

DEFAULT_PROFILES: dict[str, dict[str, Any]] = {
    "system": {
        "description": "Host health: CPU, memory, disks, processes, ports.",
        "role": "You are a Linux system engineer. Measure before you conclude; quote the "
                "figures you rely on.",
        "servers": ["system", "knowledge"],
    },
    "network": {
        "description": "Reachability: DNS, TCP, HTTP(S), TLS certificates.",
        "role": "You are a network engineer. Check each layer in order (DNS, TCP, TLS, HTTP) "
                "and say which layer fails.",
        "servers": ["network", "knowledge"],
    },
}


def build_enabled_agents(settings: AgentsSettings) -> dict[str, Any]:
    """name → FastMCP server for every enabled agent."""
    from orchestrator_mcp.agents import network, system

    builders = {"system": lambda: system.build(settings.system),
                "network": lambda: network.build(settings.network)}
    return {name: build() for name, build in builders.items()
            if getattr(settings, name).enabled}
