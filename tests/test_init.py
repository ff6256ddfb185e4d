"""`orchestrator-mcp init`: the real command in a subprocess, its files checked by
`orchestrator-mcp check` against the real reference servers and built-in agents."""

from __future__ import annotations

import os
import pty
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

FILES = ("servers.yaml", "profiles.yaml", ".env")


def _env(**extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("ORCH_", "OPENAI_", "LLM_", "OLLAMA_", "BEDROCK_"))}
    return {**clean, **extra}


def init(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestrator_mcp", "init", *args],
                          capture_output=True, text=True, timeout=60, env=env or _env(),
                          stdin=subprocess.DEVNULL)


def dotenv(directory: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (directory / ".env").read_text().splitlines()
                if line and not line.startswith("#"))


def test_non_interactive_init_writes_private_files_that_pass_check(tmp_path: Path) -> None:
    site = tmp_path / "site"
    done = init(str(site), "--non-interactive", env=_env(OPENAI_API_KEY="sk-test-key-123"))
    assert done.returncode == 0, done.stderr
    assert f"docker compose --env-file {site}/.env -f deploy/compose.yaml up -d" in done.stdout
    for name in FILES:
        assert stat.S_IMODE((site / name).stat().st_mode) == 0o600, name
    secrets = dotenv(site)
    assert secrets["OPENAI_API_KEY"] == "sk-test-key-123"
    assert secrets["ORCH_CONFIG_DIR"] == str(site)
    generated = [secrets[k] for k in ("ORCH_HTTP_TOKEN", "ORCH_ALERT_TOKEN",
                                      "POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD")]
    assert len(set(generated)) == 4 and all(len(v) >= 40 for v in generated)
    servers = (site / "servers.yaml").read_text()
    assert yaml.safe_load(servers)["llm"] == {"provider": "openai", "model": "gpt-4o-mini"}
    for secret in [*generated, "sk-test-key-123"]:
        assert secret not in servers and secret not in done.stdout
    if os.geteuid() == 0:  # given to the image's user, which compose mounts them for
        assert (site / "servers.yaml").stat().st_uid == 1000
        assert (site / ".env").stat().st_uid == 0

    # Beside what the image's /app holds (node_modules, workflows, playbooks, runbooks).
    for folder in ("node_modules", "workflows", "playbooks", "runbooks"):
        (site / folder).symlink_to(REPO / folder)
    checked = subprocess.run(
        [sys.executable, "-m", "orchestrator_mcp", "--config-dir", str(site),
         "--data-dir", str(tmp_path / "data"), "check", "--timeout", "60"],
        capture_output=True, text=True, timeout=120, env=_env(**secrets))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "everything" in checked.stdout and "memory" in checked.stdout


def test_existing_files_are_kept_without_force(tmp_path: Path) -> None:
    assert init(str(tmp_path), "--provider", "ollama").returncode == 0
    before = {name: (tmp_path / name).read_text() for name in FILES}
    refused = init(str(tmp_path), "--provider", "ollama")
    assert refused.returncode == 2
    assert "servers.yaml, profiles.yaml, .env already exist" in refused.stderr
    assert "--force" in refused.stderr
    assert {name: (tmp_path / name).read_text() for name in FILES} == before

    (tmp_path / ".env").chmod(0o644)
    forced = init(str(tmp_path), "--provider", "ollama", "--model", "qwen2.5", "--force")
    assert forced.returncode == 0, forced.stderr
    assert dotenv(tmp_path)["ORCH_HTTP_TOKEN"] != dotenv_of(before[".env"])["ORCH_HTTP_TOKEN"]
    assert yaml.safe_load((tmp_path / "servers.yaml").read_text())["llm"]["model"] == "qwen2.5"
    assert stat.S_IMODE((tmp_path / ".env").stat().st_mode) == 0o600
    assert not list(tmp_path.glob(".*init-tmp"))


def dotenv_of(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines()
                if line and not line.startswith("#"))


@pytest.mark.parametrize(("args", "env", "problem"), [
    (["--provider", "openai"], {}, "needs a key: export OPENAI_API_KEY"),
    (["--provider", "scripted"], {}, "needs --script FILE"),
    (["--provider", "openai", "--base-url", "ftp://x"], {}, "must start with http://"),
    (["--provider", "ollama", "--model", "x\nservers: {}"], {}, "model: Value error, must "
     "be one line"),
    (["--provider", "ollama", "--model", "m" * 201], {}, "at most 200 characters"),
    (["--provider", "openai"], {"OPENAI_API_KEY": "sk-abc $HOME"}, "write it into .env by "
     "hand"),
    (["--provider", "gemini"], {}, "invalid choice: 'gemini'"),
])
def test_bad_answers_are_refused_and_nothing_is_written(
    tmp_path: Path, args: list[str], env: dict[str, str], problem: str
) -> None:
    site = tmp_path / "site"
    refused = init(str(site), "--non-interactive", *args, env=_env(**env))
    assert refused.returncode == 2
    assert problem in refused.stderr
    assert not site.exists()
    assert "sk-abc" not in refused.stderr


def test_a_yaml_looking_model_name_stays_a_string(tmp_path: Path) -> None:
    done = init(str(tmp_path), "--provider", "ollama", "--model", "{servers: [x]} # &a *a")
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load((tmp_path / "servers.yaml").read_text())["llm"]["model"] == \
        "{servers: [x]} # &a *a"


def test_a_terminal_user_is_asked(tmp_path: Path) -> None:
    """On a terminal: provider, model, endpoint are asked; Enter keeps the default."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator_mcp", "init", str(tmp_path / "site")],
        stdin=follower, stdout=follower, stderr=follower, env=_env(), close_fds=True)
    os.close(follower)
    seen = b""
    for answer in (b"ollama\n", b"\n", b"http://ollama.internal:11434\n"):
        deadline = time.monotonic() + 30
        while not seen.rstrip().endswith(b":") and time.monotonic() < deadline:
            seen += os.read(leader, 4096)
        os.write(leader, answer)
        seen = b""
    assert process.wait(60) == 0
    with os.fdopen(leader, "rb") as rest:
        try:
            rest.read()
        except OSError:
            pass
    llm = yaml.safe_load((tmp_path / "site" / "servers.yaml").read_text())["llm"]
    assert llm == {"provider": "ollama", "model": "llama3.1",
                   "base_url": "http://ollama.internal:11434"}


def test_the_profiles_template_is_the_shipped_profiles_yaml() -> None:
    template = REPO / "orchestrator_mcp" / "cli" / "templates" / "profiles.yaml"
    assert template.read_text() == (REPO / "profiles.yaml").read_text()
