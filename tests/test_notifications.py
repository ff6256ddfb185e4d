"""Outbound notifications with real parts: a real `serve --http` (a subprocess), a run that
waits for approval (the counter server's destructive `bump`), local HTTP receivers in this
process that check the HMAC signature as a receiver would, a receiver that fails and one
that never answers, and a kill -9 between an event and its delivery."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
import signal
import socket
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from orchestrator_mcp.config.loader import ConfigError, load_config
from tests.conftest import COUNTER_SERVER
from tests.fake_openai import FakeOpenAI
from tests.test_alerts import (
    TOKEN,
    Orchestrator,
    Receiver,
    assert_secret_kept,
    wait_until,
)

SECRET = "notify-hmac-secret-0123456789"
PUBLIC_URL = "https://orchestrator.example.com/"
PROFILES = {"profiles": {name: {"servers": ["counter"]} for name in ("ops", "quiet", "flaky")}}
BUMP = "CALL counter_bump {}"


def counter(tmp: Path) -> dict[str, Any]:
    counts = tmp / "counts.txt"
    counts.touch()
    return {"command": sys.executable, "args": [str(COUNTER_SERVER), "--count-file",
                                                str(counts)]}


class Served:
    def __init__(self, orch: Orchestrator, receivers: dict[str, Receiver]) -> None:
        self.orch = orch
        self.receivers = receivers
        self.http = httpx2.Client(base_url=orch.url, timeout=30,
                                  headers={"Authorization": f"Bearer {TOKEN}"})

    def start_run(self, goal: str, profile: str) -> str:
        started = self.http.post("/runs", json={"goal": goal, "profile": profile})
        assert started.status_code == 201, started.text
        return started.json()["id"]

    def run(self, run_id: str) -> dict[str, Any]:
        answer = self.http.get(f"/runs/{run_id}")
        assert answer.status_code == 200, answer.text
        return answer.json()

    def wait_status(self, run_id: str, status: str, timeout: float = 60) -> dict[str, Any]:
        return wait_until(lambda: (r := self.run(run_id))["status"] == status and r,
                          timeout=timeout)

    def approve(self, run_id: str) -> None:
        decided = self.http.post(f"/approvals/{run_id}", json={"approved": True})
        assert decided.status_code == 200, decided.text

    def notes(self, run_id: str) -> list[str]:
        """The notifications' notes in the run's history."""
        return [s["summary"] for s in self.run(run_id)["steps"]
                if s["kind"] == "note" and s["summary"].startswith("notifi")]

    def metric(self, name: str, **labels: str) -> float:
        text = self.http.get("/metrics").text
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        found = re.search(rf"^{name}\{{{re.escape(wanted)}\}} (\S+)$", text, re.MULTILINE)
        return float(found.group(1)) if found else 0.0


def requests_of(receiver: Receiver, run_id: str) -> list[tuple[dict[str, str], bytes]]:
    """The run's POSTs, with header names in lower case (HTTP's are case-insensitive)."""
    found = []
    for headers, raw in receiver.requests:
        lower = {k.lower(): v for k, v in headers.items()}
        if lower["x-orchestrator-event"].startswith(f"{run_id}:"):
            found.append((lower, raw))
    return found


def verified(headers: dict[str, str], raw: bytes) -> dict[str, Any]:
    """What a receiver does (README, Notifications): refuse a timestamp older than 5
    minutes, compare the HMAC of "<timestamp>.<body>" in constant time."""
    timestamp = headers["x-orchestrator-timestamp"]
    assert abs(time.time() - int(timestamp)) < 300
    expected = "sha256=" + hmac.new(SECRET.encode(), timestamp.encode() + b"." + raw,
                                    hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-signature-256"], expected)
    assert headers["content-type"] == "application/json"
    return json.loads(raw)


def dispatched(orch: Orchestrator, run_id: str) -> list[tuple[str, list[str]]]:
    with contextlib.closing(sqlite3.connect(orch.data / "runs.sqlite")) as db:
        return [(event, json.loads(targets)) for event, targets in db.execute(
            "SELECT event, targets FROM orch_notification_dispatch WHERE run_id = ? "
            "ORDER BY seq", (run_id,))]


@contextlib.contextmanager
def silent_port() -> Iterator[int]:
    """A receiver that is dead in the worst way: it takes connections, never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("notifications")
    receivers = {"signed": Receiver(), "chat": Receiver(), "flaky": Receiver()}
    for receiver in receivers.values():
        receiver.start()
    with FakeOpenAI() as llm, silent_port() as dead_port:
        targets = [
            {"name": "signed", "url": receivers["signed"].url, "secret": SECRET,
             "profiles": ["ops"]},
            {"name": "chat", "url": receivers["chat"].url, "format": "slack",
             "profiles": ["ops"], "events": ["completed"]},
            {"name": "flaky", "url": receivers["flaky"].url, "profiles": ["flaky"]},
            {"name": "dead", "url": f"http://127.0.0.1:{dead_port}/hook",
             "timeout_seconds": 1},
        ]
        orch = Orchestrator(tmp, {}, llm, PROFILES, servers={"counter": counter(tmp)},
                            notifications={"public_url": PUBLIC_URL, "targets": targets})
        orch.start()
        try:
            yield Served(orch, receivers)
        finally:
            orch.stop()
            for receiver in receivers.values():
                receiver.stop()


def test_one_signed_post_per_event_and_a_slack_message(served: Served) -> None:
    run_id = served.start_run(f"Restart the counter\n{BUMP}", "ops")
    signed = served.receivers["signed"]
    [(headers, raw)] = wait_until(lambda: requests_of(signed, run_id), timeout=60)
    waiting = verified(headers, raw)
    assert served.run(run_id)["status"] == "awaiting_approval"  # a dead target blocks nothing
    assert waiting["event"] == waiting["status"] == "awaiting_approval"
    assert waiting["run_id"] == run_id and waiting["profile"] == "ops"
    assert waiting["goal"].startswith("Restart the counter")
    assert waiting["pending_approval"]["tool"] == "counter_bump"
    assert waiting["answer"] is None and waiting["error"] is None
    assert waiting["console_url"] == f"https://orchestrator.example.com/console/runs/{run_id}"
    assert headers["x-orchestrator-event"] == f"{run_id}:{waiting['seq']}"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", waiting["at"])

    served.approve(run_id)
    served.wait_status(run_id, "completed")
    wait_until(lambda: len(requests_of(signed, run_id)) == 2, timeout=60)
    wait_until(lambda: requests_of(served.receivers["chat"], run_id), timeout=60)
    time.sleep(2)  # nothing more comes: one POST per event and target
    [_, (headers, raw)] = requests_of(signed, run_id)
    done = verified(headers, raw)
    assert done["event"] == "completed" and done["answer"].startswith("DONE")
    assert done["pending_approval"] is None and done["seq"] > waiting["seq"]

    [(chat_headers, chat_raw)] = requests_of(served.receivers["chat"], run_id)
    assert "x-signature-256" not in chat_headers  # this target has no secret
    message = json.loads(chat_raw)
    assert set(message) == {"text", "blocks"}
    assert message["text"].startswith(f":white_check_mark: Run completed: {run_id}")
    assert message["blocks"][0]["type"] == "section"
    assert "Restart the counter" in message["blocks"][0]["text"]["text"]
    assert message["blocks"][1]["elements"][0]["text"] == (
        f"<{done['console_url']}|Open the run in the console>")

    notes = wait_until(lambda: len(n := served.notes(run_id)) >= 3 and n, timeout=30)
    assert {"notified signed (awaiting_approval)", "notified signed (completed)",
            "notified chat (completed)"} <= set(notes)
    assert dispatched(served.orch, run_id) == [("awaiting_approval", ["signed", "dead"]),
                                               ("completed", ["signed", "chat", "dead"])]


def test_profile_filter_and_a_dead_receiver_never_block_a_run(served: Served) -> None:
    started = time.monotonic()
    run_id = served.start_run("say something", "quiet")
    served.wait_status(run_id, "completed", timeout=30)
    assert time.monotonic() - started < 15
    wait_until(lambda: dispatched(served.orch, run_id), timeout=30)
    assert dispatched(served.orch, run_id) == [("completed", ["dead"])]
    time.sleep(1.5)  # the dead target's first attempt times out (1 s); nothing else is sent
    assert all(requests_of(r, run_id) == [] for r in served.receivers.values())
    assert served.metric("orchestrator_notification_failed_attempts_total", target="dead") >= 1


def test_a_failing_receiver_gets_the_notice_once_and_failures_are_counted(
        served: Served) -> None:
    flaky = served.receivers["flaky"]
    flaky.script = [503, 503]
    run_id = served.start_run("say something", "flaky")
    wait_until(lambda: len(requests_of(flaky, run_id)) == 3, timeout=60)  # waits 2 + 4.8 s
    time.sleep(1)
    sent = requests_of(flaky, run_id)
    assert flaky.answered[-3:] == [503, 503, 200] and len(sent) == 3
    assert len({headers["x-orchestrator-event"] for headers, _ in sent}) == 1
    assert len({raw for _, raw in sent}) == 1  # the same notice each time
    assert "x-signature-256" not in sent[0][0]
    note = "notified flaky (completed) after 2 failed attempts (HTTP 503, HTTP 503)"
    wait_until(lambda: note in served.notes(run_id), timeout=30)
    assert served.metric("orchestrator_notification_failed_attempts_total",
                         target="flaky") == 2
    assert served.metric("orchestrator_notifications_total", target="flaky",
                         event="completed", outcome="delivered") == 1

    flaky.script = [404, 302]  # final, not tried again; a redirect is not followed
    refused = [served.start_run(f"say something else {n}", "flaky") for n in range(2)]

    def refusals() -> list[str]:
        return [note for run in refused for note in served.notes(run)]
    wait_until(lambda: len(refusals()) == 2, timeout=60)
    assert sorted(refusals()) == [f"notification to flaky (completed) refused: HTTP {s}"
                                  for s in (302, 404)]
    assert [len(requests_of(flaky, run)) for run in refused] == [1, 1]
    assert served.metric("orchestrator_notifications_total", target="flaky",
                         event="completed", outcome="refused") == 2
    assert_secret_kept(served.orch)


def test_one_delivery_per_event_after_a_kill_9(tmp_path: Path, llm: FakeOpenAI) -> None:
    """The receiver is down while both events happen and the process is killed; after the
    restart DBOS resumes each delivery, and each event arrives exactly once."""
    receiver = Receiver()  # not started: every attempt fails to connect
    target = {"name": "signed", "url": receiver.url, "secret": SECRET}
    orch = Orchestrator(tmp_path, {}, llm, PROFILES, servers={"counter": counter(tmp_path)},
                        notifications={"targets": [target]})
    orch.start()
    try:
        served = Served(orch, {"signed": receiver})
        run_id = served.start_run(BUMP, "ops")
        served.wait_status(run_id, "awaiting_approval")
        log = orch.data / "logs" / "orchestrator.log"
        failed = f"notification of run {run_id} to 'signed', attempt 1, failed: ConnectError"
        wait_until(lambda: log.read_text().count(failed) == 1, timeout=30)
        served.approve(run_id)
        served.wait_status(run_id, "completed")
        wait_until(lambda: log.read_text().count(failed) == 2, timeout=30)
        orch.stop(signal.SIGKILL)
        assert receiver.requests == []

        receiver.start()
        orch.start()  # same data dir: DBOS resumes both deliveries
        wait_until(lambda: len(requests_of(receiver, run_id)) == 2, timeout=60)
        time.sleep(3)
        sent = requests_of(receiver, run_id)
        events = [verified(headers, raw)["event"] for headers, raw in sent]
        assert sorted(events) == ["awaiting_approval", "completed"]
        assert len({headers["x-orchestrator-event"] for headers, _ in sent}) == 2
        notes = wait_until(lambda: len(n := served.notes(run_id)) == 2 and n, timeout=30)
        # A failed attempt the kill cut off before DBOS recorded it is not counted.
        pattern = (r"notified signed \((awaiting_approval|completed)\)( after \d+ failed "
                   r"attempts? \(ConnectError.*\))?")
        assert all(re.fullmatch(pattern, n) for n in notes), notes
        assert_secret_kept(orch)
    finally:
        orch.stop()
        receiver.stop()


# ---- configuration ----------------------------------------------------------------------


def config_problems(tmp_path: Path, servers: str, profiles: str = "") -> str:
    (tmp_path / "servers.yaml").write_text(servers)
    (tmp_path / "profiles.yaml").write_text(profiles)
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    return str(caught.value)


def test_hostile_configuration_is_refused_clearly(tmp_path: Path) -> None:
    plain = config_problems(tmp_path, "notifications:\n  targets:\n"
                            "    - {name: a, url: 'http://hooks.example.com/x?token=tok-0042'}\n")
    assert "notifications.targets[0].url: the URL must use https" in plain
    assert "tok-0042" not in plain
    for url in ("ftp://x/y", "https://", "/relative", "https://h:99999/x", "https://h/a b"):
        problem = config_problems(tmp_path, "notifications:\n  targets:\n"
                                  f"    - {{name: a, url: '{url}'}}\n")
        assert "notifications.targets[0].url" in problem, url
    twice = config_problems(tmp_path, "notifications:\n  targets:\n"
                            "    - {name: a, url: 'https://h/x'}\n"
                            "    - {name: a, url: 'https://h/y'}\n")
    assert "target names must be distinct: a appear twice" in twice
    unknown = config_problems(
        tmp_path, "notifications:\n  targets:\n    - {name: a, url: 'https://h/x', "
        "profiles: [nope], alert_rules: [nada], events: [started]}\n")
    assert "notifications.targets[0].events[0]" in unknown
    unknown = config_problems(
        tmp_path, "notifications:\n  targets:\n    - {name: a, url: 'https://h/x', "
        "profiles: [nope], alert_rules: [nada]}\n")
    assert "targets[0].profiles: unknown profile 'nope'" in unknown
    assert "targets[0].alert_rules: unknown alert rule 'nada'" in unknown
    moved = config_problems(tmp_path, "", "alerts:\n  deliver_url: https://h/x?token=t-0001\n")
    assert "deliver_url was removed" in moved and "notifications:" in moved
    assert "t-0001" not in moved
    (tmp_path / "servers.yaml").write_text(
        "notifications:\n  public_url: https://console.example.com/\n  targets:\n"
        "    - {name: lan, url: 'http://10.0.0.5/hook', allow_http: true}\n"
        "    - {name: local, url: 'http://localhost:9/hook', format: slack}\n")
    (tmp_path / "profiles.yaml").write_text("")
    loaded = load_config(tmp_path).servers.notifications
    assert loaded.public_url == "https://console.example.com"
    assert [t.name for t in loaded.targets] == ["lan", "local"]


# ---- the bodies, for hostile run content --------------------------------------------------


def test_run_text_cannot_forge_slack_links_or_grow_a_notice() -> None:
    from orchestrator_mcp.config.notifications import NotificationEvent
    from orchestrator_mcp.notifications import messages
    from orchestrator_mcp.runs.models import RunRecord, RunStatus

    record = RunRecord(id="run_x", goal="<!channel> see <https://evil.example|the fix> & go",
                       profile="ops", status=RunStatus.FAILED, created_at=0, updated_at=0,
                       error="E" * 50_000)
    pending = {"tool": "t", "arguments": {"blob": "x" * 100_000}, "reason": "r" * 5000}
    waiting = messages.notice(record, 3, NotificationEvent.AWAITING_APPROVAL, 0,
                              pending=pending, alert_rule=None, public_url=None)
    assert waiting["pending_approval"]["arguments"] == "(too large for a notification: see " \
        "the run)" and len(json.dumps(waiting)) < 20_000
    assert waiting["console_url"] is None and waiting["error"] is None
    failed = messages.notice(record, 4, NotificationEvent.FAILED, 0, pending=None,
                             alert_rule="disk", public_url="https://o.example.com")
    assert len(failed["error"]) == messages.MAX_TEXT and failed["error"].endswith("…")
    message = json.loads(messages.encode(failed, "slack"))
    text = message["blocks"][0]["text"]["text"]
    assert "<!channel>" not in text and "<https://evil" not in text
    assert "&lt;!channel&gt; see &lt;https://evil.example|the fix&gt; &amp; go" in text
    assert len(text) <= messages.SLACK_SECTION
    assert message["blocks"][1]["elements"][0]["text"] == (
        "<https://o.example.com/console/runs/run_x|Open the run in the console>")
    lone = messages.notice(record.model_copy(update={"goal": "bad \udc80 text"}), 5,
                           NotificationEvent.FAILED, 0, pending=None, alert_rule=None,
                           public_url=None)
    assert json.loads(messages.encode(lone, "json"))["goal"] == "bad ? text"


def test_notes_added_at_once_each_take_their_own_number(tmp_path: Path) -> None:
    """Two deliveries of one run end together and both note it (a real SQLite file, real
    threads): before the run was locked first, one note took the other's number."""
    import threading

    from orchestrator_mcp.runs.models import RunRecord, RunStatus, StepRecord
    from orchestrator_mcp.runs.store import RunStore

    store = RunStore(f"sqlite:///{tmp_path / 'runs.sqlite'}")
    now = time.time()
    store.create(RunRecord(id="run_a", goal="g", profile="default", status=RunStatus.QUEUED,
                           created_at=now, updated_at=now))
    added: list[bool] = []

    def add(i: int) -> None:
        added.append(store.add_note("run_a", StepRecord(n=0, kind="note", at=now,
                                                        summary=f"note {i}", detail={})))
    threads = [threading.Thread(target=add, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    record = store.get("run_a")
    assert record is not None and added == [True] * 12
    assert sorted(s.summary for s in record.steps) == sorted(f"note {i}" for i in range(12))
    assert not store.add_note("run_nope", StepRecord(n=0, kind="note", at=now, summary="x",
                                                     detail={}))
    store.close()
