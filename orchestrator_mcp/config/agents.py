"""The `agents:` section of servers.yaml: which built-in agents are mounted, and their limits.

Made from the agent registry (orchestrator_mcp/agents/__init__.py): one key per agent, whose
model each agent declares itself; an unknown key is an error. Relative paths are resolved
against the config directory (the folder holding servers.yaml).
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, create_model

from orchestrator_mcp.agents import registry
from orchestrator_mcp.config.base import Strict


class _AgentsSection(Strict):
    def resolved(self, base: Path | None, data_dir: Path | None = None) -> Self:
        """A copy with relative paths made absolute against `base` (the config directory),
        and defaults under `data_dir` (the Ansible artifacts) filled in."""
        base = (base or Path.cwd()).resolve()
        return self.model_copy(update={name: getattr(self, name).resolved(base, data_dir)
                                       for name in type(self).model_fields})


AgentsSettings = create_model(
    "AgentsSettings",
    __base__=_AgentsSection,
    __module__=__name__,
    __doc__="Each built-in agent's settings, under its name.",
    **{agent.name: (agent.settings, Field(default_factory=agent.settings,
                                          description=agent.description))
       for agent in registry()},
)


def builtin_agent_profiles(settings: AgentsSettings, knowledge: bool) -> dict[str, dict]:
    """The profile each enabled agent runs under unless profiles.yaml defines one of its
    name: its description and role, its own tools, plus the runbooks when available."""
    return {agent.name: {"description": agent.description, "role": agent.role,
                         "servers": [agent.name, "knowledge"] if knowledge else [agent.name]}
            for agent in registry() if getattr(settings, agent.name).enabled}
