"""Approvals: which calls wait for a human, what a pending approval holds, and which
decisions are valid. The durable wait itself (pending → a decision or expiry → recorded)
is `RunSteps.await_approval`, the one sequence the planner and workflows both use; a
decision reaches it as a DBOS message on `topic(call_id)`, sent by `RunEngine.approve`
for every face (MCP tool, HTTP route, CLI).
"""

from __future__ import annotations

import time
from typing import Any

from orchestrator_mcp.auth.scopes import label_of
from orchestrator_mcp.config import ProfileConfig
from orchestrator_mcp.config.profiles import ApprovalRules
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
            rules: ApprovalRules, owner: str | None) -> PendingApproval:
    now = time.time()
    return PendingApproval(call_id=call_id, tool=tool, arguments=arguments, reason=why,
                           requested_at=now, expires_at=now + rules.timeout_seconds,
                           approvers=rules.approvers,
                           separate_approver=rules.separate_approver, owner=owner)


def decide(record: RunRecord, approved: bool, *, modified_arguments: dict[str, Any] | None,
           reason: str | None, decided_by: str, via: str | None = None) -> ApprovalDecision:
    """The decision on what `record` waits for, or a RunError saying why none can be made
    (four eyes: the owner approving under separate_approver, an approver approving twice)."""
    waiting = record.pending_approval
    if record.status is not RunStatus.AWAITING_APPROVAL or waiting is None:
        raise RunConflict(f"run '{record.id}' is {record.status.value}, not waiting for an "
                       "approval")
    if waiting.expires_at < time.time():
        raise RunConflict(f"the approval of {waiting.tool} in run '{record.id}' has expired")
    if modified_arguments is not None and not approved:
        raise RunError("modified_arguments only make sense with approved=true")
    if approved:
        _four_eyes(record.id, waiting, decided_by, modified_arguments)
    return ApprovalDecision(call_id=waiting.call_id, approved=approved,
                            modified_arguments=modified_arguments, reason=reason,
                            decided_by=decided_by, via=via, decided_at=time.time())


def _four_eyes(run_id: str, waiting: PendingApproval, approver: str,
               modified_arguments: dict[str, Any] | None) -> None:
    if waiting.separate_approver and approver == waiting.owner:
        raise ApprovalRefused(
            f"{label_of(approver)} started run '{run_id}' and may not approve its own call to "
            f"{waiting.tool}: its profile needs another principal to approve "
            "(approval.separate_approver); you may still reject it or cancel the run")
    if approver in waiting.approved_by:
        left = waiting.approvers - len(waiting.approved_by)
        raise ApprovalRefused(
            f"{label_of(approver)} has already approved {waiting.tool} in run '{run_id}'; it needs "
            f"{left} more approval(s) from other principals (approval.approvers: "
            f"{waiting.approvers})")
    if modified_arguments is not None and waiting.approvers > 1:
        raise ApprovalRefused(
            f"{waiting.tool} in run '{run_id}' needs {waiting.approvers} approvers, who must "
            "all approve the same arguments: modified_arguments are refused here; reject it "
            "and start a run with the arguments you want")


def still_needed(waiting: PendingApproval, decision: ApprovalDecision) -> int:
    """Approvals still needed after `decision` (0: decided). A rejection decides at once; a
    repeated or owner's approval (a race the checks above missed) counts for nothing."""
    if not decision.approved:
        return 0
    counted = set(waiting.approved_by)
    if not (waiting.separate_approver and decision.decided_by == waiting.owner):
        counted.add(decision.decided_by)
    return max(0, waiting.approvers - len(counted))


class ApprovalRefused(RunConflict):
    """A decision the profile's four-eyes rules do not allow from this principal."""

    status = 403
    code = "forbidden"


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


def summary(tool: str, decision: ApprovalDecision | None,
            approvers: list[str] | None = None) -> str:
    """The run history's line for a decision (`approvers`: all who approved, four eyes)."""
    if decision is None:
        return f"approval of {tool} expired; not executed"
    who = ", ".join(map(label_of, approvers if approvers and decision.approved
                        else [decision.decided_by]))
    text = f"{tool} {outcome(decision)} by {who}"
    if decision.via:
        text += f" (via {decision.via})"
    return f"{text}: {decision.reason}" if decision.reason else text


def partial_summary(tool: str, decision: ApprovalDecision, left: int) -> str:
    text = (f"{tool} approved by {label_of(decision.decided_by)}; {left} more approval(s) "
            "needed")
    return f"{text}: {decision.reason}" if decision.reason else text
