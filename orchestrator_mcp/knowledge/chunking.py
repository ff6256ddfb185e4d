"""Split documents into chunks that follow Markdown headings, with size caps and overlap.

    # Disk full            -> section "Disk full"            (lines 1-4)
    ## Checks              -> section "Disk full > Checks"   (lines 5-20)
    ```sh
    # not a heading        -> stays in "Disk full > Checks": fences are respected
    ```

A section longer than `chunk_chars` is cut at line boundaries (preferring a blank line in
the second half of the piece), each piece starting with about `overlap` characters of the
one before it. Line numbers are 1-based and inclusive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


@dataclass(frozen=True)
class Chunk:
    text: str
    heading: str
    start_line: int
    end_line: int


Line = tuple[int, str]


def chunk_document(text: str, *, markdown: bool, chunk_chars: int, overlap: int) -> list[Chunk]:
    lines = list(enumerate(text.splitlines(), start=1))
    sections = _sections(lines) if markdown else [("", lines)]
    chunks: list[Chunk] = []
    for heading, body in sections:
        if not any(line.strip() and not _is_heading(line, markdown) for _, line in body):
            continue  # a heading directly followed by a sub-heading: its path lives on
        chunks.extend(_split(heading, body, chunk_chars, min(overlap, chunk_chars // 2)))
    return chunks


def _is_heading(line: str, markdown: bool) -> bool:
    return markdown and _HEADING.match(line) is not None


def _sections(lines: list[Line]) -> list[tuple[str, list[Line]]]:
    sections: list[tuple[str, list[Line]]] = [("", [])]
    stack: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in lines:
        opened = _FENCE.match(line)
        if fence is not None:
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence):
                fence = None
        elif opened:
            fence = opened.group(1)
        elif match := _HEADING.match(line):
            level, title = len(match.group(1)), match.group(2).strip()
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, title))
            sections.append((" > ".join(t for _, t in stack if t), []))
        sections[-1][1].append((number, line))
    return [s for s in sections if s[1]]


def _trim(piece: list[Line]) -> list[Line]:
    start, end = 0, len(piece)
    while start < end and not piece[start][1].strip():
        start += 1
    while end > start and not piece[end - 1][1].strip():
        end -= 1
    return piece[start:end]


def _emit(heading: str, piece: list[Line], out: list[Chunk]) -> None:
    piece = _trim(piece)
    if piece:
        out.append(Chunk("\n".join(line for _, line in piece), heading,
                         piece[0][0], piece[-1][0]))


def _split(heading: str, body: list[Line], limit: int, overlap: int) -> list[Chunk]:
    out: list[Chunk] = []
    piece: list[Line] = []
    size = 0
    for number, line in _cut_long_lines(body, limit, overlap):
        if piece and size + len(line) + 1 > limit:
            keep = _break_point(piece)
            _emit(heading, piece[:keep], out)
            piece = _tail(piece[:keep], overlap) + piece[keep:]
            size = sum(len(text) + 1 for _, text in piece)
            while piece and size + len(line) + 1 > limit:  # overlap + rest still too big
                size -= len(piece.pop(0)[1]) + 1
        piece.append((number, line))
        size += len(line) + 1
    _emit(heading, piece, out)
    return out


def _break_point(piece: list[Line]) -> int:
    """Cut after the last blank line in the second half of the piece, else at its end."""
    for index in range(len(piece) - 1, len(piece) // 2, -1):
        if not piece[index][1].strip():
            return index + 1
    return len(piece)


def _tail(piece: list[Line], overlap: int) -> list[Line]:
    """The last lines of `piece` holding at least `overlap` characters (never all of it)."""
    taken: list[Line] = []
    size = 0
    for item in reversed(piece[1:]):
        if size >= overlap:
            break
        taken.insert(0, item)
        size += len(item[1]) + 1
    return taken if overlap else []


def _cut_long_lines(body: list[Line], limit: int, overlap: int) -> list[Line]:
    out: list[Line] = []
    step = max(1, limit - overlap - 1)
    for number, line in body:
        if len(line) < limit:
            out.append((number, line))
            continue
        out.extend((number, line[i:i + limit - 1]) for i in range(0, len(line), step)
                   if i == 0 or i + overlap < len(line))
    return out
