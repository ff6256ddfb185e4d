"""What a run is, as stored and as shown: one enum of statuses, pydantic records."""

from __future__ import annotations

import math
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


class StopReason(StrEnum):
    """Why a run ended; `answered` is the normal end."""

    ANSWERED = "answered"
    MAX_STEPS = "budget_max_steps"
    MAX_TOKENS = "budget_max_tokens"
    MAX_COST = "budget_max_cost"
    MAX_SECONDS = "budget_max_seconds"
    LLM_ERROR = "llm_error"
    CANCELLED = "cancelled"
    ERROR = "error"


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0

    def add(self, input_tokens: int, output_tokens: int, cost: float | None) -> Usage:
        total = None if cost is None or self.cost_usd is None else self.cost_usd + cost
        return Usage(
            input_tokens=self.input_tokens + input_tokens,
            output_tokens=self.output_tokens + output_tokens,
            cost_usd=round(total, 6) if total is not None else None,
        )

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class PendingApproval(BaseModel):
    call_id: str
    tool: str
    arguments: dict[str, Any]
    reason: str = Field(description="why this call needs a human")
    requested_at: float
    expires_at: float
    # Four eyes (profile approval.separate_approver / approvers), as the call waits under.
    approvers: int = Field(default=1, description="distinct approvals the call needs")
    separate_approver: bool = Field(
        default=False, description="the run's owner may not approve it")
    owner: str | None = None
    approved_by: list[str] = Field(
        default_factory=list, description="who has approved so far (of `approvers`)")


class ApprovalDecision(BaseModel):
    call_id: str
    approved: bool
    modified_arguments: dict[str, Any] | None = None
    reason: str | None = None
    decided_by: str = Field(default="unknown", description="the deciding principal's id")
    via: str | None = Field(default=None, description="the face it came through")
    decided_at: float


class StepRecord(BaseModel):
    """One entry of a run's history, as the runs resource shows it."""

    n: int
    kind: str  # "llm", "tool", "approval", "note"
    at: float
    summary: str
    detail: dict[str, Any] = Field(default_factory=dict)


class RunRecord(BaseModel):
    id: str
    goal: str
    profile: str
    status: RunStatus
    stop_reason: StopReason | None = None
    parent_id: str | None = None
    workflow: str | None = Field(default=None, description="set for workflow runs")
    source: str = "mcp"
    owner: str | None = Field(default=None, description="the principal id that started it "
                              "('system:<source>' for alerts and schedules)")
    context: dict[str, Any] = Field(default_factory=dict)
    created_at: float
    updated_at: float
    finished_at: float | None = None
    answer: str | None = None
    error: str | None = None
    usage: Usage = Field(default_factory=Usage)
    pending_approval: PendingApproval | None = None
    steps: list[StepRecord] = Field(default_factory=list)


class RunEvent(BaseModel):
    """One event of the run stream: a history entry (`step`) or a change of the run
    (`status`, `approval`, `answer`, `end`); `id` is the run's sequence number."""

    id: int
    event: str
    data: dict[str, Any]


class RunMilestone(BaseModel):
    """A change of a run someone may want to be told about: it started waiting for an
    approval, or it ended (`status` says which). `seq` is the event's number in the run."""

    run_id: str
    seq: int
    at: float
    status: RunStatus
    profile: str
    source: str


class RunHead(BaseModel):
    status: RunStatus
    seq: int  # the last sequence number the run has taken


def parse_since(value: str | None) -> float | None:
    """A `since` filter as given by a caller: epoch seconds or an ISO 8601 time."""
    from orchestrator_mcp.runs.errors import RunError

    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds) or not 0 <= seconds < 1e11:
            raise RunError(f"since={value!r} is not a time: give epoch seconds (0 to 1e11) "
                           "or an ISO 8601 time like 2026-11-24T10:00:00+00:00")
        return seconds
    try:
        return datetime.fromisoformat(value).timestamp()
    except (ValueError, OverflowError):
        raise RunError(f"since={value!r} is neither epoch seconds nor an ISO 8601 time "
                       "like 2026-11-24T10:00:00+00:00") from None
