"""Reading log files for the logs agent: tail by seeking backwards, streaming line scans with
byte caps (gzip files decompressed on the fly), and error signatures that group lines
differing only in numbers, ids, addresses and times.

Log lines are untrusted text (anyone who can make a service log can choose them): they are
cut at MAX_LINE_BYTES, level words are found with RE2, and the normalising expressions below
(which need lookaround, so stay on `re`) have no nested quantifiers: each is linear or
bounded-polynomial on one cut line.
"""

from __future__ import annotations

import gzip
import os
import re
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from orchestrator_mcp.agents._regex import Pattern, fixed_pattern

MAX_LINE_BYTES = 4096
_BLOCK = 64 * 1024


def is_gzip(path: Path) -> bool:
    return path.name.endswith(".gz")


def _decode(raw: bytes) -> str:
    return raw[:MAX_LINE_BYTES].decode("utf-8", errors="replace").rstrip("\r")


class LineScan:
    """Lines of a file from its start, reading at most `max_bytes` (decompressed) bytes.

    Over-long lines are cut at MAX_LINE_BYTES. After iterating, `cut` says whether the file
    went on past the byte limit.
    """

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path, self.max_bytes = path, max_bytes
        self.bytes_read = 0
        self.cut = False

    def __iter__(self) -> Iterator[str]:
        rest = b""
        with (gzip.open(self.path, "rb") if is_gzip(self.path) else open(self.path, "rb")
              ) as handle:
            while True:
                chunk = handle.read(min(_BLOCK, self.max_bytes - self.bytes_read))
                if not chunk:
                    break
                self.bytes_read += len(chunk)
                parts = (rest + chunk).split(b"\n")
                rest = parts.pop()[:MAX_LINE_BYTES]
                for part in parts:
                    yield _decode(part)
                if self.bytes_read >= self.max_bytes:
                    self.cut = bool(handle.read(1))
                    break
        if rest and not self.cut:
            yield _decode(rest)


def tail_lines(path: Path, count: int, max_bytes: int) -> tuple[list[str], bool]:
    """The last `count` lines and whether the byte limit stopped the search for them early."""
    if is_gzip(path):  # compressed: no seeking backwards, stream through a bounded window
        scan = LineScan(path, max_bytes)
        window = deque(scan, maxlen=count)
        return list(window), scan.cut
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        position, chunks, newlines = size, [], 0
        while position > 0 and newlines <= count and size - position < max_bytes:
            step = min(_BLOCK, position, max_bytes - (size - position))
            position -= step
            handle.seek(position)
            chunk = handle.read(step)
            chunks.append(chunk)
            newlines += chunk.count(b"\n")
        first_complete = position == 0
        if position > 0:
            handle.seek(position - 1)
            first_complete = handle.read(1) == b"\n"
    data = b"".join(reversed(chunks))
    if data.endswith(b"\n"):
        data = data[:-1]
    lines = data.split(b"\n") if data else []
    if lines and not first_complete:
        lines = lines[1:]
    cut = position > 0 and len(lines) < count
    return [_decode(line) for line in lines[-count:]], cut


# Severity words, most severe first; "alert"/"emerg" only in capitals (they are common words).
_LEVELS: tuple[tuple[str, Pattern], ...] = (
    ("fatal", fixed_pattern(r"\b(?:(?i:fatal|panic)|EMERG|EMERGENCY|ALERT)\b")),
    ("critical", fixed_pattern(r"\b(?:crit|critical)\b", ignore_case=True)),
    ("error", fixed_pattern(r"\b(?:error|err|severe|exception)\b", ignore_case=True)),
    ("warning", fixed_pattern(r"\b(?:warn|warning)\b", ignore_case=True)),
)
_NORMALISE: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I),
     "<uuid>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?(?:[.,]\d+)?)?"
                r"(?:Z|[+-]\d{2}:?\d{2})?"), "<time>"),
    (re.compile(r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b"), "<time>"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?\b"), "<ip>"),
    (re.compile(r"(?<![\w:])(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}(?![\w:])", re.I), "<ip>"),
    (re.compile(r"\b0x[0-9a-f]+\b", re.I), "<hex>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b", re.I), "<hex>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
)


def severity(line: str) -> tuple[str, int] | None:
    """The most severe level word on the line, and where a signature should start: at the
    word when it looks like a level field (ERROR, [error], level=error), else at the start."""
    for level, pattern in _LEVELS:
        found = pattern.search(line)
        if found:
            before = line[found.start() - 1:found.start()]
            if found.group().isupper() or before in ("=", '"', "<", "'"):
                return level, found.start()
            return level, found.start() - 1 if before == "[" else 0
    return None


def signature(line: str, start: int = 0) -> str:
    """The line from `start` on, with variable parts replaced by placeholders."""
    text = line[start:]
    for pattern, placeholder in _NORMALISE:
        text = pattern.sub(placeholder, text)
    return " ".join(text.split())[:300]
