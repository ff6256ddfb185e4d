"""The logs agent: read log files under the configured roots, and the systemd journal.

Every tool is read-only. Paths are checked against `roots` (no traversal, no symlink
escapes); reads are capped by `max_scan_bytes` and answers by `max_lines`, and every answer
says when it was cut. Callers' regular expressions run on RE2 (`_regex`): linear time, and
the scan stops at the agent's `timeout` between two lines whatever the pattern. File reading
lives in `_logfiles`, journal reading in `_systemd`.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter, deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, TypeVar

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from orchestrator_mcp.agents._logfiles import LineScan, is_gzip, tail_lines
from orchestrator_mcp.agents._logfiles import severity as severity_of
from orchestrator_mcp.agents._logfiles import signature as signature_of
from orchestrator_mcp.agents._regex import MAX_PATTERN_CHARS, user_pattern
from orchestrator_mcp.agents._systemd import JournalResult, Priority, Since, Unit, read_journal
from orchestrator_mcp.agents.logs_settings import LogsAgentSettings
from orchestrator_mcp.agents.paths import path_under_roots

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                            open_world_hint=False)
LIST_MAX_DEPTH = 4
LIST_MAX_VISITED = 20_000
LEVELS = ("fatal", "critical", "error", "warning")

LogPath = Annotated[str, Field(min_length=1, max_length=4096,
                               description="a log file under the agent's roots; relative "
                                           "paths are taken from the first root")]
T = TypeVar("T")


class TailResult(BaseModel):
    path: str
    lines: list[str] = Field(description="oldest first")
    requested: int
    returned: int
    truncated: bool = Field(description="fewer lines than requested were returned")
    note: str | None = None


class GrepMatch(BaseModel):
    line_number: int
    text: str


class GrepResult(BaseModel):
    path: str
    pattern: str
    matches: list[GrepMatch] = Field(description="the last `max_matches` matches, in order")
    total_matches: int = Field(description="matches in the part of the file scanned")
    bytes_scanned: int
    truncated: bool = Field(description="more matches, or more file, than were returned")
    note: str | None = None


class LevelCounts(BaseModel):
    fatal: int = 0
    critical: int = 0
    error: int = 0
    warning: int = 0


class ErrorSignature(BaseModel):
    signature: str = Field(description="the line with numbers, ids, IPs and times replaced")
    level: str
    count: int
    example: str = Field(description="one real line with this signature (the latest)")


class ErrorSummary(BaseModel):
    path: str
    lines_analysed: int
    counts: LevelCounts
    distinct_signatures: int
    top_signatures: list[ErrorSignature] = Field(description="error, critical and fatal "
                                                             "lines, most frequent first")
    truncated: bool = Field(description="fewer lines than asked for were analysed")
    note: str | None = None


class LogFile(BaseModel):
    path: str
    size_bytes: int
    modified: str = Field(description="ISO 8601, UTC")
    compressed: bool


class LogFileList(BaseModel):
    directories: list[str]
    files: list[LogFile] = Field(description="most recently modified first")
    truncated: bool
    note: str | None = None


async def _read(function: Callable[..., T], *args: object) -> T:
    """Run a blocking file read in a thread, turning I/O failures into clear tool errors."""
    try:
        return await asyncio.to_thread(function, *args)
    except PermissionError as exc:
        raise ToolError(f"{exc.filename or 'file'}: permission denied — the server's user "
                        "cannot read it") from None
    except (OSError, EOFError) as exc:
        raise ToolError(f"could not read the file: {exc}") from None


def _grep(path: Path, pattern_text: str, ignore_case: bool, keep: int, max_bytes: int,
          seconds: float) -> GrepResult:
    pattern = user_pattern(pattern_text, ignore_case)
    scan = LineScan(path, max_bytes)
    matches: deque[tuple[int, str]] = deque(maxlen=keep)
    total = 0
    deadline = time.monotonic() + seconds
    notes: list[str] = []
    timed_out = False
    for number, line in enumerate(scan, start=1):
        if pattern.search(line):
            total += 1
            matches.append((number, line))
        if time.monotonic() > deadline:  # one RE2 search on one cut line is short
            timed_out = True
            notes.append(f"stopped at line {number} after {seconds} s (timeout)")
            break
    if total > keep:
        notes.append(f"{total} matches; only the last {keep} are returned")
    if scan.cut:
        notes.append(f"only the first {max_bytes} bytes were scanned (max_scan_bytes)")
    return GrepResult(path=str(path), pattern=pattern_text,
                      matches=[GrepMatch(line_number=n, text=t) for n, t in matches],
                      total_matches=total, bytes_scanned=scan.bytes_read,
                      truncated=total > keep or scan.cut or timed_out,
                      note="; ".join(notes) or None)


def _summarise(path: Path, count: int, top: int, max_bytes: int, seconds: float
               ) -> ErrorSummary:
    lines, cut = tail_lines(path, count, max_bytes)
    levels: Counter[str] = Counter()
    groups: Counter[tuple[str, str]] = Counter()
    examples: dict[tuple[str, str], str] = {}
    deadline = time.monotonic() + seconds
    analysed = 0
    for line in lines:
        if time.monotonic() > deadline:
            break
        analysed += 1
        found = severity_of(line)
        if found is None:
            continue
        level, start = found
        levels[level] += 1
        if level != "warning":
            key = (signature_of(line, start), level)
            groups[key] += 1
            examples[key] = line[:1000]
    top_groups = [ErrorSignature(signature=key[0], level=key[1], count=n, example=examples[key])
                  for key, n in groups.most_common(top)]
    notes = [f"only {len(lines)} lines fit in max_scan_bytes ({max_bytes} bytes)"] if cut \
        else []
    if analysed < len(lines):
        notes.append(f"stopped after {analysed} of {len(lines)} lines after {seconds} s "
                     "(timeout)")
    return ErrorSummary(path=str(path), lines_analysed=analysed,
                        counts=LevelCounts(**{k: levels[k] for k in LEVELS}),
                        distinct_signatures=len(groups), top_signatures=top_groups,
                        truncated=cut or analysed < len(lines), note="; ".join(notes) or None)


def _list(directories: list[Path], roots: list[Path], limit: int) -> LogFileList:
    files: list[LogFile] = []
    visited = 0
    complete = True
    for base in directories:
        for folder, subdirs, names in os.walk(base):
            depth = len(Path(folder).relative_to(base).parts)
            if depth >= LIST_MAX_DEPTH:
                subdirs.clear()
            for name in names:
                visited += 1
                full = Path(folder) / name
                try:
                    real = full.resolve()
                    if not any(real.is_relative_to(root) for root in roots):
                        continue  # a symlink pointing outside the roots
                    info = real.stat()
                except OSError:
                    continue
                if not real.is_file():
                    continue
                files.append(LogFile(
                    path=str(full), size_bytes=info.st_size, compressed=is_gzip(full),
                    modified=datetime.fromtimestamp(info.st_mtime, UTC).isoformat()))
            if visited >= LIST_MAX_VISITED:
                complete = False
                break
        if not complete:
            break
    files.sort(key=lambda f: f.modified, reverse=True)
    notes = [] if complete else [f"stopped after looking at {LIST_MAX_VISITED} files"]
    if len(files) > limit:
        notes.append(f"{len(files)} files; only the {limit} most recent are listed")
    return LogFileList(directories=[str(d) for d in directories], files=files[:limit],
                       truncated=not complete or len(files) > limit,
                       note="; ".join(notes) or None)


def build(settings: LogsAgentSettings) -> FastMCP:
    mcp = FastMCP("logs", instructions="Read-only access to log files under the configured "
                                       "roots and to the systemd journal.")
    roots = [root.resolve() for root in settings.roots]
    max_lines, max_bytes = settings.max_lines, settings.max_scan_bytes

    def log_file(raw: str) -> Path:
        path = path_under_roots(raw, roots)
        if path.is_dir():
            raise ToolError(f"{raw!r} is a directory — use list_files to see the files in it")
        if not path.is_file():
            raise ToolError(f"{raw!r} is not a regular file")
        return path

    def capped(requested: int, what: str) -> tuple[int, str | None]:
        if requested <= max_lines:
            return requested, None
        return max_lines, f"{what} limited to {max_lines} (max_lines in servers.yaml)"

    @mcp.tool(annotations=READ_ONLY)
    async def tail(path: LogPath, lines: Annotated[int, Field(ge=1, le=1_000_000)] = 100
                   ) -> TailResult:
        """The last lines of a log file (plain or .gz), oldest first."""
        file = log_file(path)
        count, note = capped(lines, "lines")
        found, cut = await _read(tail_lines, file, count, max_bytes)
        if cut:
            note = "; ".join(filter(None, [note, f"the last {max_bytes} bytes held only "
                                                 f"{len(found)} lines (max_scan_bytes)"]))
        return TailResult(path=str(file), lines=found, requested=lines, returned=len(found),
                          truncated=cut or (count < lines and len(found) == count), note=note)

    @mcp.tool(annotations=READ_ONLY)
    async def grep(
        path: LogPath,
        pattern: Annotated[str, Field(min_length=1, max_length=MAX_PATTERN_CHARS, description=(
            "a regular expression in RE2 syntax (Python's re without backreferences or "
            "lookaround)"))],
        ignore_case: bool = False,
        max_matches: Annotated[int, Field(ge=1, le=1_000_000)] = 100,
    ) -> GrepResult:
        """Lines of a log file (plain or .gz) matching a regular expression, with line
        numbers; keeps the most recent `max_matches` matches and counts all of them."""
        file = log_file(path)
        user_pattern(pattern, ignore_case)  # a bad pattern fails before any reading
        keep, note = capped(max_matches, "matches")
        result = await _read(_grep, file, pattern, ignore_case, keep, max_bytes,
                             settings.timeout)
        if note:
            result.note = "; ".join(filter(None, [note, result.note]))
        return result

    @mcp.tool(annotations=READ_ONLY)
    async def error_summary(
        path: LogPath,
        since_lines: Annotated[int, Field(ge=1, le=1_000_000,
                                          description="analyse this many last lines")] = 10_000,
        top: Annotated[int, Field(ge=1, le=100)] = 10,
    ) -> ErrorSummary:
        """Counts of fatal/critical/error/warning lines in the end of a log file, and the most
        frequent error signatures (similar errors grouped: numbers, ids, UUIDs, IPs and
        timestamps normalised away), each with its count and an example line."""
        file = log_file(path)
        return await _read(_summarise, file, since_lines, top, max_bytes, settings.timeout)

    @mcp.tool(annotations=READ_ONLY)
    async def list_files(
        directory: Annotated[str | None, Field(max_length=4096, description=(
            "a folder under the roots; all roots when omitted"))] = None,
    ) -> LogFileList:
        """Log files under the roots (or one folder of them) with size and modification
        time, most recently modified first."""
        if directory is None:
            folders = [root for root in roots if root.is_dir()]
        else:
            folders = [path_under_roots(directory, roots)]
            if not folders[0].is_dir():
                raise ToolError(f"{directory!r} is not a directory")
        return await _read(_list, folders, roots, max_lines)

    @mcp.tool(annotations=READ_ONLY)
    async def journal(
        unit: Unit | None = None,
        since: Since = "1 hour ago",
        priority: Priority | None = None,
        lines: Annotated[int, Field(ge=1, le=1_000_000)] = 100,
        grep: Annotated[str | None, Field(max_length=MAX_PATTERN_CHARS, description=(
            "a regular expression (RE2 syntax) the message must match"))] = None,
    ) -> JournalResult:
        """Recent systemd journal entries (journalctl), newest last; filter by unit, start
        time, priority (this level or more urgent) and a regular expression."""
        pattern = user_pattern(grep) if grep is not None else None
        count, note = capped(lines, "lines")
        result = await read_journal(unit=unit, since=since, priority=priority, lines=count,
                                    pattern=pattern, timeout=settings.timeout,
                                    max_bytes=max_bytes)
        if note and len(result.entries) == count:
            result.truncated = True
            result.note = "; ".join(filter(None, [note, result.note]))
        return result

    return mcp
