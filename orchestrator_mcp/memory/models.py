"""What a memory is, and the validation of everything that asks to write one.

A memory's id is derived from its profile and its fact (whitespace folded), so remembering
the same fact again (a run replayed after a crash, a second import of one file) updates one
row instead of adding a copy.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from orchestrator_mcp.errors import NotFound, UserError

MAX_FACT_CHARS = 1000
MAX_TAGS = 10
TAG = re.compile(r"^[A-Za-z0-9_.:/-]{1,40}$")
PROFILE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_LINE_CHARS = 16_384
MAX_TTL_SECONDS = 10 * 365 * 86400
_TTL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class BadMemory(UserError):
    """A memory write or query that cannot be done as asked."""


class MemoryNotFound(NotFound):
    pass


def memory_id(profile: str, fact: str) -> str:
    folded = " ".join(fact.split()).lower()
    return "mem_" + hashlib.sha256(f"{profile}\0{folded}".encode()).hexdigest()[:20]


def parse_ttl(value: Any) -> float | None:
    """Seconds a memory lives: a number of seconds or '<n>[s|m|h|d|w]' ('7d'); None or
    0 for no expiry."""
    if value is None or value == "" or value == 0:
        return None
    if isinstance(value, bool):
        raise ValueError("ttl must be a number of seconds or a duration like '7d'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _TTL.match(value)):
        seconds = float(match[1]) * _UNITS[match[2]]
    else:
        raise ValueError(f"ttl {str(value)[:40]!r} is not a duration: use seconds (3600) or "
                         "'<n>s', '<n>m', '<n>h', '<n>d' or '<n>w' ('7d')")
    if not 0 < seconds <= MAX_TTL_SECONDS:
        raise ValueError("ttl must be more than 0 and at most 10 years")
    return seconds


def clean_fact(fact: str) -> str:
    fact = _CONTROL.sub(" ", fact).strip()
    if not fact:
        raise ValueError("the fact is empty: say what was learned, e.g. 'web-3 fills "
                         "/var/log/app every Monday; the cleanup playbook fixes it'")
    if len(fact) > MAX_FACT_CHARS:
        raise ValueError(f"the fact is {len(fact)} characters; keep it under "
                         f"{MAX_FACT_CHARS}: one fact, stated briefly")
    return fact


def clean_tags(tags: list[str]) -> list[str]:
    if len(tags) > MAX_TAGS:
        raise ValueError(f"{len(tags)} tags; at most {MAX_TAGS}")
    for tag in tags:
        if not TAG.match(tag):
            raise ValueError(f"tag {tag[:50]!r} is invalid: 1-40 letters, digits or "
                             "'_.:/-', like 'web-3' or 'disk'")
    return list(dict.fromkeys(tags))


Fact = Annotated[str, AfterValidator(clean_fact)]
Tags = Annotated[list[str], AfterValidator(clean_tags)]


class RememberRequest(BaseModel):
    """The arguments of memory_remember, as a model (or anything a tool result planted in
    its mind) sent them."""

    model_config = ConfigDict(extra="forbid")

    fact: Fact
    tags: Tags = Field(default_factory=list)
    ttl: float | None = Field(default=None, description="seconds the memory lives")

    @field_validator("ttl", mode="before")
    @classmethod
    def _ttl(cls, ttl: Any) -> float | None:
        return parse_ttl(ttl)

    @classmethod
    def parse(cls, arguments: Any) -> RememberRequest:
        """The request, or a BadMemory that says what was wrong."""
        try:
            return cls.model_validate(arguments)
        except ValidationError as exc:
            raise BadMemory(explain(exc)) from None


def explain(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "arguments"
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {message}")
    return "; ".join(problems)


class Memory(BaseModel):
    """One remembered fact and where it came from."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^mem_[0-9a-f]{20}$")
    profile: str = Field(pattern=PROFILE.pattern)
    fact: Fact
    tags: Tags = Field(default_factory=list)
    run_id: str | None = Field(default=None, max_length=64)
    source: Literal["run", "import"] = "run"
    approved_by: str | None = Field(default=None, max_length=128)
    created_at: float
    expires_at: float | None = None

    @classmethod
    def learned(cls, profile: str, request: RememberRequest, *, run_id: str | None,
                approved_by: str | None, now: float | None = None) -> Memory:
        now = time.time() if now is None else now
        return cls(id=memory_id(profile, request.fact), profile=profile, fact=request.fact,
                   tags=request.tags, run_id=run_id, source="run", approved_by=approved_by,
                   created_at=now,
                   expires_at=now + request.ttl if request.ttl is not None else None)

    @classmethod
    def imported(cls, line: str) -> Memory:
        """One line of an export: its id is derived again (a line cannot choose which
        memory it replaces), its source becomes 'import'."""
        if len(line) > MAX_LINE_CHARS:
            raise BadMemory(f"the line is {len(line)} characters; an exported memory is at "
                            f"most {MAX_LINE_CHARS}")
        try:
            data = json.loads(line)
        except (ValueError, RecursionError):
            raise BadMemory("the line is not JSON: each line must be one memory as "
                            "`orchestrator-mcp memory export` writes it") from None
        if not isinstance(data, dict):
            raise BadMemory("the line is not a JSON object: each line must be one memory")
        data = {**data, "id": "mem_" + "0" * 20, "source": "import"}
        try:
            memory = cls.model_validate(data)
        except ValidationError as exc:
            raise BadMemory(explain(exc)) from None
        return memory.model_copy(update={"id": memory_id(memory.profile, memory.fact)})

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or time.time())
