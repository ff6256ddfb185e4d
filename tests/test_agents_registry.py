"""The agent registry: the `agents:` section, the agents' profiles, the servers mounted and
the names ask_agent offers all come from one line per agent."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from orchestrator_mcp.agents import agent_names, registry
from orchestrator_mcp.config import ConfigError, load_config
from orchestrator_mcp.config.agents import AgentsSettings, builtin_agent_profiles

REPO = Path(__file__).resolve().parent.parent
BUILT_IN = ("system", "network", "logs", "infrastructure", "osquery", "ansible", "code_review")


def test_the_section_profiles_and_names_come_from_the_registry() -> None:
    assert agent_names() == BUILT_IN
    assert tuple(AgentsSettings.model_fields) == BUILT_IN
    for agent in registry():
        assert isinstance(getattr(AgentsSettings(), agent.name), agent.settings)
        assert agent.description and agent.role and agent.server.endswith(agent.name)
    off = AgentsSettings.model_validate({"osquery": {"enabled": False}})
    profiles = builtin_agent_profiles(off, knowledge=True)
    assert tuple(profiles) == tuple(n for n in BUILT_IN if n != "osquery")
    assert profiles["logs"]["servers"] == ["logs", "knowledge"]
    assert builtin_agent_profiles(off, knowledge=False)["logs"]["servers"] == ["logs"]


def test_unknown_agent_or_agent_key_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "servers.yaml").write_text(yaml.safe_dump(
        {"agents": {"sytem": {}, "logs": {"max_line": 5}}}))
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    text = str(caught.value)
    assert "agents.sytem: Extra inputs are not permitted" in text
    assert "agents.logs.max_line" in text and "fix its spelling" in text


def test_relative_paths_resolve_against_the_config_dir(tmp_path: Path) -> None:
    settings = AgentsSettings.model_validate({
        "logs": {"roots": ["logs", "/var/log"]}, "code_review": {"roots": ["."]},
        "ansible": {"playbooks_dir": "pb", "inventory": "hosts.ini"}})
    resolved = settings.resolved(tmp_path, tmp_path / "data")
    base = tmp_path.resolve()
    assert resolved.logs.roots == [base / "logs", Path("/var/log").resolve()]
    assert resolved.code_review.roots == [base]
    assert resolved.ansible.playbooks_dir == base / "pb"
    assert resolved.ansible.inventory == str(base / "hosts.ini")
    assert resolved.ansible.artifacts_dir == base / "data" / "ansible-artifacts"
    assert settings.logs.roots == [Path("logs"), Path("/var/log")]  # the original is unchanged
    assert AgentsSettings().resolved(tmp_path).ansible.inventory == "localhost,"


def test_validating_the_config_imports_no_agent_tools(tmp_path: Path) -> None:
    (tmp_path / "servers.yaml").write_text(yaml.safe_dump(
        {"agents": {"logs": {"roots": ["."]}, "network": {"allow_cidrs": ["127.0.0.0/8"]}}}))
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from orchestrator_mcp.config import load_config
        load_config(Path({str(tmp_path)!r}))
        heavy = ("psutil", "fastmcp", "mcp_types", "ansible", "ansible_runner", "re2", "dns",
                 "orchestrator_mcp.agents.system", "orchestrator_mcp.agents.network",
                 "orchestrator_mcp.agents.logs", "orchestrator_mcp.agents.ansible")
        print(sorted(m for m in sys.modules if m in heavy or m.split(".")[0] in heavy))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, check=True)
    assert done.stdout.strip() == "[]"



def test_re2_loads_when_a_tool_first_scans_not_with_the_agents(tmp_path: Path) -> None:
    """Every server builds the agents; RE2 (≈ 2 MB of an idle server) waits for a scan."""
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from orchestrator_mcp.agents import build_enabled_agents
        from orchestrator_mcp.config.agents import AgentsSettings
        build_enabled_agents(AgentsSettings(), Path({str(tmp_path)!r}), Path({str(tmp_path)!r}))
        assert "re2" not in sys.modules, "re2 imported with the agents"
        from orchestrator_mcp.agents._logfiles import severity
        assert severity("12:00 ERROR disk full") == ("error", 6)
        assert "re2" in sys.modules
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, check=False)
    assert done.returncode == 0, done.stderr

ECHO_AGENT = '''
"""A test agent declared in one light module: settings, registry entry and tools."""
from pydantic import Field

from orchestrator_mcp.agents import Agent, AgentSettings


class EchoAgentSettings(AgentSettings):
    greeting: str = Field(default="hello", max_length=20)


def build(settings: EchoAgentSettings):
    from fastmcp import FastMCP

    mcp = FastMCP("echo")

    @mcp.tool
    def greet(name: str) -> str:
        return f"{settings.greeting}, {name}"

    return mcp


AGENT = Agent(name="echo", settings=EchoAgentSettings, description="Says hello.",
              role="You greet.", server=__name__)
'''


def test_adding_an_agent_is_one_module_and_one_registry_line(tmp_path: Path) -> None:
    (tmp_path / "echo_agent.py").write_text(ECHO_AGENT)
    config = tmp_path / "config"
    config.mkdir()
    (config / "servers.yaml").write_text(yaml.safe_dump(
        {"agents": {"echo": {"greeting": "hi"}}, "knowledge": {"enabled": False}}))
    code = textwrap.dedent(f"""
        import asyncio, sys
        from pathlib import Path
        sys.path.insert(0, {str(tmp_path)!r})
        import orchestrator_mcp.agents as agents
        agents.REGISTRY += ("echo_agent",)  # the one registry line

        from fastmcp import Client
        from orchestrator_mcp.config import load_config

        config = load_config(Path({str(config)!r}))
        print(agents.agent_names()[-1], config.profiles.profiles["echo"].servers)
        servers = agents.build_enabled_agents(config.servers.agents)

        async def main():
            async with Client(servers["echo"]) as client:
                print((await client.call_tool("greet", {{"name": "you"}})).data)

        asyncio.run(main())
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["echo ['echo']", "hi, you"]
