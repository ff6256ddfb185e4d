"""Idempotent submissions: a caller's key names the run it starts.

The run's id is derived from the key (and the caller, so two callers' keys never meet), so
every copy of a submission — concurrent, retried after a timeout, sent to another replica —
asks for the same id, and the database's primary key lets exactly one create it; queueing
the same id again is a no-op in DBOS. What was asked is kept beside it as a hash: the same
key with a different request is a conflict, not a silent reuse. Keys live as long as the
run record.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from orchestrator_mcp.runs.errors import RunConflict, RunError

MAX_KEY = 255
_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # printable ASCII, no spaces (as HTTP headers carry)


@dataclass
class Idempotency:
    key: str
    caller: str  # the principal's id; "local" for stdio and the CLI
    replayed: bool = False  # set by the engine: an earlier submission made the run

    def __post_init__(self) -> None:
        if not _KEY.fullmatch(self.key):
            shown = self.key[:40] + ("…" if len(self.key) > 40 else "")
            raise RunError(f"idempotency key {shown!r} is not usable: give 1-{MAX_KEY} "
                           "printable ASCII characters without spaces (a UUID is a good key)")

    def run_id(self, prefix: str) -> str:
        digest = hashlib.sha256(f"{self.caller}\n{self.key}".encode()).hexdigest()
        return f"{prefix}_{digest[:24]}"


def request_hash(request: dict[str, Any]) -> str:
    text = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def conflict(key: str, run_id: str) -> RunConflict:
    return RunConflict(f"idempotency key {key[:40]!r} was used for a different request (run "
                       f"{run_id}); send the same request to get that run, or use a new key")
