"""The logs agent in the registry: `agents.logs` in servers.yaml and its profile.
Its tools are in logs.py, imported only when it is enabled."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field

from orchestrator_mcp.agents import Agent, AgentSettings, absolute


class LogsAgentSettings(AgentSettings):
    roots: list[Path] = Field(default_factory=lambda: [Path("/var/log")],
                              description="only files under these folders can be read")
    max_lines: int = Field(default=1000, ge=1, le=100_000, description="lines per answer")
    max_scan_bytes: int = Field(default=64 * 1024 * 1024, ge=1024,
                                description="bytes read from one file per call")
    timeout: float = Field(default=20, gt=0, le=300, description=(
        "seconds per call: journalctl, and the line scans of grep and error_summary"))

    def resolved(self, base: Path, data_dir: Path | None) -> Self:
        copy = super().resolved(base, data_dir)
        copy.roots = [absolute(base, p) for p in copy.roots]
        return copy


AGENT = Agent(
    name="logs",
    settings=LogsAgentSettings,
    description="Log analysis: tail, grep, error signatures, the systemd journal.",
    role="You are a log analyst. Find the first error and the most frequent error signature; "
         "quote the log lines you rely on with their file and line.",
    server="orchestrator_mcp.agents.logs",
)
