"""Regular expressions on untrusted text run on RE2, never on Python's `re`.

Why: `re` backtracks, so a nested quantifier such as `(a+)+$` takes exponential time on a
line that almost matches, and it holds the GIL for the whole match: a worker thread with a
timeout cannot stop it and the event loop stalls with it (issue 12: 34 s on 12 short lines,
every downstream health check failing meanwhile). RE2 (PyPI `google-re2`, module `re2`)
matches in time linear in the text and releases the GIL while it matches, so a scan can be
stopped between lines and the loop keeps running. What RE2 gives up — backreferences,
lookaround, atomic groups — is refused with an error that says what to write instead.

`user_pattern` is for expressions a caller supplies (logs_grep, logs_journal's `grep`);
`fixed_pattern` is for the agents' own expressions that scan untrusted text (diffs, files).
RE2 is imported, and fixed expressions compiled, on first use: the agents' modules load
with every server, and RE2 (≈ 2 MB) is not needed until a tool scans something.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from fastmcp.exceptions import ToolError

if TYPE_CHECKING:
    import re2

MAX_PATTERN_CHARS = 500
# RE2's memory budget per expression (program + DFA cache). re2 keeps the last 128 compiled
# expressions, so this also bounds what a stream of distinct patterns can hold (128 MiB).
_MAX_MEM = 1 << 20

# What to write instead, by the start of the fragment RE2 complains about.
_GROUP_HINTS: tuple[tuple[str, str], ...] = (
    ("(?=", "lookahead (?=...) is not supported — match the following text as part of the "
            "pattern ('foo(?=bar)' becomes 'foobar')"),
    ("(?!", "negative lookahead (?!...) is not supported — match what may follow with a "
            "character class ('foo[^b]'), or grep for the wider text and read the lines"),
    ("(?<", "lookbehind (?<=...) / (?<!...) is not supported — include the preceding text "
            "in the pattern ('(?<=id=)\\d+' becomes 'id=\\d+')"),
    ("(?P", "named backreferences (?P=name) are not supported — write the repeated text "
            "out, or match it with a character class"),
    ("(?>", "atomic groups (?>...) are not needed: RE2 never backtracks — use a plain group"),
    ("(?x", "verbose mode (?x) is not supported — remove the spaces and comments"),
    ("(?#", "comments (?#...) are not supported — remove them"),
)
_ESCAPE_HINTS: tuple[tuple[str, str], ...] = (
    ("\\Z", "\\Z is not supported — use \\z (end of text) or $"),
    ("\\u", "\\uXXXX is not supported — write the character itself or \\x{XXXX}"),
    ("\\N", "\\N{...} is not supported — write the character itself or \\x{XXXX}"),
    ("\\G", "\\G is not supported — anchor with ^ instead"),
)
_BACKREFERENCE = ("backreferences (\\1, \\2, ...) are not supported — write the repeated "
                  "text out, or match it with a character class")
_DEFAULT_HINT = "fix the pattern (escape literal characters such as '(' or '[' with a backslash)"


class Match(Protocol):
    def group(self, index: int = 0) -> str: ...

    def start(self, index: int = 0) -> int: ...


class Pattern(Protocol):
    """What the agents use of a compiled RE2 expression."""

    @property
    def pattern(self) -> str: ...

    def search(self, text: str) -> Match | None: ...

    def finditer(self, text: str) -> Iterator[Match]: ...


def _options(ignore_case: bool) -> re2.Options:
    import re2

    options = re2.Options()
    options.log_errors = False  # errors are raised, not written to stderr
    options.max_mem = _MAX_MEM
    options.case_sensitive = not ignore_case
    return options


def _explain(detail: str) -> str:
    """What to write instead, from RE2's error text ("<kind>: <fragment>")."""
    kind, _, fragment = detail.partition(": ")
    if kind == "invalid perl operator":
        return next((hint for start, hint in _GROUP_HINTS if fragment.startswith(start)),
                    "this group syntax is not supported by RE2 — use (...), (?:...), "
                    "(?P<name>...) or a flag group such as (?i:...)")
    if kind == "invalid escape sequence":
        if fragment[1:2].isdigit():
            return _BACKREFERENCE
        return next((hint for start, hint in _ESCAPE_HINTS if fragment.startswith(start)),
                    _DEFAULT_HINT)
    if kind == "bad repetition operator" and fragment in ("++", "*+", "?+"):
        return (f"possessive quantifiers (x{fragment}) are not needed: RE2 never backtracks "
                f"— write x{fragment[0]}")
    if kind == "invalid repetition size":
        return ("a repetition count is over 1000, or nested counts multiply past 1000 — use "
                "a smaller count, or + / *")
    if detail.startswith("pattern too large"):
        return "the pattern compiles to too large a program — use fewer or smaller counts"
    return _DEFAULT_HINT


def user_pattern(pattern: str, ignore_case: bool = False) -> Pattern:
    """A caller's regular expression compiled for RE2, or a ToolError saying what to change.

    Syntax is RE2's (https://github.com/google/re2/wiki/Syntax): Python's `re` syntax less
    backreferences, lookaround, atomic groups and possessive quantifiers."""
    if not pattern:
        raise ToolError("the pattern is empty — give a regular expression (RE2 syntax)")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ToolError(f"the pattern is {len(pattern)} characters long; the limit is "
                        f"{MAX_PATTERN_CHARS} — use a shorter regular expression")
    import re2

    try:
        return re2.compile(pattern, _options(ignore_case))
    except re2.error as exc:
        detail = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(
            exc.args[0], bytes) else str(exc)
        raise ToolError(f"invalid regular expression {pattern!r}: {detail} — "
                        f"{_explain(detail)}. Patterns run on RE2, which takes time "
                        "linear in the text whatever the pattern") from None


def fixed_pattern(pattern: str, ignore_case: bool = False) -> Pattern:
    """One of the agents' own expressions, compiled for RE2 when first used (an error there
    is a bug)."""
    return _FixedPattern(pattern, ignore_case)


class _FixedPattern:
    def __init__(self, pattern: str, ignore_case: bool) -> None:
        self._pattern = pattern
        self._ignore_case = ignore_case

    @property
    def pattern(self) -> str:
        return self._pattern

    @functools.cached_property
    def _compiled(self) -> Pattern:
        import re2

        return re2.compile(self._pattern, _options(self._ignore_case))

    def search(self, text: str) -> Match | None:
        return self._compiled.search(text)

    def finditer(self, text: str) -> Iterator[Match]:
        return self._compiled.finditer(text)
