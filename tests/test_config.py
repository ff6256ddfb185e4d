"""servers.yaml / profiles.yaml: what loads, and what a user is told when it does not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator_mcp.config import ConfigError, load_config

REPO = Path(__file__).resolve().parent.parent


def problems(tmp_path: Path, servers: str = "", profiles: str = "") -> list[str]:
    if servers:
        (tmp_path / "servers.yaml").write_text(servers)
    if profiles:
        (tmp_path / "profiles.yaml").write_text(profiles)
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    return caught.value.problems


def test_pasted_host_config_loads(tmp_path: Path) -> None:
    host_config = {
        "mcpServers": {
            "everything": {"command": "npx",
                           "args": ["-y", "@modelcontextprotocol/server-everything"]},
            "remote": {"url": "https://example.com/mcp", "headers": {"X-Key": "k"}},
            "legacy": {"url": "https://example.com/sse", "transport": "sse"},
            "typed": {"type": "stdio", "command": "uvx", "args": ["some-server"]},
        }
    }
    # JSON is YAML: a claude_desktop_config.json pastes as is.
    (tmp_path / "servers.yaml").write_text(json.dumps(host_config))
    servers = load_config(tmp_path).servers.servers
    assert servers["everything"].transport == "stdio"
    assert servers["remote"].transport == "http"
    assert servers["legacy"].transport == "sse"
    assert servers["typed"].transport == "stdio"
    assert all(s.enabled for s in servers.values())


def test_env_interpolation_with_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKEN", "s3cret")
    (tmp_path / "servers.yaml").write_text(
        "servers:\n  r:\n    url: ${BASE:-http://127.0.0.1:9}/mcp\n"
        "    headers: {Authorization: 'Bearer ${API_TOKEN}'}\n"
    )
    server = load_config(tmp_path).servers.servers["r"]
    assert server.url == "http://127.0.0.1:9/mcp"
    assert server.headers["Authorization"] == "Bearer s3cret"


def test_missing_env_var_names_key_and_fix(tmp_path: Path) -> None:
    found = problems(tmp_path, "servers:\n  r:\n    url: http://x/mcp\n"
                               "    headers: {Authorization: 'Bearer ${NOT_SET_ANYWHERE}'}\n")
    assert len(found) == 1
    assert "servers.r.headers.Authorization" in found[0]
    assert "NOT_SET_ANYWHERE is not set" in found[0] and "export it" in found[0]


def test_unknown_key_is_an_error_with_path(tmp_path: Path) -> None:
    found = problems(tmp_path, "servers:\n  a:\n    command: x\n    timout: 5\n")
    assert found == [
        f"{tmp_path / 'servers.yaml'}: servers.a.timout: Extra inputs are not permitted — "
        "fix: remove it or fix its spelling (unknown keys are not ignored)"
    ]


def test_unknown_key_in_pasted_host_shape_keeps_its_name(tmp_path: Path) -> None:
    found = problems(tmp_path, "mcpServers:\n  a:\n    command: x\n    bogus: 1\n")
    assert "mcpServers.a.bogus" in found[0]


def test_bad_glob(tmp_path: Path) -> None:
    found = problems(tmp_path, "servers:\n  a:\n    command: x\n    tools: {deny: ['rm[']}\n")
    assert "servers.a.tools.deny" in found[0] and "unclosed '['" in found[0]


def test_duplicate_server_name(tmp_path: Path) -> None:
    found = problems(tmp_path, "servers:\n  a:\n    command: x\n  a:\n    command: y\n")
    assert "duplicate key 'a'" in found[0] and "line 4" in found[0]


def test_malformed_yaml_gives_line(tmp_path: Path) -> None:
    found = problems(tmp_path, "servers:\n  a:\n    command: [x\n")
    assert "invalid YAML at line" in found[0]


def test_not_a_mapping(tmp_path: Path) -> None:
    assert "top level must be a mapping" in problems(tmp_path, "- a\n- b\n")[0]


def test_command_and_url_together(tmp_path: Path) -> None:
    found = problems(tmp_path, "servers:\n  a:\n    command: x\n    url: http://h/mcp\n")
    assert "not both" in found[0]


def test_neither_command_nor_url(tmp_path: Path) -> None:
    assert "give 'command'" in problems(tmp_path, "servers:\n  a:\n    args: [x]\n")[0]


def test_bad_server_name(tmp_path: Path) -> None:
    found = problems(tmp_path, "servers:\n  'my server':\n    command: x\n")
    assert "'my server'" in found[0] and "letters, digits" in found[0]


def test_bad_protocol_pin(tmp_path: Path) -> None:
    found = problems(tmp_path, "servers:\n  a:\n    command: x\n    protocol: 2024-01-01\n")
    assert "servers.a.protocol" in found[0]


def test_both_files_reported_together(tmp_path: Path) -> None:
    found = problems(tmp_path, "servers:\n  a:\n    commnd: x\n",
                     "profiles:\n  ops:\n    budgets: {max_steps: 0}\n")
    assert len(found) >= 2
    assert any("profiles.yaml: profiles.ops.budgets.max_steps" in p for p in found)


def test_shipped_examples_load() -> None:
    config = load_config(REPO)
    assert config.servers_path == REPO / "servers.yaml"
    assert config.profiles_path == REPO / "profiles.yaml"
    assert config.servers.servers, "the example servers.yaml should configure a server"


def test_stdio_servers_start_in_the_config_folder(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "servers.yaml").write_text(
        "servers:\n  a:\n    command: node\n  b:\n    command: node\n    cwd: sub\n"
        "  c:\n    url: http://127.0.0.1:1/mcp\n"
    )
    servers = load_config(tmp_path).servers.servers
    assert servers["a"].cwd == tmp_path.resolve()
    assert servers["b"].cwd == (tmp_path / "sub").resolve()
    assert servers["c"].cwd is None


# ---- environment variables (orchestrator_mcp/config/environment.py) ----------------------


def test_the_process_environment_is_read_once(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    from orchestrator_mcp.config import resolve_data_dir
    from orchestrator_mcp.config.environment import environment, forget_environment

    monkeypatch.setenv("ORCH_DATA_DIR", str(tmp_path / "first"))
    assert environment() is environment()
    monkeypatch.setenv("ORCH_DATA_DIR", str(tmp_path / "second"))
    assert resolve_data_dir(None) == tmp_path / "first"
    assert resolve_data_dir(tmp_path / "flag") == tmp_path / "flag"  # --data-dir wins
    forget_environment()
    assert resolve_data_dir(None) == tmp_path / "second"


def test_an_explicit_mapping_is_all_that_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator_mcp.config.environment import environment

    monkeypatch.setenv("ORCH_LOG_LEVEL", "ERROR")
    monkeypatch.setenv("OPENAI_MODEL", "from-process")
    env = environment({"ORCH_LOG_LEVEL": " debug ", "OPENAI_API_KEY": "", "OLLAMA_MODEL": "m"})
    assert env.orchestrator.log_level == "DEBUG"
    assert env.llm.openai_model is None and env.llm.openai_api_key is None  # '' is unset
    assert env.llm.ollama_model == "m"
    assert environment({}).orchestrator.log_level == "INFO"


def test_environment_values_say_what_they_accept() -> None:
    from orchestrator_mcp.config.environment import EnvironmentVariableError, environment

    env = environment({"ORCH_LOG_LEVEL": "loud", "ORCH_HTTP_TOKEN": "has spaces in the token",
                       "LLM_PROVIDER": "claude"})
    with pytest.raises(EnvironmentVariableError) as caught:
        _ = env.orchestrator
    assert caught.value.problems == [
        "environment variable ORCH_LOG_LEVEL: 'loud' is not a log level; use DEBUG, INFO, "
        "WARNING or ERROR",
        "environment variable ORCH_HTTP_TOKEN: a token may not contain spaces or line breaks"]
    with pytest.raises(EnvironmentVariableError, match="LLM_PROVIDER: 'claude' is not an LLM "
                       "provider; use openai, ollama, bedrock or scripted"):
        _ = env.llm
    assert env.tracing.wanted is False  # each concern stands on its own


def test_secrets_stay_secret_and_reach_the_redactor() -> None:
    from orchestrator_mcp.config.environment import environment
    from orchestrator_mcp.telemetry.logs import environment_secrets

    env = environment({"ORCH_HTTP_TOKEN": "http-token-0123456789",
                       "ORCH_DATABASE_URL": "postgresql://orch:db-password-77@db:5432/orch",
                       "OPENAI_API_KEY": "sk-test-key-0123456789",
                       "OPENAI_BASE_URL": "https://llm.example/v1?key=query-secret-1"})
    shown = repr(env.orchestrator) + repr(env.llm)
    for secret in ("http-token-0123456789", "db-password-77", "sk-test-key-0123456789"):
        assert secret not in shown
    assert set(environment_secrets(env)) == {
        "http-token-0123456789", "db-password-77", "sk-test-key-0123456789", "query-secret-1"}
    assert env.orchestrator.database("postgresql://file/x") == (
        "postgresql://orch:db-password-77@db:5432/orch")  # ORCH_DATABASE_URL wins
    assert environment({}).orchestrator.database("postgresql://file/x") == "postgresql://file/x"
    bad = environment({"ORCH_LOG_LEVEL": "loud", "OPENAI_API_KEY": "sk-test-key-0123456789"})
    assert environment_secrets(bad) == ["sk-test-key-0123456789"]


def test_orch_http_token_wins_over_the_file(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "servers.yaml").write_text("http: {token: file-token-0123456789}\n")
    monkeypatch.setenv("ORCH_HTTP_TOKEN", "   ")  # blank counts as unset
    assert load_config(tmp_path).servers.http.token == "file-token-0123456789"
    from orchestrator_mcp.config.environment import forget_environment

    forget_environment()
    monkeypatch.setenv("ORCH_HTTP_TOKEN", "env-token-0123456789")
    assert load_config(tmp_path).servers.http.token == "env-token-0123456789"
    forget_environment()
    monkeypatch.setenv("ORCH_HTTP_TOKEN", "short")
    assert problems(tmp_path) == [
        "environment variable ORCH_HTTP_TOKEN: a token needs at least 16 characters; generate "
        "one with: python -c \"import secrets; print(secrets.token_urlsafe(32))\""]
