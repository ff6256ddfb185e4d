"""The one redactor (`telemetry.redaction`): what it hides and leaves, that it stays linear
and bounded on hostile input (issue 12: 40,000 characters once stalled the server 19 s),
that the configured secrets reach the audit log and run records, and that long audit
entries stay valid JSON. The real `serve` end of this is in test_log_redaction.py."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator_mcp.config import load_config
from orchestrator_mcp.runs.models import (
    PendingApproval,
    RunRecord,
    RunStatus,
    StepRecord,
    Usage,
)
from orchestrator_mcp.runs.store import RunStore
from orchestrator_mcp.telemetry import redaction
from orchestrator_mcp.telemetry.audit_store import ARGUMENTS_LIMIT, AuditLog, bounded_json
from orchestrator_mcp.telemetry.logs import config_secrets, configure_logging, redacting_filter
from orchestrator_mcp.telemetry.redaction import (
    MAX_REDACTIONS,
    SLACK,
    Redactor,
    redact,
    redact_text,
)

SECRET = "zq7-configured-secret-4711"
MIB4 = 4 * 1024 * 1024


@pytest.fixture
def default_redactor() -> Iterator[Redactor]:
    """A fresh process redactor knowing SECRET; the previous one (and logging) after."""
    import logging

    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    before = redaction.default_redactor()
    fresh = Redactor([SECRET])
    redaction.install(fresh)
    yield fresh
    redaction.install(before)
    for handler in root.handlers:
        if handler not in saved:
            handler.close()
    root.handlers[:] = saved
    root.setLevel(level)


# ---- what is hidden, what is left -------------------------------------------------------

HIDDEN = {
    "curl -H 'Authorization: Bearer abc123def456'": "curl -H 'Authorization: Bearer ***'",
    "authorization: Basic dXNlcjpwYXNz": "authorization: Basic ***",
    '{"password": "hunter22", "n": 1}': '{"password": "***", "n": 1}',
    "GET /x?api_key=abc123&page=2": "GET /x?api_key=***&page=2",
    "apiKey: 'k-9'": "apiKey: '***'",
    "client_secret = s3cr3t; next": "client_secret = ***; next",
    "refresh_token=r1 access_token=a2": "refresh_token=*** access_token=***",
    "postgres://app:pa:ss@db:5432/x": "postgres://app:***@db:5432/x",
    "redis://:only-pw@cache:6379": "redis://:***@cache:6379",
    "key sk-proj-ABCDEFGH1234 end": "key *** end",
    "ghp_" + "a1" * 12: "***",
    "xoxb-123456789012-abc": "***",
    "id AKIAABCDEFGHIJKLMNOP": "id ***",
    "aws wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY!": "aws ***!",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEab\n-----END RSA PRIVATE KEY-----\nafter":
        "-----BEGIN RSA PRIVATE KEY-----***\nafter",
    # a key cut short (a truncated log) loses its body too
    "k: -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1r":
        "k: -----BEGIN OPENSSH PRIVATE KEY-----***",
    f"configured {SECRET}, twice {SECRET}": "configured ***, twice ***",
    f"Ünïcödé {SECRET} ✓ passwort password=geheim": "Ünïcödé *** ✓ passwort password=***",
}
LEFT = [
    "input_tokens=100 max_tokens=5, a basic check of the password policy",
    "commit 3f786850e387550fdab836ed7e6dc881de23001b merged",
    "https://example.com/api/v1/items?page=2&sort=asc",
    "user=alice host=db01 took 12ms; token_count=5",
    "2026-12-01T11:45:59Z 550e8400-e29b-41d4-a716-446655440000 OK",
    "the secret of a good runbook: keep it short",
    "",
]


@pytest.mark.parametrize(("text", "expected"), HIDDEN.items())
def test_secrets_are_hidden(text: str, expected: str) -> None:
    assert Redactor([SECRET]).text(text) == expected


@pytest.mark.parametrize("text", LEFT)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert Redactor([SECRET]).text(text) == text


def test_already_redacted_text_stays_put() -> None:
    once = Redactor([SECRET]).text(" ".join(HIDDEN))
    assert Redactor([SECRET]).text(once) == once


def test_values_under_secret_keys() -> None:
    value = {"password": "x", "api_key": ["a", "b"], "author": "alice",
             "usage": {"input_tokens": 12, "output_tokens": 3}, "token": None,
             "cmd": f"run --token=abc123 {SECRET}", "nested": [{"Authorization": "Basic x"}]}
    assert Redactor([SECRET]).value(value) == {
        "password": "***", "api_key": "***", "author": "alice",
        "usage": {"input_tokens": 12, "output_tokens": 3}, "token": None,
        "cmd": "run --token=*** ***", "nested": [{"Authorization": "***"}]}


def test_deep_values_are_cut_not_recursed() -> None:
    value: Any = "bottom"
    for _ in range(5000):
        value = [value]
    out = redact(value)
    for _ in range(redaction.MAX_DEPTH):
        out = out[0]
    assert out.startswith("…[nested deeper than")


def test_extra_secrets_and_added_ones() -> None:
    r = Redactor()
    assert r.text("a sekret-value-1 b", ["sekret-value-1"]) == "a *** b"
    assert r.text("a sekret-value-1 b") == "a sekret-value-1 b"
    r.add(["sekret-value-1", None, "abc"])  # too short to be hidden alone
    assert r.text("a sekret-value-1 abc") == "a *** abc"
    assert r.secrets == ("sekret-value-1",)


def test_a_limit_never_shows_part_of_a_secret() -> None:
    r = Redactor([SECRET])
    near = "x" * 95 + SECRET + "y" * 50
    assert r.text(near, limit=100) == "x" * 95 + "***yy…[truncated, 171 characters in all]"
    # Cut before redaction at limit + SLACK + 256, after many redactions that shrink the
    # text: the secret straddling the cut must not move into what is kept.
    filler = "Bearer " + "t" * 93 + " "  # 101 characters, 11 once redacted
    count = (1000 + SLACK + 256) // len(filler)
    head = filler * count
    text = head + "z" * (1000 + SLACK + 256 - len(head) - 10) + SECRET + "tail"
    out = r.text(text, limit=1000)
    assert out.endswith(f"…[truncated, {len(text)} characters in all]")
    for size in range(4, len(SECRET) + 1):
        assert SECRET[:size] not in out


def test_too_many_secrets_withholds_the_rest() -> None:
    text = "token=abc " * (MAX_REDACTIONS + 100) + "and then token=last"
    out = redact_text(text)
    assert "abc" not in out and "last" not in out
    assert out.count("***") == MAX_REDACTIONS
    assert out.endswith(f"more than {MAX_REDACTIONS} secrets to redact]")


# ---- linear time on hostile input --------------------------------------------------------


def _fill(unit: str, size: int = MIB4) -> str:
    return (unit * (size // len(unit) + 1))[:size]


HOSTILE = {
    "colons after a scheme": "a://" + ":" * MIB4,
    "'://' repeated": _fill("://"),
    "'://' repeated with an @": _fill("://") + "@",
    "'bearer ' repeated": _fill("bearer "),
    "'password=' repeated": _fill("password="),
    "'password= ' repeated": _fill("password= "),
    "one base64 run": _fill("QUJDRGVm+/09"),
    "40-character base64 runs": _fill("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY "),
    "a letter run (the 19 s case)": "x" * MIB4,
    "'-----BEGIN ' repeated": _fill("-----BEGIN RSA PRIVATE KEY-----\n"),
    "markers glued": _fill("tokensecretpasswordapi_keyaccess_keyghp_xoxb-AKIAsk-://@"),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_4_mib_is_linear(name: str) -> None:
    """A loose bound only, to catch a quadratic pattern (the old set took minutes on
    3 MB); bench/redact.py measures the speed."""
    text = HOSTILE[name]
    started = time.perf_counter()
    out = redact_text(text)
    assert time.perf_counter() - started < 5, f"{name}: redaction is not linear"
    assert isinstance(out, str)
    assert len(out) <= len(text) + 100


def test_hostile_outcomes() -> None:
    assert "bearer bearer" not in redact_text(HOSTILE["'bearer ' repeated"])[:-200]
    assert redact_text(HOSTILE["'password=' repeated"]) == "password=***"
    assert redact_text(HOSTILE["a letter run (the 19 s case)"]) == HOSTILE[
        "a letter run (the 19 s case)"]
    runs = redact_text(HOSTILE["40-character base64 runs"])
    assert "wJalr" not in runs and runs.startswith("*** *** ***")


# ---- fuzz ---------------------------------------------------------------------------------

# Filler that cannot spell a marker or a token (no ASCII letters or digits), kept apart
# from what it surrounds by spaces.
FILLER = st.text(alphabet=" \n\t,.;!?()[]{}<>|#éü✓—\ud800", max_size=30)
TOKEN = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                min_size=8, max_size=40)
SHAPES = [
    "Authorization: Bearer {}", "authorization: basic {}", "password={}", '"api_key": "{}"',
    "client_secret: {}", "https://user:{}@example.com/x", "accessToken={}",
]
HOSTILE_UNITS = st.sampled_from(["a://", ":", "://", "bearer ", "password=", "token ", "@",
                                 "-----BEGIN PRIVATE KEY-----", "sk-", "ghp_", "A" * 39,
                                 "/", "=", "\ud800", "é"])
ANY_TEXT = st.text(max_size=200) | st.lists(HOSTILE_UNITS, max_size=400).map("".join) | (
    st.tuples(HOSTILE_UNITS, st.integers(1, 20_000)).map(lambda t: t[0] * t[1]))


@settings(max_examples=300, deadline=2_000, suppress_health_check=list(HealthCheck))
@given(text=ANY_TEXT, limit=st.none() | st.integers(0, 500))
def test_fuzz_any_text(text: str, limit: int | None) -> None:
    """Anything in, a string out, in bounded time (the deadline), that can be stored."""
    out = redact_text(text, limit=limit)
    assert isinstance(out, str)
    out.encode("utf-8", "surrogatepass")
    if limit is not None:
        assert len(out) <= limit + 60


@settings(max_examples=300, deadline=2_000, suppress_health_check=list(HealthCheck))
@given(before=ANY_TEXT, secret=st.text(alphabet=st.characters(blacklist_characters="*"),
                                       min_size=8, max_size=40),
       after=ANY_TEXT, limit=st.none() | st.integers(0, 300))
def test_fuzz_a_known_secret_never_survives(before: str, secret: str, after: str,
                                            limit: int | None) -> None:
    out = Redactor([secret]).text(before + secret + after, limit=limit)
    assert secret not in out


@settings(max_examples=300, deadline=2_000, suppress_health_check=list(HealthCheck))
@given(shape=st.sampled_from(SHAPES), token=TOKEN, before=FILLER, after=FILLER)
def test_fuzz_credential_shapes_are_hidden(shape: str, token: str, before: str,
                                           after: str) -> None:
    out = redact_text(f"{before} {shape.format(token)} {after}")
    assert token not in out


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(
        st.sampled_from(["password", "cmd", "token", "n", "usage", "x"]) | st.text(max_size=8),
        inner, max_size=5),
    max_leaves=20)


@settings(max_examples=200, deadline=3_000, suppress_health_check=list(HealthCheck))
@given(value=JSON)
def test_fuzz_values_and_audit_json(value: Any) -> None:
    json.dumps(redact(value))
    stored = bounded_json(value)
    assert len(stored) <= ARGUMENTS_LIMIT
    json.loads(stored)


# ---- configured secrets reach every record -------------------------------------------------


def test_config_secrets_cover_urls_headers_and_keys(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LICENSE_VALUE", "LIC-0001-abcdefgh")
    (tmp_path / "servers.yaml").write_text(yaml.safe_dump({
        "servers": {
            "licensed": {"url": "https://mcp.example.com/mcp?license=${LICENSE_VALUE}&v=1"},
            "userinfo": {"url": "https://svc:pass%2Fword-99@mcp.example.com/mcp",
                         "headers": {"X-Api-Key": "xak-1234567890",
                                     "Authorization": "Bearer brr-1234567890"}},
            "local": {"command": "true", "env": {"DATABASE_URL": "postgres://u:dbpw-2222@h/db",
                                                 "LOG_LEVEL": "debug-level"}},
        },
        "llm": {"provider": "openai", "api_key": "sk-llm-key-000111",
                "base_url": "https://llm.example.com/v1?key=llmq-777777"},
        "runs": {"database_url": "postgresql://orch:runs-db-pw-3@db:5432/orch"},
        "notifications": {"targets": [
            {"name": "slack", "url": "https://hooks.slack.com/services/T0/B0/slackpath0000",
             "format": "slack"},
            {"name": "hook", "url": "https://tok-user-0000:hook-pw-1111@hooks.example.com/x",
             "secret": "notify-hmac-5555"}]},
    }))
    (tmp_path / "profiles.yaml").write_text(yaml.safe_dump({"alerts": {
        "hmac_secret": "hmac-secret-42424242"}}))
    found = set(config_secrets(load_config(tmp_path)))
    assert {"LIC-0001-abcdefgh", "pass%2Fword-99", "pass/word-99", "xak-1234567890",
            "Bearer brr-1234567890", "brr-1234567890", "dbpw-2222", "sk-llm-key-000111",
            "llmq-777777", "runs-db-pw-3", "hmac-secret-42424242",
            "https://hooks.slack.com/services/T0/B0/slackpath0000", "tok-user-0000",
            "hook-pw-1111", "notify-hmac-5555"} <= found
    assert not {"1", "debug-level", "postgres://u:dbpw-2222@h/db"} & found


def test_one_redactor_for_logs_audit_and_runs(tmp_path: Path,
                                              default_redactor: Redactor) -> None:
    """configure_logging installs the process redactor: what it knows, the audit log and
    the run records hide too, and so does a secret learnt later through the filter."""
    configure_logging(tmp_path, "INFO", secrets=["late-config-secret-99"])
    learnt = redacting_filter()
    assert learnt is not None
    learnt.add(["learnt-later-secret-05"])
    assert redact_text("a late-config-secret-99 b learnt-later-secret-05") == "a *** b ***"

    store = RunStore(f"sqlite:///{tmp_path / 'runs.sqlite'}")
    audit = AuditLog(store.engine)
    audit.record(kind="tool_call", caller="host", tool="everything_echo", outcome="ok",
                 arguments={"message": "use late-config-secret-99 and "
                                       "postgres://app:pw-in-args@db/x"})
    [entry] = audit.query()
    assert entry.arguments == {"message": "use *** and postgres://app:***@db/x"}

    now = time.time()
    store.create(RunRecord(id="run_r", goal="check the db", profile="default",
                           status=RunStatus.QUEUED, source="test", created_at=now,
                           updated_at=now))
    result = {"text": "DATABASE_URL=postgres://admin:pw-in-result@db/app "
                      "learnt-later-secret-05", "is_error": False}
    store.begin_tool_call("run_r", "1:c", "everything_get-env")
    store.finish_tool_call("run_r", "1:c", result, StepRecord(
        n=3, kind="tool", at=now, summary="everything_get-env: ok",
        detail={"tool": "everything_get-env", "arguments": {"password": "pw-arg"},
                "result": result["text"]}))
    store.add_step("run_r", StepRecord(n=1, kind="llm", at=now, summary="model asked",
                                       detail={"usage": {"input_tokens": 7}}))
    store.update("run_r", status=RunStatus.AWAITING_APPROVAL, pending=PendingApproval(
        call_id="5:c", tool="t", arguments={"dsn": "redis://:pw-pending@r:6379"},
        reason="destructive", requested_at=now, expires_at=now + 60))
    store.update("run_r", status=RunStatus.FAILED, usage=Usage(),
                 error="tool said late-config-secret-99")
    record = store.get("run_r")
    assert record is not None
    kept = record.model_dump_json()
    with sqlite3.connect(tmp_path / "runs.sqlite") as db:
        rows = json.dumps([db.execute(f"SELECT * FROM {table}").fetchall()  # noqa: S608
                           for table in ("orch_runs", "orch_run_steps", "orch_tool_calls",
                                         "orch_audit")])
    for text in (kept, rows):
        for secret in ("pw-in-result", "learnt-later-secret-05", "pw-arg", "pw-pending",
                       "late-config-secret-99", "pw-in-args"):
            assert secret not in text
        assert "postgres://admin:***@db/app" in text
    assert record.steps[0].detail == {"usage": {"input_tokens": 7}}
    assert store.begin_tool_call("run_r", "1:c", "everything_get-env")[1]["text"] == (
        "DATABASE_URL=postgres://admin:***@db/app ***")
    store.close()


# ---- long audit entries -----------------------------------------------------------------


def test_long_audit_entries_stay_valid_json(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'audit.sqlite'}")
    audit = AuditLog(engine)
    deep: Any = "bottom"
    for _ in range(200):
        deep = {"a": [deep]}
    big = {"message": "m" * 50_000, "items": list(range(10_000)), "deep": deep,
           "blob": "bearer " * 100_000, "obj": object()}
    audit.record_many([dict(kind="tool_call", caller="host", outcome="ok", tool="t",
                            arguments=big)] * 3)
    with engine.connect() as db:
        stored = [r[0] for r in db.execute(sa.text("SELECT arguments FROM orch_audit"))]
    for text in stored:
        assert len(text) <= ARGUMENTS_LIMIT
        json.loads(text)
    # a row as 5bd5f73 stored it: JSON cut at 20,000 characters
    legacy = json.dumps({"message": "x" * 30_000, "token": "tok-legacy"})[:20_000]
    with engine.begin() as db:
        db.execute(sa.text("INSERT INTO orch_audit (at, kind, caller, tool, arguments, "
                           "outcome) VALUES (:at, 'tool_call', 'host', 'old', :a, 'ok')"),
                   {"at": time.time(), "a": legacy})
    entries = audit.query(limit=10)
    assert len(entries) == 4
    assert entries[0].tool == "old" and isinstance(entries[0].arguments, str)
    assert entries[0].arguments.endswith("…[stored cut, not valid JSON]")
    message = entries[1].arguments["message"]
    assert message.startswith("mmm") and "characters in all]" in message
    assert entries[1].arguments["obj"].startswith("<object object")
