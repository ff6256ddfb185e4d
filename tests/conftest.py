"""Shared fixtures: real MCP servers (npm reference servers, FastMCP test servers)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.fake_openai import FakeOpenAI

os.environ.setdefault("FASTMCP_CHECK_FOR_UPDATES", "off")

REPO = Path(__file__).resolve().parent.parent
NODE_MODULES = REPO / "node_modules" / "@modelcontextprotocol"
COUNTER_SERVER = Path(__file__).parent / "servers" / "counter_server.py"


@pytest.fixture(autouse=True)
def fresh_environment() -> Iterator[None]:
    """Each test reads the environment variables as it finds (or sets) them: the process's
    are otherwise taken once (orchestrator_mcp/config/environment.py)."""
    from orchestrator_mcp.config.environment import forget_environment

    forget_environment()
    yield
    forget_environment()


def npm_server(name: str) -> Path:
    entry = NODE_MODULES / f"server-{name}" / "dist" / "index.js"
    if not entry.is_file():
        pytest.fail(f"{entry} is missing: run 'npm install' at the repo root (.ci/run does)")
    return entry


@pytest.fixture(scope="session")
def everything_cfg() -> dict:
    return {"command": "node", "args": [str(npm_server("everything")), "stdio"]}


@pytest.fixture(scope="session")
def memory_cfg(tmp_path_factory: pytest.TempPathFactory) -> dict:
    memory_file = tmp_path_factory.mktemp("memory") / "memory.jsonl"
    return {
        "command": "node",
        "args": [str(npm_server("memory"))],
        "env": {"MEMORY_FILE_PATH": str(memory_file)},
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on port {port} within {timeout} s")


class CounterServer:
    """The FastMCP test server over Streamable HTTP, restartable on the same port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.count_file = workdir / "counts.txt"
        self.count_file.touch()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(COUNTER_SERVER), "--count-file", str(self.count_file),
             "--port", str(self.port)],
        )
        wait_for_port(self.port)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def calls(self, name: str) -> int:
        return self.count_file.read_text().splitlines().count(name)


@pytest.fixture
def counter_http(tmp_path: Path) -> Iterator[CounterServer]:
    server = CounterServer(tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def counter_stdio_cfg(tmp_path: Path) -> dict:
    count_file = tmp_path / "stdio-counts.txt"
    count_file.touch()
    return {"command": sys.executable,
            "args": [str(COUNTER_SERVER), "--count-file", str(count_file)]}


def write_config(directory: Path, servers: dict, **sections: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "servers.yaml").write_text(yaml.safe_dump({"servers": servers, **sections}))
    return directory


@pytest.fixture
def llm() -> Iterator[FakeOpenAI]:
    """A local Chat Completions server whose model follows the plan in the goal."""
    with FakeOpenAI() as fake:
        yield fake
