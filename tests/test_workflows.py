"""YAML workflows: validation at load, and durable execution against real servers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import pytest
import yaml

from orchestrator_mcp.config import ConfigError, load_config
from tests.conftest import write_config
from tests.test_runs import _server_pid, server, until

WORKFLOWS = {
    "parallel": {
        "description": "two slow reads side by side, then a sum",
        "profile": "ops",
        "inputs": {"seconds": {"type": "number", "default": 1.5}},
        "steps": [
            {"id": "left", "tool": "counter_slow",
             "arguments": {"seconds": "{{ inputs.seconds }}"}},
            {"id": "right", "tool": "counter_slow",
             "arguments": {"seconds": "{{ inputs.seconds }}"}},
            {"id": "sum", "tool": "counter_add", "arguments": {"a": 40, "b": 2},
             "depends_on": ["left", "right"]},
        ],
        "outputs": {"total": "{{ steps.sum.output }}", "left": "{{ steps.left.output }}"},
    },
    "conditional": {
        "profile": "ops",
        "inputs": {"fix": {"type": "boolean", "default": False}},
        "steps": [
            {"id": "check", "tool": "counter_add", "arguments": {"a": 1, "b": 1}},
            {"id": "remediate", "tool": "counter_append", "arguments": {"tag": "fixed"},
             "depends_on": ["check"], "condition": "inputs.fix and steps.check.output == '2'"},
        ],
        "outputs": {"remediated": "{{ steps.remediate is defined }}"},
    },
    "gated": {
        "profile": "ops",
        "steps": [
            {"id": "look", "tool": "counter_add", "arguments": {"a": 2, "b": 3}},
            {"id": "gate", "message": "Apply the change? look said {{ steps.look.output }}",
             "depends_on": ["look"]},
            {"id": "apply", "tool": "counter_append", "arguments": {"tag": "applied"},
             "depends_on": ["gate"]},
        ],
    },
    "failing": {
        "profile": "ops",
        "steps": [
            {"id": "broken", "tool": "counter_add", "arguments": {"a": "not a number"},
             "on_failure": "goto:cleanup"},
            {"id": "never", "tool": "counter_append", "arguments": {"tag": "never"},
             "depends_on": ["broken"]},
            {"id": "cleanup", "tool": "counter_append", "arguments": {"tag": "cleanup"},
             "depends_on": ["never"]},
        ],
    },
    "tolerant": {
        "profile": "ops",
        "steps": [
            {"id": "broken", "tool": "counter_add", "arguments": {}, "on_failure": "continue"},
            {"id": "after", "tool": "counter_append", "arguments": {"tag": "after"},
             "depends_on": ["broken"]},
        ],
    },
    "chain": {
        "profile": "ops",
        "steps": [{"id": f"s{i}", "tool": "counter_append", "arguments": {"tag": f"chain{i}"},
                   **({"depends_on": [f"s{i - 1}"]} if i else {})} for i in range(6)]
        + [{"id": "pause", "tool": "counter_slow", "arguments": {"seconds": 3},
            "depends_on": ["s2"]}],
    },
    "delegate": {
        "steps": [{"id": "ask", "task": 'CALL everything_echo {"message": "child"}'}],
        "outputs": {"answer": "{{ steps.ask.output }}"},
    },
}

PROFILES = {
    "profiles": {
        "default": {},
        "network": {"servers": ["network"]},
        "ops": {"approval": {"auto_approve": ["counter_append"]}},
    },
    "workflows": WORKFLOWS,
}


@pytest.fixture
def setup(tmp_path: Path, everything_cfg: dict, counter_stdio_cfg: dict) -> dict[str, Path]:
    config = write_config(tmp_path / "config",
                          {"everything": everything_cfg, "counter": counter_stdio_cfg})
    (config / "profiles.yaml").write_text(yaml.safe_dump(PROFILES))
    return {"config": config, "data": tmp_path / "data",
            "counts": Path(counter_stdio_cfg["args"][2])}


def tags(setup: dict[str, Path]) -> list[str]:
    return [line[4:] for line in setup["counts"].read_text().splitlines()
            if line.startswith("tag:")]


async def run_wf(client, name: str, **inputs) -> dict:
    view = (await client.call_tool("run_workflow", {"name": name, "inputs": inputs})
            ).structured_content
    return view


# ---- validation -------------------------------------------------------------------------


def _problems(tmp_path: Path, workflow: dict, name: str = "w") -> list[str]:
    folder = tmp_path / "workflows"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(workflow))
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    return caught.value.problems


@pytest.mark.parametrize(("steps", "message"), [
    ([{"id": "a", "tool": "x", "depends_on": ["b"]}, {"id": "b", "tool": "x",
                                                     "depends_on": ["a"]}],
     "cycle: a -> b -> a"),
    ([{"id": "a", "tool": "x", "depends_on": ["ghost"]}], "depends on unknown step 'ghost'"),
    ([{"id": "a", "tool": "x"},
      {"id": "b", "tool": "x", "arguments": {"v": "{{ steps.a.output }}"}}],
     "reads steps.a but does not depend on it"),
    ([{"id": "a", "tool": "x", "condition": "steps.zz.ok"}], "unknown step 'zz'"),
    ([{"id": "a", "tool": "x", "condition": "1 +"}], "template or condition error"),
    ([{"id": "a", "tool": "x", "task": "y"}], "give exactly one of 'tool'"),
    ([{"id": "a", "tool": "x", "on_failure": "retry"}], "on_failure must be stop"),
    ([{"id": "a", "tool": "x"}, {"id": "a", "tool": "y"}], "step ids used twice: a"),
])
def test_invalid_definitions_are_explained(tmp_path: Path, steps: list, message: str) -> None:
    found = _problems(tmp_path, {"steps": steps})
    assert any(message in p for p in found), found
    assert all(str(tmp_path / "workflows" / "w.yaml") in p for p in found)


def test_unknown_profile_is_an_error(tmp_path: Path) -> None:
    found = _problems(tmp_path, {"profile": "nobody", "steps": [{"id": "a", "tool": "x"}]})
    assert any("workflows.w.profile: unknown profile 'nobody'" in p for p in found)


# ---- execution ----------------------------------------------------------------------


async def test_parallel_branches_overlap_and_outputs_render(setup, llm) -> None:
    async with server(setup, llm) as client:
        view = await run_wf(client, "parallel")
        record = await until(client, view["run_id"], "completed", timeout=60)
    outputs = json.loads(record["answer"])
    assert outputs == {"total": "42", "left": "done"}
    tools = {s["detail"]["tool"] + str(i): s for i, s in enumerate(record["steps"])
             if s["kind"] == "tool"}
    slow = [s for s in tools.values() if s["detail"]["tool"] == "counter_slow"]
    spans = [(s["at"] - s["detail"]["seconds"], s["at"]) for s in slow]
    assert len(spans) == 2
    assert max(start for start, _ in spans) < min(end for _, end in spans), "no overlap"


@pytest.mark.parametrize(("fix", "expected"), [(True, ["fixed"]), (False, [])])
async def test_condition_true_and_false(setup, llm, fix: bool, expected: list[str]) -> None:
    async with server(setup, llm) as client:
        view = await run_wf(client, "conditional", fix=fix)
        record = await until(client, view["run_id"], "completed")
    assert tags(setup) == expected
    if not fix:
        assert any("remediate: skipped" in s["summary"] for s in record["steps"])


async def test_approval_gate(setup, llm) -> None:
    async with server(setup, llm) as client:
        view = await run_wf(client, "gated")
        waiting = await until(client, view["run_id"], "awaiting_approval")
        assert "look said 5" in waiting["pending_approval"]["reason"]
        await client.call_tool("approve", {"run_id": view["run_id"], "approved": True})
        await until(client, view["run_id"], "completed")
        assert tags(setup) == ["applied"]

        rejected = await run_wf(client, "gated")
        await until(client, rejected["run_id"], "awaiting_approval")
        await client.call_tool("approve", {"run_id": rejected["run_id"], "approved": False,
                                           "reason": "no"})
        record = await until(client, rejected["run_id"], "failed")
        assert "step 'gate' failed" in record["error"]
        assert tags(setup) == ["applied"]


async def test_failure_policies(setup, llm) -> None:
    async with server(setup, llm) as client:
        jumped = await until(client, (await run_wf(client, "failing"))["run_id"], "completed")
        tolerant = await until(client, (await run_wf(client, "tolerant"))["run_id"],
                               "completed")
    assert tags(setup) == ["cleanup", "after"]
    assert any("never: skipped" in s["summary"] or "never" not in s["summary"]
               for s in jumped["steps"])
    assert any("broken: failed" in s["summary"] for s in tolerant["steps"])


async def test_bad_inputs_are_refused(setup, llm) -> None:
    async with server(setup, llm) as client:
        wrong = await client.call_tool_mcp("run_workflow", {"name": "parallel",
                                                            "inputs": {"seconds": "soon"}})
        assert wrong.is_error and "input 'seconds' must be a number" in wrong.content[0].text
        extra = await client.call_tool_mcp("run_workflow", {"name": "parallel",
                                                            "inputs": {"nope": 1}})
        assert extra.is_error and "unknown input(s) nope" in extra.content[0].text
        missing = await client.call_tool_mcp("run_workflow", {"name": "ghost"})
        assert missing.is_error and "unknown workflow 'ghost'" in missing.content[0].text
        listed = await client.call_tool("list_workflows", {})
        assert {w["name"] for w in listed.structured_content["result"]} == set(WORKFLOWS)


async def test_idempotent_workflow_runs_and_runs(setup, llm) -> None:
    """run_workflow, run and ask_agent: the same key and request give the first run; the
    same key with another request is a conflict."""
    async with server(setup, llm) as client:
        first = await client.call_tool("run_workflow", {
            "name": "parallel", "inputs": {"seconds": 0.1}, "idempotency_key": "wf-key-1"})
        again = await client.call_tool("run_workflow", {
            "name": "parallel", "inputs": {"seconds": 0.1}, "idempotency_key": "wf-key-1"})
        assert first.structured_content["run_id"] == again.structured_content["run_id"]
        other = await client.call_tool_mcp("run_workflow", {
            "name": "parallel", "inputs": {"seconds": 0.2}, "idempotency_key": "wf-key-1"})
        assert other.is_error and "used for a different request" in other.content[0].text

        goal = 'CALL counter_add {"a": 1, "b": 2}'
        runs = [await client.call_tool("run", {"goal": goal, "idempotency_key": "run-key-1"})
                for _ in range(3)]
        assert len({r.structured_content["run_id"] for r in runs}) == 1
        asked = [await client.call_tool("ask_agent", {
            "agent": "system", "task": "how full are the disks?", "wait": False,
            "idempotency_key": "agent-key-1"}) for _ in range(2)]
        assert len({a.structured_content["run_id"] for a in asked}) == 1
        bad = await client.call_tool_mcp("run", {"goal": goal, "idempotency_key": "a b"})
        assert bad.is_error and "idempotency key" in bad.content[0].text
        record = await until(client, runs[0].structured_content["run_id"], "completed")
        assert record["answer"].startswith("DONE")


async def test_agent_step_is_a_child_run(setup, llm) -> None:
    async with server(setup, llm) as client:
        view = await run_wf(client, "delegate")
        record = await until(client, view["run_id"], "completed", timeout=60)
        children = await client.call_tool("list_runs", {})
    assert "Echo: child" in json.loads(record["answer"])["answer"]
    child = [r for r in children.structured_content["result"] if r["run_id"] != view["run_id"]]
    assert len(child) == 1 and child[0]["status"] == "completed"


async def test_crash_mid_workflow_resumes_without_repeating_steps(setup, llm) -> None:
    async with server(setup, llm) as client:
        view = await run_wf(client, "chain")
        async with asyncio.timeout(30):
            while "chain2" not in tags(setup):
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # s3.. run while `pause` is sleeping
        os.kill(_server_pid(setup), signal.SIGKILL)
    async with server(setup, llm) as client:
        await until(client, view["run_id"], "completed", timeout=60)
    assert sorted(tags(setup)) == [f"chain{i}" for i in range(6)]


async def test_shipped_network_check(setup, llm) -> None:
    import shutil
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Ok(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.end_headers()

    web = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    port = web.server_address[1]
    folder = setup["config"] / "workflows"
    folder.mkdir()
    servers_yaml = setup["config"] / "servers.yaml"
    config = yaml.safe_load(servers_yaml.read_text())
    # The network agent refuses loopback by default (SSRF policy); this check targets it.
    config["agents"] = {"network": {"allow_cidrs": ["127.0.0.0/8"]}}
    servers_yaml.write_text(yaml.safe_dump(config))
    shutil.copy(Path(__file__).resolve().parent.parent / "workflows" / "network-check.yaml",
                folder)
    try:
        async with server(setup, llm) as client:
            view = await run_wf(client, "network-check", host="localhost", port=port,
                                url=f"http://127.0.0.1:{port}/health")
            record = await until(client, view["run_id"], "completed", timeout=60)
    finally:
        web.shutdown()
    outputs = json.loads(record["answer"])
    assert outputs["summary"].split() == ["DNS", "ok,", "TCP", "open,", "HTTP", "200,", "TLS",
                                          "n/a"]
    assert "127.0.0.1" in outputs["dns"]


@pytest.fixture
def remediation_setup(setup: dict[str, Path], tmp_path: Path) -> dict[str, Path]:
    """The shipped diagnose-remediate workflow with real agents: logs under a temp root,
    the repository's playbooks, a folder holding old and new files."""
    import shutil

    pytest.importorskip("ansible_runner")
    repo = Path(__file__).resolve().parent.parent
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_text("".join(
        f"2026-11-26T10:00:{i:02d} ERROR disk write failed on /dev/sda1 after {i}ms\n"
        for i in range(30)))
    target = tmp_path / "app-logs"
    target.mkdir()
    for name in ("old-1.log", "old-2.gz", "fresh.log"):
        (target / name).write_text("x" * 1000)
    month_ago = time.time() - 30 * 86400
    for name in ("old-1.log", "old-2.gz"):
        os.utime(target / name, (month_ago, month_ago))
    servers = yaml.safe_load((setup["config"] / "servers.yaml").read_text())
    servers["agents"] = {"logs": {"roots": [str(logs)]},
                         "ansible": {"playbooks_dir": str(repo / "playbooks")}}
    (setup["config"] / "servers.yaml").write_text(yaml.safe_dump(servers))
    (setup["config"] / "workflows").mkdir()
    shutil.copy(repo / "workflows" / "diagnose-remediate.yaml", setup["config"] / "workflows")
    return {**setup, "target": target}


async def test_shipped_diagnose_remediate(remediation_setup, llm) -> None:
    target = remediation_setup["target"]
    inputs = {"mount": "/", "target_dir": str(target), "older_than": "1d",
              "log_file": "app.log"}
    async with server(remediation_setup, llm) as client:
        calm = await run_wf(client, "diagnose-remediate", threshold_percent=101, **inputs)
        record = await until(client, calm["run_id"], "completed", timeout=120)
        assert json.loads(record["answer"])["remediated"] is False
        assert any("check: skipped" in s["summary"] for s in record["steps"])

        full = await run_wf(client, "diagnose-remediate", threshold_percent=0, **inputs)
        waiting = await until(client, full["run_id"], "awaiting_approval", timeout=120)
        shown = waiting["pending_approval"]["reason"]
        assert "old-1.log" in shown and "old-2.gz" in shown and "fresh.log" not in shown
        assert sorted(p.name for p in target.iterdir()) == ["fresh.log", "old-1.log",
                                                             "old-2.gz"]
        diagnosis_run = llm.requests[-1]["messages"][1]["content"]
        assert "disk write failed" in diagnosis_run  # the log summary reached the agent
        await client.call_tool("approve", {"run_id": full["run_id"], "approved": True})
        record = await until(client, full["run_id"], "completed", timeout=120)
    outputs = json.loads(record["answer"])
    assert outputs["remediated"] is True and outputs["used_percent_after"] is not None
    assert [p.name for p in target.iterdir()] == ["fresh.log"]


def test_tool_output_too_deep_for_json_is_kept_as_text() -> None:
    """A hostile tool result nested 100,000 deep must not fail the step that parses it."""
    from orchestrator_mcp.runs.steps import _data

    assert _data(None, "[" * 100_000 + "]" * 100_000) is None
    assert _data(None, '{"used_percent": 93}') == {"used_percent": 93}
