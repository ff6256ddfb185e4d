"""Approvals: which calls wait for a human, what a pending approval holds, and which
decisions are valid. The durable wait itself (pending → a decision or expiry → recorded)
is `RunSteps.await_approval`, the one sequence the planner and workflows both use; a
decision reaches it as a DBOS message on `topic(call_id)`, sent by `RunEngine.approve`
for every face (MCP tool, HTTP route, CLI).
"""

from __future__ import annotations

import time
from typing import Any

from orchestrator_mcp.config import ProfileConfig
from orchestrator_mcp.gateway import CatalogTool
from orchestrator_mcp.runs.errors import RunConflict, RunError
from orchestrator_mcp.runs.models import ApprovalDecision, PendingApproval, RunRecord, RunStatus
from orchestrator_mcp.runs.policy import is_destructive, matching


def topic(call_id: str) -> str:
    """The DBOS message topic a run waits on for the decision on one call."""
    return f"approval:{call_id}"


def reason(entry: CatalogTool, profile: ProfileConfig) -> str | None:
    """Why a call to this tool must wait for a human under this profile, or None."""
    rules = profile.approval
    if matching(entry.name, rules.auto_approve):
        return None
    pattern = matching(entry.name, rules.require)
    if pattern is not None:
        return f"the profile requires approval for tools matching {pattern!r}"
    if rules.destructive == "require" and is_destructive(entry):
        return "the tool is not marked read-only and may be destructive"
    return None


def pending(call_id: str, tool: str, arguments: dict[str, Any], why: str,
            timeout: float) -> PendingApproval:
    now = time.time()
    return PendingApproval(call_id=call_id, tool=tool, arguments=arguments, reason=why,
                           requested_at=now, expires_at=now + timeout)


def decide(record: RunRecord, approved: bool, *, modified_arguments: dict[str, Any] | None,
           reason: str | None, decided_by: str) -> ApprovalDecision:
    """The decision on what `record` waits for, or a RunError saying why none can be made."""
    waiting = record.pending_approval
    if record.status is not RunStatus.AWAITING_APPROVAL or waiting is None:
        raise RunConflict(f"run '{record.id}' is {record.status.value}, not waiting for an "
                       "approval")
    if waiting.expires_at < time.time():
        raise RunConflict(f"the approval of {waiting.tool} in run '{record.id}' has expired")
    if modified_arguments is not None and not approved:
        raise RunError("modified_arguments only make sense with approved=true")
    return ApprovalDecision(call_id=waiting.call_id, approved=approved,
                            modified_arguments=modified_arguments, reason=reason,
                            decided_by=decided_by, decided_at=time.time())


MAX_PROBLEMS = 20


def check_arguments(tool: str, schema: dict[str, Any], arguments: dict[str, Any]) -> None:
    """Modified arguments must fit the tool's input schema: a RunError listing (at most
    MAX_PROBLEMS of) the problems, each with where it is, otherwise. Blocking (a schema
    may hold slow patterns): call it off the event loop."""
    from jsonschema import exceptions, validators

    try:
        validator_class = validators.validator_for(schema)
        validator = validator_class(schema)
        problems = []
        for error in validator.iter_errors(arguments):
            where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
            problems.append({"field": where, "problem": error.message[:300]})
            if len(problems) >= MAX_PROBLEMS:
                break
    except (exceptions.SchemaError, exceptions.UnknownType, RecursionError) as exc:
        raise RunError(f"the arguments of {tool} cannot be checked against its input schema "
                       f"({type(exc).__name__}); approve the call as proposed or reject it"
                       ) from None
    if problems:
        error = RunError(f"the modified arguments do not fit {tool}'s input schema: "
                         + "; ".join(f"{p['field']}: {p['problem']}" for p in problems[:3]))
        error.detail = problems
        raise error


def outcome(decision: ApprovalDecision | None) -> str:
    if decision is None:
        return "expired"
    return "approved" if decision.approved else "rejected"


def summary(tool: str, decision: ApprovalDecision | None) -> str:
    """The run history's line for a decision."""
    if decision is None:
        return f"approval of {tool} expired; not executed"
    text = f"{tool} {outcome(decision)} by {decision.decided_by}"
    return f"{text}: {decision.reason}" if decision.reason else text
