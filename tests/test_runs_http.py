"""Runs as plain JSON over HTTP (GET /runs, GET /runs/{id}, POST /runs): a real
`serve --http` with scoped tokens, real HTTP requests, the scripted model."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import httpx2
import pytest

from tests.conftest import REPO, write_config
from tests.test_front import http_server

MAIN = "main-token-runs-0123456789"
READER = "reader-token-runs-0123456"
RUNNER = "runner-token-runs-0123456"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("runs-http")
    config = write_config(tmp / "config", {}, http={
        "tokens": [{"name": "reader", "token": READER, "scopes": ["read", "read_all"]},
                   {"name": "runner", "token": RUNNER, "scopes": ["run"]}],
        "max_request_bytes": 65536})
    env = {k: v for k, v in os.environ.items() if k != "ORCH_HTTP_TOKEN"}
    env.update(ORCH_HTTP_TOKEN=MAIN, LLM_PROVIDER="scripted",
               LLM_SCRIPT=str(REPO / "examples" / "scripted-llm.yaml"))
    with http_server(config, tmp / "data", env) as url:
        yield url


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_script_starts_a_run_and_follows_it(served: str) -> None:
    async with httpx2.AsyncClient(base_url=served, timeout=30) as http:
        started = await http.post("/runs", headers=bearer(RUNNER), json={
            "goal": "check that the gateway answers", "context": {"ticket": "OPS-1"}})
        assert started.status_code == 201, started.text
        run = started.json()
        assert started.headers["location"] == f"/runs/{run['id']}"
        assert run["source"] == "http" and run["context"] == {"ticket": "OPS-1"}
        assert "steps" not in run

        async with asyncio.timeout(60):
            while True:
                record = (await http.get(f"/runs/{run['id']}", headers=bearer(READER))).json()
                if record["status"] == "completed":
                    break
                await asyncio.sleep(0.2)
        assert "only knows the 'echo' and 'memory' goals" in record["answer"]
        assert any(step["kind"] == "llm" for step in record["steps"])

        listed = await http.get("/runs", headers=bearer(READER),
                                params={"status": "completed", "limit": 10})
        assert listed.status_code == 200
        assert run["id"] in [r["id"] for r in listed.json()["runs"]]


async def test_each_route_needs_its_scope(served: str) -> None:
    async with httpx2.AsyncClient(base_url=served) as http:
        assert (await http.get("/runs")).status_code == 401
        assert (await http.post("/runs", json={"goal": "x"})).status_code == 401
        assert (await http.get("/runs", headers=bearer("wrong-token-0123456789ab"))
                ).status_code == 401
        refused = await http.post("/runs", headers=bearer(READER), json={"goal": "x"})
        assert refused.status_code == 403
        assert "lacks the 'run' scope" in refused.json()["detail"]
        assert (await http.get("/runs", headers=bearer(RUNNER))).status_code == 403
        assert (await http.get("/runs/run_x", headers=bearer(RUNNER))).status_code == 403
        # an unlisted method needs 'admin' (fail closed)
        assert (await http.delete("/runs/run_x", headers=bearer(READER))).status_code == 403


@pytest.mark.parametrize(("body", "field"), [
    ({"goal": ""}, "goal"),
    ({"goal": "x" * 10_001}, "goal"),
    ({"goal": "x", "surprise": 1}, "surprise"),
    ({"goal": "x", "context": [1, 2]}, "context"),
    ({"goal": 7}, "goal"),
    ({}, "goal"),
])
async def test_bad_run_requests_say_what_is_wrong(served: str, body: dict, field: str) -> None:
    async with httpx2.AsyncClient(base_url=served) as http:
        response = await http.post("/runs", headers=bearer(MAIN), json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert response.json()["detail"][0]["field"].startswith(field)


async def test_hostile_and_unknown_inputs(served: str) -> None:
    async with httpx2.AsyncClient(base_url=served, headers=bearer(MAIN)) as http:
        profile = await http.post("/runs", json={"goal": "x", "profile": "ghost"})
        assert profile.status_code == 400
        assert "unknown profile 'ghost'" in profile.json()["detail"]
        for content in (b"not json", b'{"goal": "x"', b"[" * 30_000 + b"]" * 30_000,
                        b'{"goal": "x", "context": ' + b'{"a": ' * 5000 + b"1"
                        + b"}" * 5001):
            response = await http.post("/runs", content=content)
            assert response.status_code == 400, (content[:40], response.text)
        big = await http.post("/runs", json={"goal": "x", "context": {"blob": "y" * 70_000}})
        assert big.status_code == 413
        for query in ({"status": "bogus"}, {"limit": "0"}, {"limit": "lots"},
                      {"offset": "-1"}, {"since": "nan"}, {"since": "1e309"}):
            response = await http.get("/runs", params=query)
            assert response.status_code == 400, query
        missing = await http.get("/runs/run_nope")
        assert missing.status_code == 404 and "no run 'run_nope'" in missing.json()["detail"]
        assert (await http.get("/runs/" + "r" * 5000)).status_code == 404


async def test_an_idempotency_key_makes_retries_start_one_run(served: str) -> None:
    """20 copies of one submission at once (a client retrying in a hurry) start one run;
    the key with another request is refused; another caller's same key is theirs."""
    body = {"goal": "check the disks of web-1", "context": {"ticket": "OPS-7"}}
    headers = {**bearer(RUNNER), "Idempotency-Key": "4b6f2a1e-retry-me"}
    async with httpx2.AsyncClient(base_url=served, timeout=60) as http:
        answers = await asyncio.gather(*(http.post("/runs", headers=headers, json=body)
                                         for _ in range(20)))
        assert sorted(a.status_code for a in answers) == [200] * 19 + [201], [
            a.text for a in answers if a.status_code not in (200, 201)]
        assert len({a.json()["id"] for a in answers}) == 1
        run_id = answers[0].json()["id"]
        assert all(a.headers.get("idempotent-replayed") == "true"
                   for a in answers if a.status_code == 200)
        listed = (await http.get("/runs", headers=bearer(READER),
                                 params={"limit": 1000})).json()["runs"]
        assert [r["id"] for r in listed].count(run_id) == 1
        assert sum(r["goal"] == body["goal"] for r in listed) == 1

        other = await http.post("/runs", headers=headers, json={**body, "goal": "reboot web-1"})
        assert other.status_code == 409, other.text
        assert other.json()["error"] == "conflict"
        assert "used for a different request" in other.json()["detail"]
        assert run_id in other.json()["detail"]

        theirs = await http.post("/runs", json=body, headers={
            **bearer(MAIN), "Idempotency-Key": "4b6f2a1e-retry-me"})
        assert theirs.status_code == 201 and theirs.json()["id"] != run_id

        for bad in ("has space", "x" * 256, "tab\there"):
            refused = await http.post("/runs", json=body, headers={
                **bearer(RUNNER), "Idempotency-Key": bad})
            assert refused.status_code == 400, bad
            assert "idempotency key" in refused.json()["detail"]
