"""What every provider shares on the wire: retries with backoff, and errors without secrets."""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TypeVar

from orchestrator_mcp.llm.types import LLMError
from orchestrator_mcp.telemetry.redaction import redact_text

T = TypeVar("T")

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
FIRST_DELAY = 0.5
MAX_DELAY = 30.0
MAX_RETRY_AFTER = 60.0

class Transient(Exception):
    """A failure worth another attempt (429, 5xx, connection, timeout)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` without the given secrets, the configured ones (the process's redactor) or
    anything shaped like a key or bearer token."""
    return redact_text(text, secrets)


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Retry-After (seconds or an HTTP date) or retry-after-ms, capped; None when absent."""
    if not headers:
        return None
    lower = {k.lower(): v for k, v in headers.items()}
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = lower.get(name)
        if value is None:
            continue
        try:
            return min(max(float(value) / divisor, 0.0), MAX_RETRY_AFTER)
        except ValueError:
            pass
        parsed = email.utils.parsedate_tz(value)
        if parsed is not None:
            return min(max(email.utils.mktime_tz(parsed) - time.time(), 0.0), MAX_RETRY_AFTER)
    return None


def backoff(attempt: int) -> float:
    """Exponential from FIRST_DELAY, capped, with jitter so clients do not retry in step."""
    delay = min(FIRST_DELAY * 2**attempt, MAX_DELAY)
    return delay * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not cryptography


async def with_retries(attempt: Callable[[], Awaitable[T]], retries: int) -> T:
    """`attempt()` until it returns, raises a non-Transient error, or `retries` retries
    have failed; waits what Retry-After says, else exponential backoff."""
    for n in range(retries + 1):
        try:
            return await attempt()
        except Transient as exc:
            if n == retries:
                tries = "1 attempt" if n == 0 else f"{n + 1} attempts"
                raise LLMError(f"{exc.message} (gave up after {tries})") from None
            wait = exc.retry_after if exc.retry_after is not None else backoff(n)
            await asyncio.sleep(wait)
    raise AssertionError("unreachable")
