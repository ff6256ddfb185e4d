"""The command line as a terminal user meets it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator_mcp.agents import agent_names
from tests.conftest import write_config


def cli(*args: str, cwd: Path | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`env`: variables set (or, with value None, unset) on top of this process's."""
    environ = {k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None}
    return subprocess.run([sys.executable, "-m", "orchestrator_mcp", *args],
                          capture_output=True, text=True, timeout=120, cwd=cwd, env=environ)


@pytest.mark.parametrize("command", [[], ["serve"], ["check"]])
def test_help_on_every_command(command: list[str]) -> None:
    result = cli(*command, "--help")
    assert result.returncode == 0
    assert "usage: orchestrator-mcp" in result.stdout


def test_help_lists_the_global_options() -> None:
    out = cli("--help").stdout
    assert "--config-dir DIR" in out and "--data-dir DIR" in out


def test_check_prints_a_table_and_fails_when_a_server_is_down(
    tmp_path: Path, everything_cfg: dict
) -> None:
    config = write_config(tmp_path / "c", {"everything": everything_cfg,
                                           "ghost": {"command": "/no/such/server"},
                                           "off": {"command": "x", "enabled": False}})
    result = cli("--config-dir", str(config), "--data-dir", str(tmp_path / "d"),
                 "check", "--timeout", "20")
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("NAME"))
    assert header.split() == ["NAME", "TRANSPORT", "STATUS", "TOOLS", "LATENCY", "ERROR"]
    row = {line.split()[0]: line.split() for line in lines[lines.index(header) + 1:]}
    assert row["everything"][1:4] == ["stdio", "up", "13"]
    assert row["ghost"][2] == "unhealthy" and "No such file or directory" in " ".join(row["ghost"])
    assert row["off"][2] == "disabled"


def test_check_all_up_exits_0(tmp_path: Path, everything_cfg: dict) -> None:
    config = write_config(tmp_path / "c", {"everything": everything_cfg})
    assert cli("--config-dir", str(config), "--data-dir", str(tmp_path / "d"),
               "check").returncode == 0


def test_check_invalid_config_exits_2(tmp_path: Path) -> None:
    (tmp_path / "servers.yaml").write_text("servers: [not, a, mapping]\n")
    result = cli("--config-dir", str(tmp_path), "check")
    assert result.returncode == 2
    assert "servers.yaml: servers: Input should be a valid dictionary" in result.stderr


def test_config_dir_defaults_to_the_current_directory(tmp_path: Path) -> None:
    (tmp_path / "servers.yaml").write_text("servers: {}\n")
    result = cli("--data-dir", str(tmp_path / "d"), "check", cwd=tmp_path)
    assert result.returncode == 0
    assert f"config: {tmp_path / 'servers.yaml'}" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "--port", "70000"], "port 70000 is outside 1-65535"),
        (["serve", "--port", "http"], "'http' is not a port number"),
        (["check", "--timeout", "-1"], "must be more than 0 seconds"),
        (["--config-dir", "/no/such/dir", "check"], "--config-dir /no/such/dir: not a directory"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_flags_are_explained(args: list[str], message: str) -> None:
    result = cli(*args)
    assert result.returncode == 2
    assert message in result.stderr


def test_check_reports_workflow_tools_missing_from_the_catalog(
    tmp_path: Path, everything_cfg: dict
) -> None:
    config = write_config(tmp_path / "c", {"everything": everything_cfg})
    (config / "profiles.yaml").write_text(
        "workflows:\n  w:\n    steps:\n      - {id: a, tool: everything_echo}\n"
        "      - {id: b, tool: everything_nope, depends_on: [a]}\n")
    result = cli("--config-dir", str(config), "--data-dir", str(tmp_path / "d"), "check")
    assert result.returncode == 1
    assert "workflow w, step b: tool 'everything_nope' is not in the catalog" in result.stdout
    assert "step a" not in result.stdout


def test_global_options_after_the_command(tmp_path: Path, everything_cfg: dict) -> None:
    """`orchestrator-mcp check --config-dir X` is what people type."""
    config = write_config(tmp_path / "c", {"everything": everything_cfg})
    result = cli("check", "--config-dir", str(config), "--data-dir", str(tmp_path / "d"),
                 "--log-level", "warning", "--timeout", "20", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"config: {config / 'servers.yaml'}" in result.stdout
    assert (tmp_path / "d" / "logs").is_dir()
    nested = cli("workflow", "list", "--config-dir", str(config), cwd=tmp_path)
    assert nested.returncode == 0, nested.stderr


def test_workflow_run_prints_each_step_once(tmp_path: Path) -> None:
    """The shipped network-check workflow against a local web server: its parallel steps are
    printed once each, and the loopback target is reachable because the config allows it."""
    import http.server
    import shutil
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        config = write_config(tmp_path / "c", {}, agents={
            "network": {"allow_cidrs": ["127.0.0.0/8"]},
            **{name: {"enabled": False} for name in agent_names() if name != "network"}})
        (config / "workflows").mkdir()
        shutil.copy(Path(__file__).parents[1] / "workflows" / "network-check.yaml",
                    config / "workflows")
        result = cli("workflow", "run", "network-check", "--input", "host=127.0.0.1",
                     "--input", f"port={port}", "--input", f"url=http://127.0.0.1:{port}/",
                     "--config-dir", str(config), "--data-dir", str(tmp_path / "d"),
                     cwd=tmp_path)
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stdout + result.stderr
    step_lines = [line for line in result.stdout.splitlines() if line.startswith("  [")]
    for tool in ("network_dns_lookup", "network_tcp_check", "network_http_check"):
        assert sum(tool in line for line in step_lines) == 1, result.stdout
    assert "TCP open, HTTP 200" in result.stdout, result.stdout


@pytest.mark.parametrize(("env", "message"), [
    ({"ORCH_LOG_LEVEL": "verbose"},
     "environment variable ORCH_LOG_LEVEL: 'verbose' is not a log level; use DEBUG, INFO, "
     "WARNING or ERROR"),
    ({"ORCH_HTTP_TOKEN": "short"},
     "environment variable ORCH_HTTP_TOKEN: a token needs at least 16 characters"),
])
def test_bad_environment_variables_are_explained(tmp_path: Path, env: dict[str, str],
                                                 message: str) -> None:
    result = cli("--config-dir", str(tmp_path), "--data-dir", str(tmp_path / "d"), "check",
                 env=env)
    assert result.returncode == 2
    assert "environment is invalid:" in result.stderr and message in result.stderr
    assert "Traceback" not in result.stderr
    assert cli("--help", env=env).returncode == 0  # help needs no valid environment
    flagged = cli("--log-level", "INFO", "--config-dir", str(tmp_path), "check", env=env)
    assert flagged.returncode == 2 and message in flagged.stderr


def test_environment_defaults_and_flags_win(tmp_path: Path) -> None:
    (tmp_path / "servers.yaml").write_text("servers: {}\n")
    env = {"ORCH_DATA_DIR": str(tmp_path / "from-env"), "ORCH_LOG_LEVEL": "error"}
    assert cli("--config-dir", str(tmp_path), "check", env=env).returncode == 0
    assert (tmp_path / "from-env").is_dir()  # ORCH_DATA_DIR is the data dir
    assert cli("--config-dir", str(tmp_path), "--data-dir", str(tmp_path / "flag"), "check",
               env=env).returncode == 0
    assert (tmp_path / "flag").is_dir()
    empty = cli("--config-dir", str(tmp_path), "--data-dir", str(tmp_path / "d"), "check",
                env={"ORCH_LOG_LEVEL": "", "ORCH_HTTP_TOKEN": ""})
    assert empty.returncode == 0, empty.stderr  # empty counts as unset
