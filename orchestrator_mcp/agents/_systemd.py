"""systemd helpers shared by the logs and infrastructure agents: validated unit names,
`--since` values and priorities, and reading the journal through `journalctl -o json`."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastmcp.exceptions import ToolError
from pydantic import AfterValidator, BaseModel, Field

from orchestrator_mcp.agents._regex import Pattern
from orchestrator_mcp.agents.commands import CommandResult, require_binary, run_command

UNIT_SUFFIXES = (".service", ".socket", ".timer", ".target", ".mount", ".path", ".slice",
                 ".scope")
_UNIT_CHARS = re.compile(r"^[A-Za-z0-9:_.\\@-]+$")
_UNIT_SUFFIX_RE = "|".join(s.lstrip(".") for s in UNIT_SUFFIXES)
_UNITS = r"(?:us|ms|s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?|w|weeks?|M|" \
         r"months?|y|years?)"
_SINCE = re.compile(
    r"^(?:now|today|yesterday"
    r"|@\d{1,12}"
    rf"|[+-]?(?:\d{{1,6}}\s*{_UNITS}\s*)+(?:ago)?"
    r"|\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2})?)?)$")
PRIORITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
JOURNAL_SCAN_ENTRIES = 50_000
_NO_SYSTEMD = ("has not been booted with systemd", "Failed to connect to bus",
               "System has not been booted")


def check_unit(unit: str) -> str:
    """A systemd unit name by systemd's rules; `.service` is added when no type is given."""
    unit = unit.strip()
    if not unit or unit.startswith("-") or not _UNIT_CHARS.match(unit):
        raise ValueError(f"{unit!r} is not a valid systemd unit name (letters, digits and "
                         r"':_.\@-' only, not starting with '-'), e.g. 'nginx' or 'nginx.service'")
    if not unit.endswith(UNIT_SUFFIXES):
        unit += ".service"
    stem = unit.rsplit(".", 1)[0]
    if not stem or stem.startswith(".") or len(unit) > 255:
        raise ValueError(f"{unit!r} is not a valid systemd unit name (empty name before the "
                         "type suffix, or longer than 255 characters)")
    return unit


def check_since(since: str) -> str:
    since = " ".join(since.split())
    if not _SINCE.match(since):
        raise ValueError(f"{since!r} is not a time journalctl accepts here — use e.g. "
                         "'1 hour ago', '-2h', '30min ago', 'today', 'yesterday' or "
                         "'2026-11-01 10:00:00'")
    return since


def check_priority(value: Any) -> str:
    text = str(value).strip().lower()
    if text in PRIORITIES or text in {str(i) for i in range(8)}:
        return text
    raise ValueError(f"{value!r} is not a syslog priority — use 0-7 or one of "
                     f"{', '.join(PRIORITIES)}")


Unit = Annotated[str, Field(max_length=255, description="systemd unit, e.g. nginx.service"),
                 AfterValidator(check_unit)]
Since = Annotated[str, Field(max_length=64), AfterValidator(check_since)]
Priority = Annotated[int | str, AfterValidator(check_priority),
                     Field(description="0-7 or emerg, alert, crit, err, warning, notice, info, "
                                       "debug; entries of this priority or more urgent")]


class JournalEntry(BaseModel):
    time: str | None = Field(description="ISO 8601, UTC")
    priority: int | None
    unit: str | None
    identifier: str | None
    pid: int | None
    message: str


class JournalResult(BaseModel):
    entries: list[JournalEntry]
    scanned_entries: int
    truncated: bool = Field(description="more entries matched than were returned or scanned")
    note: str | None = None


def _text(value: Any) -> str:
    """journalctl gives MESSAGE as a string, as a list of byte values (not UTF-8), or null."""
    if isinstance(value, list) and all(isinstance(b, int) for b in value):
        return bytes(value).decode("utf-8", errors="replace")
    return "" if value is None else str(value)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def parse_entry(line: str) -> JournalEntry | None:
    try:
        raw = json.loads(line)
    except json.JSONDecodeError:
        return None
    micros = _int(raw.get("__REALTIME_TIMESTAMP"))
    return JournalEntry(
        time=datetime.fromtimestamp(micros / 1e6, UTC).isoformat() if micros else None,
        priority=_int(raw.get("PRIORITY")), unit=raw.get("_SYSTEMD_UNIT") or raw.get("UNIT"),
        identifier=raw.get("SYSLOG_IDENTIFIER"), pid=_int(raw.get("_PID")),
        message=_text(raw.get("MESSAGE"))[:4096])


def command_error(result: CommandResult, what: str, timeout: float) -> ToolError:
    """A clear error for a failed host command (timeouts and 'systemd is not running' named)."""
    if result.timed_out:
        return ToolError(f"{what} did not finish within {timeout} s — narrow the request "
                         "or raise the agent's timeout in servers.yaml")
    stderr = result.stderr.strip()
    if any(marker in stderr for marker in _NO_SYSTEMD):
        return ToolError(f"systemd is not running on this host ({stderr.splitlines()[0]}) — "
                         "systemd tools work only where systemd is PID 1")
    return ToolError(f"{what} failed (exit {result.exit_code}): {stderr[:500] or 'no output'}")


async def read_journal(*, unit: str | None, since: str | None, priority: str | None,
                       lines: int, pattern: Pattern | None, timeout: float,
                       max_bytes: int) -> JournalResult:
    """The newest `lines` entries (oldest first), optionally filtered by `pattern` (RE2)."""
    journalctl = require_binary("journalctl", "systemd (journalctl)")
    scan = lines if pattern is None else JOURNAL_SCAN_ENTRIES
    argv = [journalctl, "--no-pager", "-o", "json", "-r", "-n", str(scan)]
    if since:
        argv.append(f"--since={since}")
    if priority:
        argv.append(f"--priority={priority}")
    if unit:
        argv.append(f"--unit={unit}")
    result = await run_command(argv, timeout=timeout, max_output=max_bytes)
    if result.timed_out or result.exit_code != 0:
        raise command_error(result, "journalctl", timeout)
    # Up to JOURNAL_SCAN_ENTRIES JSON lines to parse and match: off the event loop.
    return await asyncio.to_thread(_filter_entries, result, lines, scan, pattern, max_bytes)


def _filter_entries(result: CommandResult, lines: int, scan: int, pattern: Pattern | None,
                    max_bytes: int) -> JournalResult:
    raw_lines = result.stdout.splitlines()
    if result.truncated and raw_lines:
        raw_lines.pop()  # the last line was cut mid-entry
    entries: list[JournalEntry] = []
    scanned = 0
    for line in raw_lines:
        entry = parse_entry(line)
        if entry is None:
            continue
        scanned += 1
        if pattern is None or pattern.search(entry.message):
            entries.append(entry)
    truncated = result.truncated or len(entries) > lines or (
        pattern is not None and scanned >= scan)
    notes = []
    if result.truncated:
        notes.append(f"journalctl output was cut at {max_bytes} bytes")
    if pattern is not None and scanned >= scan:
        notes.append(f"only the newest {scan} entries were searched")
    if not entries and result.stderr.strip():
        notes.append(result.stderr.strip()[:300])
    return JournalResult(entries=list(reversed(entries[:lines])), scanned_entries=scanned,
                         truncated=truncated, note="; ".join(notes) or None)
