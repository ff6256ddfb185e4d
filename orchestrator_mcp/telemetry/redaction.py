"""One redactor for logs, the audit log, run records, errors and spans.

It hides two kinds of secret: the values we know (configured tokens, secret-named
environment variables, passwords and query values of downstream URLs…, see
`telemetry.logs.config_secrets`) and anything shaped like a credential (bearer tokens,
`api_key=…`, URL passwords, provider key prefixes, PEM private keys, AWS secret keys).

Why it is written this way: redaction runs on every log record and on whatever a host or a
tool sends, up to the 4 MiB request limit. Python's `re` is a backtracking engine and holds
the GIL for a whole `sub`, so one quadratic pattern freezes the process: the former URL
pattern took 19 s on 40,000 characters, whatever thread it ran in. Here every scan is
linear and its constant small (4 MiB of adversarial text takes tens of milliseconds,
bench/redact.py):

* each pattern starts with a literal marker (`bearer`, `token`, `://`, `-----BEGIN `…),
  so the engine jumps between markers instead of trying every position, and every
  repetition after a marker is possessive and stops at characters the next marker needs,
  so no character is scanned from two markers;
* case-insensitive markers are found in an ASCII-lowered copy of the UTF-8 bytes (same
  length), and the cuts are made at the same offsets in the original;
* replacement is C-level: `split` with two groups (what precedes the secret, the secret),
  the secrets swapped for *** by one slice assignment;
* AWS secret keys (40 characters of base64 with no marker) are found in a translated copy
  where every base64 character is one letter, so the 40-character run is itself a literal;
* at most MAX_REDACTIONS secrets are hidden per text; a text with more (no honest log line
  or tool result has that many) keeps what was redacted and has the rest withheld.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from itertools import accumulate
from typing import Any

REDACTED = "***"
# Dictionary keys whose text values are secrets whatever they hold ("author" is not one;
# numbers are kept, so usage counts such as input_tokens survive).
SECRET_KEY = re.compile(r"pass|secret|token|api[_-]?key|auth(?!ors?(?![a-z]))|credential"
                        r"|private", re.I)
MIN_SECRET_LENGTH = 4  # a known value shorter than this would blank out ordinary text
MAX_REDACTIONS = 20_000  # per text; beyond, the rest is withheld (see _Budget)
MAX_DEPTH = 64  # nesting kept by `Redactor.value`; deeper parts become a marker
SLACK = 8192  # with a limit, characters redacted beyond it (a secret may cross the cut)

_STAR = REDACTED.encode()

# ---- patterns -----------------------------------------------------------------------
# Each has two groups, (what precedes the secret)(the secret), both always taking part,
# and starts with a literal.

_VALUE = rb"""["']?\s*+[:=]\s*+["']?)((?!\*\*\*)[^\s"',;&}\]]++)"""
# In the lowered copy: credential prefixes of any case.
_FOLDED = [re.compile(p) for p in (
    # Bearer <token>
    rb"(bearer(?<!\wbearer)\s++)([a-z0-9._~+/=-]{4,}+)",
    # Authorization: Basic <base64>
    rb"""(authorization["']?\s*+[:=]\s*+["']?basic\s++)([a-z0-9+/=]++)""",
    # key=value, key: value, "key": "value" for secret-looking keys: *token, *secret,
    # passw(or)d, api/access/private key (apiKey, client_secret, refresh_token…). Each
    # starts with its own literal: one marker repeated costs one failed attempt each.
    rb"(token" + _VALUE,
    rb"(secret" + _VALUE,
    rb"(passw(?:or)?d" + _VALUE,
    rb"(api[_-]?key" + _VALUE,
    rb"(access[_-]?key" + _VALUE,
    rb"(private[_-]?key" + _VALUE,
)]
_FOLDED_MARKERS = (b"bearer", b"authorization", b"token", b"secret", b"passw", b"api",
                   b"access", b"private")
# In the original bytes: case-sensitive shapes.
_PEM = re.compile(
    rb"(-----BEGIN [A-Z ]{0,40}PRIVATE KEY-----)"
    rb"((?!\*\*\*)(?:[^-]++|-(?!----))*+(?:-----END [A-Z ]{0,40}PRIVATE KEY-----)?)")
# (pattern, marker it starts with, a byte it needs: `in` finds one byte at memchr speed)
_EXACT = [(re.compile(p), marker, needs) for p, marker, needs in (
    # scheme://user:password@host (the password may hold ':'; userinfo never holds '/')
    (rb"(://[^/\s:@]{0,4096}+:)([^/\s@]{1,4096}+)(?=@)", b"://", b"@"),
    # well-known key shapes: OpenAI/Anthropic, GitHub, Slack, AWS access key ids
    (rb"()(sk-(?<!\wsk-)[A-Za-z0-9_-]{8,}+)", b"sk-", b"-"),
    (rb"()(gh[pousr]_(?<!\wgh[pousr]_)[A-Za-z0-9]{20,}+)", b"gh", b"_"),
    (rb"()(xox[abprs]-(?<!\wxox[abprs]-)[A-Za-z0-9-]{10,}+)", b"xox", b"-"),
    (rb"()(AKIA(?<!\wAKIA)[A-Z0-9]{16})", b"AKIA", b"A"),
    (rb"()(ASIA(?<!\wASIA)[A-Z0-9]{16})", b"ASIA", b"A"),
)]

# AWS secret access keys: exactly 40 characters of [A-Za-z0-9/+], not next to another
# base64 character or '=', with a lower-case letter, an upper-case letter and a digit (so
# hex digests and plain words are left alone). In `_B64` every such character is 'a',
# '=' is '=', anything else is ' '; a candidate is then the literal ' ' + 40 'a' + ' '.
_BASE64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+"
_B64 = bytes(0x61 if c in _BASE64 else 0x3D if c == 0x3D else 0x20 for c in range(256))
_CLASSES = bytes(0x6C if 0x61 <= c <= 0x7A else 0x75 if 0x41 <= c <= 0x5A
                 else 0x64 if 0x30 <= c <= 0x39 else 0x20 for c in range(256))
_RUN = b" " + b"a" * 40
_AWS = re.compile(b"( )(" + _RUN[1:] + b")(?= )")


class _Budget:
    """How many more secrets this text may have redacted."""

    __slots__ = ("left", "withheld")

    def __init__(self) -> None:
        self.left = MAX_REDACTIONS
        self.withheld = 0


def _cut(pattern: re.Pattern[bytes], data: bytes, hay: bytes, budget: _Budget) -> bytes:
    """`data` with the secrets `pattern` finds in `hay` (data itself, or a same-length
    transform of it) as ***."""
    parts = pattern.split(hay, budget.left + 1)
    found = len(parts) // 3
    if not found:
        return data
    same = hay is data
    if found > budget.left:  # withhold from the first secret over the budget on
        found = budget.left
        parts = parts[:3 * found + 1]
        tail = sum(map(len, parts))
        budget.withheld += len(data) - tail
        data = data[:tail]
    budget.left -= found
    if same:
        parts[2::3] = [_STAR] * found
        return b"".join(parts)
    ends = list(accumulate(map(len, parts)))
    keep = map(slice, [0, *ends[2::3]], [*ends[1::3], len(data)])
    return _STAR.join(map(data.__getitem__, keep))


def _aws(data: bytes, budget: _Budget) -> bytes:
    runs = data.translate(_B64)
    if not runs.count(_RUN) and not runs.startswith(_RUN[1:]):  # count: C, no objects
        return data
    hay = b" " + runs + b" "
    parts = _AWS.split(hay, budget.left + 1)
    if len(parts) == 1:
        return data
    ends = list(accumulate(map(len, parts)))
    # candidate i is hay[ends[3i+1]:ends[3i+2]], one byte further on than in data
    starts, stops = [e - 1 for e in ends[1::3]], [e - 1 for e in ends[2::3]]
    if len(starts) > budget.left:  # withhold from the first candidate over the budget on
        budget.withheld += len(data) - starts[budget.left]
        data = data[:starts[budget.left]]
        del starts[budget.left:], stops[budget.left:]
    classes = data.translate(_CLASSES)
    mixed = [(a, b) for a, b in zip(starts, stops, strict=True)
             if b"l" in (c := classes[a:b]) and b"u" in c and b"d" in c]
    budget.left -= len(mixed)
    keep = map(slice, [0, *(b for _, b in mixed)], [*(a for a, _ in mixed), len(data)])
    return _STAR.join(map(data.__getitem__, keep))


# Up to this length (bytes) a text is first tested for any marker at all, then for each
# pattern's own marker (most log lines have none); longer texts go through every scan, as
# cheap as a test (each jumps between its markers) but for the one-byte needs of _EXACT.
SHORT = 4096
_HINT = re.compile(rb"bearer|authorization|token|secret|passw|api|access|private|://|sk-"
                   rb"|gh[pousr]_|xox[abprs]-|akia|asia|-----begin ")


def _shapes(data: bytes, budget: _Budget) -> bytes:
    short = len(data) <= SHORT
    if short and not _HINT.search(data.lower()):
        return _aws(data, budget) if len(data) >= 40 else data
    if not short or b"-----BEGIN " in data:
        data = _cut(_PEM, data, data, budget)
    low = data.lower()
    for marker, pattern in zip(_FOLDED_MARKERS, _FOLDED, strict=True):
        if not short or marker in low:
            cut = _cut(pattern, data, low, budget)
            if cut is not data:
                data, low = cut, cut.lower()
    for pattern, marker, needs in _EXACT:
        if marker in data if short else needs in data:
            data = _cut(pattern, data, data, budget)
    return _aws(data, budget)


def _withheld_marker(count: int) -> bytes:
    return (f"…[{count} bytes withheld: more than {MAX_REDACTIONS} secrets to "
            "redact]").encode()


_TRUNCATED = re.compile(r"…\[truncated, (\d+) characters in all\]\Z")


def _marked(kept: str, length: int) -> str:
    return f"{kept}…[truncated, {length} characters in all]"


def shorten(text: str, limit: int, length: int | None = None) -> str:
    """`text` cut to `limit` characters plus a marker saying how long it was (`length`,
    else what a marker already at its end says, else its own length); unchanged if it
    fits. For texts that are already redacted: cutting one cannot reveal anything."""
    if len(text) <= limit:
        return text
    if length is None:
        earlier = _TRUNCATED.search(text, max(0, len(text) - 64))
        if earlier:
            text, length = text[:earlier.start()], int(earlier[1])
        else:
            length = len(text)
    return _marked(text[:limit], length)


def _known(secrets: Iterable[str | None]) -> set[bytes]:
    return {s.encode("utf-8", "surrogatepass") for s in secrets
            if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH}


def _hidden(key: Any, value: Any) -> bool:
    """Whether a dict value is a secret for its key alone."""
    return (value is not None and not isinstance(value, bool | int | float)
            and SECRET_KEY.search(str(key)) is not None)


class Redactor:
    """Hides known secret values and credential shapes in texts and JSON-like values.

    The set of known values only grows (`add`) and is swapped whole, so a redaction
    running in another thread sees the old set or the new one, never half of it."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: tuple[bytes, ...] = ()
        self.add(secrets)

    @property
    def secrets(self) -> tuple[str, ...]:
        """The known values, longest first."""
        return tuple(s.decode("utf-8", "surrogatepass") for s in self._secrets)

    def add(self, secrets: Iterable[str | None]) -> None:
        """Also hide these values (None and ones shorter than MIN_SECRET_LENGTH are
        skipped)."""
        # Longest first, so a secret that contains another is hidden whole.
        self._secrets = tuple(sorted({*self._secrets, *_known(secrets)}, key=len,
                                     reverse=True))

    def text(self, text: str, extra: Iterable[str | None] = (), *,
             limit: int | None = None) -> str:
        """`text` with the known secrets, `extra` ones and credential shapes as ***.

        With `limit`, at most that many characters (and a marker when cut); a longer text
        is cut before it is redacted, keeping room for a secret across the cut."""
        secrets = self._secrets
        if extra:
            secrets = tuple(sorted({*secrets, *_known(extra)}, key=len, reverse=True))
        if limit is None:
            return self._redact(text, secrets)
        if len(text) > limit + SLACK:
            # A secret cut in two by `[:...]` survives as the end of the redacted text,
            # shorter than the longest secret (or URL password): drop that end.
            longest = max(256, len(secrets[0]) if secrets else 0)
            clean = self._redact(text[:limit + SLACK + longest], secrets)
            return _marked(clean[:max(0, min(limit, len(clean) - longest))], len(text))
        return shorten(self._redact(text, secrets), limit, len(text))

    @staticmethod
    def _redact(text: str, secrets: tuple[bytes, ...]) -> str:
        data = text.encode("utf-8", "surrogatepass")
        for secret in secrets:
            if secret in data:
                data = data.replace(secret, _STAR)
        budget = _Budget()
        data = _shapes(data, budget)
        if budget.withheld:
            data += _withheld_marker(budget.withheld)
        return data.decode("utf-8", "surrogatepass")

    def value(self, value: Any, *, limit: int | None = None) -> Any:
        """`value` (JSON-like) with values under secret-looking keys as *** and strings
        redacted as text (each cut to `limit`). Dicts, lists and tuples are copied (tuples
        become lists, as in JSON); parts nested deeper than MAX_DEPTH become a marker."""
        return self._value(value, limit, 0)

    def _value(self, value: Any, limit: int | None, depth: int) -> Any:
        if isinstance(value, str):
            return self.text(value, limit=limit)
        if not isinstance(value, dict | list | tuple):
            return value
        if depth >= MAX_DEPTH:
            return f"…[nested deeper than {MAX_DEPTH} levels]"
        if isinstance(value, dict):
            return {k: REDACTED if _hidden(k, v) else self._value(v, limit, depth + 1)
                    for k, v in value.items()}
        return [self._value(v, limit, depth + 1) for v in value]


_default = Redactor()


def default_redactor() -> Redactor:
    """The process's redactor: what `redact_text`/`redact` use. Logging's set-up
    (`telemetry.logs.configure_logging`) fills it with the configured secrets."""
    return _default


def install(redactor: Redactor) -> None:
    """Make `redactor` the process default (start-up; tests)."""
    global _default
    _default = redactor


def redact_text(text: str, secrets: Iterable[str | None] = (), *,
                limit: int | None = None) -> str:
    """`text` with the configured secrets, the given ones, and anything shaped like a
    credential, as ***; with `limit`, at most that many characters (see `Redactor.text`)."""
    return _default.text(text, secrets, limit=limit)


def redact(value: Any, *, limit: int | None = None) -> Any:
    """`value` (JSON-like) with values under secret-looking keys, and secrets inside
    strings, as ***; with `limit`, each string cut to that many characters."""
    return _default.value(value, limit=limit)
