"""Built-in IT-ops agents: in-process FastMCP servers the gateway mounts beside the
downstream ones (`system_cpu`, `network_tcp_check`, `logs_tail`, ...).

The registry below has one line per agent: the module that declares it with
`AGENT = Agent(...)` — its name (its key under `agents:` in servers.yaml, its server name
and its profile name), its settings model, its profile's description and role, and the
module whose `build(settings)` makes its FastMCP server. The `agents:` section
(config/agents.py), the agents' profiles, `build_enabled_agents` and the names `ask_agent`
offers all come from it. A declaring module is imported whenever servers.yaml is
validated, so it imports nothing heavier than pydantic (and nothing from
orchestrator_mcp.config, whose loading imports it); the tools module is imported only
when the agent is enabled. Adding an agent: see "Adding a built-in agent" in README.md.
"""

from __future__ import annotations

import functools
import importlib
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from orchestrator_mcp.strict import Strict

if TYPE_CHECKING:
    from orchestrator_mcp.config.agents import AgentsSettings

# One line per built-in agent, in the order they are listed and mounted.
REGISTRY: tuple[str, ...] = (
    "orchestrator_mcp.agents.system_settings",
    "orchestrator_mcp.agents.network_settings",
    "orchestrator_mcp.agents.logs_settings",
    "orchestrator_mcp.agents.infrastructure_settings",
    "orchestrator_mcp.agents.osquery_settings",
    "orchestrator_mcp.agents.ansible_settings",
    "orchestrator_mcp.agents.code_review_settings",
)


_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class AgentSettings(Strict):
    """The base of an agent's settings (`agents.<name>` in servers.yaml): unknown keys are
    errors, like everywhere in the configuration."""

    enabled: bool = True

    def resolved(self, base: Path, data_dir: Path | None) -> Self:
        """A copy with relative paths made absolute against `base` (the config directory,
        already absolute) and defaults under `data_dir` filled in; override when the
        settings hold paths."""
        return self.model_copy(deep=True)


def absolute(base: Path, path: Path) -> Path:
    """`path` made absolute against `base`, symlinks resolved."""
    return (path if path.is_absolute() else base / path).resolve()


@dataclass(frozen=True)
class Agent:
    """What the registry knows of one agent."""

    name: str  # key under `agents:`, server name (prefix of its tools), profile name
    settings: type[AgentSettings]
    description: str  # one line: the profile's description, list_agents and the schema
    role: str  # the profile's role prompt
    server: str  # the module whose `build(settings)` returns the agent's FastMCP server

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):  # it prefixes tool names and names a profile
            raise ValueError(f"agent name {self.name!r}: use 1-32 lower-case letters, digits "
                             "or '_', starting with a letter")

    def build(self, settings: AgentSettings) -> Any:
        """The agent's FastMCP server (its module is imported here, not before)."""
        return importlib.import_module(self.server).build(settings)


@cache
def registry() -> tuple[Agent, ...]:
    """Every built-in agent, in REGISTRY order."""
    agents = tuple(importlib.import_module(path).AGENT for path in REGISTRY)
    names = [agent.name for agent in agents]
    if len(set(names)) != len(names):
        raise RuntimeError(f"two built-in agents have the same name: {names}")
    return agents


def agent_names() -> tuple[str, ...]:
    return tuple(agent.name for agent in registry())


class LazyServers(Mapping[str, Any]):
    """name → FastMCP server, each built on first access: building the agents' servers
    (their modules imported, their tools' schemas generated, ≈ 0.2 s for all) waits until
    the gateway first connects to them (in a worker thread), after the front has answered
    its host."""

    def __init__(self) -> None:
        self._builders: dict[str, Callable[[], Any]] = {}
        self._built: dict[str, Any] = {}
        self._lock = threading.Lock()

    def add(self, name: str, builder: Callable[[], Any]) -> None:
        self._builders[name] = builder

    def __getitem__(self, name: str) -> Any:
        """The server, built now if not yet, listing self-contained schemas
        (schemas.InlineDefinitions)."""
        from orchestrator_mcp.schemas import InlineDefinitions

        with self._lock:  # connections build theirs in worker threads
            if name not in self._built:
                server = self._builders[name]()
                server.add_transform(InlineDefinitions())
                self._built[name] = server
            return self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._builders)

    def __len__(self) -> int:
        return len(self._builders)


def build_enabled_agents(settings: AgentsSettings, config_dir: Path | None = None,
                         data_dir: Path | None = None) -> LazyServers:
    """name → FastMCP server for every enabled agent (modules imported only when enabled,
    each server built when first asked for)."""
    resolved = settings.resolved(config_dir, data_dir)
    servers = LazyServers()
    for agent in registry():
        agent_settings = getattr(resolved, agent.name)
        if agent_settings.enabled:
            servers.add(agent.name, functools.partial(agent.build, agent_settings))
    return servers
