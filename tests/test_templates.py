"""Run templates: their checks at load, the sandboxed goal rendering with hostile
parameters, the shipped IT-ops templates against the built-in agents' real tools, and
run_template / `template run` end to end (a real server process, the real openai client
against the local fake model, a real downstream MCP server)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastmcp import Client

from orchestrator_mcp.agents import build_enabled_agents
from orchestrator_mcp.config import ConfigError, load_config
from orchestrator_mcp.config.agents import AgentsSettings
from orchestrator_mcp.config.templates import TemplateDef
from orchestrator_mcp.runs.errors import RunError
from orchestrator_mcp.workflows.submit import check_inputs
from orchestrator_mcp.workflows.templates import MAX_GOAL_CHARS, render_goal
from tests.conftest import REPO, write_config
from tests.fake_openai import FakeOpenAI
from tests.test_runs import server

TEMPLATES = {
    "bump": {"description": "Bump the counter and say why.", "profile": "ops",
             "parameters": {"note": {"type": "string", "required": True,
                                     "description": "why"},
                            "times": {"type": "integer", "default": 1},
                            "hosts": {"type": "array", "default": []}},
             "goal": "CALL counter_bump {}\nnote: {{ note }} x{{ times }}"
                     "{% for h in hosts %} {{ h }}{% endfor %}"},
    "tight": {"profile": "ops", "budgets": {"max_steps": 1},
              "goal": "CALL counter_bump {}\nCALL counter_bump {}\ntwo bumps"},
}
PROFILES = {"profiles": {"default": {"role": "Test planner."},
                         "ops": {"servers": ["counter"],
                                 "approval": {"auto_approve": ["counter_bump"]}}},
            "templates": TEMPLATES}


@pytest.fixture
def setup(tmp_path: Path, counter_stdio_cfg: dict) -> dict[str, Path]:
    config = write_config(tmp_path / "config", {"counter": counter_stdio_cfg},
                          knowledge={"enabled": False})
    (config / "profiles.yaml").write_text(yaml.safe_dump(PROFILES))
    return {"config": config, "data": tmp_path / "data",
            "counts": Path(counter_stdio_cfg["args"][2])}


def bumps(setup: dict[str, Path]) -> int:
    return setup["counts"].read_text().splitlines().count("bump")


# ---- load-time checks --------------------------------------------------------------------


def problems(tmp_path: Path, templates: dict[str, Any]) -> list[str]:
    (tmp_path / "profiles.yaml").write_text(yaml.safe_dump({"templates": templates}))
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    return caught.value.problems


@pytest.mark.parametrize(("template", "expected"), [
    ({"goal": "check {{ host }}"}, "templates.t: goal reads host, not declared under"),
    ({"goal": "check {{ host"}, "goal: template error at line 1"),
    ({"goal": "{% for %}"}, "goal: template error"),
    ({"goal": "x", "parameters": {"if": {}}}, "parameter name 'if' must be"),
    ({"goal": "x", "parameters": {"a b": {}}}, "parameter name 'a b' must be"),
    ({"goal": "x", "parameters": {"p": {"type": "date"}}}, "templates.t.parameters.p.type"),
    ({"goal": "x", "profile": "nope"}, "templates.t.profile: unknown profile 'nope'"),
    ({"goal": "x", "budgets": {"max_steps": 0}}, "templates.t.budgets.max_steps"),
    ({"goal": "x" * 20_001}, "templates.t.goal"),
    ({"goal": ""}, "templates.t.goal"),
    ({"description": "no goal"}, "templates.t.goal: Field required"),
])
def test_check_explains_bad_templates(tmp_path: Path, template: dict[str, Any],
                                      expected: str) -> None:
    found = problems(tmp_path, {"t": template})
    assert any(expected in p for p in found), found


def test_budgets_replace_only_the_keys_given(tmp_path: Path) -> None:
    (tmp_path / "profiles.yaml").write_text(yaml.safe_dump({
        "profiles": {"ops": {"budgets": {"max_steps": 9, "max_seconds": 60}}},
        "templates": {"t": {"goal": "x", "profile": "ops", "budgets": {"max_steps": 2}},
                      "plain": {"goal": "y", "profile": "ops"}}}))
    profiles = load_config(tmp_path).profiles
    derived = profiles.profiles["template:t"].budgets
    assert (derived.max_steps, derived.max_seconds) == (2, 60)
    assert profiles.templates["t"].profile_for("t") == "template:t"
    assert profiles.templates["plain"].profile_for("plain") == "ops"
    assert "template:plain" not in profiles.profiles


# ---- rendering: parameters are data --------------------------------------------------------


def template(goal: str, **parameters: Any) -> TemplateDef:
    return TemplateDef.model_validate({"goal": goal, "parameters": parameters})


def render(t: TemplateDef, **given: Any) -> str:
    return render_goal("t", t, check_inputs("t", t.parameters, given, owner="template",
                                            noun="parameter"))


def test_template_syntax_in_a_value_stays_text() -> None:
    t = template("check {{ host }} and {% for p in ports %}{{ p }} {% endfor %}",
                 host={"type": "string"}, ports={"type": "array", "default": []})
    sneaky = "{{ ''.__class__.__mro__ }}{% for x in range(9) %}X{% endfor %}"
    goal = render(t, host=sneaky, ports=["{{ 7 * 7 }}", "{% raw %}"])
    assert goal == f"check {sneaky} and {{{{ 7 * 7 }}}} {{% raw %}}"


@pytest.mark.parametrize(("goal", "given", "message"), [
    ("{{ '-' * width }}", {"width": 10**12}, "'*' would make a value of"),
    ("{{ host * width }}", {"host": "ab", "width": 10**9}, "'*' would make a value of"),
    ("{{ width ** width }}", {"width": 10**6}, "exponent 1000000 is too large"),
    ("{% for h in hosts %}{{ host }}{% endfor %}", {"host": "x" * 5000, "hosts": [1, 2, 3]},
     f"longer than {MAX_GOAL_CHARS:,} characters"),
    ("{{ host.__class__.__mro__ }}", {"host": "a"}, "could not be rendered"),
    ("{{ hosts.append(1) }}", {"hosts": []}, "could not be rendered"),
    ("{% if width > 5 %}{% endif %}", {"width": 1}, "renders an empty goal"),
])
def test_hostile_parameters_cannot_blow_up_the_goal(goal: str, given: dict[str, Any],
                                                    message: str) -> None:
    t = template(goal, host={"type": "string", "default": ""},
                 width={"type": "integer", "default": 1},
                 hosts={"type": "array", "default": []})
    with pytest.raises(RunError, match=re.escape(message)):
        render(t, **given)


@pytest.mark.parametrize(("given", "message"), [
    ({"hots": "a"}, "unknown parameter(s) hots; the template takes: host, width"),
    ({}, "parameter 'host' is required"),
    ({"host": 5}, "parameter 'host' must be a string, not int"),
    ({"host": "a", "width": "wide"}, "parameter 'width' must be an integer, not 'wide'"),
    ({"host": "a", "width": [1]}, "parameter 'width' must be an integer, not list"),
])
def test_parameters_are_checked_like_workflow_inputs(given: dict[str, Any], message: str
                                                     ) -> None:
    t = template("{{ host }} {{ width }}", host={"type": "string", "required": True},
                 width={"type": "integer", "default": 3})
    with pytest.raises(RunError, match=re.escape(message)):
        render(t, **given)


# ---- the shipped templates ------------------------------------------------------------------


@pytest.fixture(scope="module")
def agent_tools() -> dict[str, set[str]]:
    """Each built-in agent's real tool names, as the catalog names them."""
    async def listing() -> dict[str, set[str]]:
        found = {}
        for name, agent in build_enabled_agents(AgentsSettings(), REPO).items():
            async with Client(agent) as client:
                found[name] = {f"{name}_{t.name}" for t in await client.list_tools()}
        return found

    return asyncio.run(listing())


EXAMPLE_VALUES = {"hosts": ["example.org"], "unit": "nginx.service",
                  "path": "/var/log/syslog", "urls": ["https://example.org/"]}


def test_shipped_templates_use_tools_their_profile_has(agent_tools: dict[str, set[str]]
                                                       ) -> None:
    config = load_config(REPO)
    shipped = config.profiles.templates
    assert {"disk-health", "tls-expiry", "service-health", "log-error-triage",
            "listening-ports-audit", "reachability", "security-updates"} <= set(shipped)
    every_tool = set().union(*agent_tools.values())
    for name, t in shipped.items():
        profile = config.profiles.profiles[t.profile_for(name)]
        reachable = set().union(*(agent_tools.get(s, set()) for s in profile.servers))
        given = {k: v for k, v in EXAMPLE_VALUES.items() if k in t.parameters}
        goal = render_goal(name, t, check_inputs(name, t.parameters, given,
                                                 owner="template", noun="parameter"))
        named = {word for word in re.findall(r"\b[a-z]+_[a-z_]+\b", goal)
                 if word in every_tool or word.split("_")[0] in agent_tools}
        assert named, f"template {name} names no tool"
        assert named <= reachable, f"template {name} uses {named - reachable}, not in " \
                                   f"profile {t.profile}"
    assert (REPO / "playbooks" / "pending-updates.yml").is_file()


def test_shipped_schedules_name_shipped_templates() -> None:
    schedules = load_config(REPO).profiles.schedules
    assert schedules["nightly-disk-health"].template == "disk-health"
    assert schedules["weekly-security-updates"].enabled is False


# ---- run_template end to end --------------------------------------------------------------


async def test_run_template_renders_checks_and_runs(setup, llm: FakeOpenAI) -> None:
    async with server(setup, llm) as client:
        listed = (await client.call_tool("list_templates", {})).structured_content["result"]
        assert [t["name"] for t in listed] == ["bump", "tight"]
        assert listed[0]["parameters"]["note"]["required"] is True
        assert listed[1]["budgets"] == {"max_steps": 1}

        result = await client.call_tool("run_template", {
            "name": "bump", "params": {"note": "{{ 7*7 }}", "hosts": ["a", "b"]},
            "wait": True})
        view = result.structured_content
        assert view["status"] == "completed", view
        assert view["profile"] == "ops"
        assert view["goal"] == "CALL counter_bump {}\nnote: {{ 7*7 }} x1 a b"
        record = (await client.call_tool("get_run", {"run_id": view["run_id"]})
                  ).structured_content
        assert record["context"] == {"template": "bump", "parameters": {
            "note": "{{ 7*7 }}", "times": 1, "hosts": ["a", "b"]}}
        assert bumps(setup) == 1

        for params, message in [
            ({}, "parameter 'note' is required"),
            ({"note": "x", "times": "many"}, "parameter 'times' must be an integer"),
            ({"note": "x", "nope": 1}, "unknown parameter(s) nope"),
            ({"note": "x" * 70_000}, "the parameters are larger than 64 KB"),
        ]:
            refused = await client.call_tool("run_template", {"name": "bump",
                                                              "params": params},
                                             raise_on_error=False)
            assert refused.is_error and message in refused.content[0].text, \
                refused.content[0].text
        unknown = await client.call_tool("run_template", {"name": "nope"},
                                         raise_on_error=False)
        assert unknown.is_error
        assert "unknown template 'nope'; templates: bump, tight" in unknown.content[0].text

        tight = (await client.call_tool("run_template", {"name": "tight", "wait": True})
                 ).structured_content
        assert tight["profile"] == "template:tight"
        assert (tight["status"], tight["stop_reason"]) == ("failed", "budget_max_steps")


async def test_run_template_idempotency_key(setup, llm: FakeOpenAI) -> None:
    async with server(setup, llm) as client:
        async def submit(note: str) -> Any:
            return await client.call_tool("run_template", {
                "name": "bump", "params": {"note": note}, "idempotency_key": "nightly-1"},
                raise_on_error=False)

        first, again = (await submit("a")).structured_content, \
            (await submit("a")).structured_content
        assert first["run_id"] == again["run_id"]
        other = await submit("b")
        assert other.is_error and "was used for a different request" in \
            other.content[0].text
        record = None
        for _ in range(300):
            record = (await client.call_tool("get_run", {"run_id": first["run_id"]})
                      ).structured_content
            if record["status"] == "completed":
                break
            await asyncio.sleep(0.1)
        assert record is not None and record["status"] == "completed"
    assert bumps(setup) == 1


def test_cli_template_list_and_run(setup, llm: FakeOpenAI) -> None:
    base = [sys.executable, "-m", "orchestrator_mcp", "--config-dir", str(setup["config"]),
            "--data-dir", str(setup["data"]), "template"]
    env = {**os.environ, **llm.env()}
    listed = subprocess.run([*base, "list"], capture_output=True, text=True, env=env,
                            timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"bump\s+ops\s+hosts,note\*,times\s+Bump the counter", listed.stdout)
    ran = subprocess.run([*base, "run", "bump", "--param", "note=cli", "--param", "times=3",
                          "--param", 'hosts=["h1"]'], capture_output=True, text=True,
                         env=env, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert "note: cli x3 h1" in ran.stdout and "completed" in ran.stdout
    assert bumps(setup) == 1
    bad = subprocess.run([*base, "run", "bump", "--param", "times=3"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "parameter 'note' is required" in bad.stderr
