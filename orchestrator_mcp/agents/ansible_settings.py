"""The ansible agent in the registry: `agents.ansible` in servers.yaml and its profile.
Its tools are in ansible.py, imported only when it is enabled (ansible-runner only when a
playbook runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field

from orchestrator_mcp.agents import Agent, AgentSettings, absolute


class AnsibleAgentSettings(AgentSettings):
    playbooks_dir: Path = Field(default=Path("playbooks"),
                                description="the only folder playbooks are taken from")
    inventory: str = Field(default="localhost,", description="inventory file or host list")
    artifacts_dir: Path | None = Field(
        default=None, description="where each run's artifacts are kept (default: "
        "<data dir>/ansible-artifacts)")
    timeout: float = Field(default=600, gt=0, le=86_400, description="seconds per playbook")

    def resolved(self, base: Path, data_dir: Path | None) -> Self:
        copy = super().resolved(base, data_dir)
        copy.playbooks_dir = absolute(base, copy.playbooks_dir)
        if "," not in copy.inventory:  # a file, not a host list
            copy.inventory = str(absolute(base, Path(copy.inventory)))
        if copy.artifacts_dir is not None:
            copy.artifacts_dir = absolute(base, copy.artifacts_dir)
        elif data_dir is not None:
            copy.artifacts_dir = data_dir.resolve() / "ansible-artifacts"
        return copy


AGENT = Agent(
    name="ansible",
    settings=AnsibleAgentSettings,
    description="Remediation with the playbooks in playbooks/: check first, then apply.",
    role="You remediate with Ansible. Always run ansible_check first and quote its diff; "
         "apply with ansible_run only what the check showed.",
    server="orchestrator_mcp.agents.ansible",
)
