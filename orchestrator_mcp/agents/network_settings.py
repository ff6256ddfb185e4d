"""The network agent in the registry: `agents.network` in servers.yaml and its profile.
Its tools are in network.py, imported only when it is enabled."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import AfterValidator, Field

from orchestrator_mcp.agents import Agent, AgentSettings


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


class NetworkAgentSettings(AgentSettings):
    """Loopback, link-local and cloud metadata addresses are refused unless `allow_cidrs`
    names them; `deny_cidrs` refuses more. The most specific range decides (the rules are in
    orchestrator_mcp/agents/_egress.py)."""

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


AGENT = Agent(
    name="network",
    settings=NetworkAgentSettings,
    description="Reachability: DNS, TCP, HTTP(S), TLS certificates, ping, traceroute.",
    role="You are a network engineer. Check each layer in order (DNS, TCP, TLS, HTTP) and say "
         "which layer fails.",
    server="orchestrator_mcp.agents.network",
)
