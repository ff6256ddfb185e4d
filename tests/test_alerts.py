"""Alertmanager → sidecar → runs, with a real Alertmanager (Debian prometheus-alertmanager)
started on loopback, `amtool` firing alerts, and the orchestrator in a subprocess."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml

from orchestrator_mcp.alerts.payload import Notification
from tests.conftest import free_port, wait_for_port, write_config
from tests.fake_openai import FakeOpenAI

TOKEN = "alert-test-token-0123456789"
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
AMTOOL = shutil.which("amtool")
needs_alertmanager = pytest.mark.skipif(
    ALERTMANAGER is None or AMTOOL is None,
    reason="Debian prometheus-alertmanager is not installed (.ci/run installs it)")

PROFILES = {
    "profiles": {"diagnose": {"role": "Diagnose alerts.", "servers": ["everything"]}},
    "alerts": {
        "max_new_runs_per_minute": 100,
        "rules": [
            {"name": "disk", "match": {"alertname": "HighDiskUsage"},
             "match_re": {"severity": "warning|critical"}, "profile": "diagnose",
             "goal": "Disk alert {{ labels.alertname }} on {{ labels.instance }} "
                     "({{ annotations.summary }})", "cancel_on_resolved": False},
            {"name": "cancel-me", "match": {"alertname": "Flapping"}, "profile": "diagnose",
             "goal": "SLEEP 30\nCALL everything_echo {\"message\": \"slow\"}",
             "cancel_on_resolved": True},
        ],
    },
}


class Orchestrator:
    def __init__(self, tmp: Path, everything_cfg: dict, llm: FakeOpenAI,
                 profiles: dict[str, Any] = PROFILES, servers: dict[str, Any] | None = None,
                 **sections: Any) -> None:
        """`servers` (default: the everything server) and `sections` go to servers.yaml."""
        self.config = write_config(tmp / "config", servers or {"everything": everything_cfg},
                                   **sections)
        (self.config / "profiles.yaml").write_text(yaml.safe_dump(profiles))
        self.data = tmp / "data"
        self.port = free_port()
        self.env = {**os.environ, **llm.env(), "ORCH_HTTP_TOKEN": TOKEN}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator_mcp", "--config-dir", str(self.config),
             "--data-dir", str(self.data), "--log-level", "WARNING", "serve", "--http",
             "--port", str(self.port)], env=self.env)
        try:
            wait_for_port(self.port)
        except TimeoutError:
            self.stop(signal.SIGKILL)  # a server that never listened must not linger
            raise

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:  # never leave it running
                self.proc.kill()
                self.proc.wait(20)
            self.proc = None

    def runs(self) -> list[dict[str, Any]]:
        """The runs table, through the CLI (another process reading the shared tables)."""
        from orchestrator_mcp.runs.store import RunStore

        store = RunStore(f"sqlite:///{self.data / 'runs.sqlite'}")
        try:
            return [r.model_dump(mode="json") for r in store.list(limit=1000)]
        finally:
            store.close()

    def post(self, body: bytes, token: str | None = TOKEN, **headers: str) -> httpx2.Response:
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx2.post(f"{self.url}/webhooks/alertmanager", content=body,
                           headers={"Content-Type": "application/json", **headers}, timeout=10)


@pytest.fixture
def orchestrator(tmp_path: Path, everything_cfg: dict, llm: FakeOpenAI) -> Iterator[Orchestrator]:
    orch = Orchestrator(tmp_path, everything_cfg, llm)
    orch.start()
    yield orch
    orch.stop()


@contextmanager
def running_alertmanager(tmp_path: Path, orchestrator_url: str) -> Iterator[str]:
    """A real Alertmanager on loopback whose receiver posts to the sidecar with the token."""
    port = free_port()
    config = {
        "route": {"receiver": "orchestrator", "group_by": ["alertname", "instance"],
                  "group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "orchestrator", "webhook_configs": [{
            "url": f"{orchestrator_url}/webhooks/alertmanager", "send_resolved": True,
            "http_config": {"authorization": {"type": "Bearer", "credentials": TOKEN}}}]}],
    }
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(config))
    proc = subprocess.Popen(
        [ALERTMANAGER or "alertmanager", f"--config.file={tmp_path / 'alertmanager.yml'}",
         f"--storage.path={tmp_path / 'am-data'}", f"--web.listen-address=127.0.0.1:{port}",
         "--cluster.listen-address=", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def alertmanager(tmp_path: Path, orchestrator: Orchestrator) -> Iterator[str]:
    with running_alertmanager(tmp_path, orchestrator.url) as url:
        yield url


def amtool_add(url: str, *labels: str, end: datetime | None = None, **annotations: str) -> None:
    args = [AMTOOL or "amtool", "alert", "add", f"--alertmanager.url={url}", *labels]
    args += [f"--annotation={k}={v}" for k, v in annotations.items()]
    if end is not None:
        args.append(f"--end={end.strftime('%Y-%m-%dT%H:%M:%SZ')}")
    subprocess.run(args, check=True, capture_output=True, timeout=30)


def wait_until(predicate: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


@needs_alertmanager
def test_alert_opens_one_run_and_resolution_annotates_it(
    orchestrator: Orchestrator, alertmanager: str
) -> None:
    labels = ("alertname=HighDiskUsage", "instance=web-1", "severity=warning")
    amtool_add(alertmanager, *labels, summary="root volume 93% full")
    runs = wait_until(lambda: orchestrator.runs())
    assert len(runs) == 1
    run = runs[0]
    assert run["profile"] == "diagnose" and run["source"] == "alertmanager"
    assert run["goal"] == "Disk alert HighDiskUsage on web-1 (root volume 93% full)"

    amtool_add(alertmanager, *labels, summary="root volume 93% full")  # same group again
    time.sleep(3)
    assert len(orchestrator.runs()) == 1

    amtool_add(alertmanager, *labels, summary="root volume 93% full",
               end=datetime.now(UTC) - timedelta(seconds=1))

    def annotated() -> bool:
        record = _get(orchestrator, run["id"])
        return any("resolved" in s["summary"] for s in record["steps"])

    wait_until(annotated)
    assert len(orchestrator.runs()) == 1


@needs_alertmanager
def test_resolved_cancels_when_the_rule_says_so(
    orchestrator: Orchestrator, alertmanager: str
) -> None:
    amtool_add(alertmanager, "alertname=Flapping", "instance=db-1")
    run = wait_until(lambda: orchestrator.runs())[0]
    amtool_add(alertmanager, "alertname=Flapping", "instance=db-1",
               end=datetime.now(UTC) - timedelta(seconds=1))
    wait_until(lambda: _get(orchestrator, run["id"])["status"] == "cancelled")


def _get(orchestrator: Orchestrator, run_id: str) -> dict[str, Any]:
    from orchestrator_mcp.runs.store import RunStore

    store = RunStore(f"sqlite:///{orchestrator.data / 'runs.sqlite'}")
    try:
        record = store.get(run_id)
        assert record is not None
        return record.model_dump(mode="json")
    finally:
        store.close()


def notification(status: str = "firing", **labels: str) -> dict[str, Any]:
    """A notification of one alert; other labels make another group (and receipt)."""
    labels = {"alertname": "HighDiskUsage", "instance": "web-9", "severity": "critical",
              **labels}
    fingerprint = hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]
    return {
        "version": "4", "groupKey": f"{{}}:{{alertname=\"{labels['alertname']}\", "
                                    f"instance=\"{labels['instance']}\"}}",
        "truncatedAlerts": 0, "status": status, "receiver": "orchestrator",
        "groupLabels": {"alertname": labels["alertname"]}, "commonLabels": labels,
        "commonAnnotations": {"summary": "disk"}, "externalURL": "http://am",
        "alerts": [{"status": status, "labels": labels, "annotations": {"summary": "disk"},
                    "startsAt": "2026-11-24T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prom", "fingerprint": fingerprint}],
    }


def test_bad_requests_are_refused_and_nothing_is_stored(orchestrator: Orchestrator) -> None:
    good = json.dumps(notification()).encode()
    missing = orchestrator.post(good, token=None)
    assert missing.status_code == 401 and missing.json()["error"] == "unauthorized"
    assert orchestrator.post(good, token="wrong-token-0123456789").status_code == 401

    malformed = orchestrator.post(b"{not json")
    assert malformed.status_code == 400 and malformed.json()["error"] == "invalid_json"
    truncated = orchestrator.post(good[: len(good) // 2])
    assert truncated.status_code == 400
    wrong_shape = orchestrator.post(json.dumps({"version": "3", "alerts": []}).encode())
    assert wrong_shape.status_code == 400
    fields = {p["field"] for p in wrong_shape.json()["detail"]}
    assert {"version", "alerts", "groupKey"} <= fields
    oversized = orchestrator.post(b"{" + b" " * 2_000_000 + b"}")
    assert oversized.status_code == 413

    time.sleep(0.5)
    assert orchestrator.runs() == []

    accepted = orchestrator.post(good)
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    again = orchestrator.post(good)  # Alertmanager retrying the same notification
    assert again.json() == {"status": "already_received", "receipt": accepted.json()["receipt"]}
    assert len(wait_until(lambda: orchestrator.runs())) == 1


def test_receipt_survives_a_crash_right_after_acceptance(orchestrator: Orchestrator) -> None:
    response = orchestrator.post(json.dumps(notification(instance="crash-1")).encode())
    assert response.status_code == 200
    orchestrator.stop(signal.SIGKILL)  # before (or while) it is routed
    orchestrator.start()
    runs = wait_until(lambda: orchestrator.runs())
    assert len(runs) == 1 and "crash-1" in runs[0]["goal"]


def test_a_stdio_server_takes_up_alerts_an_http_one_left(orchestrator: Orchestrator) -> None:
    """A notification the HTTP server stored but never routed (it stopped first) is taken
    up by the next server on the data dir, even a stdio one, which opens its tables only
    when there is something to do (RunEngine.start(defer_store))."""
    import sqlalchemy as sa

    from orchestrator_mcp.alerts.payload import Notification
    from orchestrator_mcp.alerts.store import AlertStore

    orchestrator.stop()
    left = Notification.model_validate(notification(instance="left-1"))
    engine = sa.create_engine(f"sqlite:///{orchestrator.data / 'runs.sqlite'}")
    try:
        AlertStore(engine).receive(left.receipt_id, left.group_id, left.status,
                                   left.model_dump(by_alias=True))
    finally:
        engine.dispose()
    stdio = subprocess.Popen(
        [sys.executable, "-m", "orchestrator_mcp", "--config-dir", str(orchestrator.config),
         "--data-dir", str(orchestrator.data), "--log-level", "WARNING", "serve"],
        env=orchestrator.env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        runs = wait_until(lambda: orchestrator.runs())
    finally:
        stdio.kill()
        stdio.wait(20)
    assert len(runs) == 1 and "left-1" in runs[0]["goal"]


def test_retries_racing_their_original_are_taken_once(orchestrator: Orchestrator) -> None:
    """Alertmanager retries a notification it timed out on while the first copy may still
    be stored: every copy is answered 200, one is accepted, one run starts."""
    body = json.dumps(notification(instance="race-1")).encode()
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: orchestrator.post(body), range(20)))
    assert [a.status_code for a in answers] == [200] * 20, [a.text for a in answers]
    assert sorted(a.json()["status"] for a in answers) == ["accepted"] + [
        "already_received"] * 19
    runs = wait_until(lambda: orchestrator.runs())
    assert len(runs) == 1 and "race-1" in runs[0]["goal"]


def test_approvals_over_http(orchestrator: Orchestrator) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    listed = httpx2.get(f"{orchestrator.url}/approvals", headers=headers, timeout=10)
    assert listed.status_code == 200 and listed.json() == []
    bad = httpx2.post(f"{orchestrator.url}/approvals/run_x", headers=headers, timeout=10,
                      json={"approved": "maybe"})
    assert bad.status_code == 400


class Receiver:
    """A notification target: a local HTTP server that records each POSTed JSON body (and
    its raw bytes and headers) and answers with the scripted statuses in turn, then 200.
    Its port is fixed, so it can be down (not started) while the orchestrator already
    points at it."""

    def __init__(self, *statuses: int) -> None:
        self.port = free_port()
        self.script = list(statuses)
        self.received: list[dict[str, Any]] = []
        self.requests: list[tuple[dict[str, str], bytes]] = []  # (headers, raw body)
        self.answered: list[int] = []
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:  # its query is a secret: never logged, never stored
        return f"http://127.0.0.1:{self.port}/hook?token={HOOK_SECRET}"

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                status = owner.script.pop(0) if owner.script else 200
                owner.requests.append((dict(self.headers.items()), raw))
                owner.received.append(json.loads(raw))
                owner.answered.append(status)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def of_run(self, run_id: str) -> list[dict[str, Any]]:
        return [body for body in self.received if body.get("run_id") == run_id]


HOOK_SECRET = "hook-secret-5a5a5a5a"


@contextmanager
def delivering(tmp_path: Path, everything_cfg: dict, llm: FakeOpenAI, receiver: Receiver,
               alert_rules: list[str], **alerts: Any) -> Iterator[Orchestrator]:
    """An orchestrator (serve --http) that notifies `receiver` of the ends of the runs
    these alert rules open."""
    profiles = {**PROFILES, "alerts": {**PROFILES["alerts"], **alerts}}
    target = {"name": "alerts", "url": receiver.url, "alert_rules": alert_rules,
              "events": ["completed", "failed", "cancelled"]}
    orch = Orchestrator(tmp_path, everything_cfg, llm, profiles,
                        notifications={"targets": [target]})
    orch.start()
    try:
        yield orch
    finally:
        orch.stop()
        receiver.stop()


def alert_run(orch: Orchestrator, instance: str, summary: str) -> str:
    """Post a HighDiskUsage notification; the id of the run it opens."""
    body = notification(instance=instance)
    body["commonAnnotations"]["summary"] = summary
    assert orch.post(json.dumps(body).encode()).status_code == 200
    return wait_until(lambda: next((r["id"] for r in orch.runs()
                                    if instance in r["goal"]), None), timeout=30)


def workflow_status(orch: Orchestrator, workflow_id: str) -> str | None:
    """DBOS's status of a workflow; None also before serve has launched DBOS (it does on
    the first durable work)."""
    path = orch.data / "dbos.sqlite"
    if not path.exists():
        return None
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        try:
            row = db.execute("SELECT status FROM workflow_status WHERE workflow_uuid = ?",
                             (workflow_id,)).fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return None
            raise
    return row[0] if row else None


def assert_secret_kept(orch: Orchestrator) -> None:
    """The delivery URL's query is in no log line and in no DBOS record."""
    for path in [*orch.data.glob("dbos.sqlite*"), *(orch.data / "logs").glob("*.log*")]:
        assert HOOK_SECRET.encode() not in path.read_bytes(), path


ECHO = 'disk\nCALL everything_echo {"message": "fixed"}\n'


def test_alert_runs_outcome_is_notified_to_the_targets_of_its_rule(
    tmp_path: Path, everything_cfg: dict, llm: FakeOpenAI
) -> None:
    """Replaces `alerts.deliver_url`: a notification target filtered by alert rule gets
    the end of each run its rules open, and nothing of other runs. (Retries, signatures
    and kill -9 are in tests/test_notifications.py.)"""
    receiver = Receiver()
    receiver.start()
    with delivering(tmp_path, everything_cfg, llm, receiver, ["disk"]) as orch:
        run_id = alert_run(orch, "deliver-1", ECHO)
        message = wait_until(lambda: receiver.of_run(run_id), timeout=60)[0]
        assert message["event"] == "completed" and message["alert_rule"] == "disk"
        assert message["source"] == "alertmanager" and message["profile"] == "diagnose"
        assert message["goal"].startswith("Disk alert HighDiskUsage on deliver-1")
        assert "Echo: fixed" in message["answer"]
        other = httpx2.post(f"{orch.url}/runs", json={"goal": "say something"}, timeout=10,
                            headers={"Authorization": f"Bearer {TOKEN}"})
        assert other.status_code == 201, other.text
        other_id = other.json()["id"]
        wait_until(lambda: dispatched(orch, other_id), timeout=60)
        assert dispatched(orch, other_id) == [("completed", "[]")]
        assert receiver.of_run(other_id) == [] and len(receiver.of_run(run_id)) == 1
        assert_secret_kept(orch)


def dispatched(orch: Orchestrator, run_id: str) -> list[tuple[str, str]]:
    """(event, targets) of the run's events the notification dispatcher handed over."""
    with contextlib.closing(sqlite3.connect(orch.data / "runs.sqlite")) as db:
        return db.execute("SELECT event, targets FROM orch_notification_dispatch WHERE "
                          "run_id = ? ORDER BY seq", (run_id,)).fetchall()


def test_deferred_notifications_become_one_summary_run(
    tmp_path: Path, everything_cfg: dict, llm: FakeOpenAI
) -> None:
    """A rule at its max_concurrent defers the next notifications; the storm watcher
    summarises them into one run, whose outcome is notified like any alert run's."""
    receiver = Receiver()
    receiver.start()
    busy = {"name": "busy", "match": {"alertname": "Busy"}, "profile": "diagnose",
            "max_concurrent": 1, "goal": "SLEEP 3\nBusy on {{ labels.instance }}"}
    with delivering(tmp_path, everything_cfg, llm, receiver, ["busy"],
                    rules=[busy, *PROFILES["alerts"]["rules"]]) as orch:
        bodies = [notification(alertname="Busy", instance=f"node-{n}") for n in range(4)]
        for body in bodies:
            assert orch.post(json.dumps(body).encode()).status_code == 200
        first_deferred = Notification.model_validate(bodies[1]).receipt_id
        watcher = f"alert_storm_{first_deferred[:16]}"
        wait_until(lambda: workflow_status(orch, watcher) == "SUCCESS", timeout=30)
        storms = [r for r in orch.runs() if r["id"].startswith("run_storm_")]
        assert [r["id"] for r in storms] == [f"run_storm_{first_deferred[:16]}"]
        assert storms[0]["goal"].startswith("An alert storm deferred 3 notifications.")
        assert all(f"instance=node-{n}" in storms[0]["goal"] for n in (1, 2, 3))
        with contextlib.closing(sqlite3.connect(orch.data / "runs.sqlite")) as db:
            outcomes = sorted(db.execute(
                "SELECT outcome, run_id FROM orch_alert_notifications").fetchall())
        assert outcomes[:1] == [("run_created", outcomes[0][1])]
        assert outcomes[1:] == [("summarized", storms[0]["id"])] * 3
        with contextlib.closing(sqlite3.connect(orch.data / "dbos.sqlite")) as db:
            assert db.execute("SELECT workflow_uuid FROM workflow_status WHERE workflow_uuid "
                              "LIKE 'alert_storm_%'").fetchall() == [(watcher,)]
        wait_until(lambda: receiver.of_run(storms[0]["id"]), timeout=60)


@needs_alertmanager
def test_high_disk_usage_end_to_end(tmp_path: Path, everything_cfg: dict,
                                    llm: FakeOpenAI) -> None:
    """The README's example: Alertmanager fires HighDiskUsage → the shipped `disk-full` rule
    starts the shipped diagnose-remediate workflow → the approval shows the cleanup
    playbook's dry-run diff → approved over HTTP → old files removed → resolved annotates."""
    pytest.importorskip("ansible_runner")
    repo = Path(__file__).resolve().parent.parent
    logs, target = tmp_path / "logs", tmp_path / "app-logs"
    logs.mkdir()
    target.mkdir()
    (logs / "app.log").write_text("ERROR write failed: No space left on device\n" * 5)
    for name in ("old.log", "fresh.log"):
        (target / name).write_text("x" * 4096)
    month_ago = time.time() - 30 * 86400
    os.utime(target / "old.log", (month_ago, month_ago))

    orch = Orchestrator(tmp_path, everything_cfg, llm)
    shutil.copy(repo / "profiles.yaml", orch.config / "profiles.yaml")
    shutil.copytree(repo / "workflows", orch.config / "workflows")
    servers = yaml.safe_load((orch.config / "servers.yaml").read_text())
    servers["agents"] = {"logs": {"roots": [str(logs)]},
                         "ansible": {"playbooks_dir": str(repo / "playbooks")}}
    (orch.config / "servers.yaml").write_text(yaml.safe_dump(servers))
    orch.start()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        with running_alertmanager(tmp_path, orch.url) as am:
            _high_disk_usage_flow(orch, am, target, headers)
    finally:
        orch.stop()


def _high_disk_usage_flow(orch: Orchestrator, am: str, target: Path,
                          headers: dict[str, str]) -> None:
    labels = ("alertname=HighDiskUsage", "instance=web-1", "mountpoint=/")
    amtool_add(am, *labels, summary="/ is 93% full", cleanup_dir=str(target),
               threshold_percent="0", log_file="app.log")
    def top_level() -> list[dict[str, Any]]:
        return [r for r in orch.runs() if r["parent_id"] is None]
    run = wait_until(top_level, timeout=60)[0]
    assert run["workflow"] == "diagnose-remediate" and run["source"] == "alertmanager"

    def pending() -> list[dict[str, Any]]:
        return httpx2.get(f"{orch.url}/approvals", headers=headers, timeout=10).json()
    approval = wait_until(pending, timeout=120)[0]
    shown = approval["pending_approval"]["reason"]
    assert "old.log" in shown and "fresh.log" not in shown
    assert sorted(p.name for p in target.iterdir()) == ["fresh.log", "old.log"]
    decided = httpx2.post(f"{orch.url}/approvals/{run['id']}", headers=headers,
                          json={"approved": True, "reason": "cleanup is safe"}, timeout=30)
    assert decided.status_code == 200, decided.text
    wait_until(lambda: _get(orch, run["id"])["status"] == "completed", timeout=120)
    assert [p.name for p in target.iterdir()] == ["fresh.log"]

    amtool_add(am, *labels, summary="/ is 93% full", cleanup_dir=str(target),
               threshold_percent="0", log_file="app.log",
               end=datetime.now(UTC) - timedelta(seconds=1))
    wait_until(lambda: any("resolved" in s["summary"]
                           for s in _get(orch, run["id"])["steps"]), timeout=60)
    assert len(top_level()) == 1  # the diagnosis is its child run
