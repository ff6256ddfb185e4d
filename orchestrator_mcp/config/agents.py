"""The `agents:` section of servers.yaml: which built-in agents are mounted, and their limits.

Relative paths are resolved against the config directory (the folder holding servers.yaml).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field

from orchestrator_mcp.config.base import Strict


class SystemAgentSettings(Strict):
    enabled: bool = True
    top_processes: int = Field(default=10, ge=1, le=200)


def check_cidr(value: str) -> str:
    """An address range such as 10.0.0.0/8 or fd00::/8 (a bare address means just it)."""
    try:
        return str(ipaddress.ip_network(value.strip(), strict=True))
    except ValueError as exc:
        if "host bits set" in str(exc):
            wider = ipaddress.ip_network(value.strip(), strict=False)
            raise ValueError(f"{value!r} has host bits set — write {wider}") from None
        raise ValueError(f"{value!r} is not an address range ({exc}) — write it as "
                         "ADDRESS/PREFIX, e.g. 10.0.0.0/8 or 127.0.0.1/32") from None


Cidr = Annotated[str, AfterValidator(check_cidr)]


class NetworkAgentSettings(Strict):
    """Loopback, link-local and cloud metadata addresses are refused unless `allow_cidrs`
    names them; `deny_cidrs` refuses more. The most specific range decides (the rules are in
    orchestrator_mcp/agents/_egress.py)."""

    enabled: bool = True
    timeout: float = Field(default=5, gt=0, le=60, description="seconds per check")
    max_redirects: int = Field(default=5, ge=0, le=20)
    ping_count: int = Field(default=3, ge=1, le=20)
    traceroute_max_hops: int = Field(default=20, ge=1, le=64)
    allow_cidrs: list[Cidr] = Field(default_factory=list, description=(
        "ranges the checks may reach although a built-in rule refuses them, e.g. "
        "127.0.0.0/8 for this host's services; a range wider than the built-in one (such as "
        "0.0.0.0/0) does not lift it"))
    deny_cidrs: list[Cidr] = Field(default_factory=list, description=(
        "ranges the checks must not reach, e.g. 10.0.0.0/8; a narrower allow_cidrs entry "
        "makes an exception"))


class LogsAgentSettings(Strict):
    enabled: bool = True
    roots: list[Path] = Field(default_factory=lambda: [Path("/var/log")],
                              description="only files under these folders can be read")
    max_lines: int = Field(default=1000, ge=1, le=100_000, description="lines per answer")
    max_scan_bytes: int = Field(default=64 * 1024 * 1024, ge=1024,
                                description="bytes read from one file per call")
    timeout: float = Field(default=20, gt=0, le=300, description=(
        "seconds per call: journalctl, and the line scans of grep and error_summary"))


class InfrastructureAgentSettings(Strict):
    enabled: bool = True
    timeout: float = Field(default=30, gt=0, le=600, description="seconds per command")
    aws: bool = Field(default=True, description="AWS summary when boto3 and credentials exist")
    aws_region: str | None = None


class OsqueryAgentSettings(Strict):
    enabled: bool = True
    binary: str = "osqueryi"
    timeout: float = Field(default=30, gt=0, le=600)
    max_rows: int = Field(default=1000, ge=1, le=100_000)


class AnsibleAgentSettings(Strict):
    enabled: bool = True
    playbooks_dir: Path = Field(default=Path("playbooks"),
                                description="the only folder playbooks are taken from")
    inventory: str = Field(default="localhost,", description="inventory file or host list")
    artifacts_dir: Path | None = Field(
        default=None, description="where each run's artifacts are kept (default: "
        "<data dir>/ansible-artifacts)")
    timeout: float = Field(default=600, gt=0, le=86_400, description="seconds per playbook")


class CodeReviewAgentSettings(Strict):
    enabled: bool = True
    roots: list[Path] = Field(default_factory=lambda: [Path(".")],
                              description="only files under these folders can be reviewed")
    max_file_bytes: int = Field(default=1024 * 1024, ge=1024)
    timeout: float = Field(default=60, gt=0, le=600, description="seconds per linter run")


class AgentsSettings(Strict):
    system: SystemAgentSettings = Field(default_factory=SystemAgentSettings)
    network: NetworkAgentSettings = Field(default_factory=NetworkAgentSettings)
    logs: LogsAgentSettings = Field(default_factory=LogsAgentSettings)
    infrastructure: InfrastructureAgentSettings = Field(
        default_factory=InfrastructureAgentSettings)
    osquery: OsqueryAgentSettings = Field(default_factory=OsqueryAgentSettings)
    ansible: AnsibleAgentSettings = Field(default_factory=AnsibleAgentSettings)
    code_review: CodeReviewAgentSettings = Field(default_factory=CodeReviewAgentSettings)

    def resolved(self, base: Path | None, data_dir: Path | None = None) -> AgentsSettings:
        """A copy with relative paths made absolute against `base` (the config directory)."""
        base = (base or Path.cwd()).resolve()

        def absolute(path: Path) -> Path:
            return (path if path.is_absolute() else base / path).resolve()

        copy = self.model_copy(deep=True)
        copy.logs.roots = [absolute(p) for p in copy.logs.roots]
        copy.code_review.roots = [absolute(p) for p in copy.code_review.roots]
        copy.ansible.playbooks_dir = absolute(copy.ansible.playbooks_dir)
        if "," not in copy.ansible.inventory:  # a file, not a host list
            copy.ansible.inventory = str(absolute(Path(copy.ansible.inventory)))
        if copy.ansible.artifacts_dir is not None:
            copy.ansible.artifacts_dir = absolute(copy.ansible.artifacts_dir)
        elif data_dir is not None:
            copy.ansible.artifacts_dir = data_dir.resolve() / "ansible-artifacts"
        return copy


# The profile each built-in agent runs under unless profiles.yaml defines one of that name.
BUILTIN_AGENT_PROFILES: dict[str, dict[str, object]] = {
    "system": {
        "description": "Host health: CPU, memory, disks, processes, ports.",
        "role": "You are a Linux system engineer. Measure before you conclude; quote the "
                "figures you rely on.",
    },
    "network": {
        "description": "Reachability: DNS, TCP, HTTP(S), TLS certificates, ping, traceroute.",
        "role": "You are a network engineer. Check each layer in order (DNS, TCP, TLS, HTTP) "
                "and say which layer fails.",
    },
    "logs": {
        "description": "Log analysis: tail, grep, error signatures, the systemd journal.",
        "role": "You are a log analyst. Find the first error and the most frequent error "
                "signature; quote the log lines you rely on with their file and line.",
    },
    "infrastructure": {
        "description": "Services and containers: systemd units, Docker, AWS summary.",
        "role": "You are an infrastructure engineer. Read status and logs before acting; "
                "restart or stop a service only when the evidence says so.",
    },
    "osquery": {
        "description": "Host inventory and state through read-only osquery SQL.",
        "role": "You answer questions about this host with osquery SELECT statements; prefer "
                "the presets.",
    },
    "ansible": {
        "description": "Remediation with the playbooks in playbooks/: check first, then apply.",
        "role": "You remediate with Ansible. Always run ansible_check first and quote its diff; "
                "apply with ansible_run only what the check showed.",
    },
    "code_review": {
        "description": "Code review: risky patterns, lint findings, git diffs; read-only.",
        "role": "You review code for operational and security risk. Cite file and line for "
                "every finding and rank them by severity.",
    },
}


def builtin_agent_profiles(settings: AgentsSettings, knowledge: bool) -> dict[str, dict]:
    """Profiles for the enabled agents: their own tools, plus the runbooks when available."""
    return {name: {**spec, "servers": [name, "knowledge"] if knowledge else [name]}
            for name, spec in BUILTIN_AGENT_PROFILES.items()
            if getattr(settings, name).enabled}
