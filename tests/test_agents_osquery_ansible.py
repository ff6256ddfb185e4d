"""The osquery and ansible agents through the MCP surface: a real (fake) osqueryi subprocess,
real ansible-runner playbooks against localhost with the local connection."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from orchestrator_mcp.agents import ansible as ansible_agent
from orchestrator_mcp.agents import osquery as osquery_agent
from orchestrator_mcp.agents.ansible_settings import AnsibleAgentSettings
from orchestrator_mcp.agents.osquery import PRESETS, validate_select
from orchestrator_mcp.agents.osquery_settings import OsqueryAgentSettings
from tests.mcp_calls import data, error

REPO = Path(__file__).resolve().parent.parent
PLAYBOOKS = REPO / "playbooks"


async def call(server: Any, tool: str, progress: list | None = None, **arguments: Any) -> Any:
    """Call a tool; with `progress`, ask for progress notifications and collect them."""
    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, message))

    async with Client(server) as client:
        return await client.call_tool_mcp(
            tool, arguments, progress_handler=on_progress if progress is not None else None)




async def annotations(server: Any) -> dict[str, Any]:
    async with Client(server) as client:
        return {tool.name: tool.annotations for tool in await client.list_tools()}


# --- osquery -------------------------------------------------------------------------------

@pytest.mark.parametrize("sql", [
    "SELECT * FROM users",
    "select pid, name from processes where name = 'x; DROP TABLE users' limit 5;",
    "-- the biggest first\nSELECT * FROM processes ORDER BY resident_size DESC",
    "SELECT \"update\", [delete] FROM t /* a comment; with a semicolon */",
    "WITH big AS (SELECT * FROM processes WHERE resident_size > 1000) SELECT name FROM big",
    "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 3) SELECT x FROM n",
    "SELECT replace(name, 'a', 'b'), x'41', 0x1F, 1.5e3 FROM users",
    "SELECT name, version, release FROM rpm_packages ;;",
    *(sql for _, sql in PRESETS.values()),
])
def test_select_statements_are_accepted(sql: str) -> None:
    assert validate_select(sql).lower().startswith(("select", "with"))


@pytest.mark.parametrize(("sql", "message"), [
    ("SELECT 1; DROP TABLE users", "only one statement"),
    ("SELECT 1; SELECT 2", "only one statement"),
    ("SELECT 1 -- x\n; ATTACH DATABASE '/tmp/x' AS y", "only one statement"),
    ("PRAGMA table_info(users)", "only SELECT"),
    ("ATTACH DATABASE '/tmp/x.db' AS x", "only SELECT"),
    ("INSERT INTO t VALUES (1)", "only SELECT"),
    ("update users set shell = 'x'", "only SELECT"),
    ("DELETE FROM users", "only SELECT"),
    ("CREATE TABLE t (a)", "only SELECT"),
    ("DROP TABLE users", "only SELECT"),
    ("ALTER TABLE users ADD x", "only SELECT"),
    ("VALUES (1)", "only SELECT"),
    ("EXPLAIN SELECT 1", "only SELECT"),
    (".tables", "only SELECT"),
    ("/* hide */ DELETE FROM users", "only SELECT"),
    ("WITH x AS (SELECT 1) DELETE FROM users", "DELETE is not allowed"),
    ("WITH x AS (SELECT 1) REPLACE INTO t VALUES (1)", "REPLACE is not allowed"),
    ("SELECT * FROM pragma_table_info('users')", "not allowed"),
    ("SELECT load_extension('/tmp/evil.so')", "load_extension is not allowed"),
    ("SELECT * FROM curl WHERE url = 'http://example.com'", "network"),
    ("SELECT 1 /* unterminated ; DROP TABLE x", "unterminated"),
    ("SELECT 'unterminated", "unterminated"),
    ("SELECT \"unterminated", "unterminated"),
    ("", "empty"),
    ("  ;  ", "empty"),
    ("-- only a comment", "empty"),
    ("SELECT 1 \\ 2", "unexpected character"),
])
def test_everything_but_one_select_is_refused(sql: str, message: str) -> None:
    with pytest.raises(Exception) as caught:
        validate_select(sql)
    assert message in str(caught.value)


FAKE_OSQUERYI = """#!{python}
import json, sys
if sys.argv[1] != "--json" or len(sys.argv) != 3:
    sys.exit("usage: osqueryi --json <sql>")
sql = sys.argv[2]
if "no_such_table" in sql:
    print("Error: no such table: no_such_table", file=sys.stderr)
    sys.exit(1)
print(json.dumps([{{"n": str(i), "sql": sql}} for i in range(3)]))
"""


@pytest.fixture
def fake_osqueryi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "osqueryi"
    script.write_text(FAKE_OSQUERYI.format(python=sys.executable))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return script


async def test_osquery_runs_osqueryi_and_caps_rows(fake_osqueryi: Path) -> None:
    server = osquery_agent.build(OsqueryAgentSettings(max_rows=2))
    result = data(await call(server, "query", sql="-- users\nSELECT * FROM users;"))
    assert result["sql"] == "SELECT * FROM users"
    assert result["total_rows"] == 3 and result["truncated"] is True
    assert [row["n"] for row in result["rows"]] == ["0", "1"]
    assert result["rows"][0]["sql"] == "SELECT * FROM users"
    preset = data(await call(server, "preset", name="listening_ports"))
    assert preset["rows"][0]["sql"] == PRESETS["listening_ports"][1]
    failed = error(await call(server, "query", sql="SELECT * FROM no_such_table"))
    assert "osqueryi failed (exit 1)" in failed and "no such table" in failed


async def test_osquery_refuses_writes_before_running_anything(fake_osqueryi: Path) -> None:
    server = osquery_agent.build(OsqueryAgentSettings())
    message = error(await call(server, "query", sql="SELECT 1; DELETE FROM users"))
    assert "only one statement" in message
    message = error(await call(server, "preset", name="drop_everything"))
    assert "processes" in message  # the choices are listed


async def test_osquery_missing_binary_is_explained(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    server = osquery_agent.build(OsqueryAgentSettings())
    message = error(await call(server, "preset", name="users"))
    assert message == ("osqueryi is not available on this host — install osquery from "
                       "https://osquery.io/downloads")
    presets = data(await call(server, "list_presets"))
    assert {p["name"] for p in presets} == {"processes", "listening_ports", "users",
                                             "system_info", "os_version", "mounts"}


async def test_osquery_tools_are_read_only() -> None:
    found = await annotations(osquery_agent.build(OsqueryAgentSettings()))
    assert set(found) == {"query", "preset", "list_presets"}
    for tool in found.values():
        assert tool.read_only_hint is True and tool.open_world_hint is False


def test_importing_the_agents_does_not_import_ansible() -> None:
    code = ("import sys, orchestrator_mcp.agents.ansible, orchestrator_mcp.agents.osquery; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('ansible', 'ansible_runner')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, check=True)
    assert done.stdout.strip() == "[]"


# --- ansible: no playbook run needed ---------------------------------------------------------

@pytest.fixture
def ansible_server(tmp_path: Path) -> Any:
    return ansible_agent.build(AnsibleAgentSettings(
        playbooks_dir=PLAYBOOKS, timeout=120,
        artifacts_dir=tmp_path / "data" / "ansible-artifacts"))


async def test_list_playbooks_describes_the_shipped_ones(ansible_server: Any) -> None:
    books = {b["name"]: b for b in data(await call(ansible_server, "list_playbooks"))}
    assert {"gather-diagnostics", "restart-service", "clean-old-files"} <= set(books)
    assert all(b["description"] and b["error"] is None for b in books.values())
    clean = {v["name"]: v for v in books["clean-old-files"]["variables"]}
    assert clean["target_dir"]["required"] is True
    assert clean["older_than"]["default"] == "7d"
    assert clean["patterns"]["default"] == ["*.log", "*.gz"]
    assert books["restart-service"]["variables"][0]["name"] == "service_name"


async def test_ansible_annotations_tell_check_from_run(ansible_server: Any) -> None:
    found = await annotations(ansible_server)
    assert found["list_playbooks"].read_only_hint is True
    assert found["check"].read_only_hint is True and found["check"].destructive_hint is False
    run = found["run"]
    assert run.read_only_hint is False and run.destructive_hint is True
    assert run.idempotent_hint is False


@pytest.mark.parametrize(("arguments", "message"), [
    ({"playbook": "../x"}, "is not a playbook name"),
    ({"playbook": "/etc/passwd"}, "is not a playbook name"),
    ({"playbook": "sub/clean-old-files"}, "is not a playbook name"),
    ({"playbook": ".."}, "is not a playbook name"),
    ({"playbook": "no-such-book"}, "there is no playbook 'no-such-book'"),
    ({"playbook": "clean-old-files", "extra_vars": {"bad-key": 1}}, "is not a variable name"),
    ({"playbook": "clean-old-files", "extra_vars": {"ansible_connection": "ssh"}}, "reserved"),
    ({"playbook": "clean-old-files", "extra_vars": {"target_dir": "{{ lookup('pipe', 'id') }}"}},
     "templates"),
    ({"playbook": "clean-old-files", "extra_vars": {"target_dir": {"a": 1}}}, "validation"),
    ({"playbook": "clean-old-files", "limit": "-e x=1"}, "is not a host pattern"),
    ({"playbook": "clean-old-files", "limit": "web;rm"}, "is not a host pattern"),
])
async def test_bad_ansible_inputs_are_refused(ansible_server: Any, arguments: dict,
                                              message: str) -> None:
    for tool in ("check", "run"):
        assert message in error(await call(ansible_server, tool, **arguments))


async def test_missing_ansible_runner_is_explained(ansible_server: Any,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ansible_runner", None)  # makes `import` fail
    message = error(await call(ansible_server, "check", playbook="gather-diagnostics"))
    assert message == "ansible-runner is not installed — install orchestrator-mcp[ansible]"


# --- ansible: real playbook runs (a few seconds each) -----------------------------------------

@pytest.fixture
def old_and_new(tmp_path: Path) -> Path:
    folder = tmp_path / "target"
    folder.mkdir()
    month_ago = time.time() - 30 * 86400
    for name in ("old.log", "old.gz", "old.txt", "new.log"):
        (folder / name).write_text(name)
        if name.startswith("old"):
            os.utime(folder / name, (month_ago, month_ago))
    return folder


async def test_check_then_run_clean_old_files(ansible_server: Any, old_and_new: Path,
                                              tmp_path: Path) -> None:
    pytest.importorskip("ansible_runner")
    everything = {"new.log", "old.gz", "old.log", "old.txt"}
    progress: list = []
    checked = data(await call(ansible_server, "check", progress=progress,
                              playbook="clean-old-files",
                              extra_vars={"target_dir": str(old_and_new)}))
    assert checked["succeeded"] and checked["mode"] == "check"
    assert {p.name for p in old_and_new.iterdir()} == everything  # nothing deleted
    diff = checked["diff"]
    assert "check mode: nothing was changed" in diff and "1 task(s) would change" in diff
    assert f'"path": "{old_and_new / "old.log"}"' in diff and '+    "state": "absent"' in diff
    assert str(old_and_new / "old.gz") in diff
    assert "new.log" not in diff and "old.txt" not in diff
    assert checked["hosts"]["localhost"]["changed"] == 1
    assert checked["hosts"]["localhost"]["failed"] == 0
    assert any("Remove old files: changed" in (m or "") for _, m in progress), progress
    artifacts = Path(checked["artifacts_dir"])
    assert artifacts.is_relative_to(tmp_path / "data" / "ansible-artifacts")
    assert (artifacts / "artifacts" / "run" / "job_events").is_dir()

    applied = data(await call(ansible_server, "run", playbook="clean-old-files.yml",
                              extra_vars={"target_dir": str(old_and_new)}))
    assert applied["succeeded"] and applied["mode"] == "run"
    assert {p.name for p in old_and_new.iterdir()} == {"new.log", "old.txt"}
    assert "1 task(s) changed" in applied["diff"]


async def test_clean_old_files_refuses_a_system_folder(ansible_server: Any) -> None:
    pytest.importorskip("ansible_runner")
    before = sorted(os.listdir("/etc"))
    result = data(await call(ansible_server, "run", playbook="clean-old-files",
                             extra_vars={"target_dir": "/etc", "patterns": ["*"],
                                         "older_than": "0s"}))
    assert result["status"] == "failed" and result["succeeded"] is False
    assert result["hosts"]["localhost"]["failed"] == 1
    assert "refused" in result["failures"][0] and "FAILED" in result["diff"]
    assert not any(t["task"] == "Remove old files" for t in result["tasks"])
    assert sorted(os.listdir("/etc")) == before


async def test_gather_diagnostics_reports_without_changing(ansible_server: Any) -> None:
    pytest.importorskip("ansible_runner")
    result = data(await call(ansible_server, "check", playbook="gather-diagnostics"))
    assert result["succeeded"], result["failures"]
    assert result["hosts"]["localhost"]["changed"] == 0
    messages = "\n".join(t["message"] or "" for t in result["tasks"])
    assert "uptime:" in messages and "memory:" in messages and "% used" in messages
