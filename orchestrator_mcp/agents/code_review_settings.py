"""The code_review agent in the registry: `agents.code_review` in servers.yaml and its
profile. Its tools are in code_review.py, imported only when it is enabled."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field

from orchestrator_mcp.agents import Agent, AgentSettings, absolute


class CodeReviewAgentSettings(AgentSettings):
    roots: list[Path] = Field(default_factory=lambda: [Path(".")],
                              description="only files under these folders can be reviewed")
    max_file_bytes: int = Field(default=1024 * 1024, ge=1024)
    timeout: float = Field(default=60, gt=0, le=600, description="seconds per linter run")

    def resolved(self, base: Path, data_dir: Path | None) -> Self:
        copy = super().resolved(base, data_dir)
        copy.roots = [absolute(base, p) for p in copy.roots]
        return copy


AGENT = Agent(
    name="code_review",
    settings=CodeReviewAgentSettings,
    description="Code review: risky patterns, lint findings, git diffs; read-only.",
    role="You review code for operational and security risk. Cite file and line for every "
         "finding and rank them by severity.",
    server="orchestrator_mcp.agents.code_review",
)
