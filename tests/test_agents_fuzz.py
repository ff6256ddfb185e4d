"""Hypothesis-generated arguments for the agents' validation-heavy tools: every call ends in a
result or a clear tool error, never an unhandled exception (fastmcp reports those as
"Error calling tool ...") and never anything outside the configured roots.

Network tools are left out on purpose: a generated name that happens to be valid would be
resolved, and this machine has no network; their validators are tested in test_agents.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator_mcp.agents import build_enabled_agents
from orchestrator_mcp.config.agents import AgentsSettings

text = st.text(max_size=60) | st.sampled_from([
    "../../etc/passwd", "/etc/shadow", "-rf", "--help", "a;b", "$(id)", "x\x00y", "*",
    "sshd.service", "foo@bar.service", "SELECT 1; DROP TABLE x", "gather-diagnostics",
    "app.log", "..", ".", "/", "(a+)+$", "[", "'", '"'])
values = st.none() | st.booleans() | st.integers(-5, 10**7) | text \
    | st.lists(text, max_size=3) | st.dictionaries(text, text | st.integers(), max_size=3)

TOOLS: dict[tuple[str, str], dict[str, Any]] = {
    ("logs", "tail"): {"path": text, "lines": values},
    ("logs", "grep"): {"path": text, "pattern": text, "ignore_case": values},
    ("logs", "error_summary"): {"path": text, "since_lines": values},
    ("logs", "list_files"): {"directory": text},
    ("logs", "journal"): {"unit": text, "since": text, "priority": values, "grep": text},
    ("infrastructure", "systemd_status"): {"unit": text},
    ("infrastructure", "systemd_logs"): {"unit": text, "lines": values},
    ("infrastructure", "docker_logs"): {"container": text, "lines": values},
    ("infrastructure", "docker_inspect_state"): {"container": text},
    ("osquery", "query"): {"sql": text},
    ("osquery", "preset"): {"name": text},
    ("ansible", "check"): {"playbook": text, "limit": text, "extra_vars": values},
    ("code_review", "read_file"): {"path": text, "start_line": values, "end_line": values},
    ("code_review", "risky_patterns"): {"path": text},
    ("code_review", "git_diff"): {"repository": text, "base": text},
    ("code_review", "review_diff"): {"diff": text, "repository": text},
}


@pytest.fixture(scope="module")
def agents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("fuzz-root")
    (root / "app.log").write_text("ERROR boom\nINFO fine\n" * 50)
    settings = AgentsSettings.model_validate({
        "logs": {"roots": [str(root)]}, "code_review": {"roots": [str(root)]},
        "ansible": {"playbooks_dir": str(Path(__file__).parent.parent / "playbooks"),
                    "timeout": 60}})
    return build_enabled_agents(settings)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_agent_tools_answer_bad_arguments_with_clear_errors(agents: dict[str, Any],
                                                            data: Any) -> None:
    agent, tool = data.draw(st.sampled_from(sorted(TOOLS)))
    fields = TOOLS[(agent, tool)]
    arguments = {k: data.draw(v) for k, v in fields.items() if data.draw(st.booleans())}

    async def call() -> Any:
        async with Client(agents[agent]) as client:
            return await client.call_tool_mcp(tool, arguments)

    result = asyncio.run(call())
    if result.is_error:
        message = result.content[0].text if result.content else ""
        assert message and "Traceback" not in message
        assert not message.startswith("Error calling tool"), \
            f"{agent}_{tool}({arguments}): {message}"
    else:
        assert "root:" not in str(result.structured_content)  # never /etc/passwd
