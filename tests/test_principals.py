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

from orchestrator_mcp.auth import Authenticator
from orchestrator_mcp.auth.key_store import KeyStore, ManagedKeys
from orchestrator_mcp.auth.keys import KeyRequest
from orchestrator_mcp.config.http import HttpSettings
from orchestrator_mcp.runs.models import RunRecord, RunStatus
from orchestrator_mcp.runs.store import RunStore
from tests import postgres
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
            "limits": {"max_concurrent_runs": 5}})
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
    expires = time.time() + 6
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
            for hostile in ({"name": "x" * 5000, "scopes": ["read"]},
                            {"name": "ok", "scopes": ["read"] * 500},
                            {"name": "ok", "scopes": ["read"], "expires": "9" * 5000},
                            {"name": "ok", "scopes": ["read"], "expires": "-1d"},
                            {"name": "ok", "scopes": ["read"],
                             "limits": {"monthly_cost_usd": -5}},
                            {"name": "../../etc", "scopes": ["read"]}):
                refused = await admin.call_tool_mcp("create_key", hostile)
                assert refused.is_error, hostile
                assert len(refused.content[0].text) < 2000
            await admin.call_tool("revoke_key", {"name": "from-mcp"})
            assert await _status(http, key) == 401
    async with Client(StreamableHttpTransport(mcp, auth=ALICE)) as alice:
        refused = await alice.call_tool_mcp("list_keys", {})
        assert refused.is_error and "lacks the 'admin' scope" in refused.content[0].text


# ---- ownership -----------------------------------------------------------------------------


async def _start(http: httpx2.AsyncClient, token: str, goal: str,
                 profile: str = "default") -> dict[str, Any]:
    started = await http.post("/runs", headers=bearer(token),
                              json={"goal": goal, "profile": profile})
    assert started.status_code == 201, started.text
    return started.json()


async def _until(http: httpx2.AsyncClient, run_id: str, *statuses: str) -> dict[str, Any]:
    async with asyncio.timeout(60):
        while True:
            record = (await http.get(f"/runs/{run_id}", headers=bearer(MAIN))).json()
            if record["status"] in statuses:
                return record
            await asyncio.sleep(0.1)


async def _listed(http: httpx2.AsyncClient, token: str) -> set[str]:
    response = await http.get("/runs", headers=bearer(token), params={"limit": 1000})
    assert response.status_code == 200, response.text
    return {r["id"] for r in response.json()["runs"]}


async def test_principals_see_only_their_own_runs(served: Served) -> None:
    async with httpx2.AsyncClient(base_url=served.url, timeout=30) as http:
        alices = await _start(http, ALICE, "say something")
        assert alices["owner"] == "token:alice"
        await _until(http, alices["id"], "completed")
        run_id = alices["id"]
        assert run_id in await _listed(http, ALICE)
        assert run_id not in await _listed(http, BOB)
        assert run_id in await _listed(http, AUDITOR)  # read_all
        assert run_id in await _listed(http, MAIN)  # ORCH_HTTP_TOKEN has every scope
        for path in (f"/runs/{run_id}", f"/runs/{run_id}/stream"):
            hidden = await http.get(path, headers=bearer(BOB))
            assert hidden.status_code == 404, (path, hidden.text)
            assert f"no run '{run_id}'" in hidden.json()["detail"]
        assert (await http.get(f"/runs/{run_id}", headers=bearer(ALICE))).status_code == 200

        # A run from before owners were kept, and one an alert started: nobody's own.
        store = RunStore(f"sqlite:///{served.data / 'runs.sqlite'}")
        now = time.time()
        for legacy_id, owner in (("run_legacy_no_owner", None),
                                 ("run_from_alertmanager", "system:alertmanager")):
            store.create(RunRecord(id=legacy_id, goal="old", profile="default",
                                   status=RunStatus.COMPLETED, source="alertmanager",
                                   owner=owner, created_at=now, updated_at=now))
        for hidden_id in ("run_legacy_no_owner", "run_from_alertmanager"):
            assert hidden_id not in await _listed(http, ALICE)
            assert hidden_id in await _listed(http, AUDITOR)
            assert (await http.get(f"/runs/{hidden_id}", headers=bearer(BOB))
                    ).status_code == 404

    mcp = f"{served.url}/mcp"
    async with Client(StreamableHttpTransport(mcp, auth=BOB)) as bob:
        await wait_for_tool(bob, "get_run")
        listed = await bob.call_tool("list_runs", {"limit": 200})
        assert run_id not in json.dumps(listed.structured_content)
        for tool, arguments in (("get_run", {"run_id": run_id}),
                                ("cancel_run", {"run_id": run_id})):
            refused = await bob.call_tool_mcp(tool, arguments)
            assert refused.is_error and f"no run '{run_id}'" in refused.content[0].text
        with pytest.raises(Exception, match="no run"):
            await bob.read_resource(f"orchestrator://runs/{run_id}")
    async with Client(StreamableHttpTransport(mcp, auth=ALICE)) as alice:
        mine = await alice.call_tool("get_run", {"run_id": run_id})
        assert mine.structured_content["owner"] == "token:alice"
    shown = served.cli("runs", "show", run_id)
    assert shown.returncode == 0 and "owner: token:alice" in shown.stdout
    listing = served.cli("runs", "list", "--limit", "100")
    assert "OWNER" in listing.stdout and "token:alice" in listing.stdout


async def test_a_key_owns_its_runs(served: Served) -> None:
    key = served.new_key("runner-key", "read,run")
    async with httpx2.AsyncClient(base_url=served.url, timeout=30) as http:
        started = await _start(http, key, "say something")
        assert started["owner"] == "key:runner-key"
        assert await _listed(http, key) >= {started["id"]}
        assert started["id"] not in await _listed(http, ALICE)
        await _until(http, started["id"], "completed")


# ---- four eyes -----------------------------------------------------------------------------


async def _approve(http: httpx2.AsyncClient, token: str, run_id: str,
                   approved: bool = True) -> httpx2.Response:
    return await http.post(f"/approvals/{run_id}", headers=bearer(token),
                           json={"approved": approved})


async def test_four_eyes_needs_two_approvers_other_than_the_owner(served: Served) -> None:
    async with httpx2.AsyncClient(base_url=served.url, timeout=30) as http:
        run = await _start(http, ALICE, "CALL counter_bump {}", profile="prod")
        run_id = run["id"]
        waiting = await _until(http, run_id, "awaiting_approval")
        assert waiting["pending_approval"]["approvers"] == 2
        assert waiting["pending_approval"]["owner"] == "token:alice"

        own = await _approve(http, ALICE, run_id)
        assert own.status_code == 403, own.text
        assert "token 'alice' started run" in own.json()["detail"]
        assert "approval.separate_approver" in own.json()["detail"]

        # carol (approve, but only read) sees the call waiting in the approval inbox
        inbox = (await http.get("/approvals", headers=bearer(CAROL))).json()
        assert run_id in [a["run_id"] for a in inbox]
        # a caller without approve sees only its own runs' waiting calls
        reader = served.new_key("inbox-reader", "read")
        theirs = (await http.get("/approvals", headers=bearer(reader))).json()
        assert run_id not in [a["run_id"] for a in theirs]

        first = await _approve(http, BOB, run_id)
        assert first.status_code == 200, first.text
        partial = await _until(http, run_id, "awaiting_approval")
        assert partial["pending_approval"]["approved_by"] == ["token:bob"]
        again = await _approve(http, BOB, run_id)
        assert again.status_code == 403
        assert "token 'bob' has already approved" in again.json()["detail"]
        assert "1 more approval(s)" in again.json()["detail"]

        second = await _approve(http, CAROL, run_id)
        assert second.status_code == 200, second.text
        done = await _until(http, run_id, "completed", "failed")
        assert done["status"] == "completed"
        summaries = [s["summary"] for s in done["steps"] if s["kind"] == "approval"]
        assert any("approved by token 'bob'; 1 more approval(s) needed" in s for s in summaries)
        assert any("approved by token 'bob', token 'carol'" in s for s in summaries)
        tools = [s for s in done["steps"] if s["kind"] == "tool"]
        assert len(tools) == 1 and not tools[0]["detail"]["is_error"]

    async with Client(StreamableHttpTransport(f"{served.url}/mcp", auth=MAIN)) as admin:
        await wait_for_tool(admin, "audit")
        entries = (await admin.call_tool("audit", {"run_id": run_id, "kind": "approval"})
                   ).structured_content["result"]
        assert sorted((e["caller"], e["outcome"]) for e in entries) == [
            ("token:bob", "approved 1 of 2"), ("token:carol", "approved")]


async def test_separate_approver_over_mcp_and_the_owner_may_reject(served: Served) -> None:
    async with httpx2.AsyncClient(base_url=served.url, timeout=30) as http:
        run = await _start(http, ALICE, "CALL counter_bump {}", profile="separate")
        await _until(http, run["id"], "awaiting_approval")
        mcp = f"{served.url}/mcp"
        async with Client(StreamableHttpTransport(mcp, auth=ALICE)) as alice:
            await wait_for_tool(alice, "approve")
            own = await alice.call_tool_mcp("approve", {"run_id": run["id"], "approved": True})
            assert own.is_error and "may not approve its own call" in own.content[0].text
            rejected = await alice.call_tool("approve", {"run_id": run["id"],
                                                         "approved": False})
            assert rejected.structured_content["status"] in ("running", "completed")
        done = await _until(http, run["id"], "completed")
        assert any("rejected by token 'alice'" in s["summary"] for s in done["steps"])


# ---- limits --------------------------------------------------------------------------------


async def test_a_monthly_cost_cap_refuses_runs_and_is_a_metric(served: Served) -> None:
    async with httpx2.AsyncClient(base_url=served.url, timeout=30) as http:
        for _ in range(2):  # one model call each, $1.1: 55 %, then 110 % of $2
            run = await _start(http, CAPPED, "say something")
            done = await _until(http, run["id"], "completed")
            assert done["usage"]["cost_usd"] == pytest.approx(1.1)
        refused = await http.post("/runs", headers=bearer(CAPPED), json={"goal": "more"})
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"] == "limit_exceeded"
        assert "limits.monthly_cost_usd" in refused.json()["detail"]
        assert "$2.20 of its monthly cost cap of $2.00" in refused.json()["detail"]
        metrics = (await http.get("/metrics", headers=bearer(MAIN))).text
    for threshold in ("80%", "100%"):
        assert ('orchestrator_principal_cost_cap_reached_total{principal="token:capped",'
                f'threshold="{threshold}"}} 1.0') in metrics
    assert ('orchestrator_principal_cost_cap_used_ratio{principal="token:capped"} 1.1'
            in metrics)
    assert 'orchestrator_principal_limit_refusals_total{limit="monthly_cost_usd"}' in metrics


async def test_a_key_limit_on_concurrent_runs(served: Served) -> None:
    key = served.new_key("one-at-a-time", "read,run", "--max-concurrent-runs", "1")
    async with httpx2.AsyncClient(base_url=served.url, timeout=30) as http:
        first = await _start(http, key, "CALL counter_bump {}")  # waits for an approval
        await _until(http, first["id"], "awaiting_approval")
        refused = await http.post("/runs", headers=bearer(key), json={"goal": "another"})
        assert refused.status_code == 429, refused.text
        assert "limits.max_concurrent_runs" in refused.json()["detail"]
        assert "key 'one-at-a-time' already has 1 runs going" in refused.json()["detail"]
        async with Client(StreamableHttpTransport(f"{served.url}/mcp", auth=key)) as client:
            await wait_for_tool(client, "run")
            over = await client.call_tool_mcp("run", {"goal": "and another"})
            assert over.is_error and "limits.max_concurrent_runs" in over.content[0].text
            await client.call_tool("cancel_run", {"run_id": first["id"]})
        assert (await http.post("/runs", headers=bearer(key), json={"goal": "now"})
                ).status_code == 201


# ---- replicas on PostgreSQL ----------------------------------------------------------------


@pytest.mark.skipif(postgres.bin_dir() is None,
                    reason="PostgreSQL is not installed (.ci/run installs it)")
async def test_replicas_on_postgresql_share_keys_revocation_and_spend() -> None:
    """Two replicas (each its own engine and Authenticator) on one real PostgreSQL
    database: a key made on one works on the other, a revocation on one is refused by the
    other on its next request, and a principal's spend is summed across them."""
    with postgres.cluster() as server_url:
        url = postgres.create_database(server_url).replace("postgresql://",
                                                            "postgresql+psycopg://")
        replicas = [RunStore(url) for _ in range(2)]
        try:
            authenticators = []
            for store in replicas:
                authenticator = Authenticator.from_settings(HttpSettings())

                async def database(engine: Any = store.engine) -> Any:
                    return engine

                authenticator.keys = ManagedKeys(database)
                authenticators.append(authenticator)
            one, other = authenticators
            made = KeyStore(replicas[0].engine).create(
                KeyRequest(name="shared", scopes=["read", "run"]), "test")
            principal = await other.principal(f"Bearer {made.key}")
            assert principal is not None and principal.id == "key:shared"
            assert await one.principal(f"Bearer {made.key}") == principal
            KeyStore(replicas[1].engine).revoke("shared", "token:main")
            assert await one.principal(f"Bearer {made.key}") is None

            now = time.time()
            for n, store in enumerate(replicas):
                store.create(RunRecord(id=f"run_pg_{n}", goal="g", profile="default",
                                       status=RunStatus.COMPLETED, owner="key:shared",
                                       usage={"cost_usd": 0.75}, created_at=now,
                                       updated_at=now))
            assert replicas[1].usage_of("key:shared", now - 60) == (0, 1.5)
            assert {r.id for r in replicas[0].list(owner="key:shared")} == {
                "run_pg_0", "run_pg_1"}
        finally:
            for store in replicas:
                store.close()
