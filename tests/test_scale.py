"""Scale-out on PostgreSQL: one front (`serve --http --no-execute`) and worker processes
sharing one database and one durable queue. Real PostgreSQL cluster, real processes, real
HTTP, the real openai client against the local fake model, a real downstream MCP server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport

from orchestrator_mcp.agents import agent_names
from tests import postgres
from tests.conftest import free_port, wait_for_port, write_config
from tests.fake_openai import FakeOpenAI
from tests.test_alerts import Receiver, notification
from tests.test_run_stream import read_events

pytestmark = pytest.mark.skipif(postgres.bin_dir() is None,
                                reason="PostgreSQL is not installed (.ci/run installs it)")

TOKEN = "scale-test-token-0123456789"
PROFILES = {"profiles": {"ops": {"servers": ["counter"], "approval": {
    "auto_approve": ["counter_bump"]}}},
    "alerts": {"rules": [{"name": "disk", "match": {"alertname": "HighDiskUsage"},
                          "profile": "ops", "goal": "CALL counter_add {\"a\": 20, \"b\": 22}"}]}}


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    with postgres.cluster() as url:
        yield url


class Cluster:
    """The processes of one deployment; each test starts what it needs."""

    def __init__(self, tmp_path: Path, database_url: str, llm: FakeOpenAI, counter: dict
                 ) -> None:
        self.tmp = tmp_path
        self.database_url = database_url
        self.counts = Path(counter["args"][2])
        self.config = write_config(
            tmp_path / "config", {"counter": counter},
            runs={"worker_concurrency": 3, "heartbeat_seconds": 0.5,
                  "executor_dead_after_seconds": 3},
            http={"rate_limit_per_second": 1000, "rate_limit_burst": 1000},
            agents={name: {"enabled": False} for name in agent_names()},
            knowledge={"enabled": False})
        (self.config / "profiles.yaml").write_text(yaml.safe_dump(PROFILES))
        self.env = {**os.environ, **llm.env(), "ORCH_DATABASE_URL": database_url,
                    "ORCH_HTTP_TOKEN": TOKEN}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.port = free_port()

    def _start(self, name: str, *command: str) -> subprocess.Popen[bytes]:
        data = self.tmp / f"data-{name}"
        log = (self.tmp / f"{name}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator_mcp", "--config-dir", str(self.config),
             "--data-dir", str(data), *command], env=self.env, stdout=log, stderr=log)
        self.processes[name] = process
        return process

    def start_worker(self, name: str, *options: str) -> subprocess.Popen[bytes]:
        return self._start(name, "worker", *options)

    def start_front(self) -> None:
        self._start("front", "serve", "--http", "--no-execute", "--port", str(self.port))
        wait_for_port(self.port, 30)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.database_url) as db:
            return db.execute(sql).fetchall()

    def live_workers(self) -> int:
        try:
            return self.query("SELECT count(*) FROM orch_executors")[0][0]
        except Exception:  # noqa: BLE001 - the table appears with the first worker
            return 0

    def executors_by_run(self) -> dict[str, str]:
        return dict(self.query("SELECT workflow_uuid, executor_id FROM dbos.workflow_status "
                               "WHERE workflow_uuid LIKE 'run_%'"))

    def bumps(self) -> int:
        return self.counts.read_text().splitlines().count("bump") if self.counts.exists() \
            else 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @asynccontextmanager
    async def client(self) -> AsyncIterator[Client]:
        async with Client(StreamableHttpTransport(f"{self.url}/mcp", auth=TOKEN),
                          timeout=60) as client:
            yield client


@pytest.fixture
def cluster(tmp_path: Path, pg_server: str, llm: FakeOpenAI, counter_stdio_cfg: dict
            ) -> Iterator[Cluster]:
    deployment = Cluster(tmp_path, postgres.create_database(pg_server), llm, counter_stdio_cfg)
    try:
        yield deployment
    finally:
        deployment.stop()


async def eventually(predicate: Any, timeout: float = 60, every: float = 0.2) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            value = predicate()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            await asyncio.sleep(every)


async def start(client: Client, goal: str) -> str:
    result = await client.call_tool("run", {"goal": goal, "profile": "ops"})
    return result.structured_content["run_id"]


async def statuses(client: Client) -> Counter[str]:
    runs = (await client.call_tool("list_runs", {"limit": 200})).structured_content["result"]
    return Counter(r["status"] for r in runs)


async def test_runs_spread_over_two_workers(cluster: Cluster) -> None:
    cluster.start_front()
    for name in ("w1", "w2"):
        cluster.start_worker(name)
    await eventually(lambda: cluster.live_workers() == 2, 60)
    async with cluster.client() as client:
        goal = 'CALL counter_add {"a": 1, "b": 2}'
        ids = await asyncio.gather(*(start(client, goal) for _ in range(100)))
        await eventually(lambda: _all_completed(client, 100), 180, 0.5)
    placed = cluster.executors_by_run()
    assert set(ids) <= set(placed)
    per_worker = Counter(placed[i] for i in ids)
    assert len(per_worker) == 2 and min(per_worker.values()) >= 10, per_worker


async def _all_completed(client: Client, expected: int) -> bool:
    return (await statuses(client))["completed"] == expected


async def test_a_killed_worker_s_runs_finish_on_the_other_without_repeats(
        cluster: Cluster) -> None:
    cluster.start_front()
    first, _ = cluster.start_worker("w1"), cluster.start_worker("w2")
    await eventually(lambda: cluster.live_workers() == 2, 60)
    goal = "\n".join(["CALL counter_bump {}", 'CALL counter_slow {"seconds": 5}',
                      "CALL counter_bump {}"])
    async with cluster.client() as client:
        ids = [await start(client, goal) for _ in range(6)]
        await eventually(lambda: cluster.bumps() == 6, 60)  # every run is in counter_slow
        placed = cluster.executors_by_run()
        owners = Counter(placed[i] for i in ids)
        assert len(owners) == 2, owners  # three runs on each worker
        first.send_signal(signal.SIGKILL)
        await eventually(lambda: _all_completed(client, 6), 120, 0.5)
    assert cluster.bumps() == 12, "a completed bump ran again after the recovery"
    after = cluster.executors_by_run()
    assert len({after[i] for i in ids}) == 1  # all ended on the surviving worker


async def test_approvals_and_cancels_through_the_front_reach_either_worker(
        cluster: Cluster) -> None:
    cluster.start_front()
    for name in ("w1", "w2"):
        cluster.start_worker(name)
    await eventually(lambda: cluster.live_workers() == 2, 60)
    async with cluster.client() as client:
        ids = [await start(client, 'CALL counter_set_value {"value": 7}') for _ in range(6)]

        async def waiting() -> bool:
            return (await statuses(client))["awaiting_approval"] == 6
        await eventually(waiting, 60)
        assert len({cluster.executors_by_run()[i] for i in ids}) == 2
        for run_id in ids[:3]:
            await client.call_tool("approve", {"run_id": run_id, "approved": True})
        for run_id in ids[3:]:
            await client.call_tool("cancel_run", {"run_id": run_id})

        async def settled() -> bool:
            counts = await statuses(client)
            return counts["completed"] == 3 and counts["cancelled"] == 3
        await eventually(settled, 60)
    assert cluster.counts.read_text().splitlines().count("set:7") == 3


async def test_a_front_streams_a_run_its_worker_executes(cluster: Cluster) -> None:
    """The run stream reads the shared database: a front that executes nothing follows a
    run on a worker, through its approval, to its end."""
    cluster.start_front()
    cluster.start_worker("w1")
    await eventually(lambda: cluster.live_workers() == 1, 60)
    async with cluster.client() as client, httpx2.AsyncClient(base_url=cluster.url,
                                                              timeout=30) as http:
        run_id = await start(client, 'CALL counter_set_value {"value": 3}')
        seen, closed = await read_events(http, run_id, TOKEN, until="approval")
        assert not closed and seen[-1][2]["pending_approval"]["tool"] == "counter_set_value"
        await client.call_tool("approve", {"run_id": run_id, "approved": True})
        rest, closed = await read_events(http, run_id, TOKEN, last_id=seen[-1][0])
    assert closed and rest[-1][1] == "end" and rest[-1][2]["status"] == "completed"
    assert all(e[0] > seen[-1][0] for e in rest)


async def test_one_idempotency_key_sent_to_two_fronts_makes_one_run(cluster: Cluster) -> None:
    cluster.start_front()
    second = free_port()
    cluster._start("front2", "serve", "--http", "--no-execute", "--port", str(second))
    wait_for_port(second, 30)
    cluster.start_worker("w1")
    body = {"goal": 'CALL counter_add {"a": 1, "b": 2}', "profile": "ops"}
    headers = {"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": "two-fronts-7f3a"}
    urls = [cluster.url, f"http://127.0.0.1:{second}"] * 10
    async with httpx2.AsyncClient(timeout=60) as http:
        answers = await asyncio.gather(*(http.post(f"{url}/runs", json=body, headers=headers)
                                         for url in urls))
    assert sorted(a.status_code for a in answers) == [200] * 19 + [201], [
        a.text for a in answers]
    (run_id,) = {a.json()["id"] for a in answers}
    assert cluster.query("SELECT count(*) FROM orch_runs") == [(1,)]
    await eventually(lambda: cluster.query(
        f"SELECT status FROM orch_runs WHERE id = '{run_id}'") == [("completed",)], 60)
    assert cluster.query("SELECT count(*) FROM dbos.workflow_status "
                         f"WHERE workflow_uuid = '{run_id}'") == [(1,)]


async def test_alerts_taken_while_workers_are_down_run_when_they_return(
        cluster: Cluster) -> None:
    cluster.start_front()
    async with cluster.client() as client, httpx2.AsyncClient() as http:
        await eventually(lambda: _ready(http, cluster.url), 30)
        response = await http.post(f"{cluster.url}/webhooks/alertmanager",
                                   json=notification(), headers={
                                       "Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 200, response.text

        async def queued() -> bool:
            return (await statuses(client))["queued"] == 1
        await eventually(queued, 30)
        cluster.start_worker("w1")
        await eventually(lambda: _all_completed(client, 1), 60)
        runs = (await client.call_tool("list_runs", {})).structured_content["result"]
        assert "42" in runs[0]["answer"]


async def _ready(http: httpx2.AsyncClient, url: str) -> bool:
    response = await http.get(f"{url}/readyz")
    return response.status_code == 200 and response.json()["database"] == "ok"


async def test_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    env = {**os.environ, "ORCH_DATABASE_URL": f"postgresql://orch:s3cret-pw@127.0.0.1:{port}/x"}
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator_mcp", "--config-dir", str(tmp_path),
         "--data-dir", str(tmp_path / "data"), "worker"], env=env, capture_output=True,
        text=True, timeout=60)
    assert done.returncode == 2
    assert "cannot use the database" in done.stderr and "s3cret-pw" not in done.stderr
    assert "ORCH_DATABASE_URL" in done.stderr


async def test_alert_notifications_and_storm_summaries_run_once_on_the_workers(
        cluster: Cluster) -> None:
    """The front routes alerts but executes nothing: it starts the storm watcher by name,
    and exactly one worker runs it; the workers' notification dispatchers both read the
    shared run event log, and each alert run's end is delivered once (one of them after a
    503), by a worker."""
    receiver = Receiver(503)
    receiver.start()
    busy = {"name": "busy", "match": {"alertname": "Busy"}, "profile": "ops",
            "max_concurrent": 1, "goal": "SLEEP 3\nBusy on {{ labels.instance }}"}
    (cluster.config / "profiles.yaml").write_text(yaml.safe_dump({**PROFILES, "alerts": {
        "rules": [busy, *PROFILES["alerts"]["rules"]]}}))
    servers = yaml.safe_load((cluster.config / "servers.yaml").read_text())
    servers["notifications"] = {"poll_seconds": 0.5, "targets": [{
        "name": "alerts", "url": receiver.url, "alert_rules": ["busy", "disk"],
        "events": ["completed", "failed"]}]}
    (cluster.config / "servers.yaml").write_text(yaml.safe_dump(servers))
    cluster.start_front()
    for name in ("w1", "w2"):
        cluster.start_worker(name)
    try:
        await eventually(lambda: cluster.live_workers() == 2, 60)
        bodies = [notification(), *(notification(alertname="Busy", instance=f"node-{n}")
                                    for n in range(4))]
        async with httpx2.AsyncClient(timeout=30) as http:
            for body in bodies:
                response = await http.post(f"{cluster.url}/webhooks/alertmanager", json=body,
                                           headers={"Authorization": f"Bearer {TOKEN}"})
                assert response.status_code == 200, response.text

        def delivered() -> set[str]:
            return {body["run_id"] for body, status in zip(
                receiver.received, receiver.answered, strict=True) if status == 200}
        await eventually(lambda: len(delivered()) == 3, 90, 0.5)
        await asyncio.sleep(2)  # nothing more comes
        storms = [run for run in delivered() if run.startswith("run_storm_")]
        assert len(storms) == 1
        posts = Counter(body["run_id"] for body in receiver.received)
        assert set(posts) == delivered()  # each once, and one of them after a 503
        assert sorted(posts.values()) == [1, 1, 2] and receiver.answered[0] == 503
        assert {body["alert_rule"] for body in receiver.received} == {"busy", "disk"}
        placed = dict(cluster.query(
            "SELECT workflow_uuid, executor_id FROM dbos.workflow_status "
            "WHERE workflow_uuid LIKE 'alert_%' OR workflow_uuid LIKE 'notify:%'"))
        assert len([w for w in placed if w.startswith("alert_storm_")]) == 1
        assert len([w for w in placed if w.startswith("notify:")]) == 3
        workers = {row[0] for row in cluster.query("SELECT executor_id FROM orch_executors")}
        assert set(placed.values()) <= workers
    finally:
        receiver.stop()


async def test_every_front_reports_the_runs_each_worker_holds(cluster: Cluster) -> None:
    """The queue gauges come from the shared database: the front (which executes nothing)
    shows both workers, the runs each one holds, and the approvals waiting."""
    cluster.start_front()
    worker_port = free_port()
    cluster.start_worker("w1", "--metrics-port", str(worker_port))
    cluster.start_worker("w2")
    await eventually(lambda: cluster.live_workers() == 2, 60)
    async with cluster.client() as client:
        ids = [await start(client, 'CALL counter_set_value {"value": 3}') for _ in range(4)]

        async def waiting() -> bool:
            return (await statuses(client))["awaiting_approval"] == 4
        await eventually(waiting, 60)
    held = Counter({executor: 0 for (executor,) in
                    cluster.query("SELECT executor_id FROM orch_executors")})
    held.update(cluster.executors_by_run()[i] for i in ids)
    assert len(held) == 2 and sum(held.values()) == 4
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        text = (await http.get(f"{cluster.url}/metrics")).text
    samples = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
               for line in text.splitlines() if line and not line.startswith("#")}
    assert samples["orchestrator_executors_live"] == 2
    assert samples["orchestrator_approvals_pending"] == 4
    assert 0 < samples["orchestrator_approval_oldest_wait_seconds"] < 120
    assert samples['orchestrator_runs_queued{queue="orchestrator_runs"}'] == 0
    executing = {key: value for key, value in samples.items()
                 if key.startswith("orchestrator_runs_executing{")}
    assert executing == {f'orchestrator_runs_executing{{executor="{executor}"}}': float(count)
                         for executor, count in held.items()}

    # A worker's own /metrics (--metrics-port): what it executed, behind the same token.
    worker = f"http://127.0.0.1:{worker_port}"
    async with httpx2.AsyncClient() as http:
        assert (await http.get(f"{worker}/healthz")).json() == {"status": "ok"}
        assert (await http.get(f"{worker}/metrics")).status_code == 401
        text = (await http.get(f"{worker}/metrics",
                               headers={"Authorization": f"Bearer {TOKEN}"})).text
    assert 'orchestrator_run_step_duration_seconds_count{kind="llm"}' in text
    assert "orchestrator_executors_live 2.0" in text
