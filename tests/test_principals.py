"""Principals (issue 17, parts 2-5) on a real `serve --http`: managed API keys made by the
real CLI and the admin MCP tools, run ownership, four-eyes approvals and per-principal
limits — real HTTP and MCP clients, the FastMCP counter server as the tool to approve, the
OpenAI wire-protocol fake as the model (priced through `llm.prices`)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport

from orchestrator_mcp.auth.keys import KeyRequest, KeyStore
from orchestrator_mcp.runs.store import RunStore
from tests.conftest import COUNTER_SERVER, write_config
from tests.fake_openai import FakeOpenAI
from tests.test_cli import cli
from tests.test_front import http_server, wait_for_tool

MAIN = "main-token-principals-0123456"
ALICE = "alice-token-principals-01234"
BOB = "bob-token-principals-0123456"
CAROL = "carol-token-principals-01234"
AUDITOR = "auditor-token-principals-012"
CAPPED = "capped-token-principals-0123"


class Served:
    def __init__(self, url: str, config: Path, data: Path) -> None:
        self.url, self.config, self.data = url, config, data

    def cli(self, *args: str) -> Any:
        return cli("--config-dir", str(self.config), "--data-dir", str(self.data), *args)

    def new_key(self, name: str, scopes: str, *extra: str) -> str:
        made = self.cli("keys", "create", "--name", name, "--scopes", scopes, *extra)
        assert made.returncode == 0, made.stderr
        return made.stdout.splitlines()[0]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("principals")
    counts = tmp / "counts.txt"
    counts.touch()
    counter = {"command": sys.executable,
               "args": [str(COUNTER_SERVER), "--count-file", str(counts)]}
    config = write_config(
        tmp / "config", {"counter": counter},
        # $1 per 100 input tokens and $0.1 per 10 output: a model call of the fake is $1.1
        llm={"prices": {"fake-planner": {"input_per_mtok": 10_000,
                                         "output_per_mtok": 10_000}}},
        http={"tokens": [
            {"name": "alice", "token": ALICE, "scopes": ["read", "run", "approve"]},
            {"name": "bob", "token": BOB, "scopes": ["read", "run", "approve"]},
            {"name": "carol", "token": CAROL, "scopes": ["read", "approve"]},
            {"name": "auditor", "token": AUDITOR, "scopes": ["read", "read_all"]},
            {"name": "capped", "token": CAPPED, "scopes": ["read", "run"],
             "limits": {"monthly_cost_usd": 2.0}}],
            "limits": {"max_concurrent_runs": 3}})
    (config / "profiles.yaml").write_text(json.dumps({"profiles": {
        "prod": {"description": "four eyes", "approval": {
            "separate_approver": True, "approvers": 2, "timeout_seconds": 120}},
        "separate": {"description": "not the owner", "approval": {
            "separate_approver": True}}}}))
    env = {k: v for k, v in os.environ.items() if k not in ("ORCH_HTTP_TOKEN", "LLM_SCRIPT")}
    with FakeOpenAI() as llm:
        env.update(llm.env(), ORCH_HTTP_TOKEN=MAIN)
        with http_server(config, tmp / "data", env) as url:
            yield Served(url, config, tmp / "data")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _status(http: httpx2.AsyncClient, token: str) -> int:
    return (await http.get("/runs", headers=bearer(token))).status_code


# ---- managed keys --------------------------------------------------------------------------


async def test_a_cli_key_works_until_revoked_then_401_at_once(served: Served) -> None:
    key = served.new_key("ci-reader", "read", "--expires", "30d")
    assert key.startswith("orch_") and len(key) == 57
    async with httpx2.AsyncClient(base_url=served.url, timeout=30) as http:
        assert await _status(http, key) == 200
        listed = json.loads(served.cli("keys", "list", "--json").stdout)
        mine = next(k for k in listed if k["name"] == "ci-reader")
        assert mine["state"] == "active" and mine["scopes"] == ["read"]
        assert mine["last_used_at"] is not None and mine["created_by"].startswith("local:")
        assert key not in json.dumps(listed) and key[14:] not in served.cli(
            "keys", "list").stdout
        assert (await http.post("/runs", headers=bearer(key), json={"goal": "x"})
                ).status_code == 403  # its scopes hold
        revoked = served.cli("keys", "revoke", "ci-reader")
        assert revoked.returncode == 0, revoked.stderr
        refused = await http.get("/runs", headers=bearer(key))
        assert refused.status_code == 401, "refused on the very next request"
        # The same shape with another secret, or another prefix, is refused too.
        assert await _status(http, key[:-4] + "AAAA") == 401
        assert await _status(http, "orch_deadbeef_" + key[14:]) == 401


async def test_an_expired_key_is_refused(served: Served) -> None:
    # Made through the store on the server's own database file: the CLI takes seconds to
    # start on a busy machine, and the shortest expiry it takes is a minute.
    expires = time.time() + 2
    store = KeyStore(RunStore(f"sqlite:///{served.data / 'runs.sqlite'}").engine)
    key = store.create(KeyRequest(name="short-lived", scopes=["read"], expires_at=expires),
                       "test").key
    async with httpx2.AsyncClient(base_url=served.url, timeout=30) as http:
        assert await _status(http, key) == 200
        await asyncio.sleep(max(0.0, expires - time.time()) + 0.2)
        assert await _status(http, key) == 401
    states = {k["name"]: k["state"] for k in json.loads(
        served.cli("keys", "list", "--all", "--json").stdout)}
    assert states["short-lived"] == "expired"


@pytest.mark.parametrize(("args", "says"), [
    (["--name", "x" * 5000, "--scopes", "read"], "at most 32 characters"),
    (["--name", "bad name!", "--scopes", "read"], "must be 1-32 letters"),
    (["--name", "ok", "--scopes", "read,root"], "unknown scope(s) 'root'"),
    (["--name", "ok", "--scopes", ","], "at least 1 item"),
    (["--name", "ok", "--scopes", "read", "--expires", "yesterday"], "is not a time"),
    (["--name", "ok", "--scopes", "read", "--expires", "2001-01-01"], "not in the future"),
    (["--name", "ok", "--scopes", "read", "--expires", "99999w"], "days away"),
    (["--name", "ok", "--scopes", "read", "--expires", "9" * 400], "is not a time"),
    (["--name", "ok", "--scopes", "read", "--max-concurrent-runs", "0"], "invalid limits"),
])
def test_hostile_key_requests_say_what_is_wrong(served: Served, args: list[str],
                                                says: str) -> None:
    made = served.cli("keys", "create", *args)
    assert made.returncode == 2, made.stdout
    assert says in made.stderr, made.stderr
    assert "Traceback" not in made.stderr


def test_names_are_unique_among_active_keys(served: Served) -> None:
    served.new_key("dup", "read")
    again = served.cli("keys", "create", "--name", "dup", "--scopes", "read")
    assert again.returncode == 2 and "already named 'dup'" in again.stderr
    assert served.cli("keys", "revoke", "dup").returncode == 0
    served.new_key("dup", "read")  # a revoked name can be reused (the same owner id)
    missing = served.cli("keys", "revoke", "no-such-key")
    assert missing.returncode == 2 and "no active key named 'no-such-key'" in missing.stderr


async def test_admin_tools_manage_keys_and_need_admin(served: Served) -> None:
    mcp = f"{served.url}/mcp"
    async with Client(StreamableHttpTransport(mcp, auth=MAIN)) as admin:
        await wait_for_tool(admin, "create_key")
        made = await admin.call_tool("create_key", {"name": "from-mcp", "scopes": ["read"],
                                                    "expires": "1d"})
        key = made.structured_content["key"]
        assert made.structured_content["info"]["created_by"] == "token:main"
        async with httpx2.AsyncClient(base_url=served.url, timeout=30) as http:
            assert await _status(http, key) == 200
            listed = await admin.call_tool("list_keys", {})
            assert "from-mcp" in listed.content[0].text and key not in listed.content[0].text
            bad = await admin.call_tool_mcp("create_key", {"name": "x", "scopes": ["root"]})
            assert bad.is_error and "unknown scope(s) 'root'" in bad.content[0].text
            await admin.call_tool("revoke_key", {"name": "from-mcp"})
            assert await _status(http, key) == 401
    async with Client(StreamableHttpTransport(mcp, auth=ALICE)) as alice:
        refused = await alice.call_tool_mcp("list_keys", {})
        assert refused.is_error and "lacks the 'admin' scope" in refused.content[0].text
